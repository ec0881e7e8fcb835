"""Governance jobs (RUNBOOK §9, DESIGN §10): the task registry, its cron rendering, the scheduler.

``ops/task_registry.yml`` is the declaration; ``ops/cron/jobs.cron`` is rendered from it and
checked against it; ``backlog scheduler`` runs the same jobs in-process on hosts without cron.
"""
