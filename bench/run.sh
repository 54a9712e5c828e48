#!/usr/bin/env bash
# Run Lakitu's whole benchmark suite and write docs/performance.md.
#
#   bench/run.sh                 full sizes (about an hour on 2 cores, plus a one-time
#                                20+ minute build of nostr-rs-relay, cached)
#   BENCH_QUICK=1 bench/run.sh   small sizes, a few minutes: checks the machinery
#
# Other knobs (see bench/suite.py): BENCH_INGEST_N, BENCH_STORE_N, BENCH_MEMBERS,
# BENCH_SIM_NODES, BENCH_SIM_LAKITU_MAX, BENCH_CLUSTER_POSTS, BENCH_RECONCILE_SEEDS,
# BENCH_BRIDGE_MINUTES, BENCH_BRIDGE_POSTS, BENCH_CATCHUP_N, BENCH_CATCHUP_XMPP_LIMITED,
# BENCH_CATCHUP_XMPP_OPEN,
# BENCH_SKIP=ingest,reconcile,sim,cluster,catchup,catchup_xmpp,bridge,store,membership.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
nice -n 10 cargo build --release --workspace --bins --examples --locked
# The bridge benchmark (benches/bridge.rs, real Prosody and Postfix + Dovecot) runs as a cargo
# bench: build it now so a compile error shows before the long sections.
nice -n 10 cargo bench --locked --bench bridge --bench catchup_xmpp --no-run
# nostr-rs-relay first: its build is the long part, and a failure should show early.
bench/nostr-relay.sh >/dev/null
exec python3 bench/suite.py
