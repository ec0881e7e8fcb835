"""A real Redmine for the tests: Debian 12's ``redmine`` 5.0 on sqlite, served by WEBrick.

The recipe (installed by ``ops/scripts/install_test_deps.sh``: ``redmine redmine-sqlite
ruby-webrick`` with debconf preseeded to sqlite3):

1. **Build once** (cached under ``$TMPDIR/backlog-bridge-redmine-<key>/``, keyed by the
   package version and this recipe): an instance directory with ``config/database.yml``,
   ``config/secret_key.txt``, ``log/``, ``files/``, ``tmp/``, ``public/plugin_assets/``,
   linked as ``/var/lib/redmine/<name>`` and chosen with ``REDMINE_INSTANCE=<name>``,
   ``RAILS_ENV=production``; then ``rake db:migrate`` and ``rake redmine:load_default_data
   REDMINE_LANG=en`` as two commands (one call does not load the defaults), both with
   ``SCHEMA=<dir>/schema.rb`` so the package's schema file is left alone; then the settings
   ``rest_api_enabled`` = 1 and ``login_required`` = 1 (else anonymous reads succeed) and an
   ``api`` token for user 1 (admin) in ``tokens``. Built in a scratch directory and renamed
   into place, so concurrent sessions never see half a cache.
2. **Per session**: copy the database into a fresh instance and start
   ``ruby -rwebrick /usr/bin/rackup -E production -o 127.0.0.1 -p PORT config.ru`` from
   ``/usr/share/redmine`` (``rails server`` and plain ``rackup`` fail: bundler hides webrick),
   with ``TCP_NODELAY`` set on accepted sockets (else ~40 ms of Nagle wait per request);
   ready in about 2-3 s. A user ``alice`` is created through the API; each test that needs
   one gets its own project (:meth:`RedmineServer.new_project`).

Missing package or no write access to ``/var/lib/redmine``: ``pytest.skip`` locally,
``pytest.fail`` under ``CI=true``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

REDMINE_ROOT = Path("/usr/share/redmine")
INSTANCES = Path("/var/lib/redmine")
RECIPE = "1"  # bump when the build steps change
LINK_PREFIX = "bb-test-"
START_TIMEOUT_SECONDS = 90.0
BUILD_TIMEOUT_SECONDS = 600.0
ALICE = "alice"
# WEBrick writes an answer's headers and body separately and leaves Nagle's algorithm on, so the
# body waits for the client's delayed ACK: ~40 ms on every request over loopback. Preloaded.
TCP_NODELAY_RB = """require "socket"
require "webrick"
module BacklogBridgeTcpNoDelay
  private def accept_client(svr)
    sock = super
    sock&.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
    sock
  end
