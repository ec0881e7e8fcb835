"""Finding the digest generation reads: the latest by its file name, not after the caller's clock.

File discovery looks only inside the reports folder and only at names of the exact form
``2026-W48.json`` / ``2026-11-26.json`` (the week or date must exist); the latest is chosen by
its label, never by modification time, and nothing taken from a request ever names a file.
"Latest" means latest *not after* the caller's clock (``not_after``: the clock's ISO week, or its
date): a run with the clock set in the past — a backfill, the demo replaying past Mondays —
reads that week's digest, not one written later. Any other ``*.json`` in the folder
(``2026-W54.json``, ``2025-W53.json``, ``latest.json``) is not read but reported as ``Ignored``
with the reason, so generation can say so instead of "No platform digest found" alone.

When the newest such name is not a regular file inside its folder — a symlink planted to point
out of the reports folder, a directory — generation refuses it with a ``ValidationFailed``
naming the file (never the link's target) instead of quietly using an older week; a folder
(``platform/``, ``risk/``) that is a symlink out of the reports folder is refused the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Generic

from services.router.domain.weeks import WEEK_LABEL_RE, parse_week
from services.router.errors import ValidationFailed
from services.router.generation.digest import (
    DATE_NAME_RE,
    PLATFORM_DIR,
    RISK_DIR,
    D,
    Found,
    PlatformDigest,
    RiskDigest,
    load_platform_digest,
    load_risk_digest,
)


@dataclass(frozen=True, slots=True)
class Ignored:
    """A ``*.json`` in a digest folder that is not read, and why (``platform/2026-W54.json``)."""

    file: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Lookup(Generic[D]):
    """The latest digest (None when there is none) and the files the search ignored."""

    found: Found[D] | None
    ignored: tuple[Ignored, ...] = ()


# -- finding files ----------------------------------------------------------------------------
def refusal(folder: Path, path: Path) -> str | None:
    """Why ``path`` is not read as a digest; None for a regular file whose real location is in ``folder``."""
    try:
        if path.resolve().parent != folder.resolve():
            return "a symlink pointing outside the reports folder"
        if not path.is_file():
            return "not a regular file"
    except RuntimeError:  # Python < 3.13 on a symlink loop
        return "a symlink loop"
    except OSError as exc:  # strerror only: the message must not show where a link points
        return f"cannot be inspected ({exc.strerror or type(exc).__name__})"
    return None


def _inside(folder: Path, path: Path) -> bool:
    """A regular file whose real location is in ``folder`` (a symlink out of it is ignored)."""
    return refusal(folder, path) is None


def _week_names(folder: Path, ignored: list[Ignored] | None = None) -> list[tuple[tuple[int, int], Path]]:
    found: list[tuple[tuple[int, int], Path]] = []
    for path in _listing(folder):
        if path.suffix != ".json" or path.name.startswith("."):  # .md twins, temp files
            continue
        if not WEEK_LABEL_RE.match(path.stem):
            _ignore(ignored, folder, path, "not a digest name (expected YYYY-Www.json, e.g. 2026-W48.json)")
            continue
        try:
            found.append((parse_week(path.stem), path))
        except ValueError as exc:
            _ignore(ignored, folder, path, f"not an ISO week: {exc}")
    return sorted(found)


def _date_names(folder: Path, ignored: list[Ignored] | None = None) -> list[tuple[date, Path]]:
    found: list[tuple[date, Path]] = []
    for path in _listing(folder):
        if path.suffix != ".json" or path.name.startswith("."):
            continue
        if not DATE_NAME_RE.match(path.stem):
            _ignore(ignored, folder, path, "not a digest name (expected YYYY-MM-DD.json, e.g. 2026-11-26.json)")
            continue
        try:
            found.append((date.fromisoformat(path.stem), path))
        except ValueError as exc:
            _ignore(ignored, folder, path, f"not a date: {exc}")
    return sorted(found)


def _ignore(ignored: list[Ignored] | None, folder: Path, path: Path, reason: str) -> None:
    if ignored is not None:
        ignored.append(Ignored(f"{folder.name}/{path.name}", reason))


def week_files(folder: Path) -> list[tuple[tuple[int, int], Path]]:
    """``YYYY-Www.json`` files of existing ISO weeks, oldest first; other names are ignored."""
    return [f for f in _week_names(folder) if _inside(folder, f[1])]


def date_files(folder: Path) -> list[tuple[date, Path]]:
    """``YYYY-MM-DD.json`` files of real dates, oldest first; other names are ignored."""
    return [f for f in _date_names(folder) if _inside(folder, f[1])]


def _newest(reports_dir: Path, sub: str, names: list[tuple[Any, Path]]) -> Path | None:
    """The newest digest-named file, refused with a clear error when it is not one to read."""
    if not names:
        return None
    path = names[-1][1]
    shown = f"{sub}/{path.name}"
    folder = reports_dir / sub
    try:
        escapes = not folder.resolve().is_relative_to(reports_dir.resolve())
    except (OSError, RuntimeError):
        escapes = True
    reason = f"the {sub}/ folder is a symlink out of the reports folder" if escapes else refusal(folder, path)
    if reason is not None:
        raise ValidationFailed(f"{shown}: refused: {reason}; replace it with the digest file itself",
                               field="file", file=shown)
    return path


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def find_platform_digest(reports_dir: Path, *, not_after: date | None = None) -> Lookup[PlatformDigest]:
    """The newest ``platform/YYYY-Www.json`` by week — of ``not_after``'s ISO week or earlier —
    validated, and the folder's ignored files."""
    ignored: list[Ignored] = []
    names = _week_names(reports_dir / PLATFORM_DIR, ignored)
    if not_after is not None:
        limit = not_after.isocalendar()[:2]
        names = [n for n in names if n[0] <= limit]
    path = _newest(reports_dir, PLATFORM_DIR, names)
    if path is None:
        return Lookup(None, tuple(ignored))
    name = f"{PLATFORM_DIR}/{path.name}"
    return Lookup(Found(path, name, path.stem, load_platform_digest(path, name)), tuple(ignored))


def find_risk_digest(reports_dir: Path, *, not_after: date | None = None) -> Lookup[RiskDigest]:
    """The newest ``risk/YYYY-MM-DD.json`` by date — ``not_after`` or earlier — validated, and the
    folder's ignored files."""
    ignored: list[Ignored] = []
    names = _date_names(reports_dir / RISK_DIR, ignored)
    if not_after is not None:
        names = [n for n in names if n[0] <= not_after]
    path = _newest(reports_dir, RISK_DIR, names)
    if path is None:
        return Lookup(None, tuple(ignored))
    name = f"{RISK_DIR}/{path.name}"
    return Lookup(Found(path, name, path.stem, load_risk_digest(path, name)), tuple(ignored))


def latest_platform_digest(reports_dir: Path, *, not_after: date | None = None) -> Found[PlatformDigest] | None:
    """The newest platform digest not after ``not_after``'s week (any week without it); None when there is none."""
    return find_platform_digest(reports_dir, not_after=not_after).found

