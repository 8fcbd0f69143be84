#!/usr/bin/env bash
# Fails if the committed BPF object (relay/fastpath/bpf/fastpath.bpf.o) is
# not what its source compiles to: the node embeds the committed object, so
# an edit to the C source without a rebuild would ship the old program.
# Run by scripts/test (so by CI); needs clang, llvm-strip and libbpf-dev
# (scripts/install-test-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
scripts/build-bpf.sh "$tmp/fastpath.bpf.o"
if ! cmp -s "$tmp/fastpath.bpf.o" relay/fastpath/bpf/fastpath.bpf.o; then
  echo "check-bpf: relay/fastpath/bpf/fastpath.bpf.o is stale: run scripts/build-bpf.sh and commit it" >&2
  exit 1
fi
echo "check-bpf: the committed BPF object matches its source"
