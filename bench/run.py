"""Runs the benchmarks (all, or those named) and prints one table; see bench/run.sh."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Row, table  # noqa: E402


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
    failed = [r for r in rows if r.met is False]
    if failed:
        print(f"{len(failed)} target(s) missed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
