#!/usr/bin/env bash
# run-bench.sh: compare AoE targets (vblade, the no-I/O reflector, aoed)
# over a veth pair between two network namespaces. See bench/README.md.
#
# Needs root, iproute2, jq, gcc/make, and vblade for the vblade target.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOAD="$BENCH/aoe-load"
REFLECT="$BENCH/aoe-reflect"

# ---------------------------------------------------------------- defaults
ROUNDS=5
SECS=2
WARMUP=0.5
MTUS="1500 9000"
QDS="1 8 32"
WORKLOADS="randread seqread seqwrite"
TARGETS="vblade reflect aoed"
SIZE_MB=1024
SECTORS=auto
DISK_DIR=""     # -D: disk-backed mode, backing file in this directory
DURABLE=""      # -y: durable-write rows (write-cache off vs vblade -s), backing file in DISK_DIR
DISK_SIZE_MB=8192
OUTDIR=""
FORCE_QD=0
CLIENT_IOS="ring mmsg" # -I: every cell runs once per client I/O mode, back to back
CLIENT_EXTRA=""
RETX_MS=20      # aoe-load -T; 1000 on a disk (see below)
SUMMARY_ONLY=""
SHELF=0
SLOT=0
PIN=""
TOGETHER="" # -A: every target up at once, turns cell by cell
CACHE=cold    # -C: the backing file's page cache before each turn on a disk
FRESH=""      # -F / -U: a backing file on a disk made afresh, sparse or fallocated

# (templates contain braces, so no ${VAR:=default} here)
# vblade's buffer count is {bufs}: max(64, the deepest -q), so it takes the
# same queue depth as aoed (whose default queue-length is 64); at its default
# 16 a q32 row would compare vblade at qd 16 with aoed at 32.
VBLADE_CMD_SET=${VBLADE_CMD:+1}
[[ -n ${VBLADE_CMD:-} ]] || VBLADE_CMD='vblade -b {bufs} {shelf} {slot} {iface} {file}'
[[ -n ${REFLECT_CMD:-} ]] || REFLECT_CMD="$REFLECT"' -i {iface} -s {shelf} -l {slot}'
AOED_CMD=${AOED_CMD-"$BENCH/aoed-target.sh {iface} {file} {shelf} {slot}"}

usage() {
	cat <<EOF
usage: $0 [options]
  -R N        rounds; targets alternate A B C A B C ... (default $ROUNDS); ratios come
              with the range of the per-round ratios, "no difference" when it straddles 1.0
  -t SECS     measured seconds per run (default $SECS)
  -W SECS     warm-up seconds per run, not measured (default $WARMUP)
  -m "MTUS"   MTUs to test (default "$MTUS")
  -q "QDS"    queue depths (default "$QDS")
  -w "LIST"   workloads: randread seqread seqwrite randwrite randrw (random, half of the
              requests writes) (default "$WORKLOADS")
  -T "LIST"   targets: vblade reflect aoed, or NAME with its template in \$CMD_NAME
              (default "$TARGETS")
  -n SECT     sectors per request, or "auto" = (MTU-36)/512 (default $SECTORS)
  -S MIB      backing file size (default $SIZE_MB on tmpfs, $DISK_SIZE_MB with -D)
  -D DIR      disk-backed: the backing file is DIR/aoebench-<MIB>m.img on a real disk,
              written once with random data and reused; vblade runs with -d -b {bufs} (O_DIRECT),
              aoed with direct-io: true; defaults become -m 9000 -n 8 (4 KiB requests)
  -y DIR      durable writes: the backing file is DIR/aoebench-1024m.img on a real disk
              (buffered unless a target says otherwise); targets vblade_s (vblade -s -b {bufs}: O_SYNC),
              aoed_sync (aoed, write-cache: false), aoed_sync_inline (the same with
              io: sync: I/O on the event loop), aoed_sync_direct (the same with
              direct-io: true; aoed_sync_dwrites, with direct-io: writes, when
              named in -T), vblade_sd (vblade -s -d: O_SYNC and O_DIRECT) and
              aoed (write-cache: true, for reference), and local_fio when fio is
              installed; ref_group (aoe-reflect -f -g, a C target: O_DIRECT and
              group commit; ref_dsync, each write O_DSYNC, when named in -T);
              defaults become -w randwrite -n 2 (1 KiB) -m "1500 9000"
              -q "1 8 32" -S 1024; ratios are against vblade_s
  (target local_fio, with -D or -y: fio on the backing file itself, no network:
              the same requests at the same depth, O_DIRECT on io_uring, and O_DSYNC
              with -y; a reference for what the disk gives with no network to cross)
  -o DIR      output directory (default bench/results/<date>)
  -f          don't cap the queue depth by the target's advertised buffer count
  -I "MODES"  client I/O modes, each cell runs once in each, back to back:
              ring rxring mmsg (default "$CLIENT_IOS")
  -x "ARGS"   extra aoe-load arguments; they come last, so -x "-T MS" replaces the first
              retransmit timeout (20 ms, 1000 ms with -D and -y)
  -P "T C"    pin the target to CPU list T and the client to C (taskset), e.g. -P "0 1"
  -A          all targets up at once, each on a veth pair of its own, taking turns cell by
              cell (the order rotated by one each round): the runs a ratio compares are
              seconds apart, not a whole target's turn, for a disk whose speed drifts;
              on a disk the backing file is written back and its cache dropped (or
              filled, -C warm) before each turn
  -C CACHE    on a disk, the backing file's page cache before each turn: cold (default:
              written back and dropped) or warm (written back and read in whole), for
              what a target does with an image its host has cached
  -F          on a disk, a sparse backing file (DIR/aoebench-<MIB>m-sparse.img, made
              afresh with truncate for each run) instead of one written through:
              writes land in holes, as on an image made with truncate; give -S large
              enough that the run's writes fill little of it (e.g. -S 65536)
  -U          the same with a fallocated file (DIR/aoebench-<MIB>m-fallocated.img):
              its space reserved but unwritten, as on an image made with fallocate;
              it takes -S MiB of the disk and stays there after the run; give -S
              large enough here too (each write converts a 4 KiB block)
  -Q          quick run (~3 min): -R 2 -t 1 -W 0.3 -m 1500 -q "1 32" -w "randread seqwrite"
  -s FILE     don't run anything: print the table for an existing results.jsonl
