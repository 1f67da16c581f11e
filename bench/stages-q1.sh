#!/usr/bin/env bash
# stages-q1.sh: where a durable write's time goes at queue depth 1, cut into
# stages from the kernel's own events: the request's arrival at the target's
# end of the veth, the first disk request it causes, the last disk completion
# before the reply, the reply's transmission, the next request's arrival.
# Runs aoe-load (1 KiB random writes, q 1) against `vblade -s` or aoed with
# `write-cache: false` and `direct-io: true` on DIR/aoebench-1024m.img, and
# traces block and net events for SECS seconds. See bench/README.md,
# "stages-q1.sh".
#
# usage: stages-q1.sh -y DIR [-T aoed|vblade] [-t SECS] [-o DIR]
# Needs root, tracefs (/sys/kernel/tracing), jq.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOAD="$BENCH/aoe-load"
TGT=aoed SECS=2 DISKDIR="" OUTDIR=""
while getopts "y:T:t:o:h" o; do
	case $o in
	y) DISKDIR=$OPTARG ;;
	T) TGT=$OPTARG ;;
	t) SECS=$OPTARG ;;
	o) OUTDIR=$OPTARG ;;
	*) sed -n '11,12p' "$0" >&2; exit 2 ;;
	esac
done
[[ -n $DISKDIR ]] || { sed -n '11,12p' "$0" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "stages-q1: must run as root" >&2; exit 1; }
TRACEFS=/sys/kernel/tracing
[[ -d $TRACEFS/instances ]] || { echo "stages-q1: no tracefs with instances at $TRACEFS" >&2; exit 1; }
IMG="$DISKDIR/aoebench-1024m.img"
if [[ ! -f $IMG || $(stat -c %s "$IMG") -ne $((1024 << 20)) ]]; then
	echo "stages-q1: $IMG is missing or not 1 GiB; bench/run-bench.sh -y $DISKDIR writes it" >&2
	exit 1
fi
make -s -C "$BENCH" >/dev/null
OUTDIR=${OUTDIR:-$BENCH/results/stages-q1-$TGT-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUTDIR"

NSA="aoestage-a-$$" NSB="aoestage-b-$$" IFACE=aoe0
TARGET_PID="" CLIENT_PID="" EVENTS="block/block_rq_issue block/block_rq_complete net/netif_rx net/net_dev_xmit"
# A trace instance of our own: its buffer, events and filters leave the
# system's tracing, and anyone else's, as they were.
TRACE="$TRACEFS/instances/aoestage-$$" TRACE_MADE=""
# shellcheck source=bench/netns.sh
source "$BENCH/netns.sh"
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $TRACE_MADE ]]; then
		echo 0 >"$TRACE/tracing_on" 2>/dev/null || true
		rmdir "$TRACE" || echo "stages-q1: could not remove the trace instance $TRACE" >&2
	fi
	stop_client
	stop_target
	teardown_net
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

setup_net 1500
export AOED_CONF_DIR=$OUTDIR
case $TGT in
aoed) cmd=(env AOED_WRITE_CACHE=false AOED_DIRECT_IO=true "$BENCH/aoed-target.sh" "$IFACE" "$IMG" 0 0) ;;
vblade) cmd=(vblade -s -b 64 0 0 "$IFACE" "$IMG") ;;
*) echo "stages-q1: unknown target $TGT" >&2; exit 2 ;;
esac
ip netns exec "$NSA" "${cmd[@]}" >"$OUTDIR/$TGT.log" 2>&1 &
TARGET_PID=$!
timeout 20 ip netns exec "$NSB" "$LOAD" -i "$IFACE" -s 0 -l 0 -d -D 15 >/dev/null

# 1 s of warm-up, SECS traced, 1 s after
ip netns exec "$NSB" "$LOAD" -i "$IFACE" -s 0 -l 0 -q 1 -w -r -b 2097152 -m ring \
	-t $((SECS + 2)) >"$OUTDIR/load.json" &
