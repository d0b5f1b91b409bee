#!/usr/bin/env bash
# Smoke-tests the aarch64 manylinux wheel in dist/ (made by scripts/wheels.sh) on a real aarch64
# CPython, Debian's python3.11 for arm64, run by qemu-user on this x86_64 machine:
#
#   bash scripts/wheels.sh && bash scripts/smoke-aarch64.sh
#   bash scripts/smoke-aarch64.sh --fetch-only   # only prepare qemu and the aarch64 Python
#
# It installs Debian's qemu-user-static when missing (about 380 MB; it says so first) and
# downloads Debian's arm64 python3.11 packages (about 12 MB) into target/aarch64-python with an
# apt state of its own, so the machine's apt configuration and packages are left as they were.
# The check itself is tests/release_smoke.py: a WSGI and an ASGI app, exact counts in /metrics.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${DIST:-$ROOT/dist}"
work="$ROOT/target/aarch64-python"
fetch_only=""
[ "${1:-}" = "--fetch-only" ] && fetch_only=1

wheel="$(ls "$DIST"/last9-*-manylinux2014_aarch64*.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ] && [ -z "$fetch_only" ]; then
    echo "smoke-aarch64: no aarch64 manylinux wheel in $DIST; run scripts/wheels.sh first" >&2
    exit 1
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v qemu-aarch64-static >/dev/null; then
    echo "==> installing Debian's qemu-user-static (about 380 MB) to run aarch64 programs"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        qemu-user-static >/dev/null
fi

if [ ! -x "$work/root/usr/bin/python3.11" ]; then
    echo "==> downloading Debian's arm64 python3.11 into $work"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
    apt_private=(
        -o APT::Architecture=arm64 -o APT::Architectures::=arm64
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
        -o Dir::State::status=/dev/null -o APT::Sandbox::User=root
    )
    apt-get "${apt_private[@]}" update -qq
    (cd "$work/debs" && apt-get "${apt_private[@]}" download -qq \
        libc6 libgcc-s1 zlib1g libexpat1 libffi8 libbz2-1.0 liblzma5 libssl3 libuuid1 \
        libncursesw6 libtinfo6 libreadline8 libsqlite3-0 libcrypt1 libdb5.3 libgdbm6 libnsl2 \
        libtirpc3 libzstd1 libpython3.11-minimal libpython3.11-stdlib python3.11-minimal)
    for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
    [ -e "$work/root/lib" ] || ln -s usr/lib "$work/root/lib"
fi
[ -z "$fetch_only" ] || exit 0

site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
(cd "$site" && python3 -m zipfile -e "$wheel" .)
echo "==> $(basename "$wheel") on $(qemu-aarch64-static -L "$work/root" \
    "$work/root/usr/bin/python3.11" -c 'import platform; print("CPython", platform.python_version(), platform.machine())')"
cd "$site"
env -i PATH=/usr/bin:/bin PYTHONPATH="$site" \
    qemu-aarch64-static -L "$work/root" "$work/root/usr/bin/python3.11" \
    "$ROOT/tests/release_smoke.py" >"$site/report.json"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print("last9", r["version"], "from", r["file"], "- exact counts in /metrics: ok")' "$site/report.json"