Environment:
  AOED_DIRECT_IO, AOED_WRITE_CACHE, AOED_IO  written by aoed-target.sh as the export's
              direct-io, write-cache and io
              (AOED_DIRECT_IO defaults to true with -D, false on tmpfs)
  AOED_CMD    aoed command template (default: bench/aoed-target.sh, which writes a
              one-export config and runs dist/src/bin/aoed.cjs; empty skips aoed)
              placeholders: {iface} {file} {shelf} {slot} {mtu} {bufs}
              ({bufs} = max(64, the deepest -q): vblade's default buffer count here)
  VBLADE_CMD  default: '$VBLADE_CMD', with -D: 'vblade -d -b {bufs} ...'
              (without -b {bufs} vblade advertises 16 buffers: unequal depth above q 16)
  REFLECT_CMD default: 'aoe-reflect -i {iface} -s {shelf} -l {slot}'
EOF
	exit 2
}

MTUS_SET="" SECTORS_SET="" SIZE_SET=""
WORKLOADS_SET="" TARGETS_SET=""
while getopts "R:t:W:m:q:w:T:n:S:D:y:o:fI:x:P:AC:FUQs:h" o; do
	case $o in
	R) ROUNDS=$OPTARG ;;
	t) SECS=$OPTARG ;;
	W) WARMUP=$OPTARG ;;
	m) MTUS=$OPTARG MTUS_SET=1 ;;
	q) QDS=$OPTARG ;;
	w) WORKLOADS=$OPTARG WORKLOADS_SET=1 ;;
	T) TARGETS=$OPTARG TARGETS_SET=1 ;;
	n) SECTORS=$OPTARG SECTORS_SET=1 ;;
	S) SIZE_MB=$OPTARG SIZE_SET=1 ;;
	D) DISK_DIR=$OPTARG ;;
	y) DISK_DIR=$OPTARG DURABLE=1 ;;
	o) OUTDIR=$OPTARG ;;
	f) FORCE_QD=1 ;;
	I) CLIENT_IOS=$OPTARG ;;
	x) CLIENT_EXTRA=$OPTARG ;;
	P) PIN=$OPTARG ;;
	A) TOGETHER=1 ;;
	C) CACHE=$OPTARG ;;
	F) [[ $FRESH != fallocated ]] || { echo "run-bench: -F and -U exclude each other" >&2; usage; }; FRESH=sparse ;;
	U) [[ $FRESH != sparse ]] || { echo "run-bench: -F and -U exclude each other" >&2; usage; }; FRESH=fallocated ;;
	Q) ROUNDS=2 SECS=1 WARMUP=0.3 MTUS=1500 MTUS_SET=1 QDS="1 32" WORKLOADS="randread seqwrite" ;;
	s) SUMMARY_ONLY=$OPTARG ;;
	*) usage ;;
	esac
done

command -v jq >/dev/null || { echo "run-bench: jq is required" >&2; exit 1; }
[[ $CACHE == cold || $CACHE == warm ]] || { echo "run-bench: -C takes cold or warm, not $CACHE" >&2; usage; }
[[ -z $FRESH ]] || [[ -n $DISK_DIR && $CACHE == cold ]] || { echo "run-bench: -F and -U need -D or -y, and no -C warm" >&2; usage; }
for m in $CLIENT_IOS; do
	[[ $m == ring || $m == rxring || $m == mmsg ]] || { echo "run-bench: unknown client mode $m (-I)" >&2; usage; }
done
# vblade's buffer count ({bufs}): at least the deepest queue, and 64 like aoed's queue-length
VBLADE_BUFS=64
for q in $QDS; do ((q <= VBLADE_BUFS)) || VBLADE_BUFS=$q; done

