#!/usr/bin/env bash
# Installs everything the tests need (Debian's prometheus for promtool, the Python test
# dependencies, last9 built from this checkout) and runs every test: Rust, lint, Python.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
# The release tests build one wheel per installed Rust target: add the aarch64 and musl standard
# libraries (about 30 MB each) so all four are built; if rustup cannot reach its server, only
# the x86_64 glibc wheel is built and tested.
targets="aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl"
if ! rustup target list --installed | grep -q aarch64-unknown-linux-musl; then
    echo "==> rustup target add $targets"
    timeout 300 rustup target add $targets >/dev/null 2>&1 ||
        echo "    rustup could not add them: only the x86_64 glibc wheel is built and tested"
fi
# Debian's arm64 python3.11 (about 12 MB, into target/), for the aarch64 wheel's smoke test.
bash scripts/smoke-aarch64.sh --fetch-only
# The tests build last9 with the quick profile (no fat LTO): the benchmarks use release.
export MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:---profile quick}"
. scripts/venv.sh test
echo "==> cargo fmt / clippy / test"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --quiet
echo "==> ruff"
ruff check python tests bench examples deploy build_backend
ruff format --check python tests bench examples deploy build_backend
echo "==> pytest"
python -m pytest "$@"
