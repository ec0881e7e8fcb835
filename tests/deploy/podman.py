"""Podman and podman-compose, called the way an operator would, with this machine's settings.

Every command runs with ``CONTAINERS_CONF`` pointed at ``ops/deploy/containers.conf`` (runc,
explicit ulimits, netavark), unless the caller's environment already sets one: those are facts
about the test machines, not part of compose.yaml or the Containerfile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "ops" / "deploy" / "containers.conf"


class CommandFailed(Exception):
    def __init__(self, argv: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        super().__init__(f"`{' '.join(argv)}` exited {result.returncode}:\n{tail}")
        self.result = result


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    env.update(extra or {})
    return env


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                            env=environment(env), stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise CommandFailed(argv, result)
    return result


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], check=check, timeout=timeout)


def logs(container: str) -> str:
    """A container's stdout and stderr through one pipe, so its lines keep their order (a start
    line on stdout after an earlier start's error on stderr must read as the later one)."""
    result = subprocess.run(["podman", "logs", container], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=60, env=environment(), stdin=subprocess.DEVNULL, check=False)
    return result.stdout


def missing_tools() -> list[str]:
    return [tool for tool in ("podman", "podman-compose") if shutil.which(tool) is None]


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def try_pull(name: str) -> bool:
    """Pull ``name``; False (quickly, on a machine without a registry) when it cannot be had."""
    return podman("pull", "--quiet", name, check=False, timeout=180).returncode == 0


def image_size_bytes(name: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())


def image_user(name: str) -> str:
    return podman("image", "inspect", "--format", "{{.Config.User}}", name).stdout.strip()


def image_healthcheck(name: str) -> str:
    return podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", name).stdout.strip()


def build(tag: str, context: Path, *, build_args: dict[str, str], host_ca: bool = False,
          timeout: float = 600) -> None:
    """``podman build`` as this machine needs it: the host network (apt and pip reach the same
    registries as the host) and, with ``host_ca``, the host's CA bundle mounted for pip — both
    here, in the test's command, never in a Containerfile. Only the project's image takes the
    mount: a package whose post-install writes to /etc/ssl/certs (ssl-cert, pulled in by
    postgresql) fails on a read-only mount. Docker format, so HEALTHCHECK is kept."""
    argv = ["podman", "build", "--format", "docker", "--network=host", "-t", tag]
    if host_ca:
        argv += ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro"]
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    run([*argv, str(context)], timeout=timeout)