if [[ -n $DURABLE ]]; then
	# Durable writes: every write stable before its reply. vblade -s opens O_SYNC;
	# -b {bufs} lets it take the same queue depth as aoed.
	[[ -n $SECTORS_SET ]] || SECTORS=2
	[[ -n $SIZE_SET ]] || SIZE_MB=1024
	[[ -n $WORKLOADS_SET ]] || WORKLOADS=randwrite
	[[ -n $TARGETS_SET ]] || TARGETS="vblade_s aoed_sync aoed_sync_inline aoed_sync_direct vblade_sd aoed ref_group local_fio"
	[[ -n ${CMD_vblade_s:-} ]] || CMD_vblade_s='vblade -s -b {bufs} {shelf} {slot} {iface} {file}'
	[[ -n ${CMD_vblade_sd:-} ]] || CMD_vblade_sd='vblade -s -d -b {bufs} {shelf} {slot} {iface} {file}'
	[[ -n ${CMD_aoed_sync:-} ]] || CMD_aoed_sync="env AOED_WRITE_CACHE=false $BENCH/aoed-target.sh {iface} {file} {shelf} {slot}"
	[[ -n ${CMD_aoed_sync_inline:-} ]] || CMD_aoed_sync_inline="env AOED_WRITE_CACHE=false AOED_IO=sync $BENCH/aoed-target.sh {iface} {file} {shelf} {slot}"
	# O_DIRECT: 1 KiB writes go to the disk without the page cache's read of the
	# rest of the page, which ext4 does under the file's lock, one write at a time.
	[[ -n ${CMD_aoed_sync_direct:-} ]] || CMD_aoed_sync_direct="env AOED_WRITE_CACHE=false AOED_DIRECT_IO=true $BENCH/aoed-target.sh {iface} {file} {shelf} {slot}"
	# The same writes, reads through the page cache (direct-io: writes); not in the default targets.
	[[ -n ${CMD_aoed_sync_dwrites:-} ]] || CMD_aoed_sync_dwrites="env AOED_WRITE_CACHE=false AOED_DIRECT_IO=writes $BENCH/aoed-target.sh {iface} {file} {shelf} {slot}"
	# C references over the same network and client (aoe-reflect -f): O_DIRECT, each
	# write O_DSYNC (fio's way; when named in -T), or group commit (aoed's way).
	[[ -n ${CMD_ref_dsync:-} ]] || CMD_ref_dsync="$REFLECT -i {iface} -s {shelf} -l {slot} -b {bufs} -f {file}"
	[[ -n ${CMD_ref_group:-} ]] || CMD_ref_group="$REFLECT -i {iface} -s {shelf} -l {slot} -b {bufs} -f {file} -g"
	export AOED_DIRECT_IO=${AOED_DIRECT_IO:-false}
	BACKING=disk
	RETX_MS=1000
elif [[ -n $DISK_DIR ]]; then
	# 4 KiB requests need a jumbo MTU: (1500-36)/512 = 2 sectors at most.
	[[ -n $MTUS_SET ]] || MTUS=9000
	[[ -n $SECTORS_SET ]] || SECTORS=8
	[[ -n $SIZE_SET ]] || SIZE_MB=$DISK_SIZE_MB
	[[ -n $VBLADE_CMD_SET ]] || VBLADE_CMD='vblade -d -b {bufs} {shelf} {slot} {iface} {file}'
	export AOED_DIRECT_IO=${AOED_DIRECT_IO:-true}
	BACKING=disk
	RETX_MS=1000
else
	BACKING=tmpfs
fi

# ---------------------------------------------------------------- summary
# Markdown tables: every client mode side by side, every run, and the goals;
# medians over rounds, ratios with their per-round range (bench/summarize.jq).
summarize() {
	jq -s -r -f "$BENCH/summarize.jq" "$1"
}

if [[ -n $SUMMARY_ONLY ]]; then
	summarize "$SUMMARY_ONLY"
	exit 0
fi

[[ $(id -u) -eq 0 ]] || { echo "run-bench: must run as root" >&2; exit 1; }
make -s -C "$BENCH" >/dev/null

if [[ -z $OUTDIR ]]; then
	OUTDIR="$BENCH/results/$(date +%Y%m%d-%H%M%S)"
fi
mkdir -p "$OUTDIR"
RESULTS="$OUTDIR/results.jsonl"
LOG="$OUTDIR/run.log"
: >"$RESULTS"

# ---------------------------------------------------------------- state + cleanup
NSA="aoebench-a-$$"
NSB="aoebench-b-$$"
IFACE=aoe0
TMPFS=""
WORKDIR=""      # private scratch dir (disk mode): aoed's config
BACKFILE=""     # the backing file the targets export
FILL_TMP=""     # a backing file being written (removed if interrupted)
DEV=""          # disk mode: block device name in /proc/diskstats
TARGET_PID=""
CLIENT_PID=""
declare -A PIDS=() LINKS=() # -A: each target's PID and link
HZ=$(getconf CLK_TCK)

log() { echo "[$(date +%T)] $*" | tee -a "$LOG" >&2; }

