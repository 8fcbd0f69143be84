#!/usr/bin/env bash
# Scale runs: rtpmesh (epoll, one worker, pinned to RELAY_CPU) with 1k..N
# provisioned streams, 1000 of them active at 50 pps. Writes
# bench/results/scale.md. STREAMS overrides the points. rtpmesh binds RTP and
# RTCP sockets per stream, so a point needs ~2 relay fds per stream: the
# process fd limit (ulimit -n) caps the largest point.
set -euo pipefail
cd "$(dirname "$0")/.."
RELAY_CPU=${RELAY_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
# Relay and generator alike run at this nice level, so that other work on a
# shared machine (compiles) perturbs the measurement less. 0 to disable.
NICE=${NICE:--10}
BACKEND=${BACKEND:-epoll}
TARGET=${CARGO_TARGET_DIR:-target}/release
LIMIT=$(ulimit -n)
# Largest point that fits the fd limit, rounded down to 100 streams.
MAXPT=$(( (LIMIT - 200) / 2 / 100 * 100 ))
STREAMS=${STREAMS:-"1000,10000,100000"}
PTS=$(echo "$STREAMS" | tr ',' '\n' | awk -v m="$MAXPT" '{ if ($1 > m) { print m; exit } else print $1 }' | paste -sd,)
echo "fd limit $LIMIT: points $PTS (asked $STREAMS)" >&2
cargo build --release -q -p rtpmesh -p rtpmesh-bench
nice -n "$NICE" taskset -c "$RELAY_CPU" "$TARGET/rtpmesh" node --listen-ng 127.0.0.1:22310 --port-min 1024 \
    --port-max 65535 --backend "$BACKEND" --workers 1 >/tmp/rtpmesh-scale.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do "$TARGET/rtpmesh" ping --ng 127.0.0.1:22310 >/dev/null 2>&1 && break; sleep 0.2; done
# rtpmesh pins its worker to CPU 0 whatever its mask: pin it back.
taskset -a -p -c "$RELAY_CPU" $PID >/dev/null
mkdir -p bench/results
nice -n "$NICE" taskset -c "$GEN_CPU" "$TARGET/rtpmesh-bench" scale --name "rtpmesh-$BACKEND" --ng 127.0.0.1:22310 \
    --pid $PID --streams "$PTS" --active 1000 --secs 4 --out bench/results/scale.md
echo "
fd limit $LIMIT (asked for $STREAMS streams). Measured $(date -u +%Y-%m-%dT%H:%MZ)." >>bench/results/scale.md
