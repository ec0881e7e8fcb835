"""What ``/metrics`` and the web dashboard read besides the backlog store.

Two sources, each small and read-only here:

* **The last generation run per env** — written by the generation tool after each real run
  (``services/router/generation/records.py``); the dashboard shows its held-back items and
  ``/metrics`` its held-back count.
* **Governance job runs** — the run ledger (``services/router/jobs/ledger.py``, which alone
  chooses the backend and reads it): ``ops/state/job_runs.jsonl`` in single-process mode, the
  Postgres ``job_runs`` table when the scheduler runs on Postgres.

Both are written by other processes, so reads are tolerant and cached until the file changes
(``files.ChangedFileCache``) or for a minute (Postgres): a scrape every 15 s costs a ``stat``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from services.router.jobs.ledger import JobRuns, open_ledger
from services.router.jobs.registry import default_registry_path, load_registry
from services.router.settings import Settings


class JobRunsSource(Protocol):
    def job_runs(self) -> dict[str, JobRuns]: ...


@dataclass
class HealthSources:
    """Everything the backlog-health metrics read besides the store, built once per app."""

    state_dir: Path
    jobs: JobRunsSource
    registry_path: Path | None

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthSources:
        return cls(settings.state_dir, open_ledger(settings, check_schema=False), default_registry_path(settings))

    def job_periods(self) -> dict[str, float]:
        """Each registered job's period in seconds (the shortest gap between its slots)."""
        if self.registry_path is None:
            return {}
        return {job.name: job.period().total_seconds() for job in load_registry(self.registry_path).jobs}


def epoch_seconds(value: datetime) -> float:
    return value.astimezone(UTC).timestamp()