# shellcheck source=bench/netns.sh
source "$BENCH/netns.sh"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_client
	stop_target
	stop_all
	teardown_net
	remove_tmpfs
	if [[ -n $WORKDIR ]]; then
		rm -f "$WORKDIR"/*.yaml 2>/dev/null || true
		rmdir "$WORKDIR" 2>/dev/null || true
	fi
	[[ -z $FILL_TMP ]] || rm -f "$FILL_TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# CPU ticks (utime+stime, plus reaped children) of the processes listed
tree_ticks() {
	local total=0 p v
	for p in "$@"; do
		v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || v=0
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

expand() { # template -> command line
	local t=$1
	t=${t//\{iface\}/$IFACE}
	t=${t//\{file\}/$BACKFILE}
	t=${t//\{shelf\}/$SHELF}
	t=${t//\{slot\}/$SLOT}
	t=${t//\{mtu\}/$CUR_MTU}
	t=${t//\{bufs\}/$VBLADE_BUFS}
	echo "$t"
}

# Exits unless DIR has room for a SIZE_MB file and 1 GiB besides.
need_room() {
	local avail
	avail=$(df -Pk "$1" | awk 'NR == 2 { print int($4 / 1024) }')
	if ((avail < SIZE_MB + 1024)); then
		log "not enough room in $1: $avail MiB free, need $SIZE_MB + 1024"
		exit 1
	fi
}

# Disk mode: DIR/aoebench-<MIB>m.img, written once from /dev/urandom (every
# block really allocated and holding data, unlike a sparse or fallocated file,
# whose reads may never reach the disk), then reused while its size is right.
prepare_disk_file() {
	local dir=$1 bytes=$((SIZE_MB * 1024 * 1024)) f
	mkdir -p "$dir"
	f="$dir/aoebench-${SIZE_MB}m.img"
	if [[ $FRESH == sparse ]]; then
		f="$dir/aoebench-${SIZE_MB}m-sparse.img"
		rm -f "$f"
		truncate -s "$bytes" "$f"
		log "sparse backing file $f ($SIZE_MB MiB, made afresh)"
	elif [[ $FRESH == fallocated ]]; then
		f="$dir/aoebench-${SIZE_MB}m-fallocated.img"
		rm -f "$f"
		need_room "$dir"
		fallocate -l "$bytes" "$f" || { rm -f "$f"; log "fallocate $f failed"; exit 1; }
		log "fallocated backing file $f ($SIZE_MB MiB, made afresh)"
	elif [[ -f $f && $(stat -c %s "$f") -eq $bytes && $(($(stat -c %b "$f") * $(stat -c %B "$f"))) -ge $bytes ]]; then
		log "reusing backing file $f ($SIZE_MB MiB)"
	else
		[[ -f $f ]] || need_room "$dir"
		rm -f "$f"
		log "writing backing file $f: $SIZE_MB MiB of random data (once; later runs reuse it)"
		FILL_TMP="$f.partial"
		dd if=/dev/urandom of="$FILL_TMP" bs=4M count=$((SIZE_MB / 4)) iflag=fullblock oflag=direct status=none
		if ((SIZE_MB % 4)); then
			dd if=/dev/urandom of="$FILL_TMP" bs=1M seek=$((SIZE_MB / 4 * 4)) count=$((SIZE_MB % 4)) \
				iflag=fullblock oflag=direct conv=notrunc status=none
		fi
		sync "$FILL_TMP"
		mv "$FILL_TMP" "$f"
		FILL_TMP=""
	fi
	BACKFILE=$f
	# the whole disk that holds it, for the device counters in /proc/diskstats
	local src
	src=$(findmnt -no SOURCE --target "$dir" 2>/dev/null | head -n1)
	src=${src##*/}
	if [[ -n $src ]] && awk -v d="$src" '$3 == d { f = 1 } END { exit !f }' /proc/diskstats; then
		DEV=$src
	else
		log "no /proc/diskstats entry for the filesystem of $dir: disk counters off"
	fi
}

# Sets the backing file's page cache for the next turn (-C): cold drops its
# pages (posix_fadvise DONTNEED), so a buffered target does not start with the
# last one's; warm reads the whole file in. Written back first either way:
# DONTNEED leaves dirty pages (a write-cache target's) in memory, and dirty
# pages left would be written while the next target runs.
set_cache() {
	[[ $BACKING == disk ]] || return 0
	sync "$BACKFILE" 2>/dev/null || true
	if [[ $CACHE == warm ]]; then
		cat "$BACKFILE" >/dev/null
	else
		dd if="$BACKFILE" iflag=nocache count=0 status=none 2>/dev/null || true
	fi
}

# reads, ms reading, io_ticks, time_in_queue of $DEV, and now in ns
disk_sample() {
	[[ -n $DEV ]] || { echo ""; return; }
	awk -v d="$DEV" '$3 == d { printf "%s %s %s %s ", $4, $7, $13, $14 }' /proc/diskstats
	date +%s%N
}

# busy and steal jiffies of all CPUs together (/proc/stat), and the CPU count
cpu_sample() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}

# A target's command template; fails for a name with none.
target_template() {
	local name=$1
	case $name in
	vblade) echo "$VBLADE_CMD" ;;
	reflect) echo "$REFLECT_CMD" ;;
	aoed) echo "$AOED_CMD" ;;
	*)
		local var="CMD_$name"
		[[ $name =~ ^[A-Za-z0-9_]+$ && -n ${!var:-} ]] || return 1
		echo "${!var}"
		;;
	esac
}

# The program a target's template runs (past env, its options and VAR=value
# words); fails for a target with no template.
target_program() {
	local tmpl w
	tmpl=$(target_template "$1") || return 1
	for w in $tmpl; do
		case $w in env | -* | *=*) ;; *)
			echo "$w"
			return 0
			;;
		esac
	done
	return 1
}

