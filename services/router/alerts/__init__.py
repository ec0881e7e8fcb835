"""Alert thresholds on the backlog (RUNBOOK §6) and the notifications they send."""
