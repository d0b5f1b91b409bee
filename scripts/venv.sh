# Sourced by the other scripts: a project virtualenv with last9 built from this checkout.
# Usage: . scripts/venv.sh [extra]   (extra: an optional-dependency group such as "test")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LAST9_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON_BIN" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
extra="${1:-}"
spec="$ROOT"
if [ -n "$extra" ]; then spec="$ROOT[$extra]"; fi
echo "==> building and installing last9 ($spec)"
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps "$ROOT"
"$VENV/bin/python" -m pip install --quiet "$spec"
export PATH="$VENV/bin:$PATH"
