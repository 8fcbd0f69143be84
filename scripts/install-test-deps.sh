#!/bin/sh
# Installs what the interop integration test (tests/interop.rs) drives:
# Kamailio (its stock rtpengine module ships in the `kamailio` package on
# Debian 12) and sipp (package `sip-tester`). Idempotent: does nothing when
# both binaries and the module are already there, and refreshes the package
# lists only when they have never been fetched.
set -eu

module=/usr/lib/x86_64-linux-gnu/kamailio/modules/rtpengine.so
have_module() {
    # The module directory depends on the architecture; look it up.
    ls /usr/lib/*/kamailio/modules/rtpengine.so >/dev/null 2>&1 ||
        [ -e "$module" ]
}

if command -v kamailio >/dev/null 2>&1 && command -v sipp >/dev/null 2>&1 && have_module; then
    echo "install-test-deps: kamailio, rtpengine.so and sipp already installed"
    exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi

# `apt-get update` only when there are no package lists yet (fresh CI
# images ship without them); otherwise the install below uses what is there.
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
    $SUDO apt-get update
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends kamailio sip-tester; then
    # Stale lists (a package version gone from the mirror): refresh once.
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends kamailio sip-tester
fi

# Debian's kamailio package enables and starts the system service; the test
# runs its own instance on loopback and never uses it.
have_module || { echo "install-test-deps: rtpengine.so not found after install" >&2; exit 1; }
echo "install-test-deps: done"
