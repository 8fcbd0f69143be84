#!/bin/sh
# The protocol cores do no IO: their dependency trees hold no socket, event
# loop, store, HTTP, CLI or anyhow crate. Run by scripts/test (so by CI).
set -eu
cd "$(dirname "$0")/.."
io='^(io-uring|mio|socket2|libc|crossbeam-channel|redis|hyper|tokio|ureq|clap|anyhow|signal-hook|core_affinity) '
status=0
for core in rtpmesh-ng rtpmesh-flow rtpmesh-srtp rtpmesh-ice; do
    found=$(cargo tree -q -p "$core" -e normal --prefix none | sort -u | grep -E "$io" || true)
    if [ -n "$found" ]; then
        echo "check-cores: $core depends on IO crates:" >&2
        echo "$found" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "check-cores: rtpmesh-ng, rtpmesh-flow, rtpmesh-srtp and rtpmesh-ice depend on no IO crate"
exit "$status"