end
WEBrick::GenericServer.prepend(BacklogBridgeTcpNoDelay)
"""


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI: a CI run that skipped the real Redmine proved nothing."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"Redmine is required under CI=true: {reason}")
    pytest.skip(reason)


def problem() -> str | None:
    """Why a Redmine cannot run here, or None."""
    if not (REDMINE_ROOT / "config.ru").is_file():
        return "Debian's redmine package is not installed; run ops/scripts/install_test_deps.sh"
    if not Path("/usr/bin/rackup").is_file():
        return "/usr/bin/rackup is missing (package ruby-rack, a dependency of redmine)"
    if not INSTANCES.is_dir() or not os.access(INSTANCES, os.W_OK):
        return f"cannot create instance links in {INSTANCES} (run the tests as root)"
    if not list(Path("/usr/share/rubygems-integration/all/gems").glob("webrick-*")):
        return "ruby-webrick is not installed; run ops/scripts/install_test_deps.sh"
    return None


def package_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "redmine"], capture_output=True, text=True,
                             check=True, timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str((REDMINE_ROOT / "lib" / "redmine" / "version.rb").stat().st_mtime_ns)


def cache_dir() -> Path:
    key = hashlib.sha256(f"{package_version()}|{RECIPE}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"backlog-bridge-redmine-{key}"


def make_instance(root: Path, database: Path) -> Path:
    """An instance directory laid out as the Debian package expects."""
    for sub in ("config", "log", "files", "tmp", "tmp/cache", "public/plugin_assets", "db"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "config" / "database.yml").write_text(
        f"production:\n  adapter: sqlite3\n  database: {database}\n  encoding: utf8\n", encoding="utf-8")
    (root / "config" / "secret_key.txt").write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
    return root


@contextmanager
def linked(instance: Path) -> Iterator[str]:
    """``/var/lib/redmine/<name>`` → ``instance`` for as long as Redmine runs on it."""
    for stale in INSTANCES.glob(f"{LINK_PREFIX}*"):  # left by a killed session
        if stale.is_symlink() and not stale.exists():
            stale.unlink(missing_ok=True)
    name = f"{LINK_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    link = INSTANCES / name
    link.symlink_to(instance)
    try:
        yield name
    finally:
        link.unlink(missing_ok=True)


def redmine_env(name: str, instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUNDLE_", "RUBY", "GEM_"))}
    env.update(REDMINE_INSTANCE=name, RAILS_ENV="production", SCHEMA=str(instance / "schema.rb"),
               REDMINE_LANG="en")
    return env


def _run(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(args, cwd=REDMINE_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=BUILD_TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{tail}")


def built_database() -> tuple[Path, str]:
    """The cached, fully set-up database and its admin API token (built on first use)."""
    cache = cache_dir()
    if not (cache / "redmine.sqlite3").is_file():
        _build(cache)
    return cache / "redmine.sqlite3", (cache / "api_token").read_text(encoding="utf-8").strip()


def _build(cache: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bb-redmine-build-"))
    try:
        database = scratch / "db" / "redmine.sqlite3"
        instance = make_instance(scratch, database)
        log = scratch / "build.log"
        with linked(instance) as name:
            env = redmine_env(name, instance)
            _run(["rake", "db:migrate"], env, log)
            _run(["rake", "redmine:load_default_data"], env, log)
        token = secrets.token_hex(20)
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        db = sqlite3.connect(database)
        with db:
            db.execute("DELETE FROM settings WHERE name IN ('rest_api_enabled', 'login_required')")
            db.executemany("INSERT INTO settings (name, value, updated_on) VALUES (?, '1', ?)",
                           [("rest_api_enabled", now), ("login_required", now)])
            db.execute("INSERT INTO tokens (user_id, action, value, created_on, updated_on) "
                       "VALUES (1, 'api', ?, ?, ?)", (token, now, now))
        db.close()
        ready = scratch / "cache"
        ready.mkdir()
        shutil.copy2(database, ready / "redmine.sqlite3")
        (ready / "api_token").write_text(token + "\n", encoding="utf-8")
        try:
            ready.rename(cache)
        except OSError:
            if not (cache / "redmine.sqlite3").is_file():  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedmineServer:
    """One running Redmine: ``url``, the admin ``token``, and helpers to set up test data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        source, self.token = built_database()
        database = root / "db" / "redmine.sqlite3"
        make_instance(root, database)
        shutil.copy2(source, database)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._link = linked(root)
        name = self._link.__enter__()
        log = (root / "server.log").open("ab")
        nodelay = root / "tcp_nodelay.rb"
        nodelay.write_text(TCP_NODELAY_RB, encoding="utf-8")
        self.process = subprocess.Popen(
            ["ruby", "-rwebrick", f"-r{nodelay}", "/usr/bin/rackup", "-E", "production", "-o", "127.0.0.1",
             "-p", str(self.port), "config.ru"], cwd=REDMINE_ROOT, env=redmine_env(name, root), stdout=log,
            stderr=subprocess.STDOUT)
        log.close()
        self.admin = httpx.Client(base_url=self.url, headers={"X-Redmine-API-Key": self.token}, timeout=30)
        try:
            self.started_seconds = self._wait_ready()
            self.alice_id, self.alice_token = self._create_user(ALICE)
        except BaseException:
            self.stop()  # no server or instance link left behind by a failed start
            raise

    def _wait_ready(self) -> float:
        started = time.monotonic()
        while time.monotonic() - started < START_TIMEOUT_SECONDS:
            if self.process.poll() is not None:
                raise RuntimeError(f"Redmine exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.admin.get("/issues.json", params={"limit": 1}).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Redmine did not answer within {START_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-3000:]

    def _create_user(self, login: str) -> tuple[int, str]:
        """A user (id, API key) who is not an admin: Redmine's workflows apply to them."""
        response = self.admin.post("/users.json", json={"user": {
            "login": login, "firstname": login.title(), "lastname": "Example", "mail": f"{login}@example.invalid",
            "password": secrets.token_urlsafe(16)}})
        response.raise_for_status()
        user = response.json()["user"]
        return int(user["id"]), str(user["api_key"])

    def new_project(self) -> str:
        """A fresh project (Bug, Feature, Support trackers) where alice is a Developer."""
        identifier = f"t{secrets.token_hex(5)}"
        response = self.admin.post("/projects.json", json={"project": {
            "name": identifier, "identifier": identifier, "tracker_ids": [1, 2, 3],
            "enabled_module_names": ["issue_tracking"]}})
        response.raise_for_status()
        developer = next(r["id"] for r in self.admin.get("/roles.json").json()["roles"] if r["name"] == "Developer")
        self.admin.post(f"/projects/{identifier}/memberships.json",
                        json={"membership": {"user_id": self.alice_id, "role_ids": [developer]}}).raise_for_status()
        return identifier

    def set_status(self, key: str, status: str) -> None:
        """What a person does in Redmine's UI: move an issue to the named status."""
        statuses = self.admin.get("/issue_statuses.json").json()["issue_statuses"]
        status_id = next(s["id"] for s in statuses if s["name"] == status)
        self.admin.put(f"/issues/{key}.json", json={"issue": {"status_id": status_id}}).raise_for_status()

    def delete_issue(self, key: str) -> None:
        self.admin.delete(f"/issues/{key}.json").raise_for_status()

    def stop(self) -> None:
        self.admin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._link.__exit__(None, None, None)
