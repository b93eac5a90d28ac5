#!/usr/bin/env bash
# The change-capture steady-state benchmark in one command: pgbench tpcb-like (4 clients,
# unthrottled) on a source cluster while `ferry sync` applies live into a target cluster, then
# the same load with PostgreSQL's own subscriber (CREATE SUBSCRIPTION); a heartbeat row written
# every 100 ms on the source and polled on the target gives p50/p99/max lag in seconds.
#
#   scripts/bench-cdc-steady.sh                   # 60 s of load per side, pgbench scale 10
#   scripts/bench-cdc-steady.sh --duration 10     # a short run
#   scripts/bench-cdc-steady.sh --rate 1000       # throttled load (pgbench -R)
#   scripts/bench-cdc-steady.sh --no-native       # Ferry only
#
# Every argument is passed to `ferry-bench cdc-steady` (see `target/release/ferry-bench
# cdc-steady --help`). Logs of each run stay in target/ferry-bench/cdc-steady-*/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
cargo build --release -p ferry -p ferry-bench
exec target/release/ferry-bench cdc-steady --ferry target/release/ferry "$@"