CLIENT_PID=$!
sleep 1
# Only the image's disk (the whole disk: its requests are traced there, not
# on a partition) and the veth (both of its ends are $IFACE).
read -r maj min < <(stat -c '%Hd %Ld' "$IMG")
[[ -f /sys/dev/block/$maj:$min/partition ]] && IFS=: read -r maj min <"/sys/dev/block/$maj:$min/../dev"
dev=$(((maj << 20) | min))
mkdir "$TRACE"
TRACE_MADE=1
echo 0 >"$TRACE/tracing_on"
# One clock for every CPU: the stages subtract times taken on different ones.
echo mono >"$TRACE/trace_clock"
# Per CPU. About 0.5 KiB of events per request: room for 20k requests a
# second, at most 256 MiB (for the 2 or 3 CPUs the events land on).
kb=$((SECS * 10240 + 4096))
((kb <= 262144)) || kb=262144
echo "$kb" >"$TRACE/buffer_size_kb"
for e in block/block_rq_issue block/block_rq_complete; do echo "dev == $dev" >"$TRACE/events/$e/filter"; done
for e in net/netif_rx net/net_dev_xmit; do echo "name == \"$IFACE\"" >"$TRACE/events/$e/filter"; done
for e in $EVENTS; do echo 1 >"$TRACE/events/$e/enable"; done
echo 1 >"$TRACE/tracing_on"
sleep "$SECS"
echo 0 >"$TRACE/tracing_on"
cp "$TRACE/trace" "$OUTDIR/trace.txt"
lost=$(cat "$TRACE"/per_cpu/cpu*/stats | awk '/^overrun:/ { n += $2 } END { print n + 0 }')
wait "$CLIENT_PID"
CLIENT_PID=""
((lost == 0)) || { echo "stages-q1: the trace buffer overran ($lost events lost): more events than it was sized for ($kb KiB per CPU)" >&2; exit 1; }
grep -q block_rq_issue "$OUTDIR/trace.txt" ||
	echo "stages-q1: no disk requests traced on $maj:$min (a device-mapper or btrfs volume?): the disk stages are empty" >&2

# A request is the frame with data (len >= 1024) received on the veth; its
# reply is the next short frame sent (len < 100). Requests without both a disk
# request and a reply in the window are left out.
awk '
	{
		t = ""; ev = ""; len = 0
		for (i = 1; i < NF; i++)
			if ($i ~ /^[0-9]+\.[0-9]+:$/) { t = substr($i, 1, length($i) - 1) * 1e6; ev = $(i + 1); break }
		if (t == "") next
		for (; i <= NF; i++) if ($i ~ /^len=/) len = substr($i, 5) + 0
		if (ev == "netif_rx:" && len >= 1024) {
			if (rep != "") print "reply_to_next_request", t - rep
			req = t; first = ""; last = ""; nio = 0; rep = ""
		} else if (ev == "block_rq_issue:" && req != "") {
			if (first == "") first = t
			nio++
		} else if (ev == "block_rq_complete:" && req != "") {
			last = t
		} else if (ev == "net_dev_xmit:" && len < 100 && req != "") {
			if (first != "" && last != "") {
				print "request_to_disk", first - req
				print "disk", last - first
				print "disk_to_reply", t - last
				print "disk_requests", nio
			}
			rep = t; req = ""
		}
	}' "$OUTDIR/trace.txt" >"$OUTDIR/stages.txt"

{
	jq -r --arg t "$TGT" '"\($t): \(.req_per_s|floor) req/s, client p50 \(.p50_us) us, mean \(.mean_us) us"' "$OUTDIR/load.json"
	for s in request_to_disk disk disk_to_reply reply_to_next_request disk_requests; do
		awk -v s=$s '$1 == s { print $2 }' "$OUTDIR/stages.txt" | sort -n | awk -v s=$s '
			{ v[NR] = $1; sum += $1 }
			END {
				if (NR == 0) { printf "%-22s none\n", s; exit }
				printf "%-22s n %d  mean %.1f  p10 %s  p50 %s  p90 %s  p99 %s\n", s, NR, sum / NR,
					v[int(NR * 0.1) + 1], v[int(NR * 0.5) + 1], v[int(NR * 0.9) + 1], v[int(NR * 0.99) + 1]
			}'
	done
} | tee "$OUTDIR/summary.txt"
