# Sourced by bench/compare.sh, bench/quick.sh and bench/srtp.sh: installs
# rtpengine if missing and builds the binaries (prepare_relays), and starts
# one relay under test on loopback (start_relay). Needs NICE, RELAY_CPU, TARGET and TMP; RTPMESH (default
# $TARGET/rtpmesh) picks the node binary.
#
# start_relay NAME: launches rtpengine, rtpmesh-{auto,epoll,uring} (the socket
# path: --fast-path off) or fwd-{epoll,uring} pinned to RELAY_CPU, logging to
# $TMP/NAME.log; sets PID and NG; waits until it answers ng ping.
start_relay() {
    local rtpmesh=${RTPMESH:-$TARGET/rtpmesh}
    case "$1" in
    rtpengine)
        NG=127.0.0.1:22222
        # Port range widened from 40000-40999: 250 calls take 4 ports each.
        nice -n "$NICE" taskset -c "$RELAY_CPU" rtpengine --config-file=none --foreground --table=-1 \
            --interface=127.0.0.1 --listen-ng=$NG --port-min=40000 --port-max=44999 \
            --num-threads=1 --log-stderr --log-level=3 >"$TMP/$1.log" 2>&1 &
        ;;
    rtpmesh-auto | rtpmesh-epoll | rtpmesh-uring)
        NG=127.0.0.1:22300
        nice -n "$NICE" taskset -c "$RELAY_CPU" "$rtpmesh" node --listen-ng $NG --port-min 30000 \
            --port-max 39999 --backend "${1#rtpmesh-}" --workers 1 \
            --fast-path off >"$TMP/$1.log" 2>&1 &
        ;;
    fwd-epoll | fwd-uring)
        NG=127.0.0.1:22400
        nice -n "$NICE" taskset -c "$RELAY_CPU" "$TARGET/$1" $NG 127.0.0.1 >"$TMP/$1.log" 2>&1 &
        ;;
    *)
        echo "unknown relay $1" >&2
        return 1
        ;;
    esac
    PID=$!
    for _ in $(seq 50); do
        if "$TARGET/rtpmesh" ping --ng $NG >/dev/null 2>&1; then
            # rtpmesh pins worker i to CPU i % (allowed CPUs), i.e. CPU 0
            # under `taskset -c 1`, out of the mask it was given: pin every
            # thread back (a no-op for the others).
            taskset -a -p -c "$RELAY_CPU" "$PID" >/dev/null
            return 0
        fi
        sleep 0.2
    done
    echo "$1 did not answer ping on $NG" >&2
    cat "$TMP/$1.log" >&2
    return 1
}

# prepare_relays: installs Debian's rtpengine-daemon if missing (its service
# stopped: the bench runs its own) and builds rtpmesh and the bench.
prepare_relays() {
    if ! command -v rtpengine >/dev/null; then
        echo "installing rtpengine-daemon (Debian)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rtpengine-daemon >/dev/null
        systemctl stop rtpengine-daemon 2>/dev/null || true
    fi
    cargo build --release -q -p rtpmesh -p rtpmesh-bench
}
