"""``JournalFile``: the durable line file under both fallback journals (backlog and signals)."""

from __future__ import annotations

from pathlib import Path

from services.router.stores.journal_file import JournalFile


def test_a_record_appended_after_a_torn_line_stays_readable(tmp_path: Path) -> None:
    """A crash mid-append leaves a fragment without a newline; the next acknowledged record must
    not be glued to it (the fragment is skipped, the record is not)."""
    journal = JournalFile(tmp_path, "j")
    with journal.locked():
        journal.append({"op_id": "a", "kind": "x"})
    with journal.path.open("ab") as f:
        f.write(b'{"op_id": "torn", "ki')
    with journal.locked():
        journal.append({"op_id": "b", "kind": "x"})
    assert [r["op_id"] for r in journal.records()] == ["a", "b"]
    journal.clear()
    assert not journal.has_pending() and journal.records() == []
    journal.close()


def test_names_keep_two_journals_in_one_folder_apart(tmp_path: Path) -> None:
    first, second = JournalFile(tmp_path, "one"), JournalFile(tmp_path, "two")
    with first.locked(), second.locked():  # separate lock files: holding both does not deadlock
        first.append({"op_id": "1", "kind": "x"})
    assert first.has_pending() and not second.has_pending()
    assert {p.name for p in tmp_path.iterdir()} == {"one.jsonl", ".one.lock", ".two.lock"}
    first.close()
    second.close()
