"""Backlog Bridge's router: signals in, an owned and deduplicated backlog out (README, Layout).

A regular package (not a namespace one), so tools that walk the import graph (import-linter's
layer and cycle contracts in ``make lint``) see every module.
"""
