#!/usr/bin/env bash
# Three regions on one machine: a regional controller (embedded store, no
# server needed) and six relay nodes on loopback addresses, then route
# explanations and calls across regions. Everything stops on exit.
#
#   examples/regions/run.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin rtpmesh >/dev/null
bin=target/release/rtpmesh
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

export RTPMESH_TUNNEL_SECRET="example secret: use your own"
export RTPMESH_API_TOKEN="example-token"
port=30000
for n in 1.1 1.2 2.1 2.2 3.1 3.2; do
    ip=127.0.$n
    $bin node --listen-ng "$ip:2223" --interface "$ip" --port-min $port --port-max $((port + 999)) \
        --workers 1 --tunnel-address "$ip:7000" --recording-dir "$dir/rec-$n" 2>"$dir/node-$n.log" &
    pids+=($!)
    port=$((port + 1000))
done
$bin control --listen-ng 127.0.0.1:2222 --seed examples/regions/seed.toml \
    --http 127.0.0.1:8080 2>"$dir/controller.log" &
pids+=($!)

# The controller checks each seeded node every 2 s; wait until all answer.
for _ in $(seq 50); do
    up=$($bin nodes list --json 2>/dev/null | grep -o '"usable":true' | wc -l || true)
    [ "$up" -eq 6 ] && break
    sleep 0.2
done
echo "== nodes"; $bin nodes list
echo; echo "== where does a call from Europe to carol go? (same region wins)"
$bin route explain carol --from eu
echo; echo "== and to dave? (reachable in us and ap: lowest latency wins)"
$bin route explain dave --from eu
echo; echo "== a call from Europe to bob in the US: eu node -> tunnel -> us node"
$bin demo --ng 127.0.0.1:2222 --callee bob --region eu
echo; echo "== drain eu-1: new calls avoid it"
$bin nodes drain eu-1
$bin route explain bob --from eu | head -4
