# Names vulture cannot see used (``make lint`` runs vulture at 60% confidence over services/ and
# ops/scripts/ with this file). Each group says why the names are alive; a new unused function,
# class or variable elsewhere fails the lint. Not imported by anything; read by vulture only.
# ruff: noqa

# Called by frameworks: prometheus-client collectors, urllib's redirect handler, httpx auth flows,
# PEP 562 module __getattr__, psycopg connection attributes set for the driver.
_.collect
_.redirect_request
_.auth_flow
__getattr__
_.isolation_level

# markdown-it-py's hook for which link targets to keep (web/markdown.py sets it on the parser).
_.validateLink

# Fields of pydantic models and dataclasses: read by validation, model_dump, templates and JSON bodies.
generated_at
ts
item_rev
risk_avg_7d
risk_max_7d
risk_delta_7d
incidents_30d
recurring_incidents_30d
slo_breaches_7d
overdue_followups
open_critical_vulns
failed_deploys_7d
schema_
stale_digest
lte
in_
commonLabels
commonAnnotations
incident_ref
webhook_secret_env
href
known_env
percent
open_at_end
overdue_at_end
p0_open_at_end
first_week
oldest_due_date

# Named only inside a string forward reference (domain/models.py's recursive MetaValue alias).
MetaInt

# Enum members named in config files and requests, not in code.
P0
P1
P3

# Names the test suite imports (the journal's file name; the migration's latest step) and the
# psycopg transaction protocol's parameters (stores/pg_schema.py's structural type).
JOURNAL_FILE
LATEST_VERSION
force_rollback
savepoint_name

# The tracker adapters' interface (trackers/model.py) and its helpers: implemented by every kind and
# exercised by tests/trackers/test_contract.py; the sync that calls them in production is the next step.
_.backlog_status_for
_.route_for
_.find_by_marker
_.list_changed_since
_.key_for_url
_.from_dict
item_id_in

# trackers/http.py's NoCookies: CookieJar methods httpx calls on the jar it is given.
_.extract_cookies
cookie
