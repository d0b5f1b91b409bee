#!/usr/bin/env bash
# Debian packages the tests and benchmarks use: prometheus (promtool, and the server for the
# end-to-end tests), wrk (load generation), and chromium with chromium-driver (the live page's
# browser test drives Debian's own browser through Selenium; no browser is downloaded).
# Installed only when missing.
set -euo pipefail
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "==> apt-get install ${missing[*]} (Debian packages for the tests; chromium is about 100 MB)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
