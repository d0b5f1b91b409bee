#!/usr/bin/env bash
# Debian packages the tests and benchmarks use, installed only when missing:
#   prometheus  promtool (lints /metrics) and the server the end-to-end tests start themselves
#   victoria-metrics  a second remote-write receiver, which the end-to-end tests start themselves
#   wrk         load generation for the pre-fork benchmark
#   curl        scripts/demo.sh
#   qemu-user-static  runs an aarch64 Python, to smoke-test the aarch64 wheel (scripts/smoke-aarch64.sh)
#   chromium, chromium-driver  the live page's browser test (tests/test_live.py) drives Debian's
#               own browser through Selenium and this driver; no browser is downloaded
# Installing Debian's prometheus (or victoria-metrics) package would normally start its daemon
# (:9090, :8428) and enable it at boot. This script prevents both: it installs under a policy-rc.d that refuses
# every service start (exit 101, Debian's "action forbidden"), and disables the unit afterwards
# where systemd runs. The tests only run the binaries, each on a private port.
set -euo pipefail
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "==> installing Debian packages: ${missing[*]}"
echo "    (prometheus, victoria-metrics, qemu-user-static, chromium and chromium-driver for the"
echo "    tests, wrk for the benchmarks, curl for the demo; qemu-user-static takes about 380 MB,"
echo "    chromium about 350 MB; no service is started or enabled)"

policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Written by last9 scripts/system-deps.sh while it installs packages.\nexit 101\n' |
        $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    ours=1
    trap '$sudo rm -f "$policy"' EXIT
fi

$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null

if [ -d /run/systemd/system ]; then
    # Installed for their binaries only: not services of this machine.
    for service in prometheus victoria-metrics; do
        if [[ " ${missing[*]} " == *" $service "* ]]; then
            $sudo systemctl disable --quiet "$service.service" 2>/dev/null || true
        fi
    done
fi
if [ -n "$ours" ]; then
    $sudo rm -f "$policy"
    trap - EXIT
fi
