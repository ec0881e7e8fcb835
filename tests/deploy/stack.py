"""One compose project of the test: compose.yaml as shipped, with the test's env files, ports,
images and a registry that adds two every-minute jobs (so a few minutes hold scheduled slots).

The env files are made by ``ops/scripts/make_deploy_env.py``, the command the README gives
operators; routers publish on free 127.0.0.1 ports; containers are found by their compose labels,
so the names podman-compose gives them do not matter.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.deploy import podman
from tests.deploy.images import Images
from tests.deploy.podman import REPO

CORE_SERVICES = ("postgres", "migrate", "router-a", "router-b", "scheduler-1", "scheduler-2")
OBSERVABILITY = ("prometheus",)
TICK_JOBS = ("deploy_test_snapshot", "deploy_test_alerts")
SCHEDULER_POLL_SECONDS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deploy_test_registry() -> dict[str, Any]:
    """The shipped registry plus two jobs due every minute (catch-up 2 min)."""
    registry: dict[str, Any] = yaml.safe_load((REPO / "ops" / "task_registry.yml").read_text())
    common = {"schedule": "* * * * *", "params": {}, "catch_up_minutes": 2}
    registry["jobs"] += [
        {**common, "name": TICK_JOBS[0], "log_file": "/var/log/daarion/deploy_test_snapshot.log",
         "description": "deploy test: a risk snapshot every minute",
         "tool": "risk_history_tool", "action": "snapshot", "entitlement": "tools.risk.write",
         "dry_run": "Computes the snapshots without storing them.", "slot_param": "as_of"},
        {**common, "name": TICK_JOBS[1], "log_file": "/var/log/daarion/deploy_test_alerts.log",
         "description": "deploy test: alert notifications every minute",
         "tool": "backlog_tool", "action": "notify_alerts", "entitlement": "tools.backlog.admin",
         "dry_run": "Reports what would be sent."},
    ]
    return registry


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


@dataclass
class Stack:
    images: Images
    workdir: Path
    project: str = ""

    def __post_init__(self) -> None:
        self.project = self.project or f"bbdeploy{int(time.time()) % 100000}"
        self.env_dir = self.workdir / "env"
        self.config_dir = self.workdir / "config"
        self.ports = {"router-a": free_port(), "router-b": free_port(), "prometheus": free_port()}

    # -- set-up --------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.env_dir.mkdir(parents=True)
        # The README's command, with the system python3.
        subprocess.run(["python3", str(REPO / "ops" / "scripts" / "make_deploy_env.py"), "--dir", str(self.env_dir)],
                       check=True, capture_output=True, text=True)
        shutil.copytree(REPO / "config", self.config_dir)
        registry = yaml.safe_dump(deploy_test_registry(), sort_keys=False)
        (self.config_dir / "deploy_test_registry.yml").write_text(registry)
        self.keys = read_env_file(self.env_dir / "backlog.env")

    def compose_env(self) -> dict[str, str]:
        return {
            "BACKLOG_IMAGE": self.images.app, "BASE_IMAGE": self.images.base,
            "POSTGRES_IMAGE": self.images.postgres, "PROMETHEUS_IMAGE": self.images.prometheus,
            "BACKLOG_ENV_DIR": str(self.env_dir), "BACKLOG_CONFIG_DIR": str(self.config_dir),
            "BACKLOG_TASK_REGISTRY": "config/deploy_test_registry.yml",
            "SCHEDULER_POLL_SECONDS": str(SCHEDULER_POLL_SECONDS),
            "ROUTER_A_PORT": str(self.ports["router-a"]), "ROUTER_B_PORT": str(self.ports["router-b"]),
            "PROMETHEUS_PORT": str(self.ports["prometheus"]),
        }

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return podman.run(["podman-compose", "-p", self.project, "-f", str(REPO / "compose.yaml"), *args],
                          env=self.compose_env(), timeout=timeout)

    def up(self) -> None:
        """``up -d`` naming every service, the observability profile's Prometheus included (naming a
        profiled service starts it in docker compose and in podman-compose of any version)."""
        self.compose("up", "-d", "--no-build", *CORE_SERVICES, *OBSERVABILITY)

    def down(self, *, volumes: bool = False) -> None:
        self.compose("down", *(["-v"] if volumes else []))
        if volumes:
            podman.podman("network", "rm", "--force", f"{self.project}_default", check=False)
            for volume in podman.podman("volume", "ls", "--quiet", "--filter",
                                        f"label=io.podman.compose.project={self.project}", check=False).stdout.split():
                podman.podman("volume", "rm", "--force", volume, check=False)

    # -- containers ----------------------------------------------------------------------------

    def container(self, service: str) -> str:
        out = podman.podman("ps", "-a", "--format", "{{.Names}}",
                            "--filter", f"label=io.podman.compose.project={self.project}",
                            "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        if len(out) != 1:
            raise RuntimeError(f"expected one container for service {service}, found {out}")
        return out[0]

    def state(self, service: str) -> tuple[str, int]:
        out = podman.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                            self.container(service)).stdout.split()
        return out[0], int(out[1])

    def kill(self, service: str) -> None:
        podman.podman("kill", self.container(service))

    def start(self, service: str) -> None:
        podman.podman("start", self.container(service))

    def logs(self, service: str) -> str:
        return podman.logs(self.container(service))

    def healthcheck(self, service: str) -> bool:
        """Run the container's health check once (Podman without systemd has no timer for it)."""
        return podman.podman("healthcheck", "run", self.container(service), check=False).returncode == 0

    def psql(self, sql: str) -> list[list[str]]:
        out = podman.podman("exec", self.container("postgres"), "psql", "--username=backlog", "--dbname=backlog",
                            "--no-psqlrc", "--tuples-only", "--no-align", "--field-separator=\t",
                            "--set=ON_ERROR_STOP=1", "--command", sql).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    # -- HTTP ----------------------------------------------------------------------------------

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def ready(self, service: str) -> bool:
        try:
            return httpx.get(f"{self.url(service)}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout_seconds: float = 180) -> float:
        """Until the migration exited 0, both routers answer /readyz 200 and the schedulers run."""
        began = time.monotonic()
        problem = "not started"
        while time.monotonic() - began < timeout_seconds:
            problem = self.not_ready()
            if problem is None:
                return time.monotonic() - began
            time.sleep(0.5)
        raise RuntimeError(f"stack not ready after {timeout_seconds:.0f}s: {problem}")

    def not_ready(self) -> str | None:
        status, code = self.state("migrate")
        if status != "exited" or code != 0:
            return f"migrate is {status} (exit {code})"
        for service in ("router-a", "router-b"):
            if not self.ready(service):
                return f"{service} /readyz not 200"
        for service in ("scheduler-1", "scheduler-2", "postgres"):
            if self.state(service)[0] != "running":
                return f"{service} is {self.state(service)[0]}"
        for service in ("scheduler-1", "scheduler-2"):
            said = self.scheduler_said(service)
            if not said.startswith("scheduler: "):
                return f"{service} said {said!r}"
        return None

    def scheduler_said(self, service: str) -> str:
        """The scheduler's last start line (``scheduler: N job(s) on …``) or start error (``error: …``)."""
        lines = [line for line in self.logs(service).splitlines() if line.startswith(("scheduler: ", "error: "))]
        return lines[-1] if lines else "nothing yet"

    def restarts(self, service: str) -> int:
        return int(podman.podman("inspect", "--format", "{{.RestartCount}}", self.container(service)).stdout.strip())

    def wait_router(self, service: str, timeout_seconds: float = 120) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout_seconds:
            if self.ready(service):
                return time.monotonic() - began
            time.sleep(0.1)
        raise RuntimeError(f"{service} not ready {timeout_seconds:.0f}s after start")

    def headers(self, account: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[account]}
