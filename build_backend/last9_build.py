"""last9's build backend: maturin's, except that it never downloads a Rust toolchain.

When cargo is missing, maturin's own backend installs Rust into a cache directory (puccinialin
and rustup, about 800 MB) during `pip install`. A user installing last9 from source is told
instead what the build needs, and the build stops.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

# maturin reads this at each hook: with it set, it never fetches a toolchain itself.
os.environ["MATURIN_NO_INSTALL_RUST"] = "1"

import maturin

T = TypeVar("T")


def _minimum_rust() -> str:
    cargo_toml = Path(__file__).resolve().parent.parent / "Cargo.toml"
    found = re.search(r'^rust-version\s*=\s*"([^"]+)"', cargo_toml.read_text(), re.MULTILINE)
    return found.group(1) if found else "(see Cargo.toml)"


def _require_cargo() -> None:
    if shutil.which("cargo"):
        return
    sys.stderr.write(
        f"\nlast9: building from source needs Rust {_minimum_rust()} or newer, with `cargo` on "
        "PATH,\nand cargo was not found. No toolchain is downloaded for you. Either install "
        "Rust\n(your distribution's `cargo` and `rustc` packages, or rustup) and retry, or "
        "install a\npre-built wheel: pip install --only-binary last9 last9\n\n"
    )
    raise SystemExit(1)


def _checked(hook: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(hook)
    def run(*args: Any, **kwargs: Any) -> T:
        _require_cargo()
        return hook(*args, **kwargs)

    return run


# Every PEP 517 hook: pip calls the get_requires_* ones first, but skips them without build
# isolation.
get_requires_for_build_wheel = _checked(maturin.get_requires_for_build_wheel)
get_requires_for_build_editable = _checked(maturin.get_requires_for_build_editable)
get_requires_for_build_sdist = _checked(maturin.get_requires_for_build_sdist)
prepare_metadata_for_build_wheel = _checked(maturin.prepare_metadata_for_build_wheel)
prepare_metadata_for_build_editable = _checked(maturin.prepare_metadata_for_build_editable)
build_wheel = _checked(maturin.build_wheel)
build_editable = _checked(maturin.build_editable)
build_sdist = _checked(maturin.build_sdist)