start_target() {
	local name=$1 tmpl cmd
	if ! tmpl=$(target_template "$name"); then
		log "unknown target $name (no \$CMD_$name)"
		return 1
	fi
	cmd=$(expand "$tmpl")
	set_cache
	log "start $name: $cmd"
	# ip netns exec execs (no fork) and so does sh -c exec: $! is the target itself
	$TPIN ip netns exec "$NSA" sh -c "exec $cmd" >>"$OUTDIR/$name.log" 2>&1 &
	TARGET_PID=$!
	# wait for it to answer query config
	if ! timeout 20 ip netns exec "$NSB" "$LOAD" -i "$IFACE" -s "$SHELF" -l "$SLOT" -d -D 15 >"$OUTDIR/discover.json" 2>>"$LOG"; then
		log "$name did not answer discovery"
		stop_target
		return 1
	fi
	if ! kill -0 "$TARGET_PID" 2>/dev/null; then
		log "$name exited"
		TARGET_PID=""
		return 1
	fi
	log "$name up: $(cat "$OUTDIR/discover.json")"
}

# local_fio: fio on the backing file itself, no network in between. The same
# requests (size, pattern, range, depth) with O_DIRECT on io_uring, and with
# -y O_DSYNC, so each write is stable when it completes and the kernel shares
# the disk's cache flushes among the writes in flight: a reference for what
# the disk gave at that moment to a program with no network to cross.
local_fio_args() { # workload q sectors -> LOCAL_FIO_ARGS
	local rw ms_run ms_warm
	case $1 in
	randread) rw=randread ;; seqread) rw=read ;; seqwrite) rw=write ;; randwrite) rw=randwrite ;;
	randrw) rw="randrw --rwmixwrite=50" ;;
	*) return 1 ;;
	esac
	ms_run=$(awk -v s="$SECS" 'BEGIN { printf "%d", s * 1000 }')
	ms_warm=$(awk -v s="$WARMUP" 'BEGIN { printf "%d", s * 1000 }')
	# shellcheck disable=SC2206
	LOCAL_FIO_ARGS=(--name=local_fio --filename="$BACKFILE" --size=$((DISK_SECTORS * 512)) --rw=$rw
		--bs=$(($3 * 512)) --direct=1 --ioengine=io_uring --iodepth="$2" --norandommap --randrepeat=0
		--time_based --runtime="${ms_run}ms" --ramp_time="${ms_warm}ms" --lat_percentiles=1 --output-format=json)
	[[ -z $DURABLE ]] || LOCAL_FIO_ARGS+=(--sync=dsync)
}

# fio's JSON (file) as aoe-load's fields; fails if fio reported an error
local_fio_result() { # file workload q sectors
	local op=write
	[[ $2 == *read ]] && op=read
	[[ $2 == randrw ]] && op=mixed
	# mixed: the reads and writes added up; fio gives percentiles per
	# direction only, so none for the two together
	jq -c --argjson q "$3" --argjson sect "$4" --arg op "$op" '
		.jobs[0] as $j
		| (if $op == "read" then [$j.read] elif $op == "write" then [$j.write] else [$j.read, $j.write] end) as $ds
		| ($ds | map(.runtime) | max / 1000) as $s
		| if $j.error != 0 or $s <= 0 then error("fio failed: error \($j.error)") else
		  {ops: ($ds | map(.total_ios) | add), seconds: $s, req_per_s: ($ds | map(.iops) | add),
		   mb_per_s: ($ds | map(.bw_bytes) | add / 1e6),
		   p50_us: (if $op == "mixed" then null else $ds[0].lat_ns.percentile["50.000000"] / 1000 end),
		   p99_us: (if $op == "mixed" then null else $ds[0].lat_ns.percentile["99.000000"] / 1000 end),
		   errors: 0, op: $op, qd: $q, qd_requested: $q, sectors: $sect, local: true,
		   target_cpu_window_s: (($j.usr_cpu + $j.sys_cpu) / 100 * $s), target_cpu_window_wall_s: $s} end' "$1"
}

