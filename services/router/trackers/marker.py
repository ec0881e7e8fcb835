"""The marker: a line in every remote issue's description that names the backlog item.

It is what makes "exactly once" possible after a crash between creating a remote issue and
storing the link: before creating, the sync engine asks the tracker for an issue whose
description holds the marker (Redmine ``description=~``, GitHub search ``in:body``, GitLab
``search=`` in descriptions, Jira JQL ``text ~``). Searches are fuzzy (word splitting,
stemming, an index that lags), so every adapter searches for the item id and then keeps only
issues whose description really holds the marker line (:func:`item_id_in`).

The footer is plain text that reads the same in Markdown, Textile and Jira wiki markup, each
part its own paragraph::

    <description>

    Labels: backlog-bridge          (only on trackers without labels: Redmine)

    Backlog Bridge item: bl_0193a…
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER_PREFIX = "Backlog Bridge item: "
LABELS_PREFIX = "Labels: "
_MARKER = re.compile(r"^Backlog Bridge item: (bl_[0-9a-f]{12,40})[ \t]*$", re.MULTILINE)
ITEM_ID = re.compile(r"^bl_[0-9a-f]{12,40}$")


def marker(item_id: str) -> str:
    """The marker line for one item (the id is checked: it goes into search queries)."""
    if not ITEM_ID.match(item_id):
        raise ValueError(f"not a backlog item id: {item_id!r}")
    return MARKER_PREFIX + item_id


def compose(body: str, item_id: str, labels: tuple[str, ...] = ()) -> str:
    """The remote description: the body, then the labels line (if any), then the marker."""
    parts = [body.strip()] if body.strip() else []
    if labels:
        parts.append(LABELS_PREFIX + ", ".join(labels))
    parts.append(marker(item_id))
    return "\n\n".join(parts)


@dataclass(frozen=True, slots=True)
class Parsed:
    body: str
    item_id: str | None
    labels: tuple[str, ...]


def parse(text: str | None, *, labels_in_footer: bool = False) -> Parsed:
    """Split a remote description into the body, the item id and (Redmine) the footer labels.

    Trackers rewrite line ends (Redmine stores ``\\r\\n``) and trailing blanks; a description
    without a marker (an issue adopted by ``tracker link``, or edited by a person) is all body.
    """
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    found = list(_MARKER.finditer(text))
    if not found:
        return Parsed(text.strip(), None, ())
    last = found[-1]
    head = text[: last.start()].rstrip()
    labels: tuple[str, ...] = ()
    if labels_in_footer:
        paragraph_start = head.rfind("\n\n") + 2 if "\n\n" in head else 0
        paragraph = head[paragraph_start:]
        if paragraph.startswith(LABELS_PREFIX) and "\n" not in paragraph:
            labels = tuple(x.strip() for x in paragraph[len(LABELS_PREFIX):].split(",") if x.strip())
            head = head[:paragraph_start].rstrip()
    return Parsed(head.strip(), last.group(1), labels)


def item_id_in(text: str | None) -> str | None:
    """The item id of the description's marker line, or None."""
    return parse(text).item_id
