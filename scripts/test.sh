#!/usr/bin/env bash
# Installs everything the tests need (Debian's prometheus for promtool, the Python test
# dependencies, last9 built from this checkout) and runs every test: Rust, lint, Python.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
# The tests build last9 with the quick profile (no fat LTO): the benchmarks use release.
export MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:---profile quick}"
. scripts/venv.sh test
echo "==> cargo fmt / clippy / test"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet
echo "==> ruff"
ruff check python tests bench examples deploy
ruff format --check python tests bench examples deploy
echo "==> pytest"
python -m pytest "$@"
