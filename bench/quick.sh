#!/usr/bin/env bash
# Quick A/B on a busy machine: relays side by side at fixed loads, rounds
# interleaved (A B A B ...) so drift hits every relay alike. Prints, per run,
# packets per relay CPU-second (exact: perf's task-clock of the relay
# process, not /proc ticks), syscalls per forwarded packet, and loss; then
# the median per relay and load. Seconds per run, not the final figures:
# compare.sh is the reference.
#
#   RELAYS="rtpmesh-auto rtpmesh-epoll fwd-epoll" LOADS="50000 100000" ROUNDS=3 bench/quick.sh
#   OVERLOAD=1 RELAYS="rtpmesh-epoll rtpmesh-uring" ROUNDS=5 bench/quick.sh   # loss after a burst
#   MEDIA=srtp RELAYS="rtpengine rtpmesh-auto" LOADS=10000 bench/quick.sh   # SRTP callers (bench/srtp.sh)
#
# RTPMESH=path/to/rtpmesh runs another build of the node (an A/B of two
# builds: RELAYS="rtpmesh-epoll" twice with RTPMESH set differently).
set -euo pipefail
cd "$(dirname "$0")/.."
RELAY_CPU=${RELAY_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
NICE=${NICE:--10}
TARGET=${CARGO_TARGET_DIR:-target}/release
RTPMESH=${RTPMESH:-$TARGET/rtpmesh}
RELAYS=${RELAYS:-"rtpmesh-auto rtpmesh-epoll rtpmesh-uring fwd-epoll fwd-uring"}
LOADS=${LOADS:-"50000 100000"}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
CALLS=100
OVERLOAD=${OVERLOAD:-0}
MEDIA=${MEDIA:-plain}
TMP=$(mktemp -d)
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# shellcheck source=bench/relay.sh
. bench/relay.sh

# one RELAY LOAD: prints "relay load pkts_per_cpu_s syscalls_per_pkt loss%"
one() {
    start_relay "$1"
    local pps_stream out
    if [ "$OVERLOAD" = 1 ]; then
        out=$(nice -n "$NICE" taskset -c "$GEN_CPU" "$TARGET/rtpmesh-bench" overload --ng $NG --pid "$PID" \
            --calls $CALLS --media "$MEDIA" 2>&1 | grep after-overload)
        echo "$1 overload - - $(grep -oE 'loss [0-9.]+%' <<<"$out" | tr -dc '0-9.')"
    else
        pps_stream=$(awk -v l="$2" -v c=$CALLS 'BEGIN { print l / (2 * c) }')
        # perf counts the relay for the measured seconds (after the warm-up).
        (sleep 1.5 && perf stat -x, -e task-clock,raw_syscalls:sys_enter -p "$PID" -- sleep "$((SECS - 1))" \
            2>"$TMP/perf" >/dev/null) &
        local perfpid=$!
        out=$(nice -n "$NICE" taskset -c "$GEN_CPU" "$TARGET/rtpmesh-bench" run --ng $NG --pid "$PID" \
            --calls $CALLS --pps "$pps_stream" --secs "$SECS" --media "$MEDIA" 2>&1)
        wait $perfpid || true
        local fwd ms sys
        fwd=$(grep -oE 'forwarded [0-9]+ pps' <<<"$out" | tr -dc '0-9')
        ms=$(awk -F, '/task-clock/ { print $1 }' "$TMP/perf")
        sys=$(awk -F, '/sys_enter/ { print $1 }' "$TMP/perf")
        awk -v r="$1" -v l="$2" -v f="$fwd" -v ms="$ms" -v s="$sys" -v t="$((SECS - 1))" \
            -v loss="$(grep -oE 'loss [0-9.]+%' <<<"$out" | tr -dc '0-9.')" \
            'BEGIN { p = f * t; printf "%s %s %.0f %.2f %s\n", r, l, p / (ms / 1000), s / p, loss }'
    fi
    cleanup
    PID=""
}

cargo build --release -q -p rtpmesh -p rtpmesh-bench
echo "relay load pkts_per_relay_cpu_s syscalls_per_pkt loss_%" | tee "$TMP/all"
for _ in $(seq "$ROUNDS"); do
    for load in $([ "$OVERLOAD" = 1 ] && echo overload || echo "$LOADS"); do
        for r in $RELAYS; do
            one "$r" "$load" | tee -a "$TMP/all"
        done
    done
done
echo "--- medians"
tail -n +2 "$TMP/all" | sort -k1,1 -k2,2n | awk '
    { k = $1 " " $2; n[k]++; v[k, n[k]] = $3; s[k, n[k]] = $4; l[k, n[k]] = $5 }
    function med(a, k, m,   i, j, t, x) {
        for (i = 1; i <= m; i++) x[i] = a[k, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (x[j] + 0 < x[i] + 0) { t = x[i]; x[i] = x[j]; x[j] = t }
        return x[int((m + 1) / 2)]
    }
    END { for (k in n) printf "%s %s %s %s\n", k, med(v, k, n[k]), med(s, k, n[k]), med(l, k, n[k]) }' | sort
