#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The benchmark: one command, on a fresh machine.  Builds in release mode,
# then measures in one run, alternating with the bare echo ceiling so that
# every HTTP figure has a ratio measured next to it:
#   HTTP (wrk, keep-alive, 64 connections, fresh values every request):
#     tokenize, batch of 100 and 1000 (indexed) and 1000 (no index),
#     detokenize of 1 and 10 tokens, lookup
#   key lifecycle: rewrap of N records idle and under detokenize load,
#     shred of S records, compact of the N-record vault
#   footprint: data file per N records of four fields, server peak RSS
# Prints a Markdown table and writes bench-out/results.json and .md.
#
#   tools/dev/bench/run.sh            full run (N = 1,000,000; ~10 minutes)
#   tools/dev/bench/run.sh --smoke    seconds, to prove every figure is produced
set -eu
cd "$(dirname "$0")/../../.."
root=$(pwd)

smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
if [ $smoke -eq 1 ]; then
	dur=1; n=5000; shred=200; warm=1000
else
	dur=10; n=1000000; shred=10000; warm=20000
fi
conns=64
wthreads=2

sh tools/deps.sh
command -v wrk >/dev/null || {
	echo "bench: installing wrk" >&2
	export DEBIAN_FRONTEND=noninteractive
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	${SUDO:-} apt-get install -y -qq wrk >/dev/null
}

b=build-bench
cmake -S . -B $b -DCMAKE_BUILD_TYPE=Release -DPV_TESTS=OFF >/dev/null
cmake --build $b -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
pv=$root/$b/piivault
lua=$root/tools/dev/bench/pv.lua

out=$root/bench-out
rm -rf "$out"
mkdir -p "$out"
cd "$out"
export PIIVAULT_MAP_SIZE_MIB=65536

pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# start NAME CMD...: run a server in the background, wait for its URL.
start() {
	name=$1; shift
	"$@" >"$name.out" 2>"$name.err" &
	pid=$!
	pids="$pids $pid"
	for _ in $(seq 1 100); do
		url=$(sed -n 's/.*listening on //p' "$name.out")
		[ -n "$url" ] && break
		sleep 0.1
	done
	[ -n "$url" ] || { echo "bench: $name did not start" >&2; cat "$name.err" >&2; exit 1; }
	eval "${name}_pid=$pid ${name}_url=$url"
}

# load URL MODE N KEY [FILE]: one wrk run; prints its BENCH JSON.
load() {
	u=$1; shift
	wrk -t$wthreads -c$conns -d${dur}s --timeout 10s -s "$lua" "$u" -- "$@" |
	    sed -n 's/^BENCH //p'
}

jget() {	# jget JSON KEY
	printf '%s' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"
}

results="$out/results.json"
printf '{"machine":"%s","cores":%s,"smoke":%s,"duration_s":%s,"connections":%s,"http":[' \
    "$(uname -srm)" "$(nproc)" "$smoke" "$dur" "$conns" >"$results"
