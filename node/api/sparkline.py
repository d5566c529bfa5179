"""Sparklines: a series of samples drawn as a small inline SVG, rendered on the server.

Rules kept here:
- The picture is inline markup: no script, nothing fetched; its only text (the title a
  browser shows on hover) is escaped.
- The scale runs from 0 (or the lowest sample, if below 0) at the bottom to the highest
  sample at the top, so a steady non-zero series is a line at the top and an idle one a
  line at the bottom; a flat line never means "no data".
- A missing sample (None or NaN) breaks the line; a sample with no neighbour is a dot.
- More samples than pixel columns: each column shows the highest sample that falls in it,
  so a spike is never averaged away.
- No samples at all: a dashed grey baseline, never the line colour, so a page without
  history shows no line (the browser test tells traffic from none by that colour).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH = 96
HEIGHT = 18
PAD = 1.5
"""Room for the stroke at the edges."""
LINE_COLOUR = "#8250df"
"""Used by sparklines only, nowhere else on the dashboard."""
EMPTY_COLOUR = "#afb8c1"


def columns(values: Sequence[float | None], width: int) -> list[float | None]:
    """``values`` folded into at most ``width`` columns, each the highest sample in it;
    None where a column holds no sample (NaN is read as None)."""
    clean = [None if v is None or math.isnan(v) else v for v in values]
    if len(clean) <= width:
        return clean
    folded: list[float | None] = []
    for column in range(width):
        part = clean[column * len(clean) // width : (column + 1) * len(clean) // width]
        present = [v for v in part if v is not None]
        folded.append(max(present) if present else None)
    return folded


def sparkline(
    values: Sequence[float | None], *, title: str, width: int = WIDTH, height: int = HEIGHT
) -> str:
    """An inline ``<svg>`` of ``values`` (oldest first) with ``title`` as its hover text."""
    head = (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{escape(title, quote=True)}"><title>{escape(title)}</title>'
    )
    shown = columns(values, width)
    present = [v for v in shown if v is not None]
    bottom = height - PAD
    if not present:
        return (
            f'{head}<line x1="{PAD}" y1="{bottom}" x2="{width - PAD}" y2="{bottom}" '
            f'stroke="{EMPTY_COLOUR}" stroke-width="1" stroke-dasharray="2 3"/></svg>'
        )
    low, high = min(0.0, *present), max(present)
    span = high - low
    step = (width - 2 * PAD) / max(1, len(shown) - 1)

    def point(index: int, value: float) -> str:
        y = bottom - (value - low) / span * (height - 2 * PAD) if span else bottom
        return f"{PAD + index * step:.1f},{y:.1f}"

    segments: list[list[str]] = [[]]
    for index, value in enumerate(shown):
        if value is not None:
            segments[-1].append(point(index, value))
        elif segments[-1]:
            segments.append([])
    marks = []
    for segment in segments:
        if len(segment) == 1:
            x, y = segment[0].split(",")
            marks.append(f'<circle cx="{x}" cy="{y}" r="1.5" fill="{LINE_COLOUR}"/>')
        elif segment:
            marks.append(
                f'<polyline points="{" ".join(segment)}" fill="none" stroke="{LINE_COLOUR}" '
                'stroke-width="1.5" stroke-linejoin="round" shape-rendering="crispEdges"/>'
            )
    return head + "".join(marks) + "</svg>"
