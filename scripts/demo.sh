#!/usr/bin/env bash
# Installs last9, runs the seed's Flask example, sends the seed's traffic and prints /metrics.
set -euo pipefail
. "$(dirname "$0")/venv.sh" demo
cd "$ROOT/examples"
port="${PORT:-5000}"
log="$(mktemp)"
python - "$port" >"$log" 2>&1 <<'PY' &
import sys
from flask_app import app
app.run("127.0.0.1", int(sys.argv[1]))
PY
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/static" >/dev/null 2>&1 && break
    sleep 0.1
done
echo "==> traffic: curl -s 'http://localhost:$port/name/[1-10]' (each takes 1 s), /static, a 404"
curl -s "http://127.0.0.1:$port/name/[1-10]" >/dev/null
curl -s "http://127.0.0.1:$port/static" >/dev/null
curl -s "http://127.0.0.1:$port/no/such/page" >/dev/null || true
echo "==> curl -s http://localhost:$port/metrics"
curl -s "http://127.0.0.1:$port/metrics" | grep -v ' 0$'
echo "(buckets with a count of 0 left out above)"
