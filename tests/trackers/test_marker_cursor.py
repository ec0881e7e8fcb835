"""The marker line (what finds an item's issue after a crash) and the pull cursor (what makes a
quiet pull one request and a busy one lose nothing)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.trackers import marker
from services.router.trackers.model import CURSOR_OVERLAP, Cursor, RemoteIssue, page_of_changes

ITEM = "bl_0193a0b1c2d30000deadbeef"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_compose_and_parse_round_trip_with_footer_labels() -> None:
    text = marker.compose("Three incidents.\n\nSee the runbook.", ITEM, ("backlog-bridge", "edge"))
    assert text == ("Three incidents.\n\nSee the runbook.\n\nLabels: backlog-bridge, edge\n\n"
                    f"Backlog Bridge item: {ITEM}")
    parsed = marker.parse(text.replace("\n", "\r\n") + "  \r\n", labels_in_footer=True)  # as Redmine stores it
    assert parsed == marker.Parsed("Three incidents.\n\nSee the runbook.", ITEM, ("backlog-bridge", "edge"))
    assert marker.parse(text).labels == ()  # only Redmine reads labels from the footer


def test_a_mention_of_the_id_is_not_a_marker_and_the_last_marker_counts() -> None:
    assert marker.item_id_in(f"Related to {ITEM}, see there.") is None
    assert marker.item_id_in(None) is None
    other = "bl_0193a0b1c2d30001cafebabe"
    quoted = f"{marker.marker(other)}\n\n(copied from another issue)\n\n{marker.marker(ITEM)}"
    assert marker.item_id_in(quoted) == ITEM


@pytest.mark.parametrize("bad", ["", "bl_XYZ", 'bl_0193" OR 1=1', "ev_0193a0b1c2d30000deadbeef"])
def test_only_item_ids_go_into_a_marker(bad: str) -> None:
    with pytest.raises(ValueError, match="not a backlog item id"):
        marker.marker(bad)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), max_size=200))
def test_any_body_survives_the_round_trip(body: str) -> None:
    parsed = marker.parse(marker.compose(body, ITEM))
    assert parsed.item_id == ITEM and parsed.body == body.strip()


def issue(key: str, at: datetime, title: str = "t") -> RemoteIssue:
    return RemoteIssue(key=key, url=f"https://x/{key}", title=title, description="", status="open", closed=False,
                       created_at=T0, updated_at=at, item_id=None)


def test_the_cursor_delivers_each_version_once_even_within_one_second() -> None:
    cursor = Cursor.start(T0)
    first = page_of_changes(cursor, [issue("1", T0), issue("2", T0 + timedelta(seconds=1))], exhausted=True,
                            limit=10)
    assert [i.key for i in first.issues] == ["1", "2"] and first.cursor.since == T0 + timedelta(seconds=1)
    again = page_of_changes(first.cursor, [issue("1", T0), issue("2", T0 + timedelta(seconds=1))], exhausted=True,
                            limit=10)
    assert again.issues == []
    # a person changes #2 within the same second (Redmine and GitHub stamp whole seconds)
    edited = replace(issue("2", T0 + timedelta(seconds=1)), title="edited")
    assert [i.title for i in page_of_changes(again.cursor, [edited], exhausted=True, limit=10).issues] == ["edited"]


def test_a_change_that_commits_late_inside_the_overlap_is_still_delivered() -> None:
    cursor = page_of_changes(Cursor.start(T0), [issue("1", T0 + timedelta(minutes=10))], exhausted=True,
                             limit=10).cursor
    late = issue("2", T0 + timedelta(minutes=9))  # stamped before the cursor, visible only now
    assert cursor.query_since <= late.updated_at
    assert [i.key for i in page_of_changes(cursor, [late], exhausted=True, limit=10).issues] == ["2"]
    too_old = issue("3", cursor.since - CURSOR_OVERLAP - timedelta(seconds=1))
    assert page_of_changes(cursor, [too_old], exhausted=True, limit=10).issues == []


def test_seen_stays_bounded_and_survives_json() -> None:
    cursor = Cursor.start(T0)
    for minute in range(30):
        cursor = page_of_changes(cursor, [issue(str(minute), T0 + timedelta(minutes=minute))], exhausted=True,
                                 limit=10).cursor
    assert set(cursor.seen) == {"27", "28", "29"}  # within two minutes of the latest change
    assert Cursor.from_dict(cursor.to_dict()) == cursor


def test_a_cut_page_continues_where_it_stopped_ties_in_number_order() -> None:
    listed = [issue(str(n), T0) for n in (10, 9, 11)]
    cursor, order = Cursor.start(T0), []
    for _ in range(3):
        page = page_of_changes(cursor, listed, exhausted=True, limit=2)
        order += [i.key for i in page.issues]
        cursor = page.cursor
    assert order == ["9", "10", "11"]


def test_a_listing_read_to_its_end_moves_a_quiet_cursor_past_a_burst_but_a_cut_one_does_not() -> None:
    burst = [issue(str(n), T0) for n in range(5)]
    answered = T0 + timedelta(minutes=30)  # the tracker's clock when it answered the listing
    done = page_of_changes(Cursor.start(T0), burst, exhausted=True, limit=10, listed_at=answered)
    assert done.cursor.since == answered
    assert done.cursor.query_since > T0  # the next quiet pull no longer lists the burst again
    cut = page_of_changes(Cursor.start(T0), burst, exhausted=True, limit=3, listed_at=answered)
    assert cut.more and cut.cursor.since == T0  # the rest of the burst is still ahead of the cursor
