#!/bin/bash
# The e2e target command of --scenario failover (README.md, "Failures under
# load"): three aoed processes, each with its own links (MACs), and the
# orchestrator that fails them when the guest asks.
#   node A: e0.0 ({file0}) on aoe0          -- md leg 0
#   node B: e0.1 ({file1}) on aoe1          -- md leg 1
#   node C: e0.2 ({file2}) on aoe2 and aoe3 -- two paths (aoe3 is on br1)
# The guest prints "E2E-HOST <what>" on its console; this script does <what>
# and answers "ok <what> key=value..." (or "error <what> reason") on the
# guest's ttyS1 (OUT/ctl.in). Each node logs to OUT/node-X.log; every action
# with its host time (epoch seconds) goes to OUT/failover-events.txt, which
# run-guest.sh reads to analyse the capture.
# Usage: failover-target.sh FILE0 FILE1 FILE2 OUTDIR
set -u
file0=$1 file1=$2 file2=$3 out=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
aoed="$root/dist/src/bin/aoed.cjs"
events="$out/failover-events.txt"
: >"$events"

declare -A PID
# node_config NAME EXPORT FILE METRICS_PORT IFACES...: write OUT/node-NAME.yaml
node_config() {
  local name=$1 target=$2 file=$3 port=$4
  shift 4
  local shelf=${target#e} ifs
  ifs=$(echo "$@" | tr ' ' ',')
  # its own control socket and state: several aoeds share this machine
  local sock="$out/node-$name.sock"
  [ ${#sock} -le 100 ] || sock=off
  cat >"$out/node-$name.yaml" <<EOT
state-dir: $out/node-$name-state
control-socket: $sock
metrics: { listen: "127.0.0.1:$port" }
exports:
  - name: $target
    path: $file
    shelf: ${shelf%.*}
    slot: ${shelf#*.}
    interfaces: [$ifs]
EOT
}
ready_lines() { cat "$out/node-$1.log" 2>/dev/null | grep -c '"msg":"aoed ready'; }
# start NAME: start the node and wait (10 s at most) for its "aoed ready" line
start() {
  local before
  before=$(ready_lines "$1")
  node "$aoed" --config "$out/node-$1.yaml" >>"$out/node-$1.log" 2>&1 &
  PID[$1]=$!
  for ((i = 0; i < 200; i++)); do
    [ "$(ready_lines "$1")" -gt "$before" ] && return 0
    kill -0 "${PID[$1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "node $1 did not log ready: $(tail -n 3 "$out/node-$1.log")"
  return 1
}
now() { date +%s.%N; }
event() { echo "$1 $(now)" >>"$events"; }
# answer LINE: to the guest's ttyS1 (bounded: the FIFO blocks once QEMU is gone)
answer() {
  echo "answer: $1"
  timeout 5 sh -c 'printf "%s\n" "$1" >"$2"' sh "$1" "$out/ctl.in"
}
# scrape NAME TAG: node NAME's metrics to OUT/metrics-TAG-node-NAME.txt (for the
# vitest test and docs/operations.md)
scrape() {
  curl -s --max-time 2 "http://127.0.0.1:${PORT[$1]}/metrics" >"$out/metrics-$2-node-$1.txt"
}
stop_all() {
  local p
  for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait "${PID[@]}"
  exit 0
}
trap stop_all TERM INT

declare -A PORT=([a]=9288 [b]=9289 [c]=9290)
node_config a e0.0 "$file0" ${PORT[a]} aoe0
node_config b e0.1 "$file1" ${PORT[b]} aoe1
node_config c e0.2 "$file2" ${PORT[c]} aoe2 aoe3
for n in a b c; do start $n || exit 1; done
echo "nodes ready: a=${PID[a]} b=${PID[b]} c=${PID[c]}"

ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%d", (b-a)*1000}'; }
do_step() {
  local t0 t1 t2 rc
  case "$1" in
  kill-node-a)
    event kill-node-a
    kill -KILL "${PID[a]}"
    wait "${PID[a]}" 2>/dev/null
    answer "ok kill-node-a pid=${PID[a]}"
    ;;
  start-node-a)
    t0=$(now)
    if start a; then
      event node-a-ready
      answer "ok start-node-a start_ms=$(ms "$t0" "$(now)")"
    else
      answer "error start-node-a"
    fi
    ;;
  restart-node-c)
    # the gap with no answers, as the host sees it: SIGTERM -> exit -> start -> ready
    t0=$(now)
    event restart-sigterm
    kill -TERM "${PID[c]}"
    wait "${PID[c]}"
    rc=$?
    t1=$(now)
    event restart-exited
    if [ $rc = 0 ] && start c; then
      t2=$(now)
      event restart-ready
      answer "ok restart-node-c exit=$rc stop_ms=$(ms "$t0" "$t1") start_ms=$(ms "$t1" "$t2") down_ms=$(ms "$t0" "$t2")"
    else
      answer "error restart-node-c exit=$rc"
    fi
    ;;
  link-down)
    event link-down
    ip link set aoe3 down && answer "ok link-down aoe3" || answer "error link-down"
    ;;
  metrics-linkloss | metrics-end)
    # after the link loss (before the restart clears node C's counters), and at the end
    for n in a b c; do scrape $n "${1#metrics-}"; done
    answer "ok $1"
    ;;
  link-up)
    # before the command, as link-down: the link may carry frames before ip returns
    event link-up
    ip link set aoe3 up && answer "ok link-up aoe3" || answer "error link-up"
    ;;
  *) answer "error $1 unknown" ;;
  esac
}

# The console file exists once the guest boots; -F follows it from then on.
# The loop runs in this shell (not a pipeline's subshell): it starts and waits
# for the nodes.
while IFS= read -r line; do
  line=${line%$'\r'}
  case "$line" in
  E2E-HOST\ *)
    set -- ${line#E2E-HOST }
    echo "guest asks: $1"
    do_step "$1"
    ;;
  esac
done < <(tail -n +1 -F "$out/console.log" 2>/dev/null)
