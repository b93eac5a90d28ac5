#!/usr/bin/env bash
# The workflow benchmark in one command: `ferry migrate` of pgbench scale 10 while
# `pgbench -c 8` writes as an application role through the whole run, with an automatic
# cutover (lag gate 1 s); reports the write-unavailability window (target under 1 s), the
# transactions the fence failed, and the end-to-end time.
#
#   scripts/bench-migrate.sh                  # scale 10, 8 clients, unthrottled
#   scripts/bench-migrate.sh --rate 500       # pgbench -R 500
#
# Every argument is passed to `ferry-bench migrate` (see `target/release/ferry-bench migrate
# --help`). Logs stay in target/ferry-bench/migrate-*/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
cargo build --release -p ferry -p ferry-bench
exec target/release/ferry-bench migrate --ferry target/release/ferry --clients 8 --scale 10 "$@"