run_cell() { # target workload q round client-mode
	local tgt=$1 wl=$2 q=$3 round=$4 mode=$5 args=() t0 t1 out rc pids
	case $wl in
	randread) args+=(-r) ;;
	seqread) ;;
	seqwrite) args+=(-w) ;;
	randwrite) args+=(-w -r) ;;
	randrw) args+=(-r -M 50) ;;
	*) log "unknown workload $wl"; return 1 ;;
	esac
	[[ $FORCE_QD == 1 ]] && args+=(-f)
	# On a disk a target that serves one request at a time (vblade) keeps the
	# last of q requests waiting q x its service time: 32 x 3 ms of O_SYNC is
	# far beyond 20 ms, and each spurious retransmit is one more write for it to
	# do, until it collapses (64 req/s, p50 0.7 s). So the first retransmit
	# waits 1 s there; -x "-T MS" overrides it.
	args+=(-m "$mode" -T "$RETX_MS")
	local nsect=$SECTORS
	[[ $nsect == auto ]] && nsect=$(((CUR_MTU - 36) / 512))
	# shellcheck disable=SC2206
	[[ -n $CLIENT_EXTRA ]] && args+=($CLIENT_EXTRA)
	local limit
	limit=$(awk -v s="$SECS" -v w="$WARMUP" 'BEGIN { printf "%d", s + w + 30 }')
	local d0 d1 c0 c1 load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	# the target's process tree, listed once per run (ps -e is slow on a busy machine)
	local tree=()
	[[ -z $TARGET_PID ]] || read -r -a tree <<<"$TARGET_PID $(descendants "$TARGET_PID" | tr '\n' ' ')"
	t0=$(tree_ticks "${tree[@]}")
	# aoe-load samples these processes' CPU time over its measured window
	pids=$(IFS=,; echo "${tree[*]}")
	d0=$(disk_sample)
	c0=$(cpu_sample)
	# in the background + wait, so a signal to the harness is handled at once
	if [[ $tgt == local_fio ]]; then
		local_fio_args "$wl" "$q" "$nsect"
		rm -f "$OUTDIR/fio.json"
		timeout -k 2 "$limit" $TPIN fio "${LOCAL_FIO_ARGS[@]}" --output="$OUTDIR/fio.json" >/dev/null 2>>"$LOG" &
	else
		timeout -k 2 "$limit" $CPIN ip netns exec "$NSB" "$LOAD" -i "$IFACE" -s "$SHELF" -l "$SLOT" \
			-q "$q" -t "$SECS" -W "$WARMUP" -n "$nsect" -b "$DISK_SECTORS" -p "$pids" "${args[@]}" \
			>"$OUTDIR/client.out" 2>>"$LOG" &
	fi
	CLIENT_PID=$!
	rc=0
	wait "$CLIENT_PID" || rc=$?
	CLIENT_PID=""
	d1=$(disk_sample)
	c1=$(cpu_sample)
	out=""
	if [[ $tgt != local_fio ]]; then
		out=$(cat "$OUTDIR/client.out")
	elif [[ $rc -eq 0 ]]; then
		out=$(local_fio_result "$OUTDIR/fio.json" "$wl" "$q" "$nsect" 2>>"$LOG") || rc=$?
	fi
	t1=$(tree_ticks "${tree[@]}")
	local alive=true
	[[ $tgt == local_fio ]] || kill -0 "$TARGET_PID" 2>/dev/null || alive=false
	if [[ $rc -ne 0 || -z $out ]]; then
		log "client failed (rc $rc) for $tgt $wl q$q $mode"
		out='{"failed":true}'
	fi
	# direct I/O as configured: vblade -d; aoed-target.sh's AOED_DIRECT_IO, set in
	# the target's own command or for the whole run
	local dio=null tmpl=""
	[[ $tgt == local_fio ]] && dio=true || tmpl=" $(target_template "$tgt") "
	if [[ $tmpl == *vblade* ]]; then
		[[ $tmpl == *" -d "* ]] && dio=true || dio=false
	elif [[ $tmpl == *aoe-reflect*" -f "* ]]; then
		dio=true
	elif [[ $tmpl == *aoed* ]]; then
		local setting=${AOED_DIRECT_IO:-false}
		[[ $tmpl =~ AOED_DIRECT_IO=([a-z]*) ]] && setting=${BASH_REMATCH[1]}
		case $setting in
		true) dio=true ;;
		writes) dio='"writes"' ;;
		*) dio=false ;;
		esac
	fi
	echo "$out" | jq -c --arg tgt "$tgt" --arg wl "$wl" --argjson q "$q" --argjson mtu "$CUR_MTU" \
		--argjson round "$round" --argjson ticks "$((t1 - t0))" --argjson hz "$HZ" --argjson alive "$alive" \
		--arg backing "$BACKING" --arg file "$BACKFILE" --argjson size_mb "$SIZE_MB" --argjson dio "$dio" \
		--arg dev "$DEV" --arg d0 "$d0" --arg d1 "$d1" --arg load "$load" --arg aoed_io "${AOED_IO:-}" \
		--arg c0 "$c0" --arg c1 "$c1" --argjson ncpu "$(nproc)" --argjson force "$FORCE_QD" --arg mode "$mode" \
		--argjson together "${TOGETHER:-0}" --arg cache "$CACHE" --arg fresh "$FRESH" \
		'. + {tgt: $tgt, workload: $wl, q_set: $q, mtu_set: $mtu, round: $round, client_io: $mode, target_alive: $alive,
		      target_cpu_s: ($ticks / $hz), backing: $backing, backing_file: $file, backing_mib: $size_mb,
		      direct_io: $dio, loadavg: ($load | split(" ") | map(tonumber))}
		 | if $force == 1 then . + {force_qd: true} else . end
		 | if $together == 1 then . + {together: true} else . end
		 | if $cache == "warm" then . + {cache: "warm"} else . end
		 | if $fresh == "sparse" then . + {sparse: true} elif $fresh == "fallocated" then . + {fallocated: true} else . end
		 | if .local then .target_cpu_s = .target_cpu_window_s else . end
		 | ($c0 | split(" ") | map(tonumber)) as $ca | ($c1 | split(" ") | map(tonumber)) as $cb
		 | (if $cb[2] > $ca[2] then . + {machine_busy_pct: (100 * $ncpu * ($cb[0] - $ca[0]) / ($cb[2] - $ca[2])),
		       machine_steal_pct: (100 * $ncpu * ($cb[1] - $ca[1]) / ($cb[2] - $ca[2]))} else . end)
		 | if $tgt == "aoed" and $aoed_io != "" then . + {aoed_io: $aoed_io} else . end
		 | if $dev != "" and $d0 != "" and $d1 != "" then
		       ($d0 | split(" ") | map(tonumber)) as $a | ($d1 | split(" ") | map(tonumber)) as $b
		       | (($b[4] - $a[4]) / 1e6) as $ms | ($b[0] - $a[0]) as $rd
		       | . + {dev: $dev, dev_reads: $rd, dev_r_per_s: ($rd / $ms * 1000),
		              dev_r_await_ms: (if $rd > 0 then ($b[1] - $a[1]) / $rd else null end),
		              dev_util: (($b[2] - $a[2]) / $ms), dev_avg_qd: (($b[3] - $a[3]) / $ms)}
		   else . end
		 | if .target_cpu_window_s != null and .ops > 0 then
		       . + {cpu_s_per_gb: (.target_cpu_window_s / (.ops * .sectors * 512 / 1e9)), cpu_window: "measured",
		            target_cpu_pct: (100 * .target_cpu_window_s / .target_cpu_window_wall_s)}
		   elif .ops_all and .ops_all > 0 then
		       . + {cpu_s_per_gb: (.target_cpu_s / (.ops_all * .sectors * 512 / 1e9)), cpu_window: "whole run",
		            target_cpu_pct: (100 * .target_cpu_s / .elapsed_s)}
		   else . end' | tee -a "$RESULTS" |
		jq -r '"    \(.tgt) \(.workload) q\(.q_set) \(.client_io): \(.req_per_s // "FAILED") req/s, \(.mb_per_s // "-") MB/s, p99 \(.p99_us // "-") us, cpu \(.target_cpu_s) s, err \(.errors // "-"), retx \(.retransmits // "-")\(if .dev then ", disk \(.dev_r_per_s | round) r/s qd \(.dev_avg_qd * 10 | round / 10)" else "" end), machine \(.machine_busy_pct // 0 | round) %, load \(.loadavg[0])"' >&2
	if [[ $alive == false ]]; then
		log "$tgt died during $wl q$q $mode"
		wait "$TARGET_PID" 2>/dev/null || true
		TARGET_PID=""
		return 1
	fi
}

