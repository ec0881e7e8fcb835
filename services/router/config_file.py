"""Every YAML configuration file (policy, risk policy, task registry, RBAC, trackers) loads one way.

An invalid file is one ``PolicyInvalid`` naming the file, the key and what was expected, so an
operator can fix it without reading code. Each file is parsed once per version
(``files.ChangedFileCache``): the router reads the policy on every request, and an edit applies
to the next request without a restart.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from services.router.errors import PolicyInvalid
from services.router.files import ChangedFileCache

M = TypeVar("M", bound=BaseModel)
TOP_LEVEL_MAPPING = "a mapping at the top level"

_caches: dict[tuple[type[BaseModel], type[yaml.SafeLoader], str, str], ChangedFileCache[Any]] = {}
_caches_lock = threading.Lock()


def load_config_file(model: type[M], path: Path, what: str, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader,
                     shape: str = TOP_LEVEL_MAPPING) -> M:
    """Read and validate ``path`` as ``model``; a missing or unreadable file is an error naming it."""
    key = (model, loader, shape, what)
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = _caches[key] = ChangedFileCache(partial(_parse_file, model, what, loader, shape))
    try:
        parsed: M = cache.get(path)
    except FileNotFoundError as exc:
        raise PolicyInvalid(f"{path}: {what} not found", file=str(path)) from exc
    except OSError as exc:
        raise PolicyInvalid(f"{path}: cannot read {what}: {exc}", file=str(path)) from exc
    return parsed


def _parse_file(model: type[M], what: str, loader: type[yaml.SafeLoader], shape: str, path: Path, data: bytes) -> M:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyInvalid(f"{path}: cannot read {what}: {exc}", file=str(path)) from exc
    return parse_config_text(model, text, path, loader=loader, shape=shape)


def parse_config_text(model: type[M], text: str, path: Path, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader,
                      shape: str = TOP_LEVEL_MAPPING) -> M:
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise PolicyInvalid(f"{path}: not valid YAML: {exc}", file=str(path)) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyInvalid(f"{path}: expected {shape}", file=str(path))
    return validate_config(model, data, path)


def validate_config(model: type[M], data: Any, path: Path) -> M:
    """Validate ``data`` and turn pydantic's report into one error naming file and keys."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [format_problem(err) for err in exc.errors()]
        raise PolicyInvalid(
            f"{path}: " + "; ".join(problems), file=str(path),
            keys=[".".join(str(p) for p in err["loc"]) for err in exc.errors()],
        ) from None


def format_problem(err: Any) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key {key}"
    if err["type"] == "missing":
        return f"{key}: required key is missing"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
    return f"{key}: {err['msg'].removeprefix('Value error, ')} (got {shown})"
