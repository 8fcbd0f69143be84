#!/usr/bin/env bash
# Compiles the fast path's BPF program (relay/fastpath/bpf/fastpath.bpf.c)
# into the object the node loads (relay/fastpath/bpf/fastpath.bpf.o, which is
# committed: a fresh machine builds rtpmesh without clang).
#
#   scripts/build-bpf.sh [OUT]       (default: the committed object)
#
# Needs Debian's clang and libbpf-dev. The output depends only on the source
# and the compiler: paths are made relative and DWARF is stripped (BTF, which
# the loader needs, stays), so scripts/check-bpf.sh can compare bytes.
set -euo pipefail
cd "$(dirname "$0")/../relay/fastpath/bpf"
out="${1:-fastpath.bpf.o}"
clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu \
    -fdebug-prefix-map="$PWD"=. -fdebug-compilation-dir=. \
    -Wall -Werror -c fastpath.bpf.c -o "$out"
llvm-strip -g "$out"
