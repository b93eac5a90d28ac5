#!/usr/bin/env bash
# The change-capture catch-up benchmark in one command: a pgbench backlog (tpcb-like, 4
# clients) held in two slots at the same position, applied by `ferry sync --until-caught-up`
# and by PostgreSQL's own subscriber (CREATE SUBSCRIPTION), on throwaway local clusters.
#
#   scripts/bench-cdc.sh                        # 100000 transactions, pgbench scale 10
#   scripts/bench-cdc.sh --transactions 20000   # a shorter run
#   scripts/bench-cdc.sh --repeat 3             # alternate who goes first, report medians
#
# Every argument is passed to `ferry-bench cdc` (see `target/release/ferry-bench cdc --help`);
# --transactions defaults to 100000. Logs of each run stay in target/ferry-bench/cdc-*/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

args=("$@")
has_transactions=0
for a in "${args[@]}"; do
    case "$a" in --transactions | --transactions=*) has_transactions=1 ;; esac
done
[ $has_transactions -eq 1 ] || args=(--transactions 100000 "${args[@]}")

bash scripts/setup.sh
cargo build --release -p ferry -p ferry-bench
exec target/release/ferry-bench cdc --ferry target/release/ferry "${args[@]}"
