"""The tool registry: every action with its params model and required entitlement.

Deny by default: an action cannot be registered without an entitlement, and the router's
RBAC check reads it from here — authorization lives in one place, driven by declarations.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from services.router.errors import NotFound, ValidationFailed
from services.router.tools.context import ToolContext

Level = Literal["read", "write", "admin"]
LEVELS: tuple[Level, ...] = ("read", "write", "admin")
Handler = Callable[[ToolContext, Any], Any]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    tool: str
    action: str
    area: str
    level: Level
    params: type[BaseModel]
    handler: Handler
    summary: str
    # Served from the store's in-process index with no other I/O (JSONL, memory): the router
    # may run it on the event loop instead of the thread pool (see ``ActionCall.run_async``).
    from_index: bool = False

    @property
    def entitlement(self) -> str:
        return f"tools.{self.area}.{self.level}"

    @property
    def writes(self) -> bool:
        return self.level != "read"


def split_entitlement(entitlement: str) -> tuple[str, Level]:
    """``tools.backlog.write`` → ``("backlog", "write")``; anything else is a programming error."""
    prefix, area, level = entitlement.split(".")
    if prefix != "tools" or level not in LEVELS:
        raise ValueError(f"not an entitlement: {entitlement!r}")
    return area, level


def grants(held: Iterable[str], needed: str) -> bool:
    """admin ⊃ write ⊃ read, within one area; areas never imply each other (the one rule, for
    RBAC accounts and for the scheduler's registry checks alike)."""
    area, level = split_entitlement(needed)
    rank = LEVELS.index(level)
    for entitlement in held:
        have_area, have_level = split_entitlement(entitlement)
        if have_area == area and LEVELS.index(have_level) >= rank:
            return True
    return False


class ToolRegistry:
    def __init__(self) -> None:
        self._actions: dict[tuple[str, str], ActionSpec] = {}

    def action(
        self, tool: str, action: str, *, area: str, level: Level, params: type[BaseModel], summary: str,
        from_index: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Decorator registering a handler ``(ctx, params) -> result``."""

        def register(handler: Handler) -> Handler:
            key = (tool, action)
            if key in self._actions:
                raise ValueError(f"{tool}.{action} registered twice")
            self._actions[key] = ActionSpec(tool, action, area, level, params, handler, summary, from_index)
            return handler

        return register

    def specs(self) -> list[ActionSpec]:
        return sorted(self._actions.values(), key=lambda s: (s.tool, s.action))

    def tools(self) -> list[str]:
        return sorted({tool for tool, _ in self._actions})

    def get(self, tool: str, action: str) -> ActionSpec:
        spec = self._actions.get((tool, action))
        if spec is not None:
            return spec
        if tool not in self.tools():
            raise NotFound(f"unknown tool {tool!r}{did_you_mean(tool, self.tools())}", field="tool", tools=self.tools())
        actions = sorted(a for t, a in self._actions if t == tool)
        raise NotFound(f"unknown action {action!r} for {tool}{did_you_mean(action, actions)}", field="action",
                       actions=actions)

    def parse(self, spec: ActionSpec, params: dict[str, Any]) -> BaseModel:
        try:
            return spec.params.model_validate(params)
        except ValidationError as exc:
            raise validation_error(exc) from None

    def execute(self, ctx: ToolContext, tool: str, action: str, params: dict[str, Any]) -> Any:
        spec = self.get(tool, action)
        return spec.handler(ctx, self.parse(spec, params))


def did_you_mean(name: object, known: list[str]) -> str:
    """``; did you mean 'backlog_tool'?`` for the closest known names, else the list of them."""
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.66)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f"; known: {', '.join(known)}"


def validation_error(exc: ValidationError) -> ValidationFailed:
    """Pydantic's report as one error naming the first bad field (all of them in ``errors``)."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    field = ".".join(str(p) for p in first["loc"]) or "body"
    message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
    return ValidationFailed(
        f"{field}: {message}", field=field,
        errors=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in errors],
    )
