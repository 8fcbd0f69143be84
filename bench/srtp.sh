#!/usr/bin/env bash
# SRTP cost: rtpengine (userspace, --table=-1) and rtpmesh (--fast-path off,
# its default backend) side by side in one run, each with plain-RTP calls and
# with SRTP calls (an SDES-SRTP caller, AES_CM_128_HMAC_SHA1_80, and a plain
# callee: one SRTP->RTP and one RTP->SRTP stream per call). Writes
# bench/results/srtp.md: packets per relay CPU-second at a fixed load, the
# ratio to rtpengine, "SRTP cost" (own plain / own SRTP), and optionally the
# highest rate with <= 0.1% loss.
#
#   bench/srtp.sh                                   # ~4 min: 3 rounds + searches
#   ROUNDS=5 SECS=10 bench/srtp.sh                  # the figures to quote
#   SEARCH=0 ROUNDS=1 SECS=2 bench/srtp.sh          # a smoke run (~30 s)
#   HALFCORE=0 bench/srtp.sh                        # search with the relay on a whole core
#
# Rounds interleave relays and modes (plain then SRTP, SRTP then plain on the
# next round) so that drift on a shared machine hits every row alike; each
# fixed run sets up fresh calls. The generator (on GEN_CPU) protects the
# caller's packets and unprotects what the caller receives, checking every
# tag; its CPU is reported, not counted as the relay's.
set -euo pipefail
cd "$(dirname "$0")/.."
RELAY_CPU=${RELAY_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
NICE=${NICE:--10}
TARGET=${CARGO_TARGET_DIR:-target}/release
OUT=bench/results
RELAYS=${RELAYS:-"rtpengine rtpmesh-auto"}
CALLS=${CALLS:-100}
PPS=${PPS:-50}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
SEARCH=${SEARCH:-1}
SEARCH_CALLS=${SEARCH_CALLS:-250}
HALFCORE=${HALFCORE:-1}
# Relay CPU to the nanosecond from its threads' schedstat (1), or in 10 ms
# ticks from /proc/PID/stat (0, as compare.sh reads it).
EXACT_CPU=${EXACT_CPU:-1}
MD=${MD:-$OUT/srtp.md}


mkdir -p "$OUT"
TMP=$(mktemp -d)
PID=""
CG=/sys/fs/cgroup/cpu/rtpmesh-bench-srtp
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
}
trap 'cleanup; rmdir "$CG" 2>/dev/null || true' EXIT

# shellcheck source=bench/relay.sh
. bench/relay.sh
prepare_relays

bench() {
    nice -n "$NICE" taskset -c "$GEN_CPU" "$TARGET/rtpmesh-bench" "$@"
}

FILES=()
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then modes="plain srtp"; else modes="srtp plain"; fi
    for r in $RELAYS; do
        start_relay "$r"
        for m in $modes; do
            echo "=== round $round: $r, $m" >&2
            f="$TMP/$r.$m.$round.kv"
            bench run --name "$r" --media "$m" --ng "$NG" --pid "$PID" --calls "$CALLS" --pps "$PPS" \
                --secs "$SECS" --out "$f" $([ "$EXACT_CPU" = 1 ] && echo --exact-cpu)
            FILES+=("$f")
            sleep 0.5
        done
        cleanup
        PID=""
        sleep 1
    done
done

if [ "$SEARCH" = 1 ]; then
    # HALFCORE=1 (default): the relay held to half a core (CFS quota, cgroup
    # v1) as in compare.sh's second pass, so the search stops at the relay's
    # limit rather than the generator's or the loopback's on 2 CPUs.
    if [ "$HALFCORE" = 1 ] && ! { mkdir -p "$CG" 2>/dev/null && echo 10000 >"$CG/cpu.cfs_period_us" &&
        echo 5000 >"$CG/cpu.cfs_quota_us"; }; then
        echo "no cgroup v1 cpu controller: searching at a whole core" >&2
        HALFCORE=0
    fi
    for r in $RELAYS; do
        for m in plain srtp; do
            echo "=== search: $r, $m$([ "$HALFCORE" = 1 ] && echo ', half a core')" >&2
            start_relay "$r"
            if [ "$HALFCORE" = 1 ]; then echo "$PID" >"$CG/cgroup.procs"; fi
            f="$TMP/$r.$m.search.kv"
            bench search --name "$r" --media "$m" --ng "$NG" --pid "$PID" --calls "$SEARCH_CALLS" --out "$f"
            FILES+=("$f")
            cleanup
            PID=""
            sleep 1
        done
    done
fi

LOAD="$CALLS calls x 2 streams x $PPS pps ($((CALLS * 2 * PPS)) pps), $SECS s measured per run, $ROUNDS round(s)"
"$TARGET/rtpmesh-bench" srtp-report --md "$MD" --load "$LOAD" "${FILES[@]}" >/dev/null
{
    echo
    if [ "$EXACT_CPU" = 1 ]; then
        echo "Relay CPU: the sum of its threads' \`/proc/PID/task/*/schedstat\` run times (ns) at the window's edges."
    else
        echo "Relay CPU: utime+stime from \`/proc/PID/stat\` (10 ms ticks) at the window's edges."
    fi
    echo
    if [ "$SEARCH" = 1 ]; then
        echo "Max pps: the rate search of \`rtpmesh-bench search --calls $SEARCH_CALLS\` (doubling from 20k pps, then 5 bisections, 2 s per probe)$([ "$HALFCORE" = 1 ] && echo ' with the relay held to half a core (5 ms per 10 ms)'); \"gen-limited\": the generator, which does the SRTP crypto of both directions, was the limit, so the figure is a lower bound for the relay."
        echo
    fi
    echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) by \`$(printf '%s ' RELAYS="\"$RELAYS\"" CALLS=$CALLS PPS=$PPS SECS=$SECS ROUNDS=$ROUNDS SEARCH=$SEARCH HALFCORE=$HALFCORE EXACT_CPU=$EXACT_CPU)bench/srtp.sh\` on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r), $(rtpengine --version 2>&1 | head -1), rtpmesh $(git rev-parse --short HEAD 2>/dev/null || echo '?'); relay on CPU $RELAY_CPU, generator on CPU $GEN_CPU, nice $NICE."
} >>"$MD"
cat "$MD"
