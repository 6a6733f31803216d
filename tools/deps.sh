#!/bin/sh
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
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
