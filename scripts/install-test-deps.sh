#!/bin/sh
# Installs what the integration tests drive: for tests/interop.rs, Kamailio,
# whose stock rtpengine module ships in Debian 12's `kamailio` package
# itself, and sipp (package `sip-tester`); for tests/registry.rs, a Redis
# server (package `redis-server`), which the test starts on its own port.
# Idempotent: does nothing when the binaries and the module are there, and
# refreshes the package lists only when there are none (fresh images) or the
# install fails on stale ones.
set -eu

have_all() {
    command -v kamailio >/dev/null 2>&1 &&
        command -v sipp >/dev/null 2>&1 &&
        command -v redis-server >/dev/null 2>&1 &&
        # The module directory is architecture-specific.
        ls /usr/lib/*/kamailio/modules/rtpengine.so >/dev/null 2>&1
}

if have_all; then
    echo "install-test-deps: kamailio, rtpengine.so, sipp and redis-server already installed"
    exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
pkgs="kamailio sip-tester redis-server"

if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
    $SUDO apt-get update
fi
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y --no-install-recommends $pkgs; then
    $SUDO apt-get update
    # shellcheck disable=SC2086
    $SUDO apt-get install -y --no-install-recommends $pkgs
fi

# The packages enable their system services (a container's policy-rc.d
# usually keeps them from starting); the tests run their own instances and
# never use them.
if ! have_all; then
    echo "install-test-deps: kamailio, rtpengine.so, sipp or redis-server still missing" >&2
    exit 1
fi
echo "install-test-deps: done"
