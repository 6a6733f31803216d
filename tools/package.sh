#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Build the Debian package, build-pkg/piivault_<version>_amd64.deb, and
# check it: its contents, lintian (no error; the warnings kept are
# explained in dist/lintian-overrides), the systemd unit (systemd-analyze
# verify, and an exposure score of 2.0 or lower), and the packaged binary,
# run from the package unpacked into a temporary root.
set -eu
cd "$(dirname "$0")/.."

sh tools/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)

echo "== package: build"
cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPV_WERROR=ON \
    -DPV_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build build-pkg -j "$jobs" >/dev/null
rm -f build-pkg/piivault_*.deb
(cd build-pkg && cpack -G DEB >/dev/null)
set -- build-pkg/piivault_*_amd64.deb
[ $# -eq 1 ] && [ -f "$1" ] || { echo "package: no .deb built" >&2; exit 1; }
deb=$1
echo "$deb"

echo "== package: contents"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
contents=$(dpkg-deb --contents "$deb")
echo "$contents"
for f in ./usr/bin/piivault ./lib/systemd/system/piivault.service \
    ./etc/piivault/piivault.conf ./usr/share/man/man1/piivault.1.gz \
    ./usr/share/man/man5/piivault.conf.5.gz \
    ./usr/share/bash-completion/completions/piivault \
    ./usr/share/doc/piivault/copyright ./usr/share/doc/piivault/changelog.gz
do
	echo "$contents" | grep -q " $f\$" ||
	    { echo "package: $f missing" >&2; exit 1; }
done
dpkg-deb --field "$deb" Depends | grep -q 'libssl3' ||
    { echo "package: Depends lacks the shared libraries" >&2; exit 1; }
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" = \
    /etc/piivault/piivault.conf ] ||
    { echo "package: piivault.conf is not a conffile" >&2; exit 1; }

echo "== package: lintian"
lintian --fail-on error --info "$deb"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM
dpkg-deb -x "$deb" "$root"
echo "== package: the packaged binary"
"$root/usr/bin/piivault" --version

echo "== package: systemd unit"
# verify needs ExecStart's binary to exist and the man pages the unit names.
sed "s#^ExecStart=/usr/bin/piivault#ExecStart=$root/usr/bin/piivault#" \
    "$root/lib/systemd/system/piivault.service" >"$root/piivault.service"
MANPATH="$root/usr/share/man" systemd-analyze verify "$root/piivault.service"
# The score is printed times ten internally: 20 is "2.0".
systemd-analyze security --offline=true --threshold=20 \
    "$root/piivault.service" | tail -n 1
echo "== package: ok"
