#!/usr/bin/env bash
# The benchmarks: make sure .venv has lspilot, then run every benchmark, print the table and
# write benchmarks/results/latest.json. Extra arguments go to `python -m benchmarks.run`
# (e.g. --smoke, --only throughput,concurrency).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. dev/venv.sh
ensure_venv ""
exec .venv/bin/python -m benchmarks.run "$@"
