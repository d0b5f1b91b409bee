"""The benchmark charts: bench/run.py draws SVG bar charts from the rows a run measured."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import run as bench_run  # noqa: E402

from harness import Row, overhead  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"

ROWS = [
    Row("Flask", "bare Flask (whole request, for scale)", "30 µs"),  # in the table, not drawn
    overhead("Flask", "last9 RedMiddleware", "1.20 µs", 1200, "≤ 2 µs", True),
    overhead("Flask", "prometheus-flask-exporter", "41 µs", 41_000),
    Row("Flask", "exporter ÷ last9", "34×", "≥ 20×", True),
    overhead("Django", "last9 <MIDDLEWARE> & co", "2.00 µs", 2000),
    Row("render", "last9", "9 ms", chart="scrape", amount=9.0),
    Row("render", "prometheus_client", "900 ms", chart="scrape", amount=900.0),
]


def bars(svg: str) -> list[tuple[str, float]]:
    """(tooltip, width) of every bar of a chart, parsed as XML."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return [
        (rect.findtext(f"{SVG}title") or "", float(rect.attrib["width"]))
        for rect in root.iter(f"{SVG}rect")
        if rect.get("class") == "bar"
    ]


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_the_overhead_chart_has_one_bar_per_measured_overhead_in_order_and_to_scale():
    svg = bench_run.draw(ROWS, "overhead")
    assert svg is not None
    drawn = bars(svg)
    assert [title for title, _ in drawn] == [
        "last9 RedMiddleware: 1.20 µs",
        "prometheus-flask-exporter: 41.0 µs",
        "last9 <MIDDLEWARE> & co: 2.00 µs",
    ]
    widths = [width for _, width in drawn]
    assert widths[1] / widths[0] == pytest.approx(41_000 / 1200, rel=0.01)
    # Group headings, candidates (escaped in the file, intact once parsed) and values are shown.
    shown = texts(svg)
    for label in ("Flask", "Django", "last9 <MIDDLEWARE> & co", "41.0 µs", "1.20 µs"):
        assert label in shown, label
    assert "exporter ÷ last9" not in shown  # a ratio row has no bar


def test_the_scrape_chart_and_the_files_written(tmp_path):
    svg = bench_run.draw(ROWS, "scrape")
    assert svg is not None
    assert [title for title, _ in bars(svg)] == ["last9: 9.00 ms", "prometheus_client: 900 ms"]
    assert bench_run.draw([Row("x", "y", "z")], "scrape") is None

    written = bench_run.write_charts(ROWS, tmp_path)
    assert sorted(p.name for p in written) == ["bench-overhead.svg", "bench-scrape.svg"]
    for path in written:
        assert bars(path.read_text())


def test_the_checked_in_charts_are_valid_svg_with_last9_in_each_group():
    for name in ("bench-overhead.svg", "bench-scrape.svg"):
        svg = (ROOT / "docs" / name).read_text()
        drawn = bars(svg)
        assert any(title.startswith("last9") for title, _ in drawn), name
        assert any(not title.startswith("last9") for title, _ in drawn), name
