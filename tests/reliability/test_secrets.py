"""Secrets canary (CI tier): planted passwords and keys never appear in any output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from services.router.access.auth import AccessLogKeyRedactor, redact_query_keys
from tests.pg_support import ThrowawayCluster, session_cluster
from tests.reliability import secrets_canary


@pytest.mark.postgres
def test_planted_secrets_appear_nowhere(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cluster: ThrowawayCluster = session_cluster(request)
    figures = secrets_canary.run(tmp_path, cluster)
    assert figures.checks >= 40
    assert figures.occurrences == 0, figures.leaks
    assert figures.notes == []  # no traceback shown to a user, every failure path failed


def test_the_access_log_redacts_a_key_sent_in_the_query_string() -> None:
    """Regression: ``backlog serve --access-log`` wrote ``?api_key=<key>`` to the log verbatim."""
    assert redact_query_keys("/v1/backlog/dashboard?env=prod&api_key=s3cret&Token=x%20y") == \
        "/v1/backlog/dashboard?env=prod&api_key=***&Token=***"
    assert redact_query_keys("/v1/backlog/items?env=prod&X%2DAPI%2DKey=s3cret") == \
        "/v1/backlog/items?env=prod&X%2DAPI%2DKey=***"
    assert redact_query_keys("/healthz") == "/healthz"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:1", "GET", "/x?access_token=s3cret", "1.1", 401), None)
    assert AccessLogKeyRedactor().filter(record)
    assert "s3cret" not in record.getMessage() and "access_token=***" in record.getMessage()
