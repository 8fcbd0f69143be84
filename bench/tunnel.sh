#!/usr/bin/env bash
# Tunnel overhead: packets delivered per relay CPU-second through a 2-node
# tunnel path (caller -> node A -> tunnel -> node B -> callee) against a
# 1-node path (caller -> node A -> callee), calls placed by a regional
# controller, on loopback. Writes bench/results/tunnel.{md,json}.
# One command from a fresh checkout; about 2-4 minutes on 2 cores.
#   NODE_CPUS  taskset list for both nodes and the controller (1)
#   GEN_CPU    the generator's CPU (0)
#   NICE       nice level of everything (-10; 0 to disable)
#   PPS CALLS SECS ROUNDS: per-stream rates (50,100), calls per path (100),
#              measured seconds per run (5), rounds of 1-node + 2-node (4)
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_CPUS=${NODE_CPUS:-1}
GEN_CPU=${GEN_CPU:-0}
NICE=${NICE:--10}
PPS=${PPS:-50,100}
CALLS=${CALLS:-100}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-4}
TARGET=${CARGO_TARGET_DIR:-target}/release
OUT=bench/results
cargo build --release -q -p rtpmesh -p rtpmesh-bench
mkdir -p "$OUT"
CMD="NODE_CPUS=$NODE_CPUS GEN_CPU=$GEN_CPU NICE=$NICE PPS=$PPS CALLS=$CALLS SECS=$SECS ROUNDS=$ROUNDS bench/tunnel.sh"
# The bench starts the nodes and the controller itself (through taskset on
# NODE_CPUS) and stops them when it ends; nice is inherited.
nice -n "$NICE" taskset -c "$GEN_CPU" "$TARGET/rtpmesh-bench" tunnel --rtpmesh "$TARGET/rtpmesh" \
    --node-cpus "$NODE_CPUS" --pps "$PPS" --calls "$CALLS" --secs "$SECS" --rounds "$ROUNDS" \
    --md "$OUT/tunnel.md" --json "$OUT/tunnel.json" --command "$CMD"
