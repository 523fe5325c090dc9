#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 20) from its seeds in fuzz/seeds/, keeping what
# it finds in target/fuzz-corpus/ (the seeds stay as committed). A crash fails the run and its
# input is left in fuzz/artifacts/<target>/.
#
# The address sanitizer needs `-Z` flags, which only a nightly compiler takes; this machine has
# one stable toolchain, so RUSTC_BOOTSTRAP=1 lets it take them for this build alone.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
export RUSTC_BOOTSTRAP=1
# cargo fuzz has no --locked: refuse a lock file that would need changing before building.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
cargo fuzz build --release
for target in $(cargo fuzz list); do
  corpus=target/fuzz-corpus/$target
  mkdir -p "$corpus"
  echo "fuzzing $target for ${seconds}s"
  cargo fuzz run "$target" "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 |
    grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread )' || true
  test "${PIPESTATUS[0]}" -eq 0
done
