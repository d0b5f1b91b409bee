#!/usr/bin/env bash
# Builds every release artifact into dist/: the sdist, and abi3 wheels (one per platform, for
# every CPython >= 3.10) for manylinux2014 (glibc 2.17) and musllinux_1_2, x86_64 and aarch64.
# maturin links through zig (the `ziglang` package), so one Linux machine builds them all.
#
#   bash scripts/wheels.sh             # every target whose Rust standard library is installed
#   DIST=/tmp/out bash scripts/wheels.sh
#   PROFILE=quick bash scripts/wheels.sh   # no fat LTO: for tests, never for a release
#   REQUIRE_ALL=1 bash scripts/wheels.sh   # a skipped target is an error (for a release)
#
# A target needs its Rust standard library (`rustup target add aarch64-unknown-linux-gnu`, ...).
# One that is missing is skipped and named at the end; this script never downloads a toolchain.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${DIST:-$ROOT/dist}"
PROFILE="${PROFILE:-release}"
cd "$ROOT"

# maturin and zig: those of the current Python when it has them (the test virtualenv does),
# else a private virtualenv under target/.
PY="${PYTHON:-python3}"
if ! { command -v maturin >/dev/null && "$PY" -c "import ziglang" 2>/dev/null; }; then
    tools="$ROOT/target/release-tools"
    if [ ! -x "$tools/bin/maturin" ] || ! "$tools/bin/python" -c "import ziglang" 2>/dev/null; then
        echo "==> installing maturin and ziglang into $tools"
        "$PY" -m venv "$tools"
        "$tools/bin/python" -m pip install --quiet "maturin>=1.9,<2" "ziglang>=0.13"
    fi
    export PATH="$tools/bin:$PATH"
    PY="$tools/bin/python"
fi

# target triple → the platform policy its wheel must meet
targets=(
    "x86_64-unknown-linux-gnu manylinux2014"
    "aarch64-unknown-linux-gnu manylinux2014"
    "x86_64-unknown-linux-musl musllinux_1_2"
    "aarch64-unknown-linux-musl musllinux_1_2"
)
sysroot="$(rustc --print sysroot)"
mkdir -p "$DIST"
rm -f "$DIST"/last9-*.whl "$DIST"/last9-*.tar.gz

echo "==> sdist"
maturin sdist --out "$DIST"

built=()
skipped=()
for entry in "${targets[@]}"; do
    read -r target policy <<<"$entry"
    if [ ! -d "$sysroot/lib/rustlib/$target/lib" ]; then
        skipped+=("$target ($policy): its Rust standard library is not installed; \`rustup target add $target\` adds it")
        continue
    fi
    echo "==> wheel for $target ($policy, profile $PROFILE)"
    maturin build --profile "$PROFILE" --zig --target "$target" --compatibility "$policy" \
        --out "$DIST" --quiet
    built+=("$target ($policy)")
done

echo "==> artifacts in $DIST"
ls -1 "$DIST"/last9-*
echo "built: ${built[*]:-none}"
if [ ${#skipped[@]} -gt 0 ]; then
    echo "SKIPPED ${#skipped[@]} target(s):"
    printf '  %s\n' "${skipped[@]}"
    if [ -n "${REQUIRE_ALL:-}" ]; then
        echo "REQUIRE_ALL is set: a release needs every target" >&2
        exit 1
    fi
fi
