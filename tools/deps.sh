#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install the Debian 12 packages piivault builds and tests with, if any is
# missing.  Idempotent; needs root (or sudo) only when something is missing.
set -eu

PKGS="build-essential cmake pkg-config git ca-certificates curl
libssl-dev liblmdb-dev libmicrohttpd-dev libjansson-dev libargon2-dev check
libcurl4-openssl-dev clang libclang-rt-14-dev libgnutls28-dev
openssl gnutls-bin python3-jsonschema python3-yaml
lintian dpkg-dev systemd man-db"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# Another install (unattended-upgrades, a second build) may hold the
# package manager's locks: wait for it, up to 10 minutes, rather than fail.
# apt waits on dpkg's lock itself (DPkg::Lock::Timeout); the lists lock of
# "update" it does not, so a run that failed on a lock is tried again.
apt() {
	err=$(mktemp)
	tries=0
	while :; do
		if $SUDO apt-get -o DPkg::Lock::Timeout=600 "$@" 2>"$err"; then
			cat "$err" >&2
			rm -f "$err"
			return 0
		fi
		if ! grep -qE 'Could not get lock|Unable to (acquire|lock)' \
		    "$err" || [ "$tries" -ge 120 ]; then
			cat "$err" >&2
			rm -f "$err"
			return 1
		fi
		[ "$tries" -eq 0 ] &&
		    echo "deps: the package manager is busy; waiting" >&2
		tries=$((tries + 1))
		sleep 5
	done
}
apt update -qq
# shellcheck disable=SC2086
apt install -y -qq --no-install-recommends $missing >/dev/null
