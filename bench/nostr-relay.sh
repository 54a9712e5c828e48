#!/usr/bin/env bash
# Build (once) and print the path of a nostr-rs-relay 0.8.12 binary to benchmark against.
#
# The relay's source comes from the crate registry through cargo itself (a throwaway project
# that depends on it, then `cargo fetch`); nothing of it is kept in this repository. Its locked
# `time` 0.3.25 does not compile on current Rust (E0282), so the lock file is moved to 0.3.36
# before `cargo install --locked`. The build takes 20+ minutes on 2 cores, so the binary is
# cached in $BENCH_CACHE (default ~/.cache/lakitu-bench) and reused.
#
# Usage: bench/nostr-relay.sh        -> prints the binary's path on the last line of stdout
set -euo pipefail

VERSION=0.8.12
CACHE=${BENCH_CACHE:-$HOME/.cache/lakitu-bench}
ROOT=$CACHE/nostr-rs-relay-$VERSION
BIN=$ROOT/bin/nostr-rs-relay
mkdir -p "$CACHE"

if [[ -x $BIN ]]; then
    echo "$BIN"
    exit 0
fi

# protoc is needed by its build script (gRPC definitions).
if ! command -v protoc >/dev/null 2>&1; then
    echo "installing protobuf-compiler (protoc)" >&2
    if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq protobuf-compiler >&2
fi

SRC=$CACHE/src/nostr-rs-relay-$VERSION
if [[ ! -f $SRC/Cargo.toml ]]; then
    echo "fetching nostr-rs-relay $VERSION source through cargo" >&2
    FETCH=$CACHE/fetch
    rm -rf "$FETCH"
    mkdir -p "$FETCH/src"
    cat >"$FETCH/Cargo.toml" <<TOML
[package]
name = "fetch-nostr-rs-relay"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
nostr-rs-relay = "=$VERSION"
TOML
    echo "" >"$FETCH/src/lib.rs"
    (cd "$FETCH" && cargo fetch -q >&2)
    CRATE=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/nostr-rs-relay-$VERSION.crate | head -n1)
    mkdir -p "$CACHE/src"
    tar -xzf "$CRATE" -C "$CACHE/src"
fi

cd "$SRC"
if grep -q '^version = "0.3.25"' Cargo.lock && grep -B1 '^version = "0.3.25"' Cargo.lock | grep -q 'name = "time"'; then
    echo "moving the locked time 0.3.25 to 0.3.36 (does not compile on current Rust)" >&2
    cargo update -q -p time@0.3.25 --precise 0.3.36 >&2
fi

echo "building nostr-rs-relay $VERSION (20+ minutes on 2 cores; cached afterwards)" >&2
CARGO_TARGET_DIR=$CACHE/target nice -n 15 cargo install -q --path . --locked --root "$ROOT" -j"${BENCH_BUILD_JOBS:-2}" >&2
echo "$BIN"
