#!/bin/sh
# The run command: install what is missing, build, create the vault on its
# embedded default (./piivault-data, root key ./piivault.key) if there is
# none yet, and show it working end to end through the CLI.
set -eu
cd "$(dirname "$0")/.."

sh tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target piivault
pv=./build/piivault

if [ ! -e piivault-data/data.mdb ]; then
	$pv init
fi

echo "== piivault put (a demo record)"
out=$(printf '%s' '{"email":" Ada@Example.org","phone":"+1 555 0100","name":"Ada Lovelace"}' | $pv put)
echo "$out"
id=$(printf '%s' "$out" | sed 's/.*"id":"\(rec_[^"]*\)".*/\1/')
toks=$(printf '%s' "$out" | grep -o 'tok_[A-Za-z0-9_-]*' | tr '\n' ' ')

echo "== piivault get $toks"
# shellcheck disable=SC2086
$pv get $toks
echo
echo "== piivault lookup email ada@example.org (finds $id among others)"
$pv lookup email ada@example.org
echo
echo "== piivault kms status"
$pv kms status
