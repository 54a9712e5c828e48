#!/usr/bin/env bash
# Run every fuzz target for a fixed budget and print executions and crashes per target.
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Builds go
# to $CARGO_TARGET_DIR (default /work/target-fuzz, apart from the main build). Targets run one
# at a time under `nice`, so the machine stays usable. Crash inputs land in
# fuzz/artifacts/<target>/; each one found must become a regression test in the main suite.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-fuzz}"
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi

for t in "${targets[@]}"; do
    nice -n 10 cargo +nightly fuzz build "$t" 2>&1 | tail -n 1
done
# A few valid inputs to start from, so the fuzzer does not have to discover the formats.
mkdir -p corpus/config_toml
cp ../config.example.toml corpus/config_toml/example.toml

printf '\n| target | seconds | executions | exec/s | crashes |\n|---|---|---|---|---|\n' > run.table
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    log="artifacts/$t.log"
    # -fork would keep going after a crash; one process with a time budget is enough here.
    nice -n 10 cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
        >"$log" 2>&1 || true
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    if [ -z "$execs" ]; then
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    fi
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    rate=$(( ${execs:-0} / (secs > 0 ? secs : 1) ))
    printf '| %s | %s | %s | %s | %s |\n' "$t" "$secs" "${execs:-0}" "$rate" "$crashes" >> run.table
    printf '%-18s %8s execs  %s crashes\n' "$t" "${execs:-0}" "$crashes"
done
cat run.table
