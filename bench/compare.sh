#!/usr/bin/env bash
# Side-by-side comparison: rtpengine (userspace), rtpmesh (epoll, uring) and
# the two minimal forwarders, each pinned to one core (RELAY_CPU) while the
# generator runs on the other (GEN_CPU). Writes bench/results/latest.{md,json}.
# One command from a fresh checkout; about 8 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# TOPOLOGY=ns: the same comparison in network namespaces joined by veth, with
# the kernel fast path (tc, xdp) beside the socket path and the relay CPU's
# kernel work measured exactly (bench/ns-compare.sh; results ns-latest.*).
if [ "${TOPOLOGY:-loopback}" = ns ]; then
    exec bench/ns-compare.sh "$@"
fi
RELAY_CPU=${RELAY_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
# Relay and generator alike run at this nice level, so that other work on a
# shared machine (compiles) perturbs the measurement less. 0 to disable.
NICE=${NICE:--10}
TARGET=${CARGO_TARGET_DIR:-target}/release
OUT=bench/results
RELAYS=${RELAYS:-"rtpengine rtpmesh-auto rtpmesh-epoll rtpmesh-uring fwd-epoll fwd-uring"}


mkdir -p "$OUT"
TMP=$(mktemp -d)
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# shellcheck source=bench/relay.sh
. bench/relay.sh
prepare_relays

FILES=()
for r in $RELAYS; do
    echo "=== $r" >&2
    start_relay "$r"
    nice -n "$NICE" taskset -c "$GEN_CPU" "$TARGET/rtpmesh-bench" suite --name "$r" --ng "$NG" --pid "$PID" \
        --out "$TMP/$r.kv"
    cleanup
    PID=""
    FILES+=("$TMP/$r.kv")
    cp "$TMP/$r.kv" "$OUT/$r.kv"
    sleep 1
done
# Second pass: the rate search with each relay held to half a core by a CFS
# quota (5 ms per 10 ms). On 2 cores the generator needs about as much CPU
# per packet as a bare forwarder, so with a whole core each the search stops
# at the generator's limit; at half a core it stops at the relay's.
HALFCORE=${HALFCORE:-1}
CG=/sys/fs/cgroup/cpu/rtpmesh-bench-relay
if [ "$HALFCORE" = 1 ] && mkdir -p "$CG" 2>/dev/null && echo 10000 >"$CG/cpu.cfs_period_us" &&
    echo 5000 >"$CG/cpu.cfs_quota_us"; then
    for r in $RELAYS; do
        echo "=== $r (half a core)" >&2
        start_relay "$r"
        echo "$PID" >"$CG/cgroup.procs"
        nice -n "$NICE" taskset -c "$GEN_CPU" "$TARGET/rtpmesh-bench" suite --name "$r" --ng "$NG" --pid "$PID" \
            --out "$TMP/$r.half.kv" --search-only halfcore
        cleanup
        PID=""
        FILES+=("$TMP/$r.half.kv")
        cp "$TMP/$r.half.kv" "$OUT/$r.half.kv"
        sleep 1
    done
    rmdir "$CG" 2>/dev/null || true
else
    echo "no cgroup v1 cpu controller (or HALFCORE=0): skipping the half-core pass" >&2
fi
"$TARGET/rtpmesh-bench" report --md "$OUT/latest.md" --json "$OUT/latest.json" "${FILES[@]}"
{
    echo
    echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
    echo "kernel $(uname -r), $(rtpengine --version 2>&1 | head -1); relay on CPU $RELAY_CPU, generator on CPU $GEN_CPU."
} >>"$OUT/latest.md"
