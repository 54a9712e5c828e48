#!/usr/bin/env bash
# The whole test suite, from a fresh machine: checks the toolchain, installs what the tests
# need, then runs every test of the workspace. Fails loudly (never skips) when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "tests/run.sh: '$1' is required but not installed: $2" >&2; exit 1; }; }
need cargo "install Rust with rustup"

# One build profile for everything (the dev profile in Cargo.toml).
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-2}"
