#!/usr/bin/env bash
# Runs every cargo-fuzz target in control/fuzz for a bounded time (CI's fuzz
# smoke test), starting from the committed seed corpus.
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]    (default 20; env FUZZ_SECONDS too)
#
# Needs the nightly toolchain; installs cargo-fuzz if it is missing. A crash
# fails the run and leaves the input in control/fuzz/artifacts/<target>/;
# replay it with `cargo +nightly fuzz run --fuzz-dir control/fuzz <target> <file>`.
# New inputs libFuzzer finds go to a scratch directory, not the committed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-${FUZZ_SECONDS:-20}}"
dir=control/fuzz

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz-smoke: no nightly toolchain; skipped" >&2
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi

cargo +nightly fuzz build --fuzz-dir "$dir"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
for target in $(cargo +nightly fuzz list --fuzz-dir "$dir"); do
  mkdir -p "$scratch/$target"
  echo "fuzz-smoke: $target for ${secs}s"
  # The scratch directory comes first, so new inputs land there; the seed
  # corpus is read only.
  if ! cargo +nightly fuzz run --fuzz-dir "$dir" "$target" \
    "$scratch/$target" "$dir/corpus/$target" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$scratch/$target.log" 2>&1; then
    tail -n 60 "$scratch/$target.log"
    failed=1
  fi
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units)' "$scratch/$target.log" || true
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz-smoke: a target failed (inputs in $dir/artifacts/)" >&2
  exit 1
fi
echo "fuzz-smoke: every target ran ${secs}s without a finding"
