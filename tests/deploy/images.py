"""The images the stack runs: the project's, and its base, PostgreSQL and Prometheus.

Where an image cannot be pulled (no registry on the test machines) it is made here: the base
with Debian's ``mmdebstrap`` and ``podman import``; PostgreSQL and Prometheus from that base plus
Debian's packages (``ops/deploy/postgres``, ``ops/deploy/prometheus``). An image already in local
storage is used as it is, so a second run does not bootstrap again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.deploy import podman
from tests.deploy.podman import REPO

DEFAULT_BASE = "python:3.11-slim-bookworm"  # the Containerfile's ARG BASE_IMAGE
FALLBACK_BASE = "localhost/backlog-base:bookworm"
DEFAULT_POSTGRES = "docker.io/library/postgres:15-bookworm"
FALLBACK_POSTGRES = "localhost/backlog-postgres:15"
DEFAULT_PROMETHEUS = "docker.io/prom/prometheus:v2.53.0"
FALLBACK_PROMETHEUS = "localhost/backlog-prometheus:bookworm"
APP_IMAGE = "localhost/backlog-bridge:deploy-test"
MMDEBSTRAP = ["mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm"]
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc", "x86_64-linux-gnu-gcc")


class BaseUnavailable(Exception):
    """Podman cannot run a container here, or no base image can be had: the test cannot run."""


@dataclass
class Images:
    base: str
    postgres: str
    prometheus: str
    app: str
    notes: list[str]


def obtain(name: str) -> bool:
    return podman.image_exists(name) or podman.try_pull(name)


def ensure_base(notes: list[str]) -> str:
    wanted = os.environ.get("BASE_IMAGE", DEFAULT_BASE)
    if obtain(wanted):
        notes.append(f"base image {wanted}")
        return wanted
    if podman.image_exists(FALLBACK_BASE) and os.environ.get("DEPLOY_TEST_REBUILD_BASE") != "1":
        notes.append(f"{wanted} cannot be pulled; reusing {FALLBACK_BASE} (made by mmdebstrap on an earlier run)")
        return FALLBACK_BASE
    if shutil.which("mmdebstrap") is None:
        raise BaseUnavailable(f"{wanted} cannot be pulled and mmdebstrap is not installed "
                              "(./ops/scripts/install_test_deps.sh deploy)")
    with tempfile.TemporaryDirectory(prefix="backlog-base-", dir="/var/tmp") as tmp:
        tar = Path(tmp) / "base.tar"
        podman.run([*MMDEBSTRAP, str(tar)], timeout=600)
        podman.podman("import", str(tar), FALLBACK_BASE)
    notes.append(f"{wanted} cannot be pulled; made {FALLBACK_BASE} with mmdebstrap + podman import")
    return FALLBACK_BASE


def ensure_service_image(wanted: str, fallback: str, folder: str, base: str, notes: list[str]) -> str:
    if obtain(wanted):
        notes.append(f"{folder} image {wanted}")
        return wanted
    podman.build(fallback, REPO / "ops" / "deploy" / folder, build_args={"BASE_IMAGE": base})
    notes.append(f"{wanted} cannot be pulled; built {fallback} from the base + Debian's package")
    return fallback


def ensure_all() -> Images:
    notes: list[str] = []
    base = ensure_base(notes)
    probe = podman.podman("run", "--rm", "--no-healthcheck", base, "true", check=False, timeout=120)
    if probe.returncode != 0:
        raise BaseUnavailable(f"podman cannot run a container here: {(probe.stdout + probe.stderr).strip()[-500:]}")
    pg = ensure_service_image(os.environ.get("POSTGRES_IMAGE", DEFAULT_POSTGRES), FALLBACK_POSTGRES, "postgres",
                              base, notes)
    prom = ensure_service_image(os.environ.get("PROMETHEUS_IMAGE", DEFAULT_PROMETHEUS), FALLBACK_PROMETHEUS,
                                "prometheus", base, notes)
    podman.build(APP_IMAGE, REPO, build_args={"BASE_IMAGE": base}, host_ca=True)
    return Images(base=base, postgres=pg, prometheus=prom, app=APP_IMAGE, notes=notes)


@dataclass
class ImageFacts:
    base_mb: float
    image_mb: float
    user: str
    uid: int
    compilers: list[str]
    healthcheck: str

    @property
    def added_mb(self) -> float:
        return self.image_mb - self.base_mb


def inspect_app(images: Images) -> ImageFacts:
    probe = "id -u; for c in " + " ".join(COMPILERS) + '; do command -v "$c" || true; done'
    out = podman.podman("run", "--rm", "--no-healthcheck", "--entrypoint", "/bin/sh", images.app, "-c", probe)
    lines = out.stdout.split()
    return ImageFacts(
        base_mb=podman.image_size_bytes(images.base) / 1e6,
        image_mb=podman.image_size_bytes(images.app) / 1e6,
        user=podman.image_user(images.app),
        uid=int(lines[0]),
        compilers=lines[1:],
        healthcheck=podman.image_healthcheck(images.app),
    )


def refuses_without_keys(images: Images) -> tuple[bool, str]:
    """``backlog serve --host 0.0.0.0`` (the image's default command) with no key set must not start."""
    result = podman.podman("run", "--rm", "--no-healthcheck", "-e", "BACKLOG_BACKEND=memory", images.app,
                           check=False, timeout=60)
    said = (result.stdout + result.stderr).strip().splitlines()
    message = next((line for line in said if line.startswith("error:")), said[-1] if said else "")
    return result.returncode != 0 and "no API key is configured" in message, message
