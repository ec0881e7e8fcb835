"""Charts as inline SVG, drawn on the server: readable without JavaScript, allowed by the pages'
Content-Security-Policy (no inline script or ``style`` attribute: colours come from classes in
``/static/app.css``), and each with a text table of the same numbers for screen readers.

Every mark carries its numbers (``data-series``, ``data-week``, ``data-value``) and a ``<title>``
tooltip, so a test can read back what the chart draws and compare it with the API's answer.
Pure functions: they take the rows a trends action returned and return markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 34, 8, 10, 24


@dataclass(frozen=True, slots=True)
class Series:
    key: str  # the API field: opened, closed, open_at_end, …
    label: str
    values: Sequence[int]
    tone: str  # css class suffix: chart-<tone>


@dataclass(frozen=True, slots=True)
class Frame:
    """The plot area of a chart and its scale."""

    width: int
    height: int
    count: int
    top: int  # the value at the top of the y axis

    @property
    def inner_width(self) -> float:
        return self.width - PAD_LEFT - PAD_RIGHT

    @property
    def inner_height(self) -> float:
        return self.height - PAD_TOP - PAD_BOTTOM

    def y(self, value: float) -> float:
        return round(PAD_TOP + self.inner_height * (1 - value / self.top), 1)

    def band(self, index: int) -> tuple[float, float]:
        """The x range of the index-th week."""
        step = self.inner_width / max(self.count, 1)
        return PAD_LEFT + index * step, step


def nice_top(value: int) -> int:
    """The y axis' top: the value rounded up to 1, 2, 2.5 or 5 times a power of ten (at least 4)."""
    if value <= 4:
        return 4
    power: int = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return int(step * power)
    return 10 * power  # pragma: no cover - the loop always returns


def week_short(label: str) -> str:
    """``2026-W48`` → ``W48`` for axis labels (the table and tooltips keep the whole label)."""
    return label.split("-", 1)[-1]


def _axes(frame: Frame, labels: Sequence[str], *, every: int) -> list[str]:
    parts = []
    for i in range(5):
        value = frame.top * i / 4
        y = frame.y(value)
        text = f"{value:g}"
        parts.append(f'<line class="chart-grid" x1="{PAD_LEFT}" x2="{frame.width - PAD_RIGHT}" y1="{y}" y2="{y}"/>'
                     f'<text class="chart-tick" x="{PAD_LEFT - 4}" y="{y + 3}" text-anchor="end">{text}</text>')
    for i, label in enumerate(labels):
        if i % every and i != len(labels) - 1:
            continue
        x, step = frame.band(i)
        parts.append(f'<text class="chart-tick" x="{round(x + step / 2, 1)}" y="{frame.height - 8}" '
                     f'text-anchor="middle">{escape(week_short(label))}</text>')
    return parts


def _svg(chart_id: str, title: str, frame: Frame, body: list[str], series: Sequence[Series]) -> Markup:
    summary = "; ".join(f"{s.label}: latest {s.values[-1] if s.values else 0}, highest {max(s.values, default=0)}"
                        for s in series)
    return Markup(
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {frame.width} {frame.height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" data-chart="{escape(chart_id)}">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(summary)}</desc>{"".join(body)}</svg>')


def bar_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], *, width: int = 640,
              height: int = 220) -> Markup:
    """Grouped bars per week (opened vs closed)."""
    frame = Frame(width, height, len(labels), nice_top(max((max(s.values, default=0) for s in series), default=0)))
    body = _axes(frame, labels, every=max(1, math.ceil(len(labels) / 12)))
    for i, label in enumerate(labels):
        x, step = frame.band(i)
        bar = step * 0.8 / max(len(series), 1)
        for j, s in enumerate(series):
            value = s.values[i]
            y = frame.y(value)
            body.append(
                f'<rect class="chart-{s.tone}" x="{round(x + step * 0.1 + j * bar, 1)}" y="{y}" '
                f'width="{round(max(bar - 1, 1), 1)}" height="{round(PAD_TOP + frame.inner_height - y, 1)}" '
                f'data-series="{escape(s.key)}" data-week="{escape(label)}" data-value="{value}">'
                f'<title>{escape(label)}: {value} {escape(s.label.lower())}</title></rect>')
    return _svg(chart_id, title, frame, body, series)


def line_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], *, width: int = 640,
               height: int = 220) -> Markup:
    """One line per series with a marker per week (open / overdue / P0 at week end)."""
    frame = Frame(width, height, len(labels), nice_top(max((max(s.values, default=0) for s in series), default=0)))
    body = _axes(frame, labels, every=max(1, math.ceil(len(labels) / (12 if width >= 400 else 4))))
    for s in series:
        points = []
        marks = []
        for i, label in enumerate(labels):
            x, step = frame.band(i)
            cx, cy = round(x + step / 2, 1), frame.y(s.values[i])
            points.append(f"{cx},{cy}")
            marks.append(f'<circle class="chart-dot chart-{s.tone}" cx="{cx}" cy="{cy}" r="3" '
                         f'data-series="{escape(s.key)}" data-week="{escape(label)}" data-value="{s.values[i]}">'
                         f'<title>{escape(label)}: {s.values[i]} {escape(s.label.lower())}</title></circle>')
        body.append(f'<polyline class="chart-line chart-{s.tone}" points="{" ".join(points)}"/>')
        body.extend(marks)
    return _svg(chart_id, title, frame, body, series)
