#!/usr/bin/env bash
# Installs last9 and the tools it is compared with, then runs the benchmarks:
#   bash bench/run.sh            # all of them
#   bash bench/run.sh wsgi flask # some
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
. scripts/venv.sh "test,bench"
python bench/run.py "$@"
