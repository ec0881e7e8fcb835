"""Small builders for test data, so tests say only what matters to them."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.router.domain.models import ItemInput


def item(
    key: str = "k1", *, env: str = "prod", service: str = "gateway", category: str = "arch_review",
    title: str = "Review gateway architecture", **fields: Any,
) -> ItemInput:
    data: dict[str, Any] = {
        "env": env, "service": service, "category": category, "title": title, "dedupe_key": key, **fields,
    }
    if isinstance(data.get("due_date"), date):
        data["due_date"] = data["due_date"].isoformat()
    return ItemInput.model_validate(data)
