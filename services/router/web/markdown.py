"""The digests' ``.md`` reports as HTML for the ``/reports`` pages, rendered inert.

markdown-it-py (CommonMark plus tables, as the digests write them) with raw HTML off, so any
``<script>``, ``<img onerror=…>`` or ``<a href=javascript:…>`` in a report file is shown as
text; only ``http``/``https`` links become links (``javascript:``, ``data:``, ``file:``,
relative and protocol-relative links stay text), images are not rendered at all (the pages
load nothing from elsewhere), and every link leaves with ``rel="noopener noreferrer"``.

A report names services in bold (``**gateway**``) under a ``## env`` heading; those that the
digest's JSON lists for that env become links to their problems.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

LINK_SCHEMES = ("http://", "https://")


def safe_link(url: str) -> bool:
    return url.strip().lower().startswith(LINK_SCHEMES)


def _link_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "noopener noreferrer")
    return str(self.renderToken(tokens, idx, options, env))


def parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.disable("image")
    md.validateLink = safe_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    return md


_MD = parser()


def _link_services(tokens: list[Token], services: Mapping[str, Sequence[str]],
                   href: Callable[[str, str], str]) -> None:
    """``**service**`` under ``## env`` → a link to the service's problems in that env."""
    env: str | None = None
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2" and i + 1 < len(tokens):
            heading = tokens[i + 1].content.strip()
            env = heading if heading in services else None
        if token.type != "inline" or env is None or not token.children:
            continue
        known = set(services[env])
        children: list[Token] = []
        kids = token.children
        j = 0
        while j < len(kids):
            if (kids[j].type == "strong_open" and j + 2 < len(kids) and kids[j + 1].type == "text"
                    and kids[j + 2].type == "strong_close" and kids[j + 1].content in known):
                link = Token("link_open", "a", 1, attrs={"href": href(env, kids[j + 1].content)})
                link.attrSet("class", "service-link")
                children += [link, *kids[j:j + 3], Token("link_close", "a", -1)]
                j += 3
                continue
            children.append(kids[j])
            j += 1
        token.children = children


def render_report(text: str, services: Mapping[str, Sequence[str]] | None = None,
                  href: Callable[[str, str], str] | None = None) -> Markup:
    """The report's HTML; with ``services`` and ``href``, its services link to their problems."""
    tokens = _MD.parse(text)
    if services and href is not None:
        _link_services(tokens, services, href)
    return Markup(_MD.renderer.render(tokens, _MD.options, {}))