md="$out/results.md"
{
	echo "| operation | per request | req/s | records/s | ceiling req/s | ratio | p50 ms | p99 ms | errors | requests/commit |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$md"

# -- HTTP ------------------------------------------------------------------
"$pv" init >/dev/null
W=$("$pv" apikey create --name bench-writer --role writer)
R=$("$pv" apikey create --name bench-reader --role reader --purposes service)
start echo "$root/$b/pv-echo"
start pv "$pv" serve --listen 127.0.0.1:0 --rate-limit 0
# The server's anonymous memory, sampled through the HTTP runs: its peak.
(
	peak=0
	while kill -0 "$pv_pid" 2>/dev/null; do
		a=$(awk '/RssAnon/ { print $2 }' /proc/"$pv_pid"/status 2>/dev/null)
		if [ -n "$a" ] && [ "$a" -gt "$peak" ]; then
			peak=$a
			echo "$peak" >anon-peak.txt
		fi
		sleep 0.1
	done
) &

# Records to read: created through the API, tokens and emails kept.
i=0
: >tokens.txt
: >emails.txt
while [ $i -lt $warm ]; do
	body='{"records":['
	j=0
	while [ $j -lt 1000 ]; do
		[ $j -gt 0 ] && body="$body,"
		body="$body{\"fields\":{\"email\":\"warm$i.$j@bench.example\",\"name\":\"Warm $j\"}}"
		j=$((j + 1))
	done
	curl -sf -H "Authorization: Bearer $W" -H 'Content-Type: application/json' \
	    --data-binary "$body]}" "$pv_url/v1/records/batch" |
	    grep -o 'tok_[A-Za-z0-9_-]*' | awk 'NR % 2 == 1' >>tokens.txt
	echo "$body" | grep -o 'warm[0-9.]*@bench.example' >>emails.txt
	i=$((i + 1000))
done

commits() {
	curl -sf "$pv_url/metrics" | awk '/^piivault_commits_total/ { print $2 }'
}

# Wait until the server has answered what the last run left in flight, so
# that one run's backlog is not measured against the next.
settle() {
	prev=-1
	for _ in $(seq 1 100); do
		cur=$(commits)
		[ "$cur" = "$prev" ] && return 0
		prev=$cur
		sleep 0.3
	done
}

first=1
run_http() {	# LABEL MODE N KEY [FILE]
	label=$1; mode=$2; per=$3; shift 3
	settle
	ceil=$(load "$echo_url" echo 1 "")
	c0=$(commits)
	res=$(load "$pv_url" "$mode" "$per" "$@")
	c1=$(commits)
	crps=$(jget "$ceil" rps)
	rps=$(jget "$res" rps)
	recs=1
	case $mode in batch|plain) recs=$per ;; esac
	rec_s=$(awk -v a="$rps" -v b="$recs" 'BEGIN { printf "%.0f", a * b }')
	ratio=$(awk -v a="$rps" -v b="$crps" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
	p50=$(jget "$res" p50_ms); p99=$(jget "$res" p99_ms); err=$(jget "$res" errors)
	reqs=$(jget "$res" requests)
	per_commit=$(awk -v r="$reqs" -v a="$c0" -v b="$c1" \
	    'BEGIN { printf "%.1f", (b > a ? r / (b - a) : 0) }')
	printf '| %s | %s | %.0f | %s | %.0f | %s | %s | %s | %s | %s |\n' "$label" "$per" \
	    "$rps" "$rec_s" "$crps" "$ratio" "$p50" "$p99" "$err" "$per_commit" >>"$md"
	[ $first -eq 1 ] || printf ',' >>"$results"
	first=0
	printf '{"op":"%s","per_request":%s,"rps":%s,"records_per_s":%s,"ceiling_rps":%s,"ratio":%s,"p50_ms":%s,"p99_ms":%s,"errors":%s,"requests_per_commit":%s}' \
	    "$label" "$per" "$rps" "$rec_s" "$crps" "$ratio" "$p50" "$p99" "$err" "$per_commit" >>"$results"
	echo "bench: $label: $rps req/s ($ratio of $crps)" >&2
}
run_http tokenize tokenize 1 "$W"
run_http "batch tokenize" batch 100 "$W"
run_http "batch tokenize" batch 1000 "$W"
run_http "batch tokenize, no index" plain 1000 "$W"
run_http detokenize detok 1 "$R" tokens.txt
run_http detokenize detok 10 "$R" tokens.txt
run_http lookup lookup 1 "$R" emails.txt

# The floor of the audit rule: a 404, logged durably like any request.
settle
pceil=$(load "$echo_url" echo 1 "")
c0=$(commits)
probe=$(load "$pv_url" probe 1 "$W")
c1=$(commits)
p_rps=$(jget "$probe" rps)
p_ratio=$(awk -v a="$p_rps" -v b="$(jget "$pceil" rps)" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
p_per=$(awk -v r="$(jget "$probe" requests)" -v a="$c0" -v b="$c1" \
    'BEGIN { printf "%.1f", (b > a ? r / (b - a) : 0) }')

hwm=$(awk '/VmHWM/ { print $2 }' /proc/"$pv_pid"/status)
anon=$(cat anon-peak.txt 2>/dev/null || echo 0)
kill -TERM "$pv_pid"
wait "$pv_pid" 2>/dev/null || true
printf '],"audited_probe":{"rps":%s,"ratio":%s,"p99_ms":%s,"requests_per_commit":%s},"server_peak_rss_kib":%s,"server_peak_anon_kib":%s' \
    "$p_rps" "$p_ratio" "$(jget "$probe" p99_ms)" "$p_per" "$hwm" "$anon" >>"$results"

# -- the disk's durable commit rate: one record a commit ----------------
mkdir commit1
(cd commit1 && "$pv" init >/dev/null &&
    "$root/$b/pv-populate" piivault-data piivault.key $((dur * 100)) commit1 \
    2>populate.json >/dev/null)
c1s=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' commit1/populate.json)
commit_rate=$(awk -v s="$c1s" -v n=$((dur * 100)) 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
printf ',"durable_commits_per_s":%s' "$commit_rate" >>"$results"

# -- key lifecycle -------------------------------------------------------
mkdir life
cd life
"$pv" init >/dev/null
R=$("$pv" apikey create --name bench-reader --role reader --purposes service)
W=$("$pv" apikey create --name bench-writer --role writer)
"$root/$b/pv-populate" piivault-data piivault.key "$n" ids 2>populate.json >ids.txt
size=$(stat -c %s piivault-data/data.mdb)
vbytes=$(sed -n 's/.*"value_bytes":\([0-9]*\).*/\1/p' populate.json)
psecs=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' populate.json)

"$pv" kms rotate >/dev/null
rw_idle=$("$pv" kms rewrap --batch 5000 | sed -n 's/.*"summary":true,\(.*\)}/\1/p')
"$pv" kms rotate >/dev/null

start pv "$pv" serve --listen 127.0.0.1:0 --rate-limit 0
body='{"records":['
j=0
while [ $j -lt 1000 ]; do
	[ $j -gt 0 ] && body="$body,"
	body="$body{\"fields\":{\"name\":\"Reader $j\"}}"
	j=$((j + 1))
done
curl -sf -H "Authorization: Bearer $W" -H 'Content-Type: application/json' \
    --data-binary "$body]}" "$pv_url/v1/records/batch" |
    grep -o 'tok_[A-Za-z0-9_-]*' >tokens.txt
before=$(load "$pv_url" detok 1 "$R" tokens.txt)
# Under load the rewrap leaves the server the writer lock half the time.
"$pv" kms rewrap --batch 1000 --duty 50 >rewrap.log 2>&1 &
rwpid=$!
during=$(load "$pv_url" detok 1 "$R" tokens.txt)
wait $rwpid
rw_load=$(sed -n 's/.*"summary":true,\(.*\)}/\1/p' rewrap.log)
head -n "$shred" ids.txt >shred.txt
t0=$(date +%s.%N)
"$pv" shred --from-file shred.txt --reason bench >receipts.txt
t1=$(date +%s.%N)
kill -TERM "$pv_pid"
wait "$pv_pid" 2>/dev/null || true
t2=$(date +%s.%N)
compact=$("$pv" compact)
t3=$(date +%s.%N)

shred_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
compact_s=$(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.3f", b - a }')
per_m=$(awk -v s="$size" -v n="$n" 'BEGIN { printf "%.0f", s * 1000000 / n }')
sealed=$(awk -v v="$vbytes" -v n="$n" 'BEGIN { printf "%.0f", v + n * 4 * 28 }')
ratio_size=$(awk -v s="$size" -v v="$sealed" 'BEGIN { printf "%.2f", s / v }')
b_rps=$(jget "$before" rps); d_rps=$(jget "$during" rps)
keep=$(awk -v a="$d_rps" -v b="$b_rps" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')

printf ',"records":%s,"populate_s":%s,"data_file_bytes":%s,"data_file_bytes_per_million":%s,"sealed_field_bytes":%s,"file_to_sealed_ratio":%s' \
    "$n" "$psecs" "$size" "$per_m" "$sealed" "$ratio_size" >>"$results"
printf ',"rewrap_idle":{%s},"rewrap_under_load":{%s},"detok_before_rps":%s,"detok_during_rewrap_rps":%s,"detok_kept":%s' \
    "$rw_idle" "$rw_load" "$b_rps" "$d_rps" "$keep" >>"$results"
printf ',"shred":{"records":%s,"seconds":%s},"compact":{"seconds":%s,"result":"%s"}}\n' \
    "$shred" "$shred_s" "$compact_s" "$compact" >>"$results"

{
	echo
	echo "| key lifecycle and footprint | figure |"
	echo "| --- | ---: |"
	echo "| records | $n (four fields) |"
	echo "| rewrap, idle | $(echo "$rw_idle" | sed 's/"//g') |"
	echo "| rewrap, under detokenize load (--duty 50) | $(echo "$rw_load" | sed 's/"//g') |"
	echo "| detokenize req/s before / during rewrap | $b_rps / $d_rps ($keep kept) |"
	echo "| shred of $shred records | $shred_s s |"
	echo "| compact | $compact_s s ($compact) |"
	echo "| data file per 1,000,000 records | $per_m bytes ($ratio_size x the sealed fields) |"
	echo "| audited 404 probe (the audit rule's floor) | $p_rps req/s ($p_ratio of the ceiling), $p_per requests/commit |"
	echo "| server peak RSS under load | $hwm KiB (peak anonymous $anon KiB) |"
	echo "| durable commits/s, one record each (the disk's flush rate) | $commit_rate |"
} >>"$md"
cat "$md"
echo "bench: wrote $results and $md" >&2
