#!/usr/bin/env bash
# Side-by-side comparison in network namespaces joined by veth (topology of
# ../shared/FASTPATH-NOTES.md): rtpengine (userspace), the two bare
# forwarders, rtpmesh's socket path (epoll, io_uring) and rtpmesh's kernel
# fast path (tc, xdp). Per relay: a ladder of offered rates over 100 calls,
# max pps at <= 0.1% loss, and the relay CPU's exact time per packet,
# kernel work included (bench/README.md, "Namespace comparison").
# Writes bench/results/${OUT_NAME:-ns-latest}.{md,json}. Runs as root.
#
#   gen namespace (GEN_CPU: generator)            relay namespace (RELAY_CPU)
#   caller 10.77.0.1  rb-g0 ────────── rb-r0  10.77.0.2  <- the relay binds this
#   callee 10.77.1.1  rb-g1 ────────── rb-r1  10.77.1.2
#   (the callee reaches 10.77.0.2 over rb-g1/rb-r1: source route in gen)
#
# Knobs (environment): RELAYS, RATES (ascending, pps over all streams),
# SECS (measured per step), WARM (per step), WARM_FIRST (after call setup),
# CALLS, REF_RATE (the headline column), RELAY_CPU, GEN_CPU, NICE, OUT_NAME,
# SOFTIRQ_BPF (1: time softirqs that interrupt other tasks), SMOKE=1 (a few
# seconds per relay: two low steps, results in ns-smoke.*).
set -euo pipefail
cd "$(dirname "$0")/.."
RELAY_CPU=${RELAY_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
NICE=${NICE:--10}
CALLS=${CALLS:-100}
RELAYS=${RELAYS:-"rtpengine fwd-epoll fwd-uring rtpmesh-epoll rtpmesh-uring rtpmesh-tc rtpmesh-xdp"}
if [ "${SMOKE:-0}" = 1 ]; then
    RATES=${RATES:-20000,40000}
    SECS=${SECS:-1}
    WARM_FIRST=${WARM_FIRST:-5}
    OUT_NAME=${OUT_NAME:-ns-smoke}
    TITLE=${TITLE:-"**SMOKE RUN: noisy, not a result.** A short run (1 s steps) on a machine shared with compiles and fuzzers, made to check that bench/ns-compare.sh works end to end. Do not quote these figures."}
fi
RATES=${RATES:-10000,20000,40000,60000,80000,100000,120000,150000,200000,250000}
SECS=${SECS:-4}
WARM=${WARM:-0.5}
WARM_FIRST=${WARM_FIRST:-5}
REF_RATE=${REF_RATE:-40000}
# 1: NET_RX softirqs that interrupt other tasks on the relay CPU are timed
# by a BPF program and counted as the relay's (see bench/README.md).
SOFTIRQ_BPF=${SOFTIRQ_BPF:-1}
SOFTIRQ=()
[ "$SOFTIRQ_BPF" = 1 ] && SOFTIRQ=(--softirq-bpf)
OUT_NAME=${OUT_NAME:-ns-latest}
TITLE=${TITLE:-"Namespace comparison (bench/ns-compare.sh): relay CPU measured exactly, kernel work included."}
TARGET=${CARGO_TARGET_DIR:-target}/release
OUT=bench/results

GEN_NS=rbgen
RELAY_NS=rbrelay
CALLER=10.77.0.1
RELAY_ADDR=10.77.0.2
CALLEE=10.77.1.1
RELAY_B=10.77.1.2
CPUACCT=/sys/fs/cgroup/cpuacct
CG_NAME=rtpmesh-ns-relay
CG=$CPUACCT/$CG_NAME

die() {
    echo "ns-compare: $*" >&2
    exit 1
}
say() { echo "ns-compare: $*" >&2; }

# --- what the run needs ------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root (namespaces, veth, cgroups, BPF)"
NCPU=$(nproc --all)
[ "$RELAY_CPU" != "$GEN_CPU" ] && [ "$RELAY_CPU" -lt "$NCPU" ] && [ "$GEN_CPU" -lt "$NCPU" ] ||
    die "RELAY_CPU=$RELAY_CPU and GEN_CPU=$GEN_CPU must be two different CPUs of the $NCPU here"
[ -r "$CPUACCT/cpuacct.usage_percpu" ] ||
    die "no cgroup-v1 cpuacct at $CPUACCT: the relay CPU's accounting needs it (per-CPU task time)"
missing=()
for c in ip tc nsenter taskset chrt nice; do command -v "$c" >/dev/null || missing+=("$c"); done
[ ${#missing[@]} = 0 ] || die "missing commands: ${missing[*]} (iproute2, util-linux, coreutils)"
if ! command -v rtpengine >/dev/null || ! command -v ethtool >/dev/null; then
    say "installing rtpengine-daemon and ethtool (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rtpengine-daemon ethtool >/dev/null ||
        die "apt-get install rtpengine-daemon ethtool failed"
    # The package starts a service with the default config; we run our own.
    systemctl stop rtpengine-daemon 2>/dev/null || true
fi
command -v rtpengine >/dev/null || die "rtpengine not found after installing rtpengine-daemon"
command -v ethtool >/dev/null || die "ethtool not found after installing it"
cargo build --release -q -p rtpmesh -p rtpmesh-bench || die "cargo build failed"
for b in rtpmesh rtpmesh-bench fwd-epoll fwd-uring; do
    [ -x "$TARGET/$b" ] || die "$TARGET/$b was not built"
done
if "$TARGET/rtpmesh" node --help | grep -q -- --fast-path; then
    FAST_PATH=1
else
    FAST_PATH=0
    say "this rtpmesh has no --fast-path flag: rtpmesh-tc and rtpmesh-xdp are skipped, the socket variants run without --fast-path off"
fi
# This script and what it starts stay off the relay CPU unless told.
taskset -p -c "$GEN_CPU" $$ >/dev/null

mkdir -p "$OUT"
TMP=$(mktemp -d)
PID=""

# --- cleanup: at start (a killed run's leftovers) and on exit ----------------
stop_relay() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        # rtpmesh removes what it attached on a clean exit; give it time.
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=""
    fi
}
teardown_net() {
    local ns p
    for ns in $RELAY_NS $GEN_NS; do
        [ -e "/run/netns/$ns" ] || continue
        # Only processes inside this script's own namespaces: a killed run's
        # relay or generator.
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    done
    sleep 0.2
    for ns in $RELAY_NS $GEN_NS; do
        [ -e "/run/netns/$ns" ] || continue
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        # TC filters outlive a crashed loader; deleting the namespace takes
        # its devices, their qdiscs and filters with it. Said explicitly so
        # that a device someone moved out is not left with ours.
        for d in rb-r0 rb-r1; do tc -n "$ns" qdisc del dev "$d" clsact 2>/dev/null || true; done
        ip netns del "$ns" || say "could not delete namespace $ns"
    done
}
cleanup() {
    stop_relay
    teardown_net
    if [ -d "$CG" ]; then
        # Anything left in it goes back to the root group first.
        for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do echo "$p" >"$CPUACCT/cgroup.procs" 2>/dev/null || true; done
        rmdir "$CG" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
mkdir -p "$CG" || die "cannot create cgroup $CG"

# --- topology ----------------------------------------------------------------
in_ns() { ip netns exec "$@"; }
# pin_threads PATTERN CPU: the kernel threads named PATTERN* on CPU, SCHED_FIFO.
pin_threads() {
    local p n=0
    for p in $(ps -eo pid=,comm= | awk -v pat="$1" 'index($2, pat) == 1 {print $1}'); do
        taskset -p -c "$2" "$p" >/dev/null && chrt -f -p 50 "$p" && n=$((n + 1))
    done
    echo "$n"
}
setup_net() {
    ip netns add $GEN_NS
    ip netns add $RELAY_NS
    ip link add rb-g0 netns $GEN_NS type veth peer name rb-r0 netns $RELAY_NS
    ip link add rb-g1 netns $GEN_NS type veth peer name rb-r1 netns $RELAY_NS
    for ns in $GEN_NS $RELAY_NS; do
        # Replies from the relay address come in over rb-g1 too.
        in_ns $ns sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
        ip -n $ns link set lo up
    done
    ip -n $GEN_NS addr add $CALLER/24 dev rb-g0
    ip -n $GEN_NS addr add $CALLEE/24 dev rb-g1
    ip -n $RELAY_NS addr add $RELAY_ADDR/24 dev rb-r0
    ip -n $RELAY_NS addr add $RELAY_B/24 dev rb-r1
    local d
    for d in rb-g0 rb-g1; do
        # GRO on gives the veth a NAPI (a redirected frame needs one); tx
        # checksum offload off: frames carry full UDP checksums, as from a NIC.
        in_ns $GEN_NS ethtool -K $d gro on tx off >/dev/null
        in_ns $GEN_NS sysctl -qw net.ipv4.conf.$d.rp_filter=0
        ip -n $GEN_NS link set $d up
    done
    for d in rb-r0 rb-r1; do
        in_ns $RELAY_NS sysctl -qw net.ipv4.conf.$d.rp_filter=0
        ip -n $RELAY_NS link set $d up
        # Receive work of socket, TC and generic-XDP relays on the relay CPU.
        in_ns $RELAY_NS sh -c "for q in /sys/class/net/$d/queues/rx-*; do printf %x $((1 << RELAY_CPU)) >\$q/rps_cpus; done"
    done
    # The callee reaches the relay address over its own link.
    ip -n $GEN_NS rule add from $CALLEE lookup 177 pref 1000
    ip -n $GEN_NS route add $RELAY_ADDR/32 via $RELAY_B dev rb-g1 table 177
    # The generator side's NAPI in a thread on the generator CPU (else its
    # 256-slot ring overflows at 80k+ pps).
    for d in rb-g0 rb-g1; do
        in_ns $GEN_NS sh -c "echo 1 >/sys/class/net/$d/threaded"
    done
    [ "$(pin_threads napi/rb-g "$GEN_CPU")" -ge 2 ] || die "found no NAPI threads of rb-g0/rb-g1 to pin (threaded NAPI needs kernel 5.12+)"
}

# --- relays ------------------------------------------------------------------
# launch CMD...: starts CMD in the relay namespace, in the relay cgroup,
# pinned to RELAY_CPU at NICE; sets PID. The shell joins the cgroup while it
# still sees the host's /sys, then execs `ip netns exec`, which gives the
# relay the namespace's own /sys (rtpmesh lists interfaces there).
launch() {
    sh -c 'cg=$1 ns=$2 n=$3 c=$4; shift 4; echo $$ >"$cg/cgroup.procs" &&
        exec ip netns exec "$ns" nice -n "$n" taskset -c "$c" "$@"' \
        sh "$CG" "$RELAY_NS" "$NICE" "$RELAY_CPU" "$@" >"$TMP/$NAME.log" 2>&1 &
    PID=$!
}
# start NAME: sets NG and PID, or returns 1 with a reason in WHY.
start() {
    NAME=$1
    local fp=()
    case "$NAME" in
    rtpengine)
        NG=$RELAY_ADDR:22222
        launch rtpengine --config-file=none --foreground --table=-1 --interface=$RELAY_ADDR \
            --listen-ng=$NG --port-min=40000 --port-max=44999 --num-threads=1 --log-stderr --log-level=3
        ;;
    fwd-epoll | fwd-uring)
        NG=$RELAY_ADDR:22400
        launch "$TARGET/$NAME" $NG $RELAY_ADDR
        ;;
    rtpmesh-epoll | rtpmesh-uring | rtpmesh-tc | rtpmesh-xdp)
        NG=$RELAY_ADDR:2223
        case "$NAME" in
        rtpmesh-epoll | rtpmesh-uring)
            [ $FAST_PATH = 1 ] && fp=(--fast-path off)
            fp+=(--backend "${NAME#rtpmesh-}")
            ;;
        *)
            if [ $FAST_PATH = 0 ]; then
                WHY="this rtpmesh binary has no --fast-path flag (the fast path is not in this build)"
                return 1
            fi
            fp=(--fast-path "${NAME#rtpmesh-}")
            ;;
        esac
        launch "$TARGET/rtpmesh" node --listen-ng $NG --interface $RELAY_ADDR --port-min 30000 \
            --port-max 39999 --workers 1 "${fp[@]}"
        ;;
    *)
        WHY="unknown relay (RELAYS takes: rtpengine fwd-epoll fwd-uring rtpmesh-epoll rtpmesh-uring rtpmesh-tc rtpmesh-xdp)"
        return 1
        ;;
    esac
    for _ in $(seq 50); do
        if nsenter --net=/run/netns/$GEN_NS "$TARGET/rtpmesh" ping --ng $NG >/dev/null 2>&1; then
            # rtpmesh pins worker i to CPU i % (allowed CPUs): pin every
            # thread back to the relay CPU (a no-op for the others).
            taskset -a -p -c "$RELAY_CPU" "$PID" >/dev/null
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.2
    done
    WHY="did not answer ping on $NG: $(tail -3 "$TMP/$NAME.log" | tr '\n' ' ')"
    return 1
}
# kernel_setup NAME: the fast path's attach checked; for native XDP the
# relay-side NAPI made threaded (only possible once XDP gave the veth a
# NAPI) and pinned to the relay CPU. Prints what it found.
kernel_setup() {
    local d head tcf note=""
    for d in rb-r0 rb-r1; do
        # The mode is a word of the link's first line: xdp (native),
        # xdpgeneric or xdpoffload.
        head=" $(ip -n $RELAY_NS link show dev $d | head -1) "
        case "$head" in
        *" xdpgeneric "*) note+="$d: generic XDP; " ;;
        *" xdp "*) note+="$d: native XDP; " ;;
        *" xdpoffload "*) note+="$d: offloaded XDP; " ;;
        esac
        tcf=$(tc -n $RELAY_NS filter show dev $d ingress 2>/dev/null | grep -c ' bpf ' || true)
        [ "$tcf" -gt 0 ] && note+="$d: tc ingress bpf; "
    done
    case "$1" in
    rtpmesh-xdp)
        for d in rb-r0 rb-r1; do
            in_ns $RELAY_NS sh -c "echo 1 >/sys/class/net/$d/threaded" 2>/dev/null ||
                note+="$d: no NAPI to thread (no native XDP on it); "
        done
        note+="$(pin_threads napi/rb-r "$RELAY_CPU") relay-side NAPI threads pinned; "
        ;;
    esac
    # TCX attachments (kernel 6.6+) do not show in `tc filter show`: what
    # the relay says about its fast path does.
    local said
    said=$(grep -i 'fast.path' "$TMP/$1.log" 2>/dev/null | head -3 | cut -c1-200 | tr '\n' ' ' || true)
    [ -n "$said" ] && note+="relay log: $said"
    echo "${note:-nothing attached}"
}

