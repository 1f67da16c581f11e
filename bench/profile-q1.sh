#!/usr/bin/env bash
# profile-q1.sh: where a target's time goes at queue depth 1. Runs aoe-load at
# q 1 against aoed (or vblade) on tmpfs over the bench veth pair and, while it
# runs, `perf stat` and `perf record -g` on the target process. See
# bench/README.md, "profile-q1.sh".
#
# usage: profile-q1.sh [-T aoed|vblade] [-m MTU] [-w randread|seqread|seqwrite]
#                      [-I ring|rxring|mmsg] [-t SECS] [-W SECS] [-S MIB] [-o DIR]
# Needs root, perf (linux-perf), jq.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOAD="$BENCH/aoe-load"
TGT=aoed MTU=1500 WL=randread MODE=ring SECS=5 WARM=1 SIZE_MB=128 OUTDIR=""
while getopts "T:m:w:I:t:W:S:o:h" o; do
	case $o in
	T) TGT=$OPTARG ;;
	m) MTU=$OPTARG ;;
	w) WL=$OPTARG ;;
	I) MODE=$OPTARG ;;
	t) SECS=$OPTARG ;;
	W) WARM=$OPTARG ;;
	S) SIZE_MB=$OPTARG ;;
	o) OUTDIR=$OPTARG ;;
	*) sed -n '5,7p' "$0" >&2; exit 2 ;;
	esac
done
[[ $(id -u) -eq 0 ]] || { echo "profile-q1: must run as root" >&2; exit 1; }
command -v perf >/dev/null || { echo "profile-q1: perf is required (apt-get install linux-perf)" >&2; exit 1; }
make -s -C "$BENCH" >/dev/null
OUTDIR=${OUTDIR:-$BENCH/results/profile-q1-$TGT-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUTDIR"

NSA="aoeprof-a-$$" NSB="aoeprof-b-$$" IFACE=aoe0
TARGET_PID="" CLIENT_PID="" TMPFS=""
# shellcheck source=bench/netns.sh
source "$BENCH/netns.sh"
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_client
	stop_target
	teardown_net
	remove_tmpfs
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

setup_net "$MTU"
TMPFS=$(mktemp -d /tmp/aoeprof-tmpfs.XXXXXX)
mount -t tmpfs -o size=$((SIZE_MB + 32))m tmpfs "$TMPFS"
fallocate -l $((SIZE_MB << 20)) "$TMPFS/disk"
export AOED_CONF_DIR=$TMPFS

case $TGT in
# --perf-basic-prof: V8 writes /tmp/perf-PID.map, so perf can name JIT frames
aoed) cmd="env NODE_OPTIONS=--perf-basic-prof $BENCH/aoed-target.sh $IFACE $TMPFS/disk 0 0" ;;
vblade) cmd="vblade -b 64 0 0 $IFACE $TMPFS/disk" ;;
*) echo "profile-q1: unknown target $TGT" >&2; exit 2 ;;
esac
ip netns exec "$NSA" sh -c "exec $cmd" >"$OUTDIR/$TGT.log" 2>&1 &
TARGET_PID=$!
timeout 20 ip netns exec "$NSB" "$LOAD" -i "$IFACE" -s 0 -l 0 -d -D 15 >/dev/null
# aoed-target.sh execs node, so $TARGET_PID is the target itself
args=(-q 1 -m "$MODE")
case $WL in
randread) args+=(-r) ;;
seqread) ;;
seqwrite) args+=(-w) ;;
*) echo "profile-q1: unknown workload $WL" >&2; exit 2 ;;
esac

# WARM s of warm-up, then SECS of perf stat, then SECS of perf record, all under load
total=$((WARM + 2 * SECS + 1))
ip netns exec "$NSB" "$LOAD" -i "$IFACE" -s 0 -l 0 -t "$total" "${args[@]}" >"$OUTDIR/load.json" &
CLIENT_PID=$!
sleep "$WARM"
# utime, stime (ticks), voluntary and involuntary context switches of the main thread
sample() {
	echo "$(awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$TARGET_PID/task/$TARGET_PID/stat")" \
		"$(awk '/^voluntary_ctxt/ { v = $2 } /^nonvoluntary_ctxt/ { n = $2 } END { print v, n }' "/proc/$TARGET_PID/task/$TARGET_PID/status")"
}
s0=$(sample)
perf stat -x, -p "$TARGET_PID" -e task-clock,context-switches,cpu-migrations,page-faults,raw_syscalls:sys_enter \
	-e syscalls:sys_enter_sendto,syscalls:sys_enter_write \
	-o "$OUTDIR/stat.csv" -- sleep "$SECS"
s1=$(sample)
perf record -q -g -F 1999 -p "$TARGET_PID" -o "$OUTDIR/perf.data" -- sleep "$SECS" 2>/dev/null
wait "$CLIENT_PID" || true
CLIENT_PID=""
# the perf map must still be there when perf report resolves JIT frames
perf report -i "$OUTDIR/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
	grep -v '^$' | head -120 >"$OUTDIR/self.txt" || true
perf report -i "$OUTDIR/perf.data" --no-children --sort dso --stdio 2>/dev/null |
	grep -v '^$' | head -30 >"$OUTDIR/dso.txt" || true
perf report -i "$OUTDIR/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
	grep -v '^$' | head -80 >"$OUTDIR/children.txt" || true
stop_target

rps=$(jq .req_per_s "$OUTDIR/load.json")
awk -F, -v rps="$rps" -v secs="$SECS" -v hz="$(getconf CLK_TCK)" -v s0="$s0" -v s1="$s1" '
	/^#/ || NF < 3 { next }
	{ v[$3] = $1 }
	END {
		split(s0, a, " "); split(s1, b, " ")
		# requests in the window: at q 1 one reply per request, and each reply is one
		# system call: send() for aoed (its kick), write() for vblade
		n = v["syscalls:sys_enter_sendto"] + v["syscalls:sys_enter_write"]
		if (n == 0) n = rps * secs
		printf "target CPU per request: %.1f us (task-clock, all threads); main thread %.1f us user + %.1f us system (/proc stat)\n",
			v["task-clock"] * 1000 / n, (b[1] - a[1]) / hz * 1e6 / n, (b[2] - a[2]) / hz * 1e6 / n
		printf "main thread per request: %.2f voluntary (sleeps) and %.2f involuntary (preempted) context switches\n",
			(b[3] - a[3]) / n, (b[4] - a[4]) / n
		printf "per request: %.2f system calls, %.2f sendto, %.2f page faults, %.2f context switches, %.3f migrations\n",
			v["raw_syscalls:sys_enter"] / n, v["syscalls:sys_enter_sendto"] / n, v["page-faults"] / n,
			v["context-switches"] / n, v["cpu-migrations"] / n
	}' "$OUTDIR/stat.csv" | tee "$OUTDIR/summary.txt"
jq -c '{req_per_s, p50_us, p99_us, mean_us, retransmits}' "$OUTDIR/load.json" | tee -a "$OUTDIR/summary.txt"
echo "perf data and reports in $OUTDIR"
