#!/usr/bin/env bash
# Installs what is missing, builds Ferry and runs `ferry demo`: two local clusters, a pgbench
# database plus tables of varied types, a copy under live writes, a summary and a verification.
# Extra arguments go to `ferry demo` (e.g. --scale 50, --keep).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo build --release -p ferry
exec target/release/ferry demo "$@"
