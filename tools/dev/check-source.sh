#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Source rules no compiler checks: banned functions (curl checksrc), each
# foreign library included only by its one adapter, private headers kept
# in their module, and the layers pointing one way:
#   tools -> api -> vault -> kms -> store -> base
# Nothing above vault/ sees kms or store: vault.h is their whole contract.
set -eu
cd "$(dirname "$0")/../.."
fail=0
# Tracked and new files alike, so that a file not yet committed is checked.
src=$({ git ls-files -co --exclude-standard '*.c' '*.h' 2>/dev/null ||
    find base store kms vault api tools tests -name '*.[ch]'; } |
    while read -r f; do [ -f "$f" ] && echo "$f"; done)

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
only 'argon2.h' kms/kms.c
only 'jansson.h' api/json.c tools/dev/bench/echo.c
only 'microhttpd.h' api/http.c tools/dev/bench/echo.c
only 'gnutls/' api/http.c

includes() {	# includes HEADER FILE...: list the lines of FILE... that do
	h=$1; shift
	grep -nE "#include[[:space:]]*\"$h\"" "$@" /dev/null
}

layer() {	# layer DIR HEADER...: no file under DIR/ includes HEADER
	dir=$1; shift
	for h in "$@"; do
		if includes "$h" $(echo "$src" | grep "^$dir/"); then
			echo "check-source: $dir/ includes $h" >&2
			fail=1
		fi
	done
}
layer base pv_store.h kms.h vault.h api.h cli_int.h
layer store kms.h vault.h api.h cli_int.h
layer kms vault.h api.h cli_int.h
layer vault api.h cli_int.h
layer api kms.h pv_store.h vault_int.h cli_int.h
layer tools kms.h pv_store.h vault_int.h api_int.h

# What a public header includes, every file above it sees: vault.h and
# api.h must not hand kms or store down.
public() {	# public HEADER HEADER...: HEADER includes none of HEADER...
	hdr=$1; shift
	for h in "$@"; do
		if includes "$h" "$hdr"; then
			echo "check-source: $hdr includes $h" >&2
			fail=1
		fi
	done
}
public vault/vault.h kms.h pv_store.h vault_int.h
public api/api.h kms.h pv_store.h vault_int.h api_int.h

# Every source file says its licence in its first two lines (SPDX).
for f in $(git ls-files '*.c' '*.h' '*.sh' '*.py' '*.lua' \
    '*CMakeLists.txt' .ci/run 2>/dev/null); do
	if ! head -n 2 "$f" | grep -q 'SPDX-License-Identifier: Apache-2.0'
	then
		echo "check-source: $f: no SPDX-License-Identifier" >&2
		fail=1
	fi
done

exit $fail
