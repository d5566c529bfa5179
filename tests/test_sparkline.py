"""Server-rendered SVG sparklines: bounded size, escaping, and the shapes of empty, single,
flat, gapped and rising series."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from node.api.sparkline import EMPTY_COLOUR, HEIGHT, LINE_COLOUR, PAD, WIDTH, columns, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ET.Element:
    """The sparkline as XML (it must be well-formed to be inline SVG at all)."""
    return ET.fromstring(svg.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def points(svg: str) -> list[list[tuple[float, float]]]:
    return [
        [(float(x), float(y)) for x, y in (p.split(",") for p in line.get("points", "").split())]
        for line in parsed(svg).iter(f"{SVG}polyline")
    ]


def test_no_samples_is_a_grey_dashed_baseline() -> None:
    """Without history there is no line in the line colour, only a dashed grey baseline."""
    svg = sparkline([], title="sent")
    assert LINE_COLOUR not in svg
    line = parsed(svg).find(f"{SVG}line")
    assert line is not None and line.get("stroke") == EMPTY_COLOUR
    assert sparkline([None, math.nan], title="sent") == svg


def test_one_sample_is_a_dot() -> None:
    """A single sample cannot make a line: it is a dot in the line colour."""
    root = parsed(sparkline([3.0], title="backlog"))
    dots = list(root.iter(f"{SVG}circle"))
    assert len(dots) == 1 and dots[0].get("fill") == LINE_COLOUR
    assert float(dots[0].get("cy", "nan")) == PAD  # the highest sample is at the top
    assert not list(root.iter(f"{SVG}polyline"))


def test_a_flat_series_is_a_level_line_at_zero_or_at_the_top() -> None:
    """Idle is a line along the bottom; a steady non-zero value a line along the top."""
    [idle] = points(sparkline([0.0] * 5, title="sent"))
    assert {y for _, y in idle} == {HEIGHT - PAD}
    [steady] = points(sparkline([7.0] * 5, title="backlog"))
    assert {y for _, y in steady} == {PAD}


def test_a_rising_series_spans_the_height_and_the_width() -> None:
    """The lowest sample (0) is at the bottom, the highest at the top, oldest at the left."""
    [line] = points(sparkline([0.0, 1.0, 4.0], title="sent"))
    assert line[0] == (PAD, HEIGHT - PAD)
    assert line[-1] == (WIDTH - PAD, PAD)
    assert line[0][1] > line[1][1] > line[2][1]


def test_a_missing_sample_breaks_the_line() -> None:
    """A gap (None or NaN) splits the line; a lone sample between gaps is a dot."""
    svg = sparkline([1.0, 2.0, None, 3.0, math.nan, 1.0, 2.0], title="p99")
    assert [len(segment) for segment in points(svg)] == [2, 2]
    assert len(list(parsed(svg).iter(f"{SVG}circle"))) == 1


def test_size_is_bounded_by_the_width_and_spikes_survive() -> None:
    """An hour of samples draws at most one point per pixel column, and a single spike among
    them still reaches the top."""
    values: list[float | None] = [1.0] * 720
    values[333] = 50.0
    folded = columns(values, WIDTH)
    assert len(folded) == WIDTH and max(v for v in folded if v is not None) == 50.0
    svg = sparkline(values, title="backlog")
    [line] = points(svg)
    assert len(line) == WIDTH
    assert min(y for _, y in line) == PAD
    assert len(svg) < 2500
    assert f'width="{WIDTH}" height="{HEIGHT}"' in svg


def test_the_title_is_escaped() -> None:
    """Markup in a title reaches the page as text, never as markup."""
    svg = sparkline([1.0, 2.0], title='<script>alert("x")</script>')
    assert "<script" not in svg
    assert re.search(r"<title>&lt;script&gt;", svg)
    assert parsed(svg).find(f"{SVG}title") is not None