# --- the run -----------------------------------------------------------------
T0=$(date +%s)
nice -n "$NICE" "$TARGET/rtpmesh-bench" ns-meter-check --cpu "$RELAY_CPU" --cgroup "$CG_NAME" "${SOFTIRQ[@]}" ||
    die "the relay CPU's accounting failed its check (see above)"
FILES=()
SKIPS=()
NOTES=()
# Where packets were dropped outside the relay process, over the whole
# ladder: the parties' UDP receive errors and both sides' veth drops.
drops() {
    local udp links
    udp=$(ip netns exec $GEN_NS nstat -az UdpRcvbufErrors UdpInErrors UdpInCsumErrors 2>/dev/null |
        awk 'NR>1 && $1 ~ /^Udp/ {printf "%s=%s ", $1, $2}')
    links=$(for ns in $GEN_NS $RELAY_NS; do
        ip -n $ns -s -s link show 2>/dev/null | awk -v ns=$ns '
            /^[0-9]+:/ {dev=$2}
            /RX:/ {getline; rx=$4} /TX:/ {getline; tx=$4; if (dev !~ /^lo/) printf "%s/%s rx-drop=%s tx-drop=%s ", ns, dev, rx, tx}'
    done)
    say "$1: drops outside the relay: ${udp}${links}"
    NOTES+=(--meta "$1 drops=${udp}${links}")
}

