"""The deployment files, without containers (those run in ``make deploy-test``): the env files
operators make, and what compose.yaml promises — no secret in it, every service on Postgres,
the start order, and a Prometheus that scrapes the routers compose defines."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services.router.access.rbac import load_rbac, read_accounts
from services.router.jobs.registry import TaskRegistry
from tests.deploy.stack import CORE_SERVICES, OBSERVABILITY, deploy_test_registry, read_env_file

REPO = Path(__file__).resolve().parents[2]
MAKE_ENV = REPO / "ops" / "scripts" / "make_deploy_env.py"


def make_env(folder: Path) -> subprocess.CompletedProcess[str]:
    # The system python3, as the README's command runs it (standard library only).
    return subprocess.run(["python3", str(MAKE_ENV), "--dir", str(folder)], capture_output=True, text=True,
                          timeout=30)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return data


def test_env_files_enable_every_account_and_are_private(tmp_path: Path) -> None:
    result = make_env(tmp_path)
    assert result.returncode == 0, result.stderr
    keys = read_env_file(tmp_path / "backlog.env")
    rbac = load_rbac(REPO / "config" / "rbac.yml", environ=keys)  # refuses weak or shared keys
    assert {a.name for a in rbac.enabled} == {a.name for a in read_accounts(REPO / "config" / "rbac.yml")}
    db = read_env_file(tmp_path / "postgres.env")
    assert db["POSTGRES_PASSWORD"] == db["PGPASSWORD"] and len(db["PGPASSWORD"]) >= 32
    assert db["PGPASSWORD"] not in keys.values()
    for name in ("backlog.env", "postgres.env"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert db["PGPASSWORD"] not in result.stdout + result.stderr


def test_env_files_are_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "postgres.env").write_text("POSTGRES_PASSWORD=kept\n")
    result = make_env(tmp_path)
    assert result.returncode == 1
    assert "already exist" in result.stderr and "nothing was written" in result.stderr
    assert (tmp_path / "postgres.env").read_text() == "POSTGRES_PASSWORD=kept\n"
    assert not (tmp_path / "backlog.env").exists()


def test_two_runs_make_different_keys(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    assert make_env(first).returncode == 0 and make_env(second).returncode == 0
    assert set(read_env_file(first / "backlog.env").values()).isdisjoint(read_env_file(second / "backlog.env").values())


def test_compose_holds_no_secret_and_reads_them_from_env_files(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == set(CORE_SERVICES + OBSERVABILITY)
    for name, service in services.items():
        environment = service.get("environment") or {}
        secret_like = [k for k in environment if k.endswith(("_API_KEY", "PASSWORD")) or k == "PGPASSWORD"]
        assert not secret_like, f"{name} sets {secret_like} in compose.yaml"
        if "BACKLOG_POSTGRES_DSN" in environment:
            assert urlsplit(environment["BACKLOG_POSTGRES_DSN"]).password is None, f"{name}: a password in the DSN"
    for router in ("router-a", "router-b"):
        assert any(str(f).endswith("/backlog.env") for f in services[router]["env_file"])
    for other in ("migrate", "scheduler-1", "scheduler-2", "postgres"):
        assert not any(str(f).endswith("/backlog.env") for f in services[other]["env_file"]), \
            f"{other} needs no API key"


def test_compose_runs_every_role_on_postgres_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    app = ("migrate", "router-a", "router-b", "scheduler-1", "scheduler-2")
    for name in app:
        assert services[name]["environment"]["BACKLOG_BACKEND"] == "postgres"
        assert services[name]["image"] == services["router-a"]["image"]  # one image, three roles
    assert services["migrate"]["command"][:2] == ["python3", "ops/scripts/migrate_backlog_postgres.py"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "on-failure"  # a one-shot: done once it exits 0
    for name in app[1:]:
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["router-a"]["command"][:4] == ["backlog", "serve", "--host", "0.0.0.0"]
    assert services["scheduler-1"]["command"][:2] == ["backlog", "scheduler"]
    assert set(compose["volumes"]) >= {"pgdata", "reports", "state"}
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_prometheus_is_optional_and_scrapes_both_routers_with_the_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["observability"]
    config = yaml.safe_load((REPO / "ops" / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    assert targets == {"router-a:8000", "router-b:8000"}
    mounted = dict(v.rsplit(":", 1)[0].split(":", 1) for v in prometheus["volumes"] if v.startswith("./"))
    for rule_file in config["rule_files"]:
        source = next(src for src, dst in mounted.items() if dst == rule_file)
        assert (REPO / source).is_file(), source


def test_deploy_test_registry_is_valid() -> None:
    registry = TaskRegistry.model_validate(deploy_test_registry())
    assert {"deploy_test_snapshot", "deploy_test_alerts"} <= set(registry.names)
