"""Runs the benchmarks (all, or those named), prints one table and draws the charts.

The table goes to bench/results/latest.md; the charts (SVG) to docs/ after a full run, which the
README shows, or to bench/results/ when only some benchmarks ran. See bench/run.sh.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from charts import bar_chart  # noqa: E402

from harness import Row, table  # noqa: E402

DOCS = HERE.parent / "docs"
#: chart name (as in `Row.chart`) → (title, unit, file name).
CHARTS = {
    "overhead": (
        "Time added per request, by framework (CPU time; shorter is better)",
        "µs",
        "bench-overhead.svg",
    ),
    "scrape": ("Time to render a scrape (shorter is better)", "ms", "bench-scrape.svg"),
}


def draw(rows: list[Row], chart: str) -> str | None:
    """The SVG of one chart from the rows that belong to it (None if none do), grouped by
    benchmark in the order they ran."""
    groups: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        if row.chart == chart:
            groups.setdefault(row.benchmark, []).append((row.candidate, row.amount))
    if not groups:
        return None
    title, unit, _ = CHARTS[chart]
    return bar_chart(title, unit, list(groups.items()))


def write_charts(rows: list[Row], folder: Path) -> list[Path]:
    written = []
    for chart, (_, _, name) in CHARTS.items():
        svg = draw(rows, chart)
        if svg is not None:
            (folder / name).write_text(svg)
            written.append(folder / name)
    return written


def main() -> int:
    available = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "names", nargs="*", choices=[*available, []], help="benchmarks to run (all by default)"
    )
    args = parser.parse_args()
    rows: list[Row] = []
    started = time.monotonic()
    for name in args.names or available:
        print(f"==> {name}", file=sys.stderr, flush=True)
        module = importlib.import_module(f"bench_{name}")
        rows += module.run()
    header = (
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{time.strftime('%Y-%m-%d')}, {time.monotonic() - started:.0f} s"
    )
    report = f"{header}\n\n{table(rows)}\n"
    print(report)
    out = HERE / "results" / "latest.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    # Only a full run replaces the charts the README shows.
    for path in write_charts(rows, out.parent if args.names else DOCS):
        print(f"wrote {path}", file=sys.stderr)
    failed = [r for r in rows if r.met is False]
    if failed:
        print(f"{len(failed)} target(s) missed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
