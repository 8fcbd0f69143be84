#!/bin/sh
# Installs what the integration tests drive: for tests/interop.rs, Kamailio,
# whose stock rtpengine module ships in Debian 12's `kamailio` package
# itself, its http_client module (package `kamailio-utils-modules`, for
# tests/interop/regions.cfg's route lookups), and sipp (package
# `sip-tester`); for tests/registry.rs and
# tests/regions.rs, a Redis server (package `redis-server`), which the tests
# start on their own ports; for the network namespace harness
# (scripts/netns-regions.sh): `ip` and `tc` (iproute2) and `ping`
# (iputils-ping); for the kernel fast path's tests and scripts/check-bpf.sh,
# `ethtool` and `bpftool`, and clang, llvm-strip and libbpf's headers to rebuild the BPF
# object and compare it with the committed one. Idempotent: does nothing when everything is there, and
# refreshes the package lists only when there are none (fresh images) or the
# install fails on stale ones.
set -eu

have_interop() {
    command -v kamailio >/dev/null 2>&1 &&
        command -v sipp >/dev/null 2>&1 &&
        command -v redis-server >/dev/null 2>&1 &&
        # The module directory is architecture-specific.
        ls /usr/lib/*/kamailio/modules/rtpengine.so >/dev/null 2>&1 &&
        ls /usr/lib/*/kamailio/modules/http_client.so >/dev/null 2>&1
}

have_netns() {
    command -v ip >/dev/null 2>&1 &&
        command -v tc >/dev/null 2>&1 &&
        command -v ping >/dev/null 2>&1
}

have_bpf() {
    command -v ethtool >/dev/null 2>&1 &&
        command -v bpftool >/dev/null 2>&1 &&
        command -v clang >/dev/null 2>&1 &&
        command -v llvm-strip >/dev/null 2>&1 &&
        [ -f /usr/include/bpf/bpf_helpers.h ]
}

# SRTP against libsrtp2 (a C peer the test compiles), DTLS against the
# openssl CLI, WebRTC against headless Chromium.
have_webrtc() {
    command -v chromium >/dev/null 2>&1 &&
        command -v cc >/dev/null 2>&1 &&
        command -v openssl >/dev/null 2>&1 &&
        [ -f /usr/include/srtp2/srtp.h ]
}

# rtpengine 10.5 itself: tests/ng_flags.rs (and the SDP comparisons) send it
# the same offers as rtpmesh; it runs in the foreground with its own ports,
# never as the packaged service.
have_rtpengine() {
    command -v rtpengine >/dev/null 2>&1
}

have_all() {
    have_interop && have_netns && have_bpf && have_webrtc && have_rtpengine
}

if have_all; then
    echo "install-test-deps: kamailio, rtpengine.so, http_client.so, sipp, redis-server, ip, tc, ping, ethtool, clang, libbpf-dev, chromium, cc, openssl, libsrtp2-dev and rtpengine already installed"
    exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
pkgs=
if ! have_interop; then
    pkgs="kamailio kamailio-utils-modules sip-tester redis-server"
fi
if ! have_netns; then
    pkgs="$pkgs iproute2 iputils-ping"
fi
if ! have_bpf; then
    pkgs="$pkgs ethtool bpftool clang llvm libbpf-dev"
fi
if ! have_webrtc; then
    # fonts-liberation: Chromium's only font need for a page with no text.
    pkgs="$pkgs chromium fonts-liberation gcc libc6-dev libsrtp2-dev openssl"
fi
if ! have_rtpengine; then
    pkgs="$pkgs rtpengine-daemon"
fi

if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
    $SUDO apt-get update
fi
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y --no-install-recommends $pkgs; then
    $SUDO apt-get update
    # shellcheck disable=SC2086
    $SUDO apt-get install -y --no-install-recommends $pkgs
fi

# rtpengine's packaged service (if it started) holds the ng port 2223 and
# the CLI port 2224 that a test's own rtpengine would otherwise get.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now rtpengine-daemon >/dev/null 2>&1 || true
fi

# The packages enable their system services (a container's policy-rc.d
# usually keeps them from starting); the tests run their own instances and
# never use them.
if ! have_all; then
    echo "install-test-deps: kamailio, rtpengine.so, http_client.so, sipp, redis-server, ip, tc, ping, chromium, cc, openssl, libsrtp2-dev or rtpengine still missing" >&2
    exit 1
fi
echo "install-test-deps: done"
