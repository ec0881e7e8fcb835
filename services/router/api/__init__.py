"""The router's HTTP API: the JSON routes, health and metrics, and the one error→status map
(``errors``, which the web pages use too). The app that serves them is ``services.router.app``;
keys and RBAC are ``services.router.access``.
"""
