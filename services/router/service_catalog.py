"""Owners from a Backstage service catalog: ``ownership.catalog`` globs of ``catalog-info.yaml`` files.

Each file holds one or more YAML documents (``---``). A document of ``kind: Component`` names a
service by ``metadata.annotations["backlog-bridge/service"]`` when present, else by
``metadata.name``, and its owner by ``spec.owner`` — an entity reference (``group:default/team-edge``,
``team-edge``) reduced to its name, which must be an owner slug. Other kinds (System, API, Group,
Location …) are not about owners of services and are skipped.

Anything wrong is one ``PolicyInvalid`` naming the file, the document's number (1-based) and the
key — a YAML error, a document that is not a mapping, a missing or invalid ``spec.owner``, two
Components claiming one service — so ``backlog policy check`` can show it and generation never
assigns from a half-read catalog. Globs are relative to ``REPO_ROOT``; each file is parsed once
per version (``files.ChangedFileCache``), a hit costs a ``stat``.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.router.domain.models import MAX_SLUG, SLUG_PATTERN
from services.router.errors import PolicyInvalid
from services.router.files import ChangedFileCache

SERVICE_ANNOTATION = "backlog-bridge/service"
_SLUG = re.compile(SLUG_PATTERN)
# ``[kind:][namespace/]name`` (Backstage's entity reference), the name being what we keep.
_ENTITY_REF = re.compile(r"^(?:(?P<kind>[A-Za-z0-9_.-]+):)?(?:(?P<namespace>[A-Za-z0-9_.-]+)/)?(?P<name>[^:/\s]+)$")


@dataclass(frozen=True, slots=True)
class CatalogOwner:
    """The owner the catalog gives one service, and where it says so."""

    service: str
    owner: str
    file: str  # as written for people: relative to the root when inside it
    document: int
    entity: str  # ``component:default/gateway``
    owner_ref: str

    @property
    def reason(self) -> str:
        """``owner_reason``: names the file and the entity."""
        return f"catalog {self.file}: {self.entity} (spec.owner {self.owner_ref})"


@dataclass(frozen=True, slots=True)
class _Entry:
    document: int
    service: str
    entity: str
    owner: str
    owner_ref: str


def owner_slug(ref: str) -> str | None:
    """``group:default/team-edge`` → ``team-edge``; None when the name is not an owner slug."""
    match = _ENTITY_REF.match(ref.strip())
    if match is None:
        return None
    name = match.group("name")
    return name if len(name) <= MAX_SLUG and _SLUG.match(name) else None


def _problem(path: Path, document: int, key: str, what: str) -> PolicyInvalid:
    return PolicyInvalid(f"{path}: document {document}: {key}: {what}", file=str(path), document=document, key=key)


def _parse(path: Path, data: bytes) -> tuple[_Entry, ...]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyInvalid(f"{path}: cannot read catalog file: {exc}", file=str(path)) from exc
    entries: list[_Entry] = []
    number = 0
    try:
        for number, doc in enumerate(yaml.safe_load_all(text), 1):
            entry = _component(path, number, doc)
            if entry is not None:
                entries.append(entry)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise _problem(path, number + 1, "(document)", f"not valid YAML{where}: "
                       f"{getattr(exc, 'problem', None) or exc}") from None
    return tuple(entries)


def _component(path: Path, number: int, doc: Any) -> _Entry | None:
    if doc is None:
        return None  # an empty document (a trailing ``---``)
    if not isinstance(doc, dict):
        raise _problem(path, number, "(document)", f"expected a mapping (an entity), got {type(doc).__name__}")
    if doc.get("kind") != "Component":
        return None
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise _problem(path, number, "metadata.name", "a Component needs a name")
    name = metadata["name"]
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise _problem(path, number, "metadata.annotations", "expected a mapping")
    service = annotations.get(SERVICE_ANNOTATION, name)
    key = f"metadata.annotations.{SERVICE_ANNOTATION}" if SERVICE_ANNOTATION in annotations else "metadata.name"
    if not isinstance(service, str) or not (len(service) <= MAX_SLUG and _SLUG.match(service)):
        raise _problem(path, number, key, f"{service!r} is not a service slug ([a-z0-9][a-z0-9._-]*, at most "
                                          f"{MAX_SLUG} characters)")
    spec = doc.get("spec")
    ref = spec.get("owner") if isinstance(spec, dict) else None
    if not isinstance(ref, str) or not ref.strip():
        raise _problem(path, number, "spec.owner", "a Component needs an owner")
    owner = owner_slug(ref)
    if owner is None:
        raise _problem(path, number, "spec.owner", f"{ref!r} does not name an owner slug (the name of "
                                                   "[kind:][namespace/]name must match [a-z0-9][a-z0-9._-]*)")
    namespace = metadata.get("namespace") if isinstance(metadata.get("namespace"), str) else "default"
    return _Entry(number, service, f"component:{namespace}/{name}", owner, ref.strip())


_files: ChangedFileCache[tuple[_Entry, ...]] = ChangedFileCache(_parse)


def catalog_files(patterns: Sequence[str], root: Path) -> list[Path]:
    """The files the globs match (relative ones against ``root``), sorted, each once."""
    found: set[Path] = set()
    for pattern in patterns:
        base = pattern if Path(pattern).is_absolute() else str(root / pattern)
        found.update(Path(p) for p in glob.glob(base, recursive=True) if Path(p).is_file())
    return sorted(found)


def shown(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def load_catalog(patterns: Sequence[str], root: Path) -> dict[str, CatalogOwner]:
    """Service → its catalog owner; ``PolicyInvalid`` naming file, document and key on any problem."""
    owners: dict[str, CatalogOwner] = {}
    for path in catalog_files(patterns, root):
        try:
            entries = _files.get(path)
        except OSError as exc:
            raise PolicyInvalid(f"{path}: cannot read catalog file: {exc.strerror or exc}", file=str(path)) from exc
        name = shown(path, root)
        for e in entries:
            known = owners.get(e.service)
            if known is not None:
                raise _problem(path, e.document, "metadata.name" if e.entity.endswith(f"/{e.service}") else
                               f"metadata.annotations.{SERVICE_ANNOTATION}",
                               f"service {e.service!r} is already owned by {known.entity} in {known.file} "
                               f"(document {known.document})")
            owners[e.service] = CatalogOwner(e.service, e.owner, name, e.document, e.entity, e.owner_ref)
    return owners
