#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The run command: install what is missing, build, create the vault on its
# embedded default (./piivault-data, root key ./piivault.key) if there is
# none yet, and serve the API on 127.0.0.1:7400 until Ctrl-C.
set -eu
cd "$(dirname "$0")/.."

sh tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target piivault

if [ ! -e piivault-data/data.mdb ]; then
	./build/piivault init
fi
exec ./build/piivault serve "$@"
