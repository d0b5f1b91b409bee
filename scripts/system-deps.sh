#!/usr/bin/env bash
# Debian packages the tests and benchmarks use: prometheus (promtool, and the server for the
# end-to-end tests), victoria-metrics (a second remote-write receiver for the end-to-end tests),
# wrk (load generation) and curl. Installed only when missing. The tests start the servers they
# need themselves, so installing must start none: a policy-rc.d that refuses every start is put
# in place for the install when the machine has none (Docker images usually do).
set -euo pipefail
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# added by last9 scripts/system-deps.sh for one install\nexit 101\n' \
            | $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
        trap '$sudo rm -f "$policy"' EXIT
    fi
    echo "==> apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Some packages enable their unit for the next boot all the same: the tests run their own.
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --now prometheus victoria-metrics >/dev/null 2>&1 || true
    fi
fi
