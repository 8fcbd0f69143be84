#!/bin/sh
# Installs what the interop integration test (tests/interop.rs) drives:
# Kamailio, whose stock rtpengine module ships in Debian 12's `kamailio`
# package itself, and sipp (package `sip-tester`); and what the network
# namespace harness (scripts/netns-regions.sh, tests/netns.rs) needs: `ip`
# and `tc` (iproute2) and `ping` (iputils-ping). Idempotent: does nothing
# when the binaries and the module are there, and refreshes the package lists
# only when there are none (fresh images) or the install fails on stale ones.
set -eu

have_interop() {
    command -v kamailio >/dev/null 2>&1 &&
        command -v sipp >/dev/null 2>&1 &&
        # The module directory is architecture-specific.
        ls /usr/lib/*/kamailio/modules/rtpengine.so >/dev/null 2>&1
}

have_netns() {
    command -v ip >/dev/null 2>&1 &&
        command -v tc >/dev/null 2>&1 &&
        command -v ping >/dev/null 2>&1
}

have_all() {
    have_interop && have_netns
}

if have_all; then
    echo "install-test-deps: kamailio, rtpengine.so, sipp, ip, tc and ping already installed"
    exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
pkgs=
if ! have_interop; then
    pkgs="kamailio sip-tester"
fi
if ! have_netns; then
    pkgs="$pkgs iproute2 iputils-ping"
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

# The package enables the system service (a container's policy-rc.d usually
# keeps it from starting); the test runs its own instance and never uses it.
if ! have_all; then
    echo "install-test-deps: kamailio, rtpengine.so, sipp, ip, tc or ping still missing" >&2
    exit 1
fi
echo "install-test-deps: done"
