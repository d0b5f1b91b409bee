#!/usr/bin/env bash
# Smoke-tests the x86_64 musllinux wheel in dist/ (made by scripts/wheels.sh) on a musl CPython:
#
#   bash scripts/wheels.sh && bash scripts/smoke-musl.sh
#
# No musl CPython can be installed from the package registries this project uses, so the first
# run builds one (about 5 minutes on 2 cores) into target/musl-python: Debian's python3.11 source,
# compiled by musl-gcc (Debian's musl-tools, installed when missing after saying so), with the
# modules the smoke test needs built in. The source comes through an apt state of its own; the
# machine's apt configuration is left as it was. The check is tests/release_smoke.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${DIST:-$ROOT/dist}"
work="$ROOT/target/musl-python"
python="$work/prefix/bin/python3.11"

wheel="$(ls "$DIST"/last9-*-musllinux_1_2_x86_64.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ]; then
    echo "smoke-musl: no x86_64 musllinux wheel in $DIST; run scripts/wheels.sh first" >&2
    exit 1
fi

if [ ! -x "$python" ]; then
    if ! command -v musl-gcc >/dev/null; then
        echo "==> installing Debian's musl-tools (musl-gcc, about 3 MB) to build a musl CPython"
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            musl-tools >/dev/null
    fi
    echo "==> building a musl CPython 3.11 from Debian's source into $work (a few minutes)"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
        "http://deb.debian.org/debian bookworm main" >"$work/sources.list"
    apt_private=(
        -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/nonexistent
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root
    )
    apt-get "${apt_private[@]}" update -qq
    (cd "$work/src" && apt-get "${apt_private[@]}" source --download-only -qq python3.11)
    rm -rf "$work/build" && mkdir -p "$work/build"
    tar xzf "$work"/src/python3.11_*.orig.tar.gz -C "$work/build" --strip-components=1
    cd "$work/build"
    # musl-gcc reports gcc's glibc multiarch; CPython's configure refuses the mismatch.
    sed -i 's/^\( *\)MULTIARCH=\$(\$CC --print-multiarch 2>\/dev\/null)$/\1MULTIARCH=/' configure
    # setup.py would build shared modules against glibc's headers: build these in instead.
    cat >Modules/Setup.local <<'SETUP'
*static*
_socket socketmodule.c
select selectmodule.c
_asyncio _asynciomodule.c
_json _json.c
math mathmodule.c
_struct _struct.c
binascii binascii.c -UUSE_ZLIB_CRC32
array arraymodule.c
_random _randommodule.c
_bisect _bisectmodule.c
_heapq _heapqmodule.c
_contextvars _contextvarsmodule.c
_opcode _opcode.c
_posixsubprocess _posixsubprocess.c
fcntl fcntlmodule.c
_md5 md5module.c
_sha1 sha1module.c
_sha256 sha256module.c
_sha512 sha512module.c
_queue _queuemodule.c
_datetime _datetimemodule.c
_pickle _pickle.c
unicodedata unicodedata.c
SETUP
    CC=musl-gcc ./configure --prefix="$work/prefix" --without-ensurepip --disable-test-modules \
        >"$work/configure.log" 2>&1
    make -j"$(nproc)" >"$work/make.log" 2>&1 || true # optional shared modules fail; that's fine
    make install >"$work/install.log" 2>&1
fi

site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
(cd "$site" && python3 -m zipfile -e "$wheel" .)
echo "==> $(basename "$wheel") on $("$python" -c 'import platform; print("CPython", platform.python_version())' 2>/dev/null)," \
    "linked against $(readelf -l "$python" | sed -n 's/.*interpreter: \(.*\)]/\1/p')"
cd "$site"
# The hash modules this build leaves out are reported on stderr by hashlib; the test needs none.
env -i PATH=/usr/bin:/bin PYTHONPATH="$site" "$python" "$ROOT/tests/release_smoke.py" \
    >"$site/report.json" 2>"$site/stderr" || { cat "$site/stderr" >&2; exit 1; }
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print("last9", r["version"], "from", r["file"], "- exact counts in /metrics: ok")' "$site/report.json"
