#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The test command: install what is missing, build with warnings as errors,
# run every suite, then build and run them all again under AddressSanitizer
# and UndefinedBehaviorSanitizer.  Exits non-zero if anything fails.
set -eu
cd "$(dirname "$0")/.."

sh tools/deps.sh
sh tools/dev/check-source.sh

jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (release, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPV_WERROR=ON -DPV_TESTS=ON >/dev/null
cmake --build build -j "$jobs"
# The test clock lives in build/piivault-test only (PV_TEST_HOOKS).
if grep -q PIIVAULT_FAKE_NOW build/piivault; then
	echo "build/piivault reads PIIVAULT_FAKE_NOW: test hooks in a release" >&2
	exit 1
fi
echo "== tests"
ctest --test-dir build --no-tests=error --output-on-failure -j "$jobs"

echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer, -Werror)"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Sanitize -DPV_WERROR=ON -DPV_TESTS=ON >/dev/null
cmake --build build-sanitize -j "$jobs"
echo "== tests under sanitizers"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-sanitize --no-tests=error --output-on-failure -j "$jobs"
echo "== fuzz, smoke mode (the libFuzzer harnesses, 10 s each)"
sh tools/dev/fuzz.sh 10
echo "== benchmark, smoke mode (proves every figure is produced; asserts no time)"
sh tools/dev/bench/run.sh --smoke >/dev/null
for k in '"op":"tokenize"' '"op":"batch tokenize"' '"op":"batch tokenize, no index"' \
    '"op":"detokenize"' '"op":"lookup"' '"ceiling_rps"' '"rewrap_idle":{"records"' \
    '"rewrap_under_load":{"records"' '"detok_during_rewrap_rps"' '"shred":' \
    '"compact":' '"data_file_bytes_per_million"' '"server_peak_rss_kib"' \
    '"server_peak_anon_kib"' '"audited_probe":{"rps"' '"durable_commits_per_s"'; do
	grep -q "$k" bench-out/results.json ||
	    { echo "benchmark: no $k in bench-out/results.json" >&2; exit 1; }
done
echo "== package: the .deb, lintian, the systemd unit (tools/package.sh)"
sh tools/package.sh
echo "== all tests passed"
