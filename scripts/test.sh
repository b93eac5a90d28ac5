#!/usr/bin/env bash
# The whole check, as CI runs it: setup, formatting, lints, every test on real clusters.
# ferry-pg finds the PostgreSQL builds that setup.sh puts in .pg/ by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }

step "setup"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo nextest"
cargo nextest run --workspace --profile ci "$@"
