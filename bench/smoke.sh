#!/usr/bin/env bash
# CI smoke benchmark: tiny tree, one run per tool, every destination verified.
# Fails if the ferry binary is missing, exits non-zero, or syncs wrongly.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/run.py --smoke --ferry "${FERRY_BIN:-target/release/ferry}" "$@"