FAILED=0
for r in $RELAYS; do
    say "=== $r"
    setup_net
    WHY=""
    if ! start "$r"; then
        say "$r: not measured: $WHY"
        [[ $r == rtpmesh-tc || $r == rtpmesh-xdp ]] && [ $FAST_PATH = 0 ] || FAILED=1
        SKIPS+=(--skip "$r=$WHY")
        stop_relay
        teardown_net
        continue
    fi
    note=$(kernel_setup "$r")
    say "$r: kernel side: $note"
    NOTES+=(--meta "$r attach=$note")
    if nsenter --net=/run/netns/$GEN_NS nice -n "$NICE" taskset -c "$GEN_CPU" "$TARGET/rtpmesh-bench" ns-ladder \
        --ng "$NG" --name "$r" --out "$TMP/$r.kv" --caller $CALLER --callee $CALLEE --calls "$CALLS" \
        --rates "$RATES" --secs "$SECS" --warm "$WARM" --warm-first "$WARM_FIRST" --pid "$PID" \
        --cpu "$RELAY_CPU" --cgroup "$CG_NAME" --kthread 'napi/rb-r*' --kthread "ksoftirqd/$RELAY_CPU" "${SOFTIRQ[@]}"; then
        FILES+=("$TMP/$r.kv")
    else
        say "$r: the ladder failed (relay log: $TMP/$r.log)"
        tail -5 "$TMP/$r.log" >&2 || true
        SKIPS+=(--skip "$r=the ladder failed: $(tail -1 "$TMP/$r.log" 2>/dev/null)")
        FAILED=1
    fi
    drops "$r"
    stop_relay
    teardown_net