# One cell of one target in every client mode, back to back, so they see the
# same conditions, in reverse order every other round so neither always goes
# first (e.g. into aoed's still cold mapping); recorded as failed while the
# target is down.
run_modes() { # target workload q round
	local mode
	for mode in $(if (($4 % 2)); then echo $CLIENT_IOS; else echo $CLIENT_IOS | tr ' ' '\n' | tac; fi); do
		if [[ -z $TARGET_PID && $1 != local_fio ]]; then
			CLIENT_IOS=$mode record_failed "$1" "$2" "$3" "$4"
			continue
		fi
		run_cell "$1" "$2" "$3" "$4" "$mode" || true
	done
}

# -A: start every target, each on a link of its own (aoe0, aoe1, ...)
start_all() {
	local tgt i=0
	for tgt in "${ACTIVE_TARGETS[@]}"; do
		[[ $tgt != local_fio ]] || continue
		IFACE=aoe$i
		((i == 0)) || add_link "$IFACE" "$CUR_MTU"
		LINKS[$tgt]=$IFACE
		PIDS[$tgt]=""
		start_target "$tgt" && PIDS[$tgt]=$TARGET_PID
		TARGET_PID=""
		i=$((i + 1))
	done
	IFACE=aoe0
}

stop_all() {
	local tgt
	for tgt in "${!PIDS[@]}"; do
		TARGET_PID=${PIDS[$tgt]}
		stop_target
		PIDS[$tgt]=""
	done
}

# -A: the rounds, the targets taking turns in each cell (workload, q), every
# client mode of a target back to back
run_together() {
	local round wl q tgt order
	start_all
	for round in $(seq "$ROUNDS"); do
		log "MTU $CUR_MTU round $round/$ROUNDS"
		# rotated by one each round, so no target always follows the same one
		order=("${ACTIVE_TARGETS[@]:$(((round - 1) % ${#ACTIVE_TARGETS[@]}))}" "${ACTIVE_TARGETS[@]}")
		order=("${order[@]:0:${#ACTIVE_TARGETS[@]}}")
		for wl in $WORKLOADS; do
			for q in $QDS; do
				for tgt in "${order[@]}"; do
					set_cache
					IFACE=${LINKS[$tgt]:-aoe0} TARGET_PID=${PIDS[$tgt]:-}
					run_modes "$tgt" "$wl" "$q" "$round"
					# run_cell empties TARGET_PID when the target died
					[[ $tgt == local_fio ]] || PIDS[$tgt]=$TARGET_PID
					TARGET_PID=""
				done
			done
		done
	done
	IFACE=aoe0
	stop_all
}

record_failed() { # target workload q round: a run that produced no result, in every client mode
	local mode
	for mode in $CLIENT_IOS; do
		jq -nc --arg tgt "$1" --arg wl "$2" --argjson q "$3" --argjson mtu "$CUR_MTU" --argjson round "$4" \
			--arg backing "$BACKING" --arg mode "$mode" --argjson force "$FORCE_QD" --argjson together "${TOGETHER:-0}" \
			'{failed: true, tgt: $tgt, workload: $wl, q_set: $q, mtu_set: $mtu, round: $round, backing: $backing,
			  client_io: $mode}
			 | if $force == 1 then . + {force_qd: true} else . end
			 | if $together == 1 then . + {together: true} else . end' >>"$RESULTS"
	done
}

