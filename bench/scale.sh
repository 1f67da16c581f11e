#!/usr/bin/env bash
# scale.sh: how aoed scales with the number of exports on one interface,
# over a veth pair between two network namespaces (like run-bench.sh).
#
#   spread   A: one export of an N x S MiB file; B: N exports (default 64) of
#            S MiB each, the client spreading its requests round robin over
#            all of them (aoe-load -L). 1 KiB random reads at q 32 in total,
#            MTU 1500, fallocated tmpfs files: both cases read the same amount
#            of page cache. Rounds alternate A B A B ...; the goal is
#            median(B) >= 0.9 x median(A).
#   startup  M exports (default 1000) of small sparse tmpfs files, the default
#            queue length. Per round: time from launching the daemon until the
#            client gets the query-config answer (or the announcement) of the
#            last export, and until the "aoed ready" log line; VmRSS/VmHWM
#            after start; three reloads, each changing one export (read-only
#            toggled): SIGHUP (signal -> "config reloaded" line; the first
#            reload the daemon does), the file watcher alone (file write ->
#            line), SIGHUP again (a later reload); VmRSS/VmHWM after.
#            Goals: start < 2 s, reload < 100 ms, RSS < 200 MB.
#
# Prints a Markdown table with the goals and pass/fail, and writes
# results.jsonl, summary.md, run.log and the daemon logs to bench/results/scale-<date>/.
#
# Needs root, iproute2, jq, gcc/make, node, and the daemon built (npm run build).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
LOAD="$BENCH/aoe-load"

# ---------------------------------------------------------------- defaults
ROUNDS=3
SECS=3
WARMUP=0.5
QD=32
MTU=1500
NSPREAD=64
NSTART=1000
SIZE_MB=16
SPARSE_MB=64
TESTS="spread startup"
OUTDIR=""
CLIENT_IO=""
CLIENT_EXTRA=""
SUMMARY_ONLY=""
BUFFERS="" # interfaces.aoe0.buffers in every config (empty: aoed's default ring size)
PER_SHELF=250 # startup exports: shelf i / 250, slot i % 250

AOED_BIN=${AOED_BIN:-$ROOT/dist/src/bin/aoed.cjs}
AOED_NODE_ARGS=${AOED_NODE_ARGS:-}
AOED_ARGS=${AOED_ARGS:-}

