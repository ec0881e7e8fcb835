from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from services.router.domain.enums import Status
from services.router.domain.models import ItemInput, new_id
from services.router.domain.transitions import allowed_moves, is_overdue


def base(**fields: object) -> dict[str, object]:
    return {"env": "prod", "service": "gateway", "category": "arch_review", "title": "t", **fields}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("env", "Prod"), ("env", "-prod"), ("env", "p" * 65), ("env", "../etc"), ("service", "a b"),
        ("owner", "Bob"), ("title", ""), ("title", "x" * 201), ("description", "x" * 10_001),
        ("priority", "P4"), ("dedupe_key", "has space"), ("due_date", "2026-13-01"), ("unknown", 1),
        # NUL cannot be stored by PostgreSQL: every backend refuses it up front, with the field named
        ("title", "a\x00b"), ("description", "x\x00"), ("evidence_refs", ["INC-1\x00"]),
        ("meta", {"signals": [{"note": "\x00"}]}), ("meta", {"k\x00": 1}),
    ],
)
def test_invalid_input_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        ItemInput.model_validate(base(**{field: value}))
    assert info.value.errors()[0]["loc"][0] == field


def test_limits_are_inclusive() -> None:
    ok = ItemInput.model_validate(base(title="x" * 200, description="x" * 10_000, env="e" * 64))
    assert len(ok.title) == 200


def test_meta_size_is_capped() -> None:
    with pytest.raises(ValidationError, match="meta is"):
        ItemInput.model_validate(base(meta={"blob": "x" * 70_000}))


def test_ids_increase_within_a_process() -> None:
    ids = [new_id("bl_") for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == 2000


def test_overdue_rule() -> None:
    today = date(2026, 11, 26)
    assert is_overdue("open", "2026-11-25", today)
    assert not is_overdue("open", "2026-11-26", today)  # due today is not overdue
    assert not is_overdue("done", "2026-01-01", today)
    assert not is_overdue("blocked", None, today)


def test_allowed_moves_from_closed_states() -> None:
    assert allowed_moves(Status.DONE) == ["open"]
    assert allowed_moves(Status.OPEN) == ["blocked", "canceled", "done", "in_progress"]
