"""``POST /v1/tools/execute``: any registered tool action, as the scheduler and the runbook call it.

The body is ``{"tool", "action", …params}`` with params flat (the runbook's form) or under
``"params"``. The entitlement checked is the one the named action declares in the registry,
so tools registered later (pressure, risk, signals) are served and protected with no change here.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.router.access.auth import DispatcherDep, check_agent
from services.router.api.errors import OrjsonResponse, error_docs
from services.router.domain.models import Actor
from services.router.errors import ValidationFailed
from services.router.jobs.cron_runs import CronRunRecorder
from services.router.runtime import Runtime
from services.router.tools.registry import ToolRegistry

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"

RUNBOOK_EXAMPLES: list[JsonValue] = [
    {"tool": "backlog_tool", "action": "auto_generate_weekly", "env": "prod"},
    {"tool": "backlog_tool", "action": "cleanup", "retention_days": 180},
    {"tool": "backlog_tool", "action": "list", "params": {"env": "prod", "overdue": True}},
]


class ExecuteRequest(BaseModel):
    """Any other top-level key is a param of the action (the runbook's flat form)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": RUNBOOK_EXAMPLES})

    tool: str = Field(pattern=NAME_PATTERN, max_length=64)
    action: str = Field(pattern=NAME_PATTERN, max_length=64)
    params: dict[str, Any] | None = Field(default=None, description="The action's params (or send them flat)")
    agent_id: Actor | None = Field(
        default=None, description="Optional. Must equal the API key's account (e.g. `scheduler`); else 403."
    )
    job: str | None = Field(
        default=None, pattern=NAME_PATTERN, max_length=64,
        description="Optional. The governance job this call runs (cron's runner sends it): the router records "
                    "the run under the job's scheduled slot, so /metrics shows its last success. A call whose "
                    "tool, action or params differ from the job's registry entry is refused (409).",
    )


class ExecuteResult(BaseModel):
    ok: Literal[True]
    tool: str
    action: str
    result: Any


async def execute(dispatcher: DispatcherDep, body: ExecuteRequest) -> Response:
    flat = dict(body.model_extra or {})
    if body.params is not None and flat:
        raise ValidationFailed(
            f'send params flat or under "params", not both (flat: {", ".join(sorted(flat))})', field="params"
        )
    params = dict(body.params) if body.params is not None else flat
    call = dispatcher.authorize(body.tool, body.action)
    check_agent(call.principal, params.pop("agent_id", None))
    if body.job is None:
        result = await call.run_async(params, agent_id=body.agent_id)
    else:  # validated first: whether it is a dry run, and whether it is the job, come from the params as parsed
        parsed = call.parse(params)
        recorder = cron_recorder(dispatcher.runtime)
        result = await run_in_threadpool(recorder.run, body.job, body.tool, body.action, parsed,
                                         lambda: call.run_parsed(parsed, agent_id=body.agent_id))
    return OrjsonResponse({"ok": True, "tool": body.tool, "action": body.action, "result": result})


def cron_recorder(runtime: Runtime) -> CronRunRecorder:
    """One per runtime, made on the first job call (most routers never see one)."""
    recorder = runtime.extras.get("cron_runs")
    if recorder is None:
        recorder = runtime.extras.setdefault("cron_runs", CronRunRecorder(runtime.settings, runtime.clock))
    return recorder  # type: ignore[no-any-return]


REF = "#/components/schemas/{model}"


def execute_body_schema(registry: ToolRegistry, components: dict[str, Any]) -> dict[str, Any]:
    """The bodies ``/v1/tools/execute`` accepts, exactly: for each served action, ``{tool, action}``
    with its params under ``"params"`` or flat beside them (never both), and nothing else — the
    params' own schemas (``params.<tool>.<action>``) carry their types and limits. Their
    definitions are added to ``components``."""
    envelope = ExecuteRequest.model_json_schema(ref_template=REF)["properties"]
    branches: list[dict[str, Any]] = []
    for spec in registry.specs():
        params = spec.params.model_json_schema(ref_template=REF)
        for name, definition in params.pop("$defs", {}).items():
            if components.setdefault(name, definition) != definition:
                raise RuntimeError(f"schema {name} of {spec.tool}.{spec.action} differs from another of that name")
        component = f"params.{spec.tool}.{spec.action}"
        components[component] = params
        fixed = {"tool": {"type": "string", "const": spec.tool}, "action": {"type": "string", "const": spec.action},
                 "agent_id": envelope["agent_id"], "job": envelope["job"]}
        title = f"{spec.tool}.{spec.action}"
        branches.append({"title": f"{title}, params under \"params\"", "type": "object", "additionalProperties": False,
                         "required": ["tool", "action", "params"],
                         "properties": {**fixed, "params": {"$ref": REF.format(model=component)}}})
        branches.append({"title": f"{title}, params flat", "type": "object", "additionalProperties": False,
                         "required": ["tool", "action", *params.get("required", [])],
                         "properties": {**fixed, **params.get("properties", {})}})
    return {"anyOf": branches, "examples": RUNBOOK_EXAMPLES}


def document_execute_body(openapi: dict[str, Any], registry: ToolRegistry) -> None:
    """Replace FastAPI's loose ``ExecuteRequest`` (any extra property) with ``execute_body_schema``."""
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    body = openapi["paths"]["/v1/tools/execute"]["post"]["requestBody"]["content"]["application/json"]
    body["schema"] = execute_body_schema(registry, components)
    components.pop("ExecuteRequest", None)


def describe_catalog(registry: ToolRegistry) -> str:
    """The served actions and their entitlements, for the route's OpenAPI description."""
    rows = [f"| `{s.tool}` | `{s.action}` | `{s.entitlement}` | {s.summary} |" for s in registry.specs()]
    return "\n".join(["| tool | action | entitlement | |", "|---|---|---|---|", *rows])


def register(app: FastAPI, *, responses: dict[int | str, dict[str, Any]]) -> None:
    app.add_api_route(
        "/v1/tools/execute", execute, methods=["POST"], response_model=ExecuteResult, tags=["tools"],
        summary="Run a tool action (RUNBOOK §3.2, §4, §9)", responses={**responses, **error_docs(404, 409)},
    )
