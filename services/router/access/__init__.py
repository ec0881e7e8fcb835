"""Who may do what, for the API and the web pages alike: service accounts and their keys
(``rbac``: ``config/rbac.yml``), authentication and the registry-driven authorization guards
(``auth``). Used by ``api`` and ``web``; knows neither.
"""
