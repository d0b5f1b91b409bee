"""Instructions per request, counted by callgrind (Debian package `valgrind`).

Unlike time, an instruction count does not move when other processes share the machine, so it
can settle an overhead of 1-2 µs on a 50 µs request that timing on a busy 2-core box cannot.
Each count runs a candidate in a subprocess under callgrind twice, with `few` and `many`
requests: the difference divided by `many - few` is the cost of one request, start-up excluded.

Run directly (what the subprocess does)::

    python bench/callgrind.py bench_fastapi:candidates "last9 RedMiddleware(app)" 1000
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> bool:
    return shutil.which("valgrind") is not None


def instructions_per_request(
    factory: str, candidate: str, few: int = 100, many: int = 600
) -> float:
    """Instructions one request through `candidate` costs; `factory` is `module:function`
    returning the candidates by name."""
    return (_count(factory, candidate, many) - _count(factory, candidate, few)) / (many - few)


def _count(factory: str, candidate: str, requests: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__)),
        factory,
        candidate,
        str(requests),
    ]
    # A fixed hash seed: with random ones, start-up alone differs by more than a request costs.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE, env=env)
    found = re.search(r"Collected : ([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    factory, candidate, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, str(HERE))
    module, _, function = factory.partition(":")
    request = getattr(importlib.import_module(module), function)()[candidate]()
    for _ in range(50):  # warm-up: caches, interned strings, first-request learning
        request()
    gc.disable()  # collections would land in one run and not the other
    for _ in range(requests):
        request()


if __name__ == "__main__":
    main()
