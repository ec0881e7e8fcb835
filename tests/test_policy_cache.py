"""The config cache: an edit applies on the next call, even one within the same timestamp tick."""

from __future__ import annotations

import os
from pathlib import Path

from services.router.files import RACY_NS
from services.router.policy import load_policy

POLICY = "defaults: {{retention_days: {days}, max_items_per_run: 50}}\n"


def test_a_same_size_rewrite_keeping_the_timestamps_is_still_seen(tmp_path: Path) -> None:
    path = tmp_path / "backlog_policy.yml"
    path.write_text(POLICY.format(days=180))
    st = os.stat(path)
    assert load_policy(path).defaults.retention_days == 180
    path.write_text(POLICY.format(days=190))  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as if written within the same tick
    assert load_policy(path).defaults.retention_days == 190


def test_a_settled_file_is_not_read_again_until_its_stamp_changes(tmp_path: Path) -> None:
    path = tmp_path / "backlog_policy.yml"
    path.write_text(POLICY.format(days=180))
    old = os.stat(path).st_mtime_ns - 10 * RACY_NS
    os.utime(path, ns=(old, old))
    first = load_policy(path)
    assert load_policy(path) is first  # parsed once
    path.write_text(POLICY.format(days=200))
    assert load_policy(path).defaults.retention_days == 200
