#!/usr/bin/env bash
# Three "regions" in network namespaces, joined by a bridge in a "wan"
# namespace, with per-destination one-way delays, for multi-region tests.
#
#   netns-regions.sh up|down <prefix> [X]      (root; X in 1..254, default 77)
#
# Namespaces: <prefix>-wan (bridge br0, ports r1 r2 r3) and <prefix>-r1,
# <prefix>-r2, <prefix>-r3 (interface eth0, the peer of wan's rN).
# Address plan: region N holds 10.X.N.1/16 ... 10.X.N.9/16 on eth0 (.1 is the
# primary, the source of plain pings); wan's br0 is 10.X.0.254/16. The
# namespaces keep two runs apart; X keeps their addresses apart in logs.
#
# One-way delay between regions: r1<->r2 10 ms, r1<->r3 30 ms, r2<->r3 40 ms.
# Where the kernel has netem: an htb qdisc on each region's eth0 with a netem
# class per destination region, chosen by a u32 filter on the destination
# /24 (ARP and the rest undelayed). Where it has not (this repo's CI VMs
# build no sch_netem): each region routes the other regions' /24s via wan,
# wan hands what arrives on br0 to a tun device whose reader (a small
# python3 loop) holds each packet for the delay of its (source, destination)
# region pair, then wan routes it on over br0.
# Measured RTTs, userspace delayer, ping -c 10 -i 0.2, 2-core VM at load 6,
# kernel 6.18 (min/avg/max ms): r1->r2 20.6/20.7/21.2, r1->r3 60.6/62.3/75.1,
# r2->r3 80.6/81.6/86.0. The netem path is written but untested here.
#
# `up` first removes whatever `down` would, so it is idempotent and heals a
# half-built set; `down` is safe to run twice.
set -euo pipefail

die() { echo "netns-regions: $*" >&2; exit 1; }
usage() { die "usage: $0 up|down <prefix> [X]"; }

[ $# -ge 2 ] && [ $# -le 3 ] || usage
action=$1 prefix=$2 x=${3:-77}
[[ $prefix =~ ^[A-Za-z0-9_-]{1,32}$ ]] || die "prefix must be 1-32 of [A-Za-z0-9_-]: '$prefix'"
[[ $x =~ ^[0-9]{1,3}$ ]] && [ "$x" -ge 1 ] && [ "$x" -le 254 ] || die "X must be 1..254: '$x'"
[ "$(id -u)" -eq 0 ] || die "must run as root (creates network namespaces)"
command -v ip >/dev/null 2>&1 || die "'ip' not found (install iproute2; scripts/install-test-deps.sh)"
ip netns list >/dev/null 2>&1 || die "'ip netns' does not work here"

wan="$prefix-wan"
pidfile="/run/netns-regions-$prefix.pid"
delays="12:10,13:30,23:40" # region pair : one-way ms

delay_of() { # one-way ms between regions $1 and $2
    local k="$(( $1 < $2 ? $1 : $2 ))$(( $1 < $2 ? $2 : $1 ))"
    tr , '\n' <<<"$delays" | sed -n "s/^$k://p"
}

# The userspace delayer: reads IPv4 packets from tun0 and writes each back
# after the delay of its (source, destination) region, the third octet.
read -r -d '' DELAYER <<'PY' || true
import fcntl, heapq, os, select, struct, sys, time
d = {}
for item in sys.argv[1].split(","):
    k, ms = item.split(":")
    d[(int(k[0]), int(k[1]))] = d[(int(k[1]), int(k[0]))] = int(ms) / 1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"tun0", 0x0001 | 0x1000))
os.set_blocking(fd, False)
q, n = [], 0
while True:
    wait = max(0.0, q[0][0] - time.monotonic()) if q else None
    if select.select([fd], [], [], wait)[0]:
        while True:
            try:
                p = os.read(fd, 65536)
            except BlockingIOError:
                break
            late = d.get((p[14], p[18]), 0) if len(p) >= 20 and p[0] >> 4 == 4 else 0
            heapq.heappush(q, (time.monotonic() + late, n, p))
            n += 1
    now = time.monotonic()
    while q and q[0][0] <= now:
        try:
            os.write(fd, heapq.heappop(q)[2])
        except OSError:
            pass
PY

down() {
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
    local ns
    for ns in "$prefix-r1" "$prefix-r2" "$prefix-r3" "$wan"; do
        # Deleting a namespace destroys its veth ends and their peers.
        [ -e "/run/netns/$ns" ] && { ip netns delete "$ns" || die "cannot delete $ns"; }
    done
    return 0
}

has_netem() {
    tc -n "$wan" qdisc add dev br0 root handle 9: netem delay 1ms 2>/dev/null &&
        tc -n "$wan" qdisc del dev br0 root
}

up() {
    down
    ip netns add "$wan"
    ip netns exec "$wan" sh -c 'for k in all default; do
        sysctl -qw net.ipv4.conf.$k.rp_filter=0 net.ipv4.conf.$k.send_redirects=0; done
        sysctl -qw net.ipv4.ip_forward=1'
    ip -n "$wan" link set lo up
    ip -n "$wan" link add br0 type bridge stp_state 0 forward_delay 0
    ip -n "$wan" addr add "10.$x.0.254/16" dev br0
    ip -n "$wan" link set br0 up
    local netem=0 n m ns h band
    has_netem && netem=1
    for n in 1 2 3; do
        ns="$prefix-r$n"
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip -n "$wan" link add "r$n" type veth peer name eth0 netns "$ns"
        ip -n "$wan" link set "r$n" master br0 up
        for h in 1 2 3 4 5 6 7 8 9; do ip -n "$ns" addr add "10.$x.$n.$h/16" dev eth0; done
        ip -n "$ns" link set eth0 up
        if [ $netem = 1 ]; then
            tc -n "$ns" qdisc add dev eth0 root handle 1: htb default 3
            tc -n "$ns" class add dev eth0 parent 1: classid 1:3 htb rate 10gbit quantum 60000
        fi
        band=1
        for m in 1 2 3; do
            [ "$m" -eq "$n" ] && continue
            if [ $netem = 1 ]; then
                tc -n "$ns" class add dev eth0 parent 1: classid "1:$band" htb rate 10gbit quantum 60000
                tc -n "$ns" qdisc add dev eth0 parent "1:$band" handle "$((band + 10)):" \
                    netem delay "$(delay_of "$n" "$m")ms" limit 100000
                tc -n "$ns" filter add dev eth0 parent 1: protocol ip prio 1 u32 \
                    match ip dst "10.$x.$m.0/24" flowid "1:$band"
            else
                ip -n "$ns" route add "10.$x.$m.0/24" via "10.$x.0.254"
            fi
            band=$((band + 1))
        done
    done
    [ $netem = 1 ] && return 0
    command -v python3 >/dev/null 2>&1 || die "no netem in this kernel and no python3 for the delayer"
    ip netns exec "$wan" python3 -c "$DELAYER" "$delays" </dev/null >/dev/null 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 50); do ip -n "$wan" link show tun0 >/dev/null 2>&1 && break; sleep 0.1; done
    ip -n "$wan" link set tun0 up || die "the delayer did not create tun0"
    ip -n "$wan" rule add iif br0 lookup 100
    ip -n "$wan" route add default dev tun0 table 100
}

case "$action" in
    up)
        trap 'echo "netns-regions: up failed at line $LINENO; run down to clean up" >&2' ERR
        up
        ;;
    down) down ;;
    *) usage ;;
esac
