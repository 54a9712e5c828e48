#!/usr/bin/env bash
# Build (once) the negentropy 0.5.3 driver in bench/negentropy (not a workspace member) into
# the benchmark cache and print its path. Its dependencies come from the crate registry
# through cargo.
set -euo pipefail
cd "$(dirname "$0")/negentropy"
CACHE=${BENCH_CACHE:-$HOME/.cache/lakitu-bench}
export CARGO_TARGET_DIR=$CACHE/negentropy-target
nice -n 10 cargo build -q --release >&2
echo "$CARGO_TARGET_DIR/release/negentropy-bench"
