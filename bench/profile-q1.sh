#!/usr/bin/env bash
# profile-q1.sh: where a target's time goes at queue depth 1. Runs aoe-load at
# q 1 against aoed (or vblade) on tmpfs over the bench veth pair and, while it
# runs, `perf stat` and `perf record -g` on the target process. See
# bench/README.md, "profile-q1.sh".
#
# usage: profile-q1.sh [-T aoed|vblade] [-m MTU] [-w randread|seqread|seqwrite]
#                      [-I ring|rxring|mmsg] [-t SECS] [-o DIR]
# Needs root, perf (linux-perf), jq.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOAD="$BENCH/aoe-load"
TGT=aoed MTU=1500 WL=randread MODE=ring SECS=5 OUTDIR=""
while getopts "T:m:w:I:t:o:h" o; do
	case $o in
	T) TGT=$OPTARG ;;
	m) MTU=$OPTARG ;;
	w) WL=$OPTARG ;;
	I) MODE=$OPTARG ;;
	t) SECS=$OPTARG ;;
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
	[[ -z $CLIENT_PID ]] || { kill -TERM "$CLIENT_PID" 2>/dev/null || true; wait "$CLIENT_PID" 2>/dev/null || true; }
	stop_target
	teardown_net
	if [[ -n $TMPFS ]]; then
		umount "$TMPFS" 2>/dev/null || true
		rmdir "$TMPFS" 2>/dev/null || true
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

setup_net "$MTU"
TMPFS=$(mktemp -d /tmp/aoeprof-tmpfs.XXXXXX)
mount -t tmpfs -o size=160m tmpfs "$TMPFS"
fallocate -l $((128 << 20)) "$TMPFS/disk"
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

# 1 s warm-up, then SECS of perf stat, then SECS of perf record, all under load
total=$((1 + 2 * SECS + 1))
ip netns exec "$NSB" "$LOAD" -i "$IFACE" -s 0 -l 0 -t "$total" "${args[@]}" >"$OUTDIR/load.json" &
CLIENT_PID=$!
sleep 1
t0=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$TARGET_PID/stat")
perf stat -x, -p "$TARGET_PID" -e task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter \
	-e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendto,syscalls:sys_enter_poll \
	-o "$OUTDIR/stat.csv" -- sleep "$SECS"
t1=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$TARGET_PID/stat")
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
awk -F, -v rps="$rps" -v secs="$SECS" -v hz="$(getconf CLK_TCK)" -v ticks=$((t1 - t0)) '
	/^#/ || NF < 3 { next }
	{ v[$3] = $1 }
	END {
		n = rps * secs
		printf "requests/s %d, p50 %s\n", rps, p50
		printf "target CPU per request: %.1f us (task-clock), %.1f us (/proc stat)\n", v["task-clock"] * 1000 / n, ticks / hz * 1e6 / n
		printf "per request: %.2f system calls, %.2f epoll_wait, %.2f sendto, %.2f poll, %.2f context switches, %.3f migrations\n",
			v["raw_syscalls:sys_enter"] / n, v["syscalls:sys_enter_epoll_wait"] / n, v["syscalls:sys_enter_sendto"] / n,
			v["syscalls:sys_enter_poll"] / n, v["context-switches"] / n, v["cpu-migrations"] / n
	}' "$OUTDIR/stat.csv" | tee "$OUTDIR/summary.txt"
jq -c '{req_per_s, p50_us, p99_us, mean_us, retransmits}' "$OUTDIR/load.json" | tee -a "$OUTDIR/summary.txt"
echo "perf data and reports in $OUTDIR"
