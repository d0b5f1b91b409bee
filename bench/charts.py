"""Horizontal bar charts as self-contained SVG, drawn from the benchmark rows that carry a number.

No plotting library: a chart is a title, then per group (a benchmark) a heading and one bar per
candidate, on a linear scale shared by the whole chart, with the value written at the bar's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

#: (group heading, [(candidate, value)]) in the order they are drawn.
Groups = Sequence[tuple[str, Sequence[tuple[str, float]]]]

WIDTH = 900
LABEL_WIDTH = 330  # the candidate's name, left of its bar
VALUE_WIDTH = 90  # the value written right of the longest bar
BAR_HEIGHT = 18
ROW_HEIGHT = 24
HEADING_HEIGHT = 28
TITLE_HEIGHT = 40
OURS = "#2b6cb0"  # last9's bars; the others are grey
THEIRS = "#a0aec0"


def bar_chart(title: str, unit: str, groups: Groups) -> str:
    """An SVG document: one bar per (candidate, value), grouped; values are in `unit`."""
    largest = max((value for _, bars in groups for _, value in bars), default=0.0)
    scale = (WIDTH - LABEL_WIDTH - VALUE_WIDTH) / largest if largest > 0 else 0.0
    parts: list[str] = []
    y = TITLE_HEIGHT
    for heading, bars in groups:
        y += HEADING_HEIGHT
        parts.append(_text(10, y - 8, heading, 'font-weight="bold"'))
        for name, value in bars:
            colour = OURS if name.startswith("last9") else THEIRS
            length = max(value * scale, 1.0)
            parts.append(_text(LABEL_WIDTH - 8, y + 13, name, 'text-anchor="end"'))
            parts.append(
                f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" '
                f'height="{BAR_HEIGHT}" fill="{colour}"><title>{escape(name)}: '
                f"{_number(value)} {escape(unit)}</title></rect>"
            )
            parts.append(_text(LABEL_WIDTH + length + 6, y + 13, f"{_number(value)} {unit}"))
            y += ROW_HEIGHT
    height = y + 12
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">\n'
        f'<rect width="100%" height="100%" fill="white"/>\n'
        + _text(10, 26, title, 'font-size="16" font-weight="bold"')
        + "\n"
        + "\n".join(parts)
        + "\n</svg>\n"
    )


def _text(x: float, y: float, text: str, attributes: str = "") -> str:
    extra = f" {attributes}" if attributes else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(text)}</text>'


def _number(value: float) -> str:
    """Three significant figures, without an exponent."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
