"""The README's facts that would drift, checked against the code that produces them.

A number or list in the user's manual that the code also defines — a default, a limit, a job, a
metric, an environment variable — is read from the README here and compared with the code, so a
change to one without the other fails the suite instead of misleading an operator.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from services.router.domain.models import MAX_META_BYTES, MAX_TEXT, MAX_TITLE, ItemInput
from services.router.domain.queries import MAX_PAGE
from services.router.jobs.registry import DAILY_CATCH_UP, HOURLY_CATCH_UP, load_registry
from services.router.settings import Settings
from tests.api.conftest import route_table_app
from tests.jobs.test_runner import load_runner

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| `")]


def test_every_environment_variable_is_in_the_configuration_table_with_its_default() -> None:
    rows = {name: row for row in table_rows(section("Configuration"))
            for name in re.findall(r"`([A-Z_]+)`", row[0])}
    for field in Settings.model_fields.values():
        variable = str(field.validation_alias)
        assert variable in rows, f"{variable} is read by Settings but not in the README's Configuration table"
        if isinstance(field.default, int | float) and not isinstance(field.default, bool):
            assert rows[variable][1].startswith(f"`{field.default:g}`"), (variable, rows[variable][1])


def test_the_documented_input_limits_are_the_models() -> None:
    line = next(ln for ln in section("Durability and security guarantees").splitlines() if "slugs ≤" in ln)
    line += next(ln for ln in README.splitlines() if "evidence refs" in ln and "page size" in ln)
    schema = ItemInput.model_json_schema()["properties"]
    slug = schema["env"].get("maxLength") or schema["env"]["anyOf"][0]["maxLength"]
    documented = {
        "slugs": (r"slugs ≤ (\d+)", slug), "title": (r"title ≤ (\d+)", MAX_TITLE),
        "text": (r"comments ≤ ([\d,]+)", MAX_TEXT), "meta": (r"`meta` ≤ (\d+) KiB", MAX_META_BYTES // 1024),
        "evidence": (r"≤ (\d+) evidence refs", schema["evidence_refs"]["maxItems"]),
        "tags": (r"≤ (\d+) tags", schema["tags"]["maxItems"]), "page": (r"page size ≤ (\d+)", MAX_PAGE),
    }
    for what, (pattern, value) in documented.items():
        match = re.search(pattern, line)
        assert match is not None and int(match.group(1).replace(",", "")) == value, (what, value)


def test_the_governance_jobs_table_is_the_registry() -> None:
    registry = load_registry(REPO / "ops" / "task_registry.yml")
    rows = [row for row in table_rows(section("Governance jobs")) if len(row) == 5 and row[1].startswith("`")]
    documented = [(row[0].strip("`"), row[1].strip("`"), row[2].split("`")[1], row[3].strip("`"),
                   row[4].strip("`").rsplit("/", 1)[-1]) for row in rows]
    assert documented == [(j.name, j.schedule, j.call, j.entitlement, j.log_file.rsplit("/", 1)[-1])
                          for j in registry.jobs]
    catch_up = re.search(r"catch-up window \((\d+) h for hourly jobs, (\d+) h for daily/weekly", README)
    assert catch_up is not None
    assert (int(catch_up.group(1)), int(catch_up.group(2))) == (HOURLY_CATCH_UP.seconds // 3600,
                                                                DAILY_CATCH_UP.seconds // 3600)


def test_the_runner_options_have_the_documented_defaults() -> None:
    args = load_runner().parse_args(["--tool", "t", "--action", "a"])
    runner = section("Governance jobs")
    assert f"`--timeout` ({args.timeout:g} s)" in runner
    assert f"`--retries {args.retries}`, `--retry-backoff {args.retry_backoff:g}`, " \
           f"`--retry-max-wait {args.retry_max_wait:g}`" in runner
    assert f"(default {args.retries} retries, backoff {args.retry_backoff:g} s doubling" in runner


def test_the_metrics_table_lists_what_metrics_serves() -> None:
    with TestClient(route_table_app()) as client:
        served = set(re.findall(r"^# TYPE (\S+)", client.get("/metrics").text, re.M))
    served = {name for name in served if not name.endswith("_created")}
    rows = table_rows(section("Web dashboard and metrics"))
    documented = {name for row in rows for name in re.findall(r"`(backlog_[a-z_]+)`", row[0])}
    served = {name.removesuffix("_total") if f"{name.removesuffix('_total')}_total" == name
              and name.removesuffix("_total") in documented else name for name in served}
    assert documented == served


def test_the_migration_section_quotes_no_counts_the_code_would_change() -> None:
    """Object counts and the schema version come from the migration's own output, not the README."""
    migration = README[README.index("**Migration**"):README.index("### Auto (default)")]
    assert not re.search(r"\(\d+\s+objects\s+to\s+create", migration)
    assert not re.search(r"schema is at version \d", migration)
