#!/usr/bin/env bash
# The copy benchmark in one command: ferry copy vs pgcopydb vs pg_dump -Fd/pg_restore vs
# pg_dump | psql, plus the server-side COPY floor, on throwaway local clusters.
#
#   scripts/bench.sh                 # pgbench scale 100 (~1.5 GB), one round
#   scripts/bench.sh --scale 1       # a quick smoke run
#   scripts/bench.sh --repeat 3 --json /tmp/bench.json
#
# Every argument is passed to ferry-bench (see `target/release/ferry-bench --help`);
# --scale defaults to 100. Logs of each run stay in target/ferry-bench/run-*/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

args=("$@")
has_scale=0
for a in "${args[@]}"; do
    case "$a" in --scale | --scale=*) has_scale=1 ;; esac
done
[ $has_scale -eq 1 ] || args=(--scale 100 "${args[@]}")

bash scripts/setup.sh
cargo build --release -p ferry -p ferry-bench
exec target/release/ferry-bench --ferry target/release/ferry "${args[@]}"