done
[ ${#FILES[@]} -gt 0 ] || die "no relay was measured"
ELAPSED=$(($(date +%s) - T0))
"$TARGET/rtpmesh-bench" ns-report --md "$OUT/$OUT_NAME.md" --json "$OUT/$OUT_NAME.json" \
    --ref-rate "$REF_RATE" --title "$TITLE" "${SKIPS[@]}" "${NOTES[@]}" \
    --meta "measured=$(date -u +%Y-%m-%dT%H:%MZ), ${ELAPSED} s" \
    --meta "machine=$(nproc --all) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)" \
    --meta "rtpengine=$(rtpengine --version 2>&1 | head -1)" \
    --meta "rtpmesh=$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)'), fast path flag: $([ $FAST_PATH = 1 ] && echo yes || echo no)" \
    --meta "setup=relay on CPU $RELAY_CPU, generator on CPU $GEN_CPU, nice $NICE; $CALLS calls, 172-byte RTP; steps $RATES pps, ${WARM} s + ${SECS} s measured each, ${WARM_FIRST} s warm-up after call setup" \
    --meta "command=RELAYS=\"$RELAYS\" RATES=$RATES SECS=$SECS WARM=$WARM WARM_FIRST=$WARM_FIRST CALLS=$CALLS REF_RATE=$REF_RATE SOFTIRQ_BPF=$SOFTIRQ_BPF bench/ns-compare.sh" \
    "${FILES[@]}"
say "wrote $OUT/$OUT_NAME.md and $OUT/$OUT_NAME.json in ${ELAPSED} s"
[ $FAILED = 0 ] || die "some relays were not measured (see 'Not measured' in $OUT/$OUT_NAME.md)"
