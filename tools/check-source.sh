#!/bin/sh
# Source rules no compiler checks: banned functions (curl checksrc), and
# each foreign library included only by its one adapter, and the layers
# pointing one way (tools -> api -> vault -> kms).
set -eu
cd "$(dirname "$0")/.."
fail=0
src=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]')

banned='\<(gets|sprintf|vsprintf|strcpy|strcat|strncpy|strtok|atoi|atol|rand)[[:space:]]*\('
if grep -nE "$banned" $src; then
	echo "check-source: banned function used (above)" >&2
	fail=1
fi

only() {	# only HEADER FILE...: HEADER may be included by FILE... alone
	hdr=$1; shift
	for f in $(grep -lE "#include[[:space:]]*<$hdr" $src || true); do
		ok=0
		for a in "$@"; do [ "$f" = "$a" ] && ok=1; done
		case "$f" in tests/*) ok=1;; esac
		if [ $ok -eq 0 ]; then
			echo "check-source: $f includes <$hdr>" >&2
			fail=1
		fi
	done
}
only 'openssl/' base/pv_crypto.c
only 'lmdb.h' store/pv_store.c
only 'jansson.h' api/json.c tools/bench/echo.c
only 'argon2.h' kms/kms.c
only 'microhttpd.h' api/http.c tools/bench/echo.c

layer() {	# layer DIR HEADER...: DIR must not include HEADER
	dir=$1; shift
	for h in "$@"; do
		if grep -nE "#include[[:space:]]*\"$h\"" $(echo "$src" |
		    grep "^$dir/") /dev/null; then
			echo "check-source: $dir/ includes $h, above it" >&2
			fail=1
		fi
	done
}
layer kms vault.h api.h cli_int.h
layer vault api.h cli_int.h
layer api cli_int.h

exit $fail
