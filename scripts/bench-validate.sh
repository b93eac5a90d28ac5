#!/usr/bin/env bash
# The validation benchmark in one command: `ferry validate` of pgbench_accounts (pgbench scale
# 100, 10M rows) between two identical throwaway local clusters, against reladiff (PyPI, the
# maintained fork of data-diff) and one naive full-table hash query per side, on the clean pair
# and with 10 scattered row differences on the target, all in the same run.
#
#   scripts/bench-validate.sh                  # scale 100, every contender once
#   scripts/bench-validate.sh --scale 10       # a shorter run
#   scripts/bench-validate.sh --repeat 3       # medians of three rounds
#
# Every argument is passed to `ferry-bench validate` (see `target/release/ferry-bench validate
# --help`). Logs of each run stay in target/ferry-bench/validate-*/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
cargo build --release -p ferry -p ferry-bench
exec target/release/ferry-bench validate --ferry target/release/ferry "$@"
