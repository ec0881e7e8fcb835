"""JSONL backend for signals (``ops/signals/signals.jsonl``) and snapshots (``ops/risk/snapshots.jsonl``).

The same discipline as the backlog's JSONL store, reusing its ``JsonlLog``:

- append-only, one JSON object a line, last write wins per key ((kind, id) for signals,
  (env, service, slot) for snapshots); an acknowledged write has been fsynced;
- writers take ``flock`` on a lock file in the folder, catch up with what others appended,
  cut a torn tail left by a crash, then append;
- a line that is not a valid record is skipped with a warning, never a crash;
- snapshot cleanup rewrites the file atomically (temp file, fsync, rename, fsync the folder);
  readers notice the new inode and reload.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.router.errors import StoreUnavailable
from services.router.files import FileLock, remove_temp_files, replace_durably, temp_path
from services.router.signals.models import KINDS, AnySignal, parse_signal
from services.router.signals.store import IndexedSignalStore, RiskSnapshot
from services.router.stores.jsonl_log import JsonlLog, write_file_durably

log = logging.getLogger("signal_store")

SIGNALS_FILE = "signals.jsonl"
SNAPSHOTS_FILE = "snapshots.jsonl"
SIGNALS_LOCK = ".signals.lock"
SNAPSHOTS_LOCK = ".risk.lock"


def is_signal_line(record: dict[str, Any]) -> bool:
    return record.get("kind") in KINDS and type(record.get("id")) is str


def is_snapshot_line(record: dict[str, Any]) -> bool:
    return all(type(record.get(k)) is str for k in ("env", "service", "slot"))


class JsonlSignalStore(IndexedSignalStore):
    backend = "jsonl"

    def __init__(self, signals_dir: Path, risk_dir: Path) -> None:
        super().__init__()
        self.signals_dir = signals_dir
        self.risk_dir = risk_dir
        for folder in (signals_dir, risk_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.signals_log = JsonlLog(signals_dir / SIGNALS_FILE)
        self.snapshots_log = JsonlLog(risk_dir / SNAPSHOTS_FILE)
        self._signals_lock = FileLock(signals_dir / SIGNALS_LOCK)
        self._snapshots_lock = FileLock(risk_dir / SNAPSHOTS_LOCK)
        self.invalid_lines = 0
        remove_temp_files(risk_dir, lambda path: log.warning(
            "removing leftover temp file %s from an interrupted cleanup", path))

    # -- reading -------------------------------------------------------------------------
    def _refresh(self) -> None:
        with self._mutex:
            self.signals_log.observe()  # one stat per file per operation (JsonlLog's protocol)
            self.snapshots_log.observe()
            if self.signals_log.replaced():
                self.signals.clear()
                self.signals_log.reset()
            for line in self.signals_log.read_new(is_signal_line):
                signal = self._parse(line.record, parse_signal, line.offset, self.signals_log.path)
                if signal is not None:
                    self.signals[signal.key] = signal
            if self.snapshots_log.replaced():
                self.snaps.clear()
                self.snapshots_log.reset()
            for line in self.snapshots_log.read_new(is_snapshot_line):
                snap = self._parse(line.record, RiskSnapshot.model_validate, line.offset, self.snapshots_log.path)
                if snap is not None:
                    self.snaps[snap.key] = snap

    def _parse(self, record: dict[str, Any], parse: Any, offset: int, path: Path) -> Any:
        try:
            return parse(record)
        except ValidationError as exc:
            self.invalid_lines += 1
            log.warning("skipping invalid record at byte %d of %s: %s", offset, path,
                        exc.errors(include_url=False)[0]["msg"])
            return None

    # -- writing -------------------------------------------------------------------------
    @contextmanager
    def _file_lock(self, lock: FileLock, file_log: JsonlLog) -> Iterator[None]:
        with self._mutex, lock.hold():
            self._refresh()
            if file_log.changed_since_verified():
                file_log.cut_torn_tail()
                file_log.mark_verified()
            yield

    @contextmanager
    def _locked_signals(self) -> Iterator[None]:
        with self._file_lock(self._signals_lock, self.signals_log):
            yield

    @contextmanager
    def _locked_snapshots(self) -> Iterator[None]:
        with self._file_lock(self._snapshots_lock, self.snapshots_log):
            yield

    def _persist_signals(self, signals: Sequence[AnySignal]) -> None:
        self._append(self.signals_log, [s.record() for s in signals], "signals")
        super()._persist_signals(signals)

    def _persist_snapshots(self, snapshots: Sequence[RiskSnapshot]) -> None:
        self._append(self.snapshots_log, [s.record() for s in snapshots], "snapshots")
        super()._persist_snapshots(snapshots)

    @staticmethod
    def _append(file_log: JsonlLog, records: list[dict[str, Any]], stage: str) -> None:
        try:
            file_log.append(records, stage)
        except OSError as exc:
            raise StoreUnavailable(f"signal storage write failed: {exc.strerror or exc}") from exc

    def _drop_snapshots(self, keys: Sequence[tuple[str, str, datetime]]) -> None:
        """Rewrite the snapshots file without them: temp, fsync, rename, fsync the folder."""
        dropped = set(keys)
        kept = {k: s for k, s in self.snaps.items() if k not in dropped}
        records = [kept[k].record() for k in sorted(kept)]
        path = self.snapshots_log.path
        temp = temp_path(path)
        try:
            write_file_durably(temp, records, "snapshot_cleanup")
            replace_durably(temp, path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StoreUnavailable(f"snapshot cleanup failed: {exc.strerror or exc}") from exc
        file_log = self.snapshots_log
        file_log.close()  # its kept descriptor names the replaced file
        file_log.mark_verified()
        st = os.stat(path)
        file_log.inode, file_log.offset, file_log.lines, file_log.skipped = st.st_ino, st.st_size, len(records), 0
        self.snaps = kept

    def close(self) -> None:
        with self._mutex:
            self.signals_log.close()
            self.snapshots_log.close()
            self._signals_lock.close()
            self._snapshots_lock.close()

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend, "signals": len(self.signals), "snapshots": len(self.snaps),
                "skipped_lines": self.signals_log.skipped + self.snapshots_log.skipped + self.invalid_lines}