# ---------------------------------------------------------------- main
# (a function, so the whole script is parsed before anything runs: editing
# the file during a run cannot break the run)
main() {
	TPIN="" CPIN=""
	if [[ -n $PIN ]]; then
		read -r tp cp <<<"$PIN"
		[[ -n ${tp:-} && -n ${cp:-} ]] || usage
		TPIN="taskset -c $tp" CPIN="taskset -c $cp"
	fi
	ACTIVE_TARGETS=()
	for t in $TARGETS; do
		if [[ $t == aoed && -z $AOED_CMD ]]; then
			log "AOED_CMD not set: skipping aoed"
			continue
		fi
		if prog=$(target_program "$t") && ! command -v "$prog" >/dev/null; then
			log "$prog (the program of $t's command) not installed: skipping $t"
			continue
		fi
		if [[ " ${ACTIVE_TARGETS[*]} " == *" $t "* ]]; then
			log "target $t named twice in -T"
			exit 2
		fi
		if [[ $t == local_fio && $BACKING != disk ]]; then
			log "local_fio runs on a disk (-D or -y): skipping it"
			continue
		fi
		if [[ $t == local_fio ]] && ! command -v fio >/dev/null; then
			log "fio not installed: skipping local_fio"
			continue
		fi
		ACTIVE_TARGETS+=("$t")
	done
	[[ ${#ACTIVE_TARGETS[@]} -gt 0 ]] || { log "no targets"; exit 1; }

	if [[ $BACKING == disk ]]; then
		WORKDIR=$(mktemp -d /tmp/aoebench-work.XXXXXX)
		prepare_disk_file "$DISK_DIR"
	else
		TMPFS=$(mktemp -d /tmp/aoebench-tmpfs.XXXXXX)
		mount -t tmpfs -o "size=$((SIZE_MB + 64))m" tmpfs "$TMPFS"
		fallocate -l "$((SIZE_MB * 1024 * 1024))" "$TMPFS/disk"
		WORKDIR=$TMPFS BACKFILE=$TMPFS/disk
	fi
	# aoed-target.sh writes its config here (not beside a backing file on a real disk)
	export AOED_CONF_DIR=$WORKDIR
	DISK_SECTORS=$((SIZE_MB * 2048))

	ncells=$(($(wc -w <<<"$MTUS") * $(wc -w <<<"$WORKLOADS") * $(wc -w <<<"$QDS") * $(wc -w <<<"$CLIENT_IOS") * ${#ACTIVE_TARGETS[@]} * ROUNDS))
	log "targets: ${ACTIVE_TARGETS[*]}; backing: $BACKING $BACKFILE; MTUs: $MTUS; sectors: $SECTORS; workloads: $WORKLOADS; q: $QDS; client modes: $CLIENT_IOS; rounds: $ROUNDS; vblade buffers: $VBLADE_BUFS"
	log "$ncells runs of ${SECS}s + ${WARMUP}s warm-up (about $(awk -v n="$ncells" -v s="$SECS" -v w="$WARMUP" 'BEGIN{printf "%d", n*(s+w+0.4)/60+1}') min); results in $OUTDIR"
	{
		echo "date: $(date -Is)"
		echo "kernel: $(uname -r)  cpus: $(nproc)"
		echo "args: retx_ms=$RETX_MS rounds=$ROUNDS secs=$SECS warmup=$WARMUP mtus=$MTUS qds=$QDS workloads=$WORKLOADS sectors=$SECTORS size_mb=$SIZE_MB force_qd=$FORCE_QD pin=${PIN:-none} together=${TOGETHER:-0} cache=$CACHE fresh=${FRESH:-no} client_io=$CLIENT_IOS vblade_bufs=$VBLADE_BUFS extra=$CLIENT_EXTRA"
		echo "backing: $BACKING $BACKFILE${DEV:+ (device $DEV)}"
		echo "loadavg: $(cat /proc/loadavg)"
		echo "AOED_DIRECT_IO=${AOED_DIRECT_IO:-} AOED_WRITE_CACHE=${AOED_WRITE_CACHE:-} AOED_IO=${AOED_IO:-}"
		echo "VBLADE_CMD=$VBLADE_CMD"
		echo "REFLECT_CMD=$REFLECT_CMD"
		echo "AOED_CMD=$AOED_CMD"
	} >"$OUTDIR/params.txt"

	for CUR_MTU in $MTUS; do
		if [[ $SECTORS != auto ]] && ((SECTORS > (CUR_MTU - 36) / 512)); then
			log "MTU $CUR_MTU carries at most $(((CUR_MTU - 36) / 512)) sectors per frame, not $SECTORS: skipping it"
			continue
		fi
		setup_net "$CUR_MTU"
		log "MTU $CUR_MTU: namespaces $NSA <-> $NSB"
		if [[ -n $TOGETHER ]]; then
			run_together
			teardown_net
			continue
		fi
		for round in $(seq "$ROUNDS"); do
			for tgt in "${ACTIVE_TARGETS[@]}"; do
				log "MTU $CUR_MTU round $round/$ROUNDS target $tgt"
				if [[ $tgt == local_fio ]]; then
					set_cache
				elif ! start_target "$tgt"; then
					for wl in $WORKLOADS; do for q in $QDS; do
						record_failed "$tgt" "$wl" "$q" "$round"
					done; done
					continue
				fi
				for wl in $WORKLOADS; do
					for q in $QDS; do
						run_modes "$tgt" "$wl" "$q" "$round"
					done
				done
				stop_target
			done
		done
		teardown_net
	done

	summarize "$RESULTS" | tee "$OUTDIR/summary.md"
	echo
	echo "raw results: $RESULTS"
}

main "$@"; exit $?