usage() {
	cat <<EOF
usage: $0 [options]
  -R N        rounds: spread alternates A B A B ...; startup repeats N times (default $ROUNDS)
  -T "LIST"   tests: spread startup (default "$TESTS")
  -t SECS     measured seconds per spread run (default $SECS)
  -W SECS     warm-up seconds per spread run, not measured (default $WARMUP)
  -q DEPTH    total queue depth of the spread runs (default $QD)
  -m MTU      MTU of both veth ends (default $MTU)
  -n N        exports in the spread test (default $NSPREAD, at most 255)
  -S MIB      spread: size of each export's file (default $SIZE_MB); the single export gets N x MIB
  -N M        exports in the startup test (default $NSTART)
  -z MIB      startup: size of each sparse file (default $SPARSE_MB)
  -b N        set \`buffers: N\` (64 KiB units) for the interface in every config, so
              that both spread cases get the same ring size (default: aoed sizes them)
  -o DIR      output directory (default bench/results/scale-<date>)
  -I MODE     client I/O mode: ring | rxring | mmsg (default: aoe-load's)
  -x "ARGS"   extra aoe-load arguments for the spread runs
  -s FILE     don't run anything: print the tables for an existing results.jsonl
Environment:
  AOED_BIN        the daemon (default dist/src/bin/aoed.cjs of this tree)
  AOED_NODE_ARGS  node options, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  AOED_ARGS       extra daemon arguments
  AOED_IO         \`io:\` of every export (auto, io_uring, threads, mmap, sync; default auto)
EOF
	exit 2
}

while getopts "R:T:t:W:q:m:n:S:N:z:b:o:I:x:s:h" o; do
	case $o in
	R) ROUNDS=$OPTARG ;;
	T) TESTS=$OPTARG ;;
	t) SECS=$OPTARG ;;
	W) WARMUP=$OPTARG ;;
	q) QD=$OPTARG ;;
	m) MTU=$OPTARG ;;
	n) NSPREAD=$OPTARG ;;
	S) SIZE_MB=$OPTARG ;;
	N) NSTART=$OPTARG ;;
	z) SPARSE_MB=$OPTARG ;;
	b) BUFFERS=$OPTARG ;;
	o) OUTDIR=$OPTARG ;;
	I) CLIENT_IO=$OPTARG ;;
	x) CLIENT_EXTRA=$OPTARG ;;
	s) SUMMARY_ONLY=$OPTARG ;;
	*) usage ;;
	esac
done
[[ $NSPREAD -ge 2 && $NSPREAD -le 255 ]] || { echo "scale: -n must be 2..255" >&2; exit 2; }
[[ $NSTART -ge 1 ]] || usage

command -v jq >/dev/null || { echo "scale: jq is required" >&2; exit 1; }

# ---------------------------------------------------------------- summary
summarize() {
	jq -s -r '
	def median: sort | if length == 0 then null
		elif length % 2 == 1 then .[length/2|floor]
		else (.[length/2 - 1] + .[length/2]) / 2 end;
	def r(n): if . == null then "-" else (. * pow(10; n) | round) / pow(10; n) | tostring end;
	def mm(f; n): (map(f) | map(select(. != null))) as $v
		| if ($v | length) == 0 then "-"
		  else "\($v | median | r(n)) (\($v | min | r(n))-\($v | max | r(n)))" end;
	def pf(ok): if ok == null then "-" elif ok then "PASS" else "FAIL" end;
	def mb: if . == null then null else . * 1024 / 1e6 end;
	(map(select(.test == "spread" and .failed != true))) as $sp
	| (map(select(.test == "startup" and .failed != true))) as $st
	| ($sp | map(select(.variant == "one"))) as $a
	| ($sp | map(select(.variant == "many"))) as $b
	| ($a | map(.req_per_s) | median) as $ra
	| ($b | map(.req_per_s) | median) as $rb
	| (if $ra != null and $rb != null and $ra > 0 then $rb / $ra else null end) as $ratio
	| ($st | map(.client_ready_ms) | median) as $start
	| ($st | map(.reload_hup_ms) | median) as $hup
	| ($st | map(.reload_file_ms) | median) as $file
	| ($st | map(.reload_hup2_ms) | median) as $hup2
	| ([$st[] | .rss_start_kb, .rss_reload_kb] | max | mb) as $rss
	| ([$st[] | .hwm_start_kb, .hwm_reload_kb] | max | mb) as $hwm
	| (map(select(.failed == true)) | length) as $nfail
	| "| goal | measured: median (min-max) | target | result |",
	  "|---|---|---|---|",
	  (if ($a | length) > 0 or ($b | length) > 0 then
	    "| spread: 1 export, req/s (\($a | length) runs) | \($a | mm(.req_per_s; 0)) | | |",
	    "| spread: \($b[0].slots // "N") exports, aggregate req/s (\($b | length) runs) | \($b | mm(.req_per_s; 0)) | | |",
	    "| spread: ratio of the medians (N / 1) | \($ratio | r(3)) (per-round ratios \([$sp | group_by(.round)[] | (map(select(.variant == "many")) | .[0].req_per_s) as $y | (map(select(.variant == "one")) | .[0].req_per_s) as $x | if $x and $y then $y / $x | r(2) else "-" end] | join(", "))) | >= 0.9 | \(pf(if $ratio == null then null else $ratio >= 0.9 end)) |",
	    "| spread: target CPU us/req, 1 / N exports | \($a | mm(.target_us_per_req; 2)) / \($b | mm(.target_us_per_req; 2)) | | |",
	    "| spread: p50 us, 1 / N exports | \($a | mm(.p50_us; 1)) / \($b | mm(.p50_us; 1)) | | |",
	    "| spread: errors / retransmits, 1 / N exports | \($a | map(.errors) | add) / \($a | map(.retransmits) | add), \($b | map(.errors) | add) / \($b | map(.retransmits) | add) | | |"
	  else empty end),
	  (if ($st | length) > 0 then
	    "| startup (\($st[0].exports) exports, \($st | length) runs): launch -> client sees the last export, ms | \($st | mm(.client_ready_ms; 0)) | < 2000 | \(pf(if $start == null then null else $start < 2000 end)) |",
	    "| startup: launch -> \"aoed ready\" log line, ms | \($st | mm(.log_ready_ms; 0)) | | |",
	    "| reload one export, the first one: SIGHUP -> \"config reloaded\" line, ms | \($st | mm(.reload_hup_ms; 0)) | < 100 | \(pf(if $hup == null then null else $hup < 100 end)) |",
	    "| reload one export, a later one: SIGHUP -> line, ms | \($st | mm(.reload_hup2_ms; 0)) | < 100 | \(pf(if $hup2 == null then null else $hup2 < 100 end)) |",
	    "| reload one export: file write -> line, ms (includes the 250 ms watcher debounce) | \($st | mm(.reload_file_ms; 0)) | < 100 | \(pf(if $file == null then null else $file < 100 end)) |",
	    "| reload: duration the daemon reports on its first reload line, ms | \($st | mm(.reload_self_ms; 1)) | | |",
	    "| VmRSS after start, MB | \($st | mm(.rss_start_kb | mb; 1)) | < 200 | \(pf(($st | map(.rss_start_kb | mb) | max) as $m | if $m == null then null else $m < 200 end)) |",
	    "| VmRSS after the reloads, MB | \($st | mm(.rss_reload_kb | mb; 1)) | < 200 | \(pf(($st | map(.rss_reload_kb | mb) | max) as $m | if $m == null then null else $m < 200 end)) |",
	    "| VmHWM (peak RSS) after start / after the reloads, MB | \($st | mm(.hwm_start_kb | mb; 1)) / \($st | mm(.hwm_reload_kb | mb; 1)) | < 200 | \(pf(if $hwm == null then null else $hwm < 200 end)) |",
	    "| RSS after start: anon / file / shmem, MB | \($st | mm(.rss_anon_kb | mb; 1)) / \($st | mm(.rss_file_kb | mb; 1)) / \($st | mm(.rss_shmem_kb | mb; 1)) | | |"
	  else empty end),
	  (if $nfail > 0 then "| failed runs | \($nfail) (see run.log) | | |" else empty end)
	' "$1"
}

if [[ -n $SUMMARY_ONLY ]]; then
	summarize "$SUMMARY_ONLY"
	exit 0
fi

[[ $(id -u) -eq 0 ]] || { echo "scale: must run as root" >&2; exit 1; }
[[ -f $AOED_BIN ]] || { echo "scale: $AOED_BIN not found (npm run build)" >&2; exit 1; }
make -s -C "$BENCH" aoe-load >/dev/null

if [[ -z $OUTDIR ]]; then
	OUTDIR="$BENCH/results/scale-$(date +%Y%m%d-%H%M%S)"
fi
mkdir -p "$OUTDIR"
RESULTS="$OUTDIR/results.jsonl"
LOG="$OUTDIR/run.log"
: >"$RESULTS"

# ---------------------------------------------------------------- state + cleanup
NSA="aoescale-a-$$"
NSB="aoescale-b-$$"
IFACE=aoe0
TMPFS=""
TARGET_PID=""
CLIENT_PID=""
HZ=$(getconf CLK_TCK)

log() { echo "[$(date +%T)] $*" | tee -a "$LOG" >&2; }

# shellcheck source=bench/netns.sh
source "$BENCH/netns.sh"

# microseconds since the epoch, without a fork
now_us() { echo "${EPOCHREALTIME/./}"; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_client
	stop_target 50
	teardown_net
	remove_tmpfs
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# config header; exports follow
config_head() {
	cat <<EOT
log-level: info
metrics: off
control-socket: off
EOT
	[[ -z $BUFFERS ]] || printf 'interfaces:\n  %s:\n    buffers: %d\n' "$IFACE" "$BUFFERS"
	echo "exports:"
}

# one export: path shelf slot [read-only]
config_export() {
	printf '  - path: %s\n    shelf: %d\n    slot: %d\n    interfaces: [%s]\n' "$1" "$2" "$3" "$IFACE"
	printf '    io: %s\n' "${AOED_IO:-auto}"
	[[ ${4:-} == ro ]] && printf '    read-only: true\n'
	return 0
}

# start_target NAME CONFIG: the daemon in the target namespace, stdout to NAME.log
start_target() {
	local name=$1 conf=$2
	# ip netns exec and sh -c exec both exec: $! is node itself
	# shellcheck disable=SC2086
	ip netns exec "$NSA" sh -c "exec node $AOED_NODE_ARGS '$AOED_BIN' --config '$conf' $AOED_ARGS" \
		>"$OUTDIR/$name.log" 2>&1 &
	TARGET_PID=$!
}

# wait for the client to find the exports: discover ARGS...
discover() {
	timeout 40 ip netns exec "$NSB" "$LOAD" -i "$IFACE" -d -D 30 "$@" >"$OUTDIR/discover.json" 2>>"$LOG"
}

# ---------------------------------------------------------------- spread
spread_run() { # variant(one|many) round
	local variant=$1 round=$2 conf args=() t0 t1 out rc limit
	if [[ $variant == one ]]; then
		conf=$TMPFS/one.yaml
		args=(-s 0 -l 0)
	else
		conf=$TMPFS/many.yaml
		args=(-s 0 -l 0 -L "$NSPREAD")
	fi
	log "spread round $round: $variant ($([[ $variant == one ]] && echo 1 || echo "$NSPREAD") export(s))"
	start_target "spread-$variant-r$round" "$conf"
	if ! discover "${args[@]}"; then
		log "spread $variant: the daemon did not answer discovery"
		stop_target 50
		jq -nc --arg v "$variant" --argjson round "$round" '{test: "spread", variant: $v, round: $round, failed: true}' >>"$RESULTS"
		return 0
	fi
	[[ -n $CLIENT_IO ]] && args+=(-m "$CLIENT_IO")
	# shellcheck disable=SC2206
	[[ -n $CLIENT_EXTRA ]] && args+=($CLIENT_EXTRA)
	limit=$(awk -v s="$SECS" -v w="$WARMUP" 'BEGIN { printf "%d", s + w + 30 }')
	t0=$(proc_ticks "$TARGET_PID")
	timeout -k 2 "$limit" ip netns exec "$NSB" "$LOAD" -i "$IFACE" -r -q "$QD" -n "$(((MTU - 36) / 512))" \
		-t "$SECS" -W "$WARMUP" "${args[@]}" >"$OUTDIR/client.out" 2>>"$LOG" &
	CLIENT_PID=$!
	rc=0
	wait "$CLIENT_PID" || rc=$?
	CLIENT_PID=""
	t1=$(proc_ticks "$TARGET_PID")
	out=$(cat "$OUTDIR/client.out")
	if [[ $rc -ne 0 || -z $out ]]; then
		log "spread $variant: client failed (rc $rc)"
		out='{"failed":true}'
	fi
	stop_target 50
	echo "$out" | jq -c --arg v "$variant" --argjson round "$round" --argjson ticks "$((t1 - t0))" --argjson hz "$HZ" \
		'. + {test: "spread", variant: $v, round: $round, target_cpu_s: ($ticks / $hz)}
		 | if .ops_all and .ops_all > 0 then . + {target_us_per_req: (1e6 * .target_cpu_s / .ops_all)} else . end' |
		tee -a "$RESULTS" |
		jq -r '"    \(.variant): \(.req_per_s // "FAILED") req/s, p50 \(.p50_us // "-") us, target \(.target_us_per_req // "-" | if type == "number" then (. * 100 | round) / 100 else . end) us/req, err \(.errors // "-"), retx \(.retransmits // "-")\(if .slots then ", per export \(.slot_ops_min)-\(.slot_ops_max) ops" else "" end)"' >&2
}

spread_test() {
	local i
	log "spread: 1 export of $((NSPREAD * SIZE_MB)) MiB vs $NSPREAD exports of $SIZE_MB MiB; q $QD, ${SECS}s + ${WARMUP}s, $ROUNDS rounds"
	fallocate -l "$((NSPREAD * SIZE_MB))M" "$TMPFS/one.img"
	{
		config_head
		config_export "$TMPFS/one.img" 0 0
	} >"$TMPFS/one.yaml"
	{
		config_head
		for i in $(seq 0 $((NSPREAD - 1))); do
			fallocate -l "${SIZE_MB}M" "$TMPFS/many-$i.img"
			config_export "$TMPFS/many-$i.img" 0 "$i"
		done
	} >"$TMPFS/many.yaml"
	for round in $(seq "$ROUNDS"); do
		spread_run one "$round"
		spread_run many "$round"
	done
	rm -f "$TMPFS"/one.img "$TMPFS"/many-*.img
}

# ---------------------------------------------------------------- startup
# ms from $1 (us since the epoch) to the time of the $4th (default first) log line
# matching jq filter $3 in file $2
log_ms_since() {
	{ log_lines "$2" "$3" | jq -r .time | sed -n "${4:-1}p" |
		jq -R -r --argjson t0 "$1" '
			capture("^(?<s>[^.]+)(\\.(?<f>[0-9]+))?Z$") as $c
			| (($c.s + "Z") | fromdateiso8601) + (("0." + ($c.f // "0")) | tonumber)
			| (. * 1e3 - $t0 / 1e3) * 1000 | round / 1000'; } 2>/dev/null || true
}

# the daemon's JSON log lines in file $1 that match jq filter $2 (other lines are skipped)
log_lines() {
	jq -R -c "fromjson? | select($2)" "$1" 2>/dev/null || true
}

# VmRSS etc. of a process as JSON with the given key suffix
mem_json() { # pid suffix
	awk -v s="$2" '
		/^VmRSS:/ { r = r sprintf("\"rss_%s_kb\":%d,", s, $2) }
		/^VmHWM:/ { r = r sprintf("\"hwm_%s_kb\":%d,", s, $2) }
		/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^RssShmem:/ { m = $2 }
		END {
			if (s == "start") r = r sprintf("\"rss_anon_kb\":%d,\"rss_file_kb\":%d,\"rss_shmem_kb\":%d,", a, f, m)
			sub(/,$/, "", r); print "{" r "}"
		}' "/proc/$1/status"
}

# wait until file $1 has $2 lines matching jq filter $3 (up to $4 s)
wait_lines() {
	local i n
	for i in $(seq $(($4 * 20))); do
		n=$(log_lines "$1" "$3" | wc -l)
		[[ $n -ge $2 ]] && return 0
		sleep 0.05
	done
	return 1
}

startup_config() { # read-only index or -1
	local i ro
	config_head
	for i in $(seq 0 $((NSTART - 1))); do
		ro=""
		[[ $i == "$1" ]] && ro=ro
		config_export "$TMPFS/sp-$i.img" $((i / PER_SHELF)) $((i % PER_SHELF)) "$ro"
	done
}

startup_run() { # round
	local round=$1 name="startup-r$1" t0 tc tw th rc client_ms log_ms mem1 mem2 file_ms hup_ms hup2_ms self_ms lf reasons
	local last=$((NSTART - 1)) flip=$((NSTART / 2))
	lf="$OUTDIR/$name.log"
	cp "$TMPFS/start.yaml" "$TMPFS/live.yaml"
	log "startup round $round: $NSTART exports"
	# the client listens first: it catches the last export's announcement or its answer
	timeout 60 ip netns exec "$NSB" "$LOAD" -i "$IFACE" -d -D 50 -s $((last / PER_SHELF)) -l $((last % PER_SHELF)) \
		>"$OUTDIR/discover.json" 2>>"$LOG" &
	CLIENT_PID=$!
	sleep 0.3
	t0=$(now_us)
	start_target "$name" "$TMPFS/live.yaml"
	rc=0
	wait "$CLIENT_PID" || rc=$?
	tc=$(now_us)
	CLIENT_PID=""
	if [[ $rc -ne 0 ]] || ! kill -0 "$TARGET_PID" 2>/dev/null; then
		log "startup: the last export was not discovered (rc $rc)"
		stop_target 50
		jq -nc --argjson round "$round" '{test: "startup", round: $round, failed: true}' >>"$RESULTS"
		return 0
	fi
	client_ms=$(((tc - t0) / 1000))
	wait_lines "$lf" 1 '.msg? // "" | startswith("aoed ready")' 30 || log "startup: no ready line"
	log_ms=$(log_ms_since "$t0" "$lf" '.msg? // "" | startswith("aoed ready")')
	sleep 1
	mem1=$(mem_json "$TARGET_PID" start)

	# Three reloads, each changing export $flip (read-only on, off, on again):
	# 1. SIGHUP right after writing the file: the first reload this daemon does.
	#    The watcher's reload of the same write follows 250 ms later: a no-op.
	# 2. the file watcher alone (its 250 ms debounce included)
	# 3. SIGHUP again, as 1: a later reload
	local rl='.msg? // "" | test("config (not )?reloaded")'
	startup_config "$flip" >"$TMPFS/flip.yaml"
	cat "$TMPFS/flip.yaml" >"$TMPFS/live.yaml"
	th=$(now_us)
	kill -HUP "$TARGET_PID"
	wait_lines "$lf" 2 "$rl" 30 || log "startup: missing reload lines (reload 1)"
	hup_ms=$(log_ms_since "$th" "$lf" "$rl" 1)
	sleep 0.3
	tw=$(now_us)
	cat "$TMPFS/start.yaml" >"$TMPFS/live.yaml"
	wait_lines "$lf" 3 "$rl" 30 || log "startup: missing reload line (reload 2)"
	file_ms=$(log_ms_since "$tw" "$lf" "$rl" 3)
	sleep 0.3
	cat "$TMPFS/flip.yaml" >"$TMPFS/live.yaml"
	th=$(now_us)
	kill -HUP "$TARGET_PID"
	wait_lines "$lf" 5 "$rl" 30 || log "startup: missing reload lines (reload 3)"
	hup2_ms=$(log_ms_since "$th" "$lf" "$rl" 4)
	# the order came out as planned? (reasons of lines 1, 3, 4)
	reasons=$(log_lines "$lf" "$rl" | jq -r '.reason' | sed -n '1p;3p;4p' | tr '\n' ' ')
	[[ $reasons == "SIGHUP file changed SIGHUP " ]] || log "startup: unexpected reload order: $reasons"
	# the duration the daemon reports on its reload line (the first reload), if it does
	self_ms=$(log_lines "$lf" "$rl" | jq -r '.durationMs // .ms // .duration_ms // empty' | head -n1)
	sleep 1
	mem2=$(mem_json "$TARGET_PID" reload)
	stop_target 50
	local failed_reloads
	failed_reloads=$(log_lines "$lf" '.msg? // "" | test("config not reloaded")' | wc -l)
	[[ $failed_reloads -eq 0 ]] || log "startup: $failed_reloads reload(s) failed, see $lf"
	jq -nc --argjson round "$round" --argjson n "$NSTART" --argjson c "$client_ms" --argjson l "${log_ms:-null}" \
		--argjson f "${file_ms:-null}" --argjson h "${hup_ms:-null}" --argjson h2 "${hup2_ms:-null}" --argjson s "${self_ms:-null}" \
		--argjson m1 "$mem1" --argjson m2 "$mem2" --argjson fr "$failed_reloads" \
		'{test: "startup", round: $round, exports: $n, client_ready_ms: $c, log_ready_ms: $l,
		  reload_hup_ms: $h, reload_file_ms: $f, reload_hup2_ms: $h2, reload_self_ms: $s, failed_reloads: $fr} + $m1 + $m2' |
		tee -a "$RESULTS" |
		jq -r '"    ready \(.client_ready_ms) ms (log \(.log_ready_ms) ms), reload SIGHUP \(.reload_hup_ms) ms, file \(.reload_file_ms) ms, SIGHUP again \(.reload_hup2_ms) ms, RSS \(.rss_start_kb / 1024 | round) -> \(.rss_reload_kb / 1024 | round) MiB, HWM \(.hwm_reload_kb / 1024 | round) MiB"' >&2
}

startup_test() {
	local i
	log "startup: $NSTART sparse ${SPARSE_MB} MiB exports, $ROUNDS rounds"
	for i in $(seq 0 $((NSTART - 1))); do
		truncate -s "${SPARSE_MB}M" "$TMPFS/sp-$i.img"
	done
	startup_config -1 >"$TMPFS/start.yaml"
	for round in $(seq "$ROUNDS"); do
		startup_run "$round"
	done
}

# ---------------------------------------------------------------- main
# (a function, so the whole script is parsed before anything runs)
main() {
	local need=64
	[[ " $TESTS " == *" spread "* ]] && need=$((need + 2 * NSPREAD * SIZE_MB))
	TMPFS=$(mktemp -d /tmp/aoescale-tmpfs.XXXXXX)
	mount -t tmpfs -o "size=${need}m" tmpfs "$TMPFS"
	{
		echo "date: $(date -Is)"
		echo "kernel: $(uname -r)  cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "node: $(node --version)  aoed: $AOED_BIN  git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo -)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
		echo "args: tests=$TESTS rounds=$ROUNDS secs=$SECS warmup=$WARMUP q=$QD mtu=$MTU spread_exports=$NSPREAD size_mb=$SIZE_MB buffers=${BUFFERS:-auto} startup_exports=$NSTART sparse_mb=$SPARSE_MB client_io=${CLIENT_IO:-default} extra=$CLIENT_EXTRA"
		echo "AOED_NODE_ARGS=$AOED_NODE_ARGS AOED_ARGS=$AOED_ARGS AOED_IO=${AOED_IO:-}"
	} >"$OUTDIR/params.txt"
	setup_net "$MTU"
	log "namespaces $NSA <-> $NSB, MTU $MTU; results in $OUTDIR"
	for t in $TESTS; do
		case $t in
		spread) spread_test ;;
		startup) startup_test ;;
		*) log "unknown test $t" ;;
		esac
	done
	summarize "$RESULTS" | tee "$OUTDIR/summary.md"
	echo
	echo "raw results: $RESULTS"
}

main "$@"; exit $?
