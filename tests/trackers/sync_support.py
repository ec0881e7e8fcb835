"""A test bed for the sync engine: a backlog store, its link store, one tracker and a route.

The tracker is any contract-suite harness (the real Redmine or a fake), so one test body runs
against each; ``remote()`` reads what the tracker holds through a fresh adapter (every issue of
the project, grouped by the item its marker names), which is how duplicates are counted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.router.clock import Clock
from services.router.domain.enums import Status
from services.router.stores.base import BacklogStore
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.memory import MemoryBacklogStore
from services.router.stores.tracker_links import TrackerLink, TrackerLinkStore
from services.router.stores.tracker_links_jsonl import JsonlLinkStore
from services.router.stores.tracker_links_memory import MemoryLinkStore
from services.router.trackers import build_adapter
from services.router.trackers.config import TrackerConfig, TrackersConfig
from services.router.trackers.engine import SyncEngine
from services.router.trackers.model import Cursor, RemoteIssue, TrackerAdapter
from tests.factories import item
from tests.trackers.conftest import TOKEN_ENV, Harness

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def routed(harness: Harness, name: str, **route: Any) -> TrackersConfig:
    return TrackersConfig.model_validate({
        "trackers": {name: harness.config.model_dump(mode="json", exclude_none=True)},
        "routes": [{"match": {"env": "prod"}, "tracker": name, **route}],
    })


@dataclass
class Bed:
    harness: Harness
    clock: Clock
    backend: str = "memory"
    directory: Path | None = None
    public_url: str | None = None
    name: str = ""
    config: TrackersConfig = field(init=False)
    store: BacklogStore = field(init=False)
    links: TrackerLinkStore = field(init=False)
    opened: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.harness.kind}-main"
        self.config = routed(self.harness, self.name)
        self.reopen()

    def reopen(self) -> None:
        """New store and link store objects on the same data: what the next process sees."""
        if self.backend == "memory" and self.opened:
            return
        if self.backend == "memory":
            self.store = MemoryBacklogStore(clock=self.clock)
            self.links = MemoryLinkStore(self.store)
        else:
            assert self.directory is not None
            self.store = JsonlBacklogStore(self.directory, clock=self.clock)
            self.links = JsonlLinkStore(self.directory, self.store)
        self.opened += [self.store, self.links]

    def adapter(self, name: str, config: TrackerConfig, observe: Any = None) -> TrackerAdapter:
        made = build_adapter(name, config, transport=self.harness.transport(),
                             environ={TOKEN_ENV: self.harness.token}, observe=observe)
        self.harness.opened.append(made)
        return made

    def engine(self) -> SyncEngine:
        return SyncEngine(self.store, self.links, self.config, self.clock, public_url=self.public_url,
                          adapter_for=self.adapter)

    def sync(self, **options: Any) -> dict[str, Any]:
        """One full sync; the tracker's own result."""
        result = self.engine().sync(**options)
        assert len(result["trackers"]) == 1
        return dict(result["trackers"][0])

    def add(self, key: str, *, env: str = "prod", status: str | None = None, **fields: Any) -> str:
        fields.setdefault("title", f"Item {key}")
        fields.setdefault("owner", "team-edge")
        made = self.store.upsert(item(key, env=env, **fields), actor="gen").item
        if status is not None:
            self.store.set_status(made["id"], Status(status), actor="alice")
        return str(made["id"])

    def get(self, item_id: str) -> dict[str, Any]:
        found = self.store.get(item_id)
        assert found is not None
        return found

    def link(self, item_id: str) -> TrackerLink:
        found = self.links.get_link(item_id)
        assert found is not None
        return found

    def remote(self) -> dict[str | None, list[RemoteIssue]]:
        """Every issue of the project, by the item its marker names (None: no marker)."""
        reader = self.adapter(self.name, self.config.trackers[self.name])
        cursor, out = Cursor.start(EPOCH), defaultdict(list)
        while True:
            page = reader.list_changed_since(self.harness.project, cursor)
            for issue in page.issues:
                out[issue.item_id].append(issue)
            cursor = page.cursor
            if not page.more:
                return dict(out)

    def issue(self, item_id: str) -> RemoteIssue:
        link = self.link(item_id)
        assert link.remote_key is not None
        return self.adapter(self.name, self.config.trackers[self.name]).get(link.remote_key)

    def duplicates(self) -> int:
        return sum(len(issues) - 1 for key, issues in self.remote().items() if key is not None)

    def close(self) -> None:
        for opened in self.opened:
            opened.close()
