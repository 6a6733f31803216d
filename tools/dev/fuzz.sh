#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Build the libFuzzer harnesses with clang and run each for SECONDS
# (default 60), keeping a corpus under build-fuzz/corpus.  Any crash, leak
# or sanitizer report fails the run.
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-60}
command -v clang >/dev/null || { echo "fuzz: needs clang" >&2; exit 1; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
    -DPV_TESTS=OFF -DPV_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
for h in codec record; do
	mkdir -p "build-fuzz/corpus/$h"
	echo "== fuzz_$h for ${secs}s"
	# Not a pipe: sh has no pipefail, and a crash must fail the run.
	if ! "build-fuzz/tests/fuzz/fuzz_$h" -max_total_time="$secs" \
	    -max_len=65536 -artifact_prefix=build-fuzz/ "build-fuzz/corpus/$h" \
	    >"build-fuzz/fuzz_$h.log" 2>&1; then
		tail -n 40 "build-fuzz/fuzz_$h.log" >&2
		echo "fuzz: fuzz_$h failed (build-fuzz/fuzz_$h.log)" >&2
		exit 1
	fi
	tail -n 1 "build-fuzz/fuzz_$h.log"
done
