#!/usr/bin/env bash
# Installs last9, runs the Flask example (examples/flask_app.py), sends it traffic and prints
# what /metrics then shows.
#
#   bash scripts/demo.sh              # serves on 127.0.0.1:5000
#   PORT=5001 bash scripts/demo.sh    # another port, when 5000 is taken
#
# Stops with an error when the port is already taken. The readiness check asks for /metrics,
# which last9 answers itself and does not count, so only the traffic below is counted.
set -euo pipefail
port="${PORT:-5000}"
url="http://127.0.0.1:$port"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port is already taken; run with PORT=<free port> bash scripts/demo.sh" >&2
    exit 1
fi

. "$(dirname "$0")/venv.sh" demo
cd "$ROOT/examples"

log="$(mktemp)"
python - "$port" >"$log" 2>&1 <<'PY' &
import sys
from flask_app import app
app.run("127.0.0.1", int(sys.argv[1]))
PY
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT

ready=""
for _ in $(seq 100); do
    if ! kill -0 "$server" 2>/dev/null; then
        break
    fi
    if curl -fs "$url/metrics" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "demo: the Flask example did not start on port $port:" >&2
    cat "$log" >&2
    exit 1
fi

echo "==> traffic: curl -s '$url/name/[1-10]' (each takes 1 s), /static, a 404"
curl -s "$url/name/[1-10]" >/dev/null
curl -s "$url/static" >/dev/null
curl -s "$url/no/such/page" >/dev/null || true
echo "==> curl -s $url/metrics"
curl -s "$url/metrics" | grep -v ' 0$'
echo "(buckets with a count of 0 left out above)"
