#!/usr/bin/env bash
# Soak: one rtpmesh node under steady call churn for MINUTES (default 10):
# new calls (offer + answer) at a steady rate, RTP both ways on every call,
# hold/resume re-offers, deletes with and without delete-delay, calls left to
# the node's media timeout. Samples RSS, fds, media ports, calls and ng
# latency every 5 s into bench/results/soak.{md,json}; exits non-zero unless
# the node ends with 0 calls, 0 media ports and its first fd count.
#
#   bench/soak.sh [MINUTES]
#
# The node runs pinned to NODE_CPU (1), the generator to GEN_CPU (0), both at
# NICE (5: a shared machine's other work comes first). Extra soak options go
# in SOAK_ARGS (e.g. SOAK_ARGS="--rate 2 --pps 25").
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
NODE_CPU=${NODE_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
NICE=${NICE:-5}
NG=${NG:-127.0.0.1:19500}
PORT_MIN=${PORT_MIN:-20000}
PORT_MAX=${PORT_MAX:-29999}
TIMEOUT=${TIMEOUT:-10}
DELETE_DELAY=${DELETE_DELAY:-30}
OUT=${OUT:-bench/results}
TARGET=${CARGO_TARGET_DIR:-target}/release

cargo build --release -q -p rtpmesh -p rtpmesh-bench
mkdir -p "$OUT"
LOG=$(mktemp)
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# The media ports sit below the ephemeral range (32768+) that the
# generator's own sockets come from, so the two never collide; the ng port
# is outside them, so a node with no calls holds 0 media ports.
nice -n "$NICE" taskset -c "$NODE_CPU" "$TARGET/rtpmesh" node --listen-ng "$NG" \
    --port-min "$PORT_MIN" --port-max "$PORT_MAX" --workers 1 \
    --timeout "$TIMEOUT" --delete-delay "$DELETE_DELAY" >"$LOG" 2>&1 &
PID=$!
up=""
for _ in $(seq 50); do
    if "$TARGET/rtpmesh" ping --ng "$NG" >/dev/null 2>&1; then up=1; break; fi
    sleep 0.2
done
if [ -z "$up" ]; then
    echo "node did not answer ping on $NG" >&2
    cat "$LOG" >&2
    exit 1
fi
# The node pins worker i to CPU i % (allowed CPUs); keep every thread on NODE_CPU.
taskset -a -p -c "$NODE_CPU" "$PID" >/dev/null
BASE_FDS=$(ls /proc/"$PID"/fd | wc -l)

NOTE="$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r); node on CPU $NODE_CPU, generator on CPU $GEN_CPU, both at nice $NICE; load average at start $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared with other work); $(date -u +%Y-%m-%dT%H:%MZ)"
rc=0
# shellcheck disable=SC2086
nice -n "$NICE" taskset -c "$GEN_CPU" "$TARGET/rtpmesh-bench" soak --ng "$NG" --pid "$PID" \
    --secs $((MINUTES * 60)) --port-min "$PORT_MIN" --port-max "$PORT_MAX" \
    --node-timeout "$TIMEOUT" --node-delete-delay "$DELETE_DELAY" \
    --md "$OUT/soak.md" --json "$OUT/soak.json" --note "$NOTE" ${SOAK_ARGS:-} || rc=$?

# The soak checked calls and ports over ng and /proc; check the fds once
# more from here, against the count before the first call.
END_FDS=$(ls /proc/"$PID"/fd | wc -l)
echo "node fds: $BASE_FDS before the soak, $END_FDS after" >&2
if [ "$END_FDS" -gt "$BASE_FDS" ]; then
    echo "FAIL: the node leaked $((END_FDS - BASE_FDS)) fds" >&2
    rc=1
fi
if ! kill -0 "$PID" 2>/dev/null; then
    echo "FAIL: the node died" >&2
    cat "$LOG" >&2
    rc=1
fi
[ "$rc" = 0 ] && echo "soak clean: $OUT/soak.md" >&2
exit "$rc"
