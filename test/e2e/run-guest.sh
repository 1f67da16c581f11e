#!/usr/bin/env bash
# AoE end-to-end harness: the real Linux aoe initiator (Debian 6.1 kernel in
# QEMU/TCG) against a pluggable AoE target, over a private bridge.
#
#   netns e2e-ID-br   : br0 <- tap0 (QEMU guest eth0), tgtport, probeport
#                       dumpcap captures "ether proto 0x88a2" on br0
#   netns e2e-ID-tgt  : aoe0 (veth peer of tgtport)  <- the TARGET runs here
#   netns e2e-ID-probe: probe0 (veth peer of probeport) <- aoeping runs here, and
#                       ping0 <-> relay0 <-aoe-pad-relay.py-> probe0 (pads to 60 bytes)
#
# The target command is a shell template (--target-cmd, or env E2E_TARGET_CMD
# or TARGET_CMD) run as
# `sh -c` in netns e2e-ID-tgt, in its own process group, with placeholders
#   {iface} {file0} {file1} {mtu} {ns} {out}
# substituted and the same values exported as AOE_IFACE AOE_FILE0 AOE_FILE1
# AOE_MTU AOE_NETNS AOE_OUT.  It must export {file0} as shelf 0 slot 0 and
# {file1} as shelf 0 slot 1 on {iface}, and keep running until SIGTERM.
# --scenario failover (aoed: test/e2e/failover-target.sh) adds a second bridge
# and guest NIC, the target links aoe1..aoe3, {file2} and a control channel
# from the host to the guest; see README.md, "Failures under load".
# Default (vblade, one process per export):
#   vblade 0 0 {iface} {file0} & vblade 0 1 {iface} {file1} & wait
#
# Usage: run-guest.sh [--mtu 1500|9000] [--scenario discover|raw|ext4|full|reload|failover]
#                     [--target-cmd CMD] [--out DIR] [--img-mb N] [--timeout S] [--keep]
#        run-guest.sh --cleanup-stale   (remove leftovers of harness runs that were SIGKILLed)
# Every option has an environment twin (E2E_MTU, E2E_SCENARIO, E2E_TARGET_CMD,
# E2E_OUT, E2E_IMG_MB, E2E_TIMEOUT, E2E_KEEP=1); see README.md for the rest.
# Exit status 0 only if the guest scenario, the host-side checks, aoeping and
# the tshark check all pass.  Last line: "E2E-RESULT PASS|FAIL ...".
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${E2E_CACHE:-$ROOT/.cache/e2e}"

MTU="${E2E_MTU:-1500}"
SCENARIO="${E2E_SCENARIO:-full}"
DEFAULT_TARGET_CMD='vblade 0 0 {iface} {file0} & vblade 0 1 {iface} {file1} & wait'
TARGET_CMD="${E2E_TARGET_CMD:-${TARGET_CMD:-$DEFAULT_TARGET_CMD}}"
OUT="${E2E_OUT:-}"
IMG_MB="${E2E_IMG_MB:-256}"
TIMEOUT="${E2E_TIMEOUT:-900}"           # guest boot -> summary line
TARGET_TIMEOUT="${E2E_TARGET_TIMEOUT:-30}" # target start -> answers aoeping
KEEP="${E2E_KEEP:-0}"
IMG_DIR="${E2E_IMG_DIR:-/dev/shm}"
CAPTURE="${E2E_CAPTURE:-1}"
# guest layout (MiB / sectors); see guest-init.sh
RAW_OFF_MB=160
RAW_MB="${E2E_RAW_MB:-16}"
MARKER_SECTOR=491520 # 240 MiB
EXT4_MB=128
MD_MB="${E2E_MD_MB:-64}"
MD_FIO_MB=16
# reload scenario: fio region on e0.0, and the done marker the churn's last config adds
RELOAD_OFF_MB=64
RELOAD_MB="${E2E_RELOAD_MB:-16}"
RELOAD_MAX="${E2E_RELOAD_MAX:-150}"
RELOAD_DONE=e2.0
# failover scenario: verified fio passes on md0 (node loss) and on e0.2 (restart,
# link loss); see guest-init.sh
NODELOSS_OFF_MB=8
RESTART_OFF_MB=0
LINKLOSS_OFF_MB=16
FAILOVER_MB=8

CLEANUP_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
  --mtu) MTU="$2"; shift 2 ;;
  --scenario) SCENARIO="$2"; shift 2 ;;
  --target-cmd) TARGET_CMD="$2"; shift 2 ;;
  --out) OUT="$2"; shift 2 ;;
  --img-mb) IMG_MB="$2"; shift 2 ;;
  --timeout) TIMEOUT="$2"; shift 2 ;;
  --keep) KEEP=1; shift ;;
  --cleanup-stale) CLEANUP_ONLY=1; shift ;;
  -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

T_START=$(date +%s.%N)
ts() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
log() { printf '[e2e %ss] %s\n' "$(ts)" "$*"; }
HOST_PASS=0
HOST_FAIL=0
hpass() { HOST_PASS=$((HOST_PASS + 1)); echo "HOST-PASS $*"; }
hfail() { HOST_FAIL=$((HOST_FAIL + 1)); echo "HOST-FAIL $*"; }
die() { echo "HOST-FAIL setup: $*"; FATAL=1; exit 1; }
phase_t0() { PH_T0=$(date +%s.%N); }
phase_dt() { awk -v a="$PH_T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
TIMINGS=""
timing() { TIMINGS="$TIMINGS $1=$2"; }

[ "$(id -u)" = 0 ] || { echo "run-guest.sh must run as root" >&2; exit 2; }
case "$MTU" in '' | *[!0-9]*) echo "bad --mtu" >&2; exit 2 ;; esac
case "$SCENARIO" in discover | raw | ext4 | full | reload | failover) ;; *) echo "bad --scenario" >&2; exit 2 ;; esac
[ "$IMG_MB" -ge 256 ] || [ "$SCENARIO" = discover ] || { echo "--img-mb must be >= 256" >&2; exit 2; }
# layout: ext4 [0,128) MiB of e0.0; md legs [0, 1+MD_MB); raw regions
# [160, 160+2*RAW_MB); marker sector at 240 MiB
[ "$RAW_MB" -ge 1 ] && [ "$RAW_MB" -le 40 ] || { echo "E2E_RAW_MB must be 1..40" >&2; exit 2; }
[ "$MD_MB" -ge 32 ] && [ "$MD_MB" -le 150 ] || { echo "E2E_MD_MB must be 32..150" >&2; exit 2; }
[ "$RELOAD_MB" -ge 1 ] && [ "$RELOAD_MB" -le 96 ] || { echo "E2E_RELOAD_MB must be 1..96" >&2; exit 2; }
for t in ip qemu-system-x86_64 aoeping fio cmp python3 setsid timeout; do
  command -v "$t" >/dev/null || { echo "missing tool: $t (see test/e2e/README.md)" >&2; exit 2; }
done
if [ "$CAPTURE" = 1 ]; then
  for t in dumpcap tshark capinfos; do
    command -v "$t" >/dev/null || { echo "missing tool: $t (apt-get install tshark)" >&2; exit 2; }
  done
fi

# Leftovers of runs whose harness died without cleaning up (SIGKILL): namespaces
# e2e-XXXXpPID-* and images e2e-XXXXpPID-disk*.img whose PID is gone.  A
# namespace that still has processes in it is left alone (they are not ours).
cleanup_stale() {
  local ns pid f
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^e2e-[0-9a-f]{4}p[0-9]+-(br|tgt|probe)$'); do
    pid="${ns#e2e-????p}"
    pid="${pid%-*}"
    kill -0 "$pid" 2>/dev/null && continue
    if [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; then
      echo "stale netns $ns still has processes: $(ip netns pids "$ns" | tr '\n' ' ') -- leaving it" >&2
      continue
    fi
    echo "removing stale netns $ns" >&2
    ip netns del "$ns"
  done
  for f in "$IMG_DIR"/e2e-????p*-disk[012].img; do
    [ -e "$f" ] || continue
    pid="${f##*/e2e-????p}"
    pid="${pid%%-*}"
    kill -0 "$pid" 2>/dev/null || { echo "removing stale image $f" >&2; rm -f "$f"; }
  done
}
cleanup_stale
[ "$CLEANUP_ONLY" = 1 ] && exit 0

ID="$(printf '%04x' $((RANDOM)))p$$"
NS_BR="e2e-$ID-br"
NS_TGT="e2e-$ID-tgt"
NS_PROBE="e2e-$ID-probe"
[ -n "$OUT" ] || OUT="$CACHE/runs/mtu$MTU-$(date +%Y%m%d-%H%M%S)-$ID"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
FILE0="$IMG_DIR/e2e-$ID-disk0.img"
FILE1="$IMG_DIR/e2e-$ID-disk1.img"
FILE2="$IMG_DIR/e2e-$ID-disk2.img"
CAP="$OUT/capture.pcapng"
QEMU_PID=""
TARGET_PID=""
DUMPCAP_PID=""
RELAY_PID=""
TSHARK_PID=""
NETNS_MADE=""
FATAL=0

# ------------------------------------------------------------------ cleanup
stop_pid() { # pid signal grace_s [group]
  local pid="$1" sig="$2" grace="$3" grp="${4:-}" i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  if [ -n "$grp" ]; then kill "-$sig" -- "-$pid" 2>/dev/null; else kill "-$sig" "$pid" 2>/dev/null; fi
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    if [ -n "$grp" ]; then kill -KILL -- "-$pid" 2>/dev/null; else kill -KILL "$pid" 2>/dev/null; fi
  fi
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  stop_pid "$QEMU_PID" TERM 5
  stop_pid "$TARGET_PID" TERM 5 group
  stop_pid "$DUMPCAP_PID" TERM 10
  stop_pid "$RELAY_PID" TERM 2
  stop_pid "$TSHARK_PID" TERM 2
  local ns
  for ns in $NETNS_MADE; do ip netns del "$ns" 2>/dev/null; done
  if [ "$KEEP" != 1 ]; then
    rm -f "$FILE0" "$FILE1" "$FILE2" "$OUT/md-leg0.bin" "$OUT/md-leg1.bin"
    # the capture is only interesting when something failed
    [ "$rc" = 0 ] && rm -f "$CAP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM HUP

# ------------------------------------------------------------------ guest image
log "building/checking guest image"
phase_t0
bash "$HERE/build-guest.sh" || die "build-guest.sh failed"
# shellcheck disable=SC1091
. "$CACHE/guest.env"
timing build "$(phase_dt)"

# ------------------------------------------------------------------ network
log "network: netns $NS_BR/$NS_TGT/$NS_PROBE, MTU $MTU"
phase_t0
mkns() {
  ip netns add "$1" || die "ip netns add $1"
  NETNS_MADE="$NETNS_MADE $1"
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
  ip -n "$1" link set lo up
}
mkns "$NS_BR"
mkns "$NS_TGT"
mkns "$NS_PROBE"
{
  ip -n "$NS_BR" link add br0 type bridge stp_state 0 forward_delay 0 &&
    ip -n "$NS_BR" tuntap add dev tap0 mode tap &&
    ip -n "$NS_BR" link add tgtport type veth peer name aoe0 netns "$NS_TGT" &&
    ip -n "$NS_BR" link add probeport type veth peer name probe0 netns "$NS_PROBE" &&
    for p in tap0 tgtport probeport; do
      ip -n "$NS_BR" link set "$p" mtu "$MTU" master br0 up || exit 1
    done &&
    ip -n "$NS_BR" link set br0 mtu "$MTU" up &&
    ip -n "$NS_TGT" link set aoe0 mtu "$MTU" up &&
    ip -n "$NS_PROBE" link set probe0 mtu "$MTU" up &&
    ip -n "$NS_PROBE" link add ping0 mtu "$MTU" type veth peer name relay0 mtu "$MTU" &&
    ip -n "$NS_PROBE" link set ping0 up &&
    ip -n "$NS_PROBE" link set relay0 up
} || die "network setup failed"
# failover: three more target links, each with its own MAC (aoe1 and aoe2 on
# br0, aoe3 on br1), and a second guest NIC (tap1) on br1, so e0.2 has two
# independent paths: eth0-br0-aoe2 and eth1-br1-aoe3
LINKS="$NS_BR br0 $NS_BR tap0 $NS_BR tgtport $NS_BR probeport $NS_TGT aoe0 $NS_PROBE probe0"
if [ "$SCENARIO" = failover ]; then
  {
    ip -n "$NS_BR" link add br1 type bridge stp_state 0 forward_delay 0 &&
      ip -n "$NS_BR" tuntap add dev tap1 mode tap &&
      ip -n "$NS_BR" link set tap1 mtu "$MTU" master br1 up &&
      for n in 1 2 3; do
        br=br0
        [ $n = 3 ] && br=br1
        ip -n "$NS_BR" link add tgtport$n type veth peer name aoe$n netns "$NS_TGT" &&
          ip -n "$NS_BR" link set tgtport$n mtu "$MTU" master $br up &&
          ip -n "$NS_TGT" link set aoe$n mtu "$MTU" up || exit 1
        LINKS="$LINKS $NS_BR tgtport$n $NS_TGT aoe$n"
      done &&
      ip -n "$NS_BR" link set br1 mtu "$MTU" up
  } || die "failover network setup failed"
  LINKS="$LINKS $NS_BR br1 $NS_BR tap1"
fi
ip netns exec "$NS_PROBE" python3 "$HERE/aoe-pad-relay.py" probe0 relay0 >"$OUT/relay.log" 2>&1 &
RELAY_PID=$!
set -- $LINKS
while [ $# -gt 0 ]; do
  m=$(ip netns exec "$1" cat "/sys/class/net/$2/mtu")
  [ "$m" = "$MTU" ] || die "$2 in $1 has mtu $m"
  shift 2
done

if [ "$CAPTURE" = 1 ]; then
  # failover: both bridges into one file (frame.interface_id 0 = br0, 1 = br1)
  CAP_IFS="-i br0"
  [ "$SCENARIO" = failover ] && CAP_IFS="-i br0 -i br1"
  # shellcheck disable=SC2086
  ip netns exec "$NS_BR" dumpcap $CAP_IFS -f 'ether proto 0x88a2' -B 64 -w "$CAP" >"$OUT/dumpcap.log" 2>&1 &
  DUMPCAP_PID=$!
  for ((i = 0; i < 100; i++)); do
    [ -s "$CAP" ] && break
    kill -0 "$DUMPCAP_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -s "$CAP" ] || { cat "$OUT/dumpcap.log"; die "dumpcap did not start"; }
fi
timing net "$(phase_dt)"

# ------------------------------------------------------------------ target
phase_t0
truncate -s "${IMG_MB}M" "$FILE0" "$FILE1" "$FILE2" || die "cannot create backing files in $IMG_DIR"
# failover: the host's channel to the guest (its second serial port, ttyS1).
# The target writes acknowledgements to ctl.in; QEMU holds both FIFOs open.
CTL="$OUT/ctl"
if [ "$SCENARIO" = failover ]; then
  rm -f "$CTL.in" "$CTL.out"
  mkfifo "$CTL.in" "$CTL.out" || die "mkfifo $CTL.in $CTL.out"
fi
CMD="$TARGET_CMD"
CMD="${CMD//\{iface\}/aoe0}"
CMD="${CMD//\{file0\}/$FILE0}"
CMD="${CMD//\{file1\}/$FILE1}"
CMD="${CMD//\{file2\}/$FILE2}"
CMD="${CMD//\{mtu\}/$MTU}"
CMD="${CMD//\{ns\}/$NS_TGT}"
CMD="${CMD//\{out\}/$OUT}"
log "target (netns $NS_TGT): $CMD"
AOE_IFACE=aoe0 AOE_FILE0="$FILE0" AOE_FILE1="$FILE1" AOE_FILE2="$FILE2" AOE_MTU="$MTU" AOE_NETNS="$NS_TGT" AOE_OUT="$OUT" AOE_SCENARIO="$SCENARIO" \
  setsid ip netns exec "$NS_TGT" sh -c "$CMD" </dev/null >"$OUT/target.log" 2>&1 &
TARGET_PID=$!

# aoeping exits 0 once the config query for shelf.slot is answered.  It
# drops replies shorter than 60 bytes, which veth does not pad, so probe0 is
# the direct path and ping0 goes through aoe-pad-relay.py (pads like a NIC).
probe() { # iface slot timeout_s [extra aoeping args]
  local ifc="$1" slot="$2" to="$3"
  shift 3
  ip netns exec "$NS_PROBE" timeout "$((to + 2))" aoeping -s "$to" "$@" 0 "$slot" "$ifc"
}
ready=0
deadline=$(($(date +%s) + TARGET_TIMEOUT))
while [ "$(date +%s)" -lt "$deadline" ]; do
  kill -0 "$TARGET_PID" 2>/dev/null || break
  if probe ping0 0 1 >/dev/null 2>&1 && probe ping0 1 1 >/dev/null 2>&1; then ready=1; break; fi
done
if [ $ready != 1 ]; then
  tail -n 20 "$OUT/target.log"
  kill -0 "$TARGET_PID" 2>/dev/null || die "target command exited before e0.0 and e0.1 answered aoeping"
  die "target did not answer aoeping for e0.0 and e0.1 within ${TARGET_TIMEOUT}s"
fi
timing target_ready "$(phase_dt)"
if [ "$SCENARIO" = reload ] && [ ! -e "$OUT/churn.log" ]; then
  die "the reload scenario needs a target that runs the config churn and logs to {out}/churn.log (test/e2e/aoed-target.sh does)"
fi
if [ "$SCENARIO" = failover ] && [ ! -e "$OUT/failover-events.txt" ]; then
  die "the failover scenario needs a target that runs the failover orchestrator (test/e2e/failover-target.sh)"
fi
log "target answers; aoeping -I 0 0 probe0 (direct)"
identify_ok() { grep -q '^model:' "$1"; }
if probe probe0 0 3 -I >"$OUT/aoeping.txt" 2>&1 && identify_ok "$OUT/aoeping.txt"; then
  hpass "aoeping identify e0.0 (direct): $(grep -E '^(model|firmware_rev):' "$OUT/aoeping.txt" | tr -s ' \t\n' ' ')"
elif probe ping0 0 3 -I >"$OUT/aoeping.txt" 2>&1 && identify_ok "$OUT/aoeping.txt"; then
  if [ "${E2E_REQUIRE_PADDING:-0}" = 1 ]; then
    hfail "aoeping identify e0.0 works only through the padding relay: the target sends frames shorter than 60 bytes"
  else
    hpass "aoeping identify e0.0 (via padding relay; direct failed: target sends frames < 60 bytes): $(grep -E '^(model|firmware_rev):' "$OUT/aoeping.txt" | tr -s ' \t\n' ' ')"
  fi
else
  hfail "aoeping -I 0 0 failed: $(tr '\n' ' ' <"$OUT/aoeping.txt" | head -c 300)"
fi
sed 's/^/  aoeping| /' "$OUT/aoeping.txt"

# ------------------------------------------------------------------ guest
SEC0=$(($(stat -c %s "$FILE0") / 512))
SEC1=$(($(stat -c %s "$FILE1") / 512))
SEC0="${E2E_SEC0:-$SEC0}"
SEC1="${E2E_SEC1:-$SEC1}"
PAYLOAD="${E2E_PAYLOAD:-$(((MTU - 36) / 512 * 512))}"
RUN_ID="$ID$(date +%s)"
APPEND="console=ttyS0 panic=1 quiet loglevel=4 mitigations=off"
APPEND="$APPEND e2e_mtu=$MTU e2e_run=$RUN_ID e2e_scenario=$SCENARIO e2e_sec0=$SEC0 e2e_sec1=$SEC1"
APPEND="$APPEND e2e_payload=$PAYLOAD e2e_raw_off_mb=$RAW_OFF_MB e2e_raw_mb=$RAW_MB"
APPEND="$APPEND e2e_marker_sector=$MARKER_SECTOR e2e_ext4_mb=$EXT4_MB e2e_md_mb=$MD_MB e2e_md_fio_mb=$MD_FIO_MB"
APPEND="$APPEND e2e_disc_timeout=${E2E_DISCOVER_TIMEOUT:-60} e2e_md_timeout=${E2E_MD_TIMEOUT:-400}"
APPEND="$APPEND e2e_reload_off_mb=$RELOAD_OFF_MB e2e_reload_mb=$RELOAD_MB e2e_reload_max=$RELOAD_MAX e2e_reload_done=$RELOAD_DONE"
APPEND="$APPEND e2e_nodeloss_off_mb=$NODELOSS_OFF_MB e2e_restart_off_mb=$RESTART_OFF_MB"
APPEND="$APPEND e2e_linkloss_off_mb=$LINKLOSS_OFF_MB e2e_failover_mb=$FAILOVER_MB"
QEMU_EXTRA=()
if [ "$SCENARIO" = failover ]; then
  QEMU_EXTRA=(-netdev tap,id=n1,ifname=tap1,script=no,downscript=no
    -device "virtio-net-pci,netdev=n1,mac=52:54:00:ae:0e:02,host_mtu=$MTU"
    -chardev "pipe,id=ctl,path=$CTL" -device isa-serial,chardev=ctl)
fi
CON="$OUT/console.log"
: >"$CON"
log "booting guest ($KVER, TCG, 1 vCPU); console: $CON"
phase_t0
ip netns exec "$NS_BR" qemu-system-x86_64 -M pc -accel tcg -cpu max -smp 1 -m 1024 \
  -nodefaults -no-user-config -display none -monitor none -no-reboot \
  -serial "file:$CON" -kernel "$VMLINUX" -initrd "$INITRD" -append "$APPEND" \
  -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
  -device "virtio-net-pci,netdev=n0,mac=52:54:00:ae:0e:01,host_mtu=$MTU" "${QEMU_EXTRA[@]}" \
  </dev/null >"$OUT/qemu.log" 2>&1 &
QEMU_PID=$!

printed=0
show_console() {
  local n
  n=$(wc -l <"$CON")
  if [ "$n" -gt "$printed" ]; then
    sed -n "$((printed + 1)),${n}p" "$CON" | tr -d '\r' | sed 's/^/  guest| /'
    printed=$n
  fi
}
deadline=$(($(date +%s) + TIMEOUT))
guest_done=0
while :; do
  show_console
  if grep -q '^E2E-SUMMARY' "$CON"; then guest_done=1; break; fi
  kill -0 "$QEMU_PID" 2>/dev/null || break
  [ "$(date +%s)" -lt "$deadline" ] || break
  sleep 0.5
done
T_SUMMARY="$(phase_dt)"
# give the guest a moment to power off by itself
for ((i = 0; i < 100; i++)); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
stop_pid "$QEMU_PID" TERM 5
QEMU_PID=""
show_console
timing guest "$T_SUMMARY"
if [ $guest_done != 1 ]; then
  cat "$OUT/qemu.log"
  hfail "guest: no E2E-SUMMARY within ${TIMEOUT}s (QEMU $(kill -0 "$QEMU_PID" 2>/dev/null && echo running || echo exited))"
fi
SUMMARY="$(tr -d '\r' <"$CON" | grep '^E2E-SUMMARY' | tail -n1)"
# Not grep -q: it stops at the first match, and with pipefail the tr still
# writing a console log longer than its buffer (8 KiB) dies of SIGPIPE and
# turns a match into a failure (a 9 KiB log skipped the md checks once).
guest_step() { tr -d '\r' <"$CON" | grep "^E2E-PASS $1 " >/dev/null; }
info() { tr -d '\r' <"$CON" | sed -n "s/^E2E-INFO .*$1=\([^ ]*\).*/\1/p" | tail -n1; }

# ------------------------------------------------------------------ host checks
phase_t0
cd "$OUT" || die "cd $OUT"
# reload: the config churn (in the target's process group) writes its result
# a moment after its last edit
if [ "$SCENARIO" = reload ] && [ -e "$OUT/churn.log" ]; then
  for ((i = 0; i < 150; i++)); do
    [ -s "$OUT/churn-result.txt" ] && break
    kill -0 "$TARGET_PID" 2>/dev/null || break
    sleep 0.1
  done
fi
# stop the target first so every write it acknowledged is in the files
stop_pid "$TARGET_PID" TERM 5 group
TARGET_PID=""
# verify_pass WHAT FILE OFF_MB MB SEED PATTERN: a guest pass (pat_fio in
# guest-init.sh) is in FILE; PASS/FAIL line about WHAT
verify_pass() {
  local log="$OUT/host-fio-pass$5.txt"
  if fio --name=pass$5 --filename="$2" --rw=randwrite --bsrange=4k-128k --ioengine=psync \
    --offset="$3"M --size="$4"M --verify=pattern --verify_pattern="$6%o" \
    --verify_only --verify_fatal=1 --randrepeat=1 --randseed="$5" --verify_state_save=0 \
    >"$log" 2>&1 && grep -q 'READ: bw=' "$log"; then
    hpass "$1: pass $5 (pattern $6, $4 MiB at $3 MiB) verified in $(basename "$2")"
  else
    hfail "$1: pass $5 not in $2: $(grep -iE 'verify|bad|pattern|error' "$log" | head -n3 | tr '\n' ' ')"
  fi
}
if guest_step raw; then
  for i in 0 1; do
    f=$FILE0
    [ $i = 1 ] && f=$FILE1
    off=$((RAW_OFF_MB + i * RAW_MB))
    if fio --name=raw$i --filename="$f" --rw=write --bs=64k --ioengine=psync --offset=${off}M \
      --size=${RAW_MB}M --verify=crc32c --verify_only --verify_fatal=1 --randrepeat=1 --verify_state_save=0 \
      >"$OUT/host-fio-raw$i.txt" 2>&1 && grep -q 'READ: bw=' "$OUT/host-fio-raw$i.txt"; then
      hpass "raw data of e0.$i at ${off} MiB verified in backing file (fio crc32c)"
    else
      hfail "raw data of e0.$i not found in $f: $(grep -iE 'verify|bad|error' "$OUT/host-fio-raw$i.txt" | head -n3 | tr '\n' ' ')"
    fi
    got=$(dd if="$f" bs=512 skip=$MARKER_SECTOR count=1 2>/dev/null | tr -d '\000')
    if [ "$got" = "AOED-E2E run=$RUN_ID disk=e0.$i marker" ]; then
      hpass "marker sector of e0.$i found in $(basename "$f")"
    else
      hfail "marker sector of e0.$i: '$got'"
    fi
  done
fi
if guest_step md || guest_step nodeloss; then
  o0=$(info 'md_data_offset_e0\.0')
  o1=$(info 'md_data_offset_e0\.1')
  kib=$(info md_size_kib)
  if [ -z "$o0" ] || [ -z "$o1" ] || [ -z "$kib" ]; then
    hfail "md: guest did not report data offsets"
  else
    if cmp -n $((kib * 1024)) "$FILE0" "$FILE1" $((o0 * 512)) $((o1 * 512)) >/dev/null; then
      hpass "md legs identical in both backing files ($kib KiB at sectors $o0/$o1)"
    else
      hfail "md legs differ in the backing files"
    fi
    for i in 0 1; do
      f=$FILE0 o=$o0
      [ $i = 1 ] && f=$FILE1 o=$o1
      # the md device's contents from this leg: offsets in it are md offsets
      dd if="$f" of="$OUT/md-leg$i.bin" bs=1M iflag=skip_bytes skip=$((o * 512)) count=$((kib / 1024)) 2>/dev/null
      if guest_step nodeloss; then
        verify_pass "node loss, md leg e0.$i" "$OUT/md-leg$i.bin" "$(info nodeloss_off_mb)" "$(info nodeloss_mb)" \
          "$(info nodeloss_seed)" "$(info nodeloss_pattern)"
        continue
      fi
      if fio --name=md --filename="$OUT/md-leg$i.bin" --rw=write --bs=64k --ioengine=psync --offset=0 \
        --size=${MD_FIO_MB}M --verify=crc32c --verify_only --verify_fatal=1 --randrepeat=1 --verify_state_save=0 \
        >"$OUT/host-fio-md$i.txt" 2>&1 && grep -q 'READ: bw=' "$OUT/host-fio-md$i.txt"; then
        hpass "md data verified on leg e0.$i (fio crc32c)"
      else
        hfail "md data on leg e0.$i: $(grep -iE 'verify|bad|error' "$OUT/host-fio-md$i.txt" | head -n3 | tr '\n' ' ')"
      fi
    done
  fi
fi
if [ "$SCENARIO" = reload ]; then
  RES="$OUT/churn-result.txt"
  if [ ! -s "$RES" ]; then
    hfail "reload: no $RES: the reload scenario needs a target that runs the config churn (aoed-target.sh does); see churn.log, target.log"
  else
    if grep -q '^RESULT PASS' "$RES"; then
      hpass "config churn: $(sed -n 's/^SUMMARY //p' "$RES")"
    else
      hfail "config churn: $(sed -n 's/^SUMMARY //p' "$RES"); $(sed -n 's/^FAIL //p' "$RES" | head -n 5 | tr '\n' ';') (churn.log)"
    fi
    want=$(sed -n 's/^TARGETS //p' "$RES")
    got=$(info reload_devices)
    if [ -n "$want" ] && [ "$want" = "$got" ]; then
      hpass "the guest's final discovery sees exactly the last valid config's exports: $got"
    else
      hfail "the guest's final discovery sees '$got', the last valid config exports '$want'"
    fi
  fi
  seed=$(info reload_seed)
  pat=$(info reload_pattern)
  if [ -n "$seed" ] && [ -n "$pat" ]; then
    verify_pass "reload: e0.0's last pass" "$FILE0" "$RELOAD_OFF_MB" "$RELOAD_MB" "$seed" "$pat"
  fi
fi
for s in restart linkloss; do
  guest_step $s || continue
  verify_pass "$s: e0.2's last pass" "$FILE2" "$(info ${s}_off_mb)" "$(info ${s}_mb)" "$(info ${s}_seed)" "$(info ${s}_pattern)"
done
timing host_verify "$(phase_dt)"

# ------------------------------------------------------------------ capture
if [ "$CAPTURE" = 1 ]; then
  phase_t0
  stop_pid "$DUMPCAP_PID" TERM 10
  DUMPCAP_PID=""
  drops=$(sed -n "s/.*Packets received\/dropped on interface 'br0': \([0-9]*\)\/\([0-9]*\).*/\1 \2/p" "$OUT/dumpcap.log")
  frames=$(capinfos -Mc "$CAP" 2>/dev/null | sed -n 's/^Number of packets: *//p')
  log "capture: ${frames:-?} frames (dumpcap received/dropped: ${drops:-?}), $(du -h "$CAP" | cut -f1)"
  # two independent passes over the file, run in parallel (2 cores, guest is gone)
  tshark -r "$CAP" -Y _ws.malformed -T fields -e frame.number -e _ws.col.Info >"$OUT/malformed.txt" 2>"$OUT/tshark.err" &
  TSHARK_PID=$!
  # per-frame statistics: requests/responses, AoE errors, ATA errors, frames
  # shorter than 60 bytes (unpadded), requests whose tag never got an answer
  # (the initiator retransmits those with a new tag), frames whose version
  # nibble is not 1 (vblade's start-up announcement carries version 0)
  # (the last four fields are for failover-capture.py, which reads them from FRAMES)
  FRAMES=/dev/null
  [ "$SCENARIO" = failover ] && FRAMES="$OUT/frames.tsv"
  tshark -r "$CAP" -T fields -e frame.len -e aoe.version -e aoe.response -e aoe.cmd \
    -e aoe.flags_error -e aoe.ata.status -e aoe.tag -e frame.time_epoch -e frame.interface_id \
    -e aoe.major -e aoe.minor 2>/dev/null | tee "$FRAMES" | awk -F'\t' '
    function t(v) { return v == "1" || v == "True" }
    function num(v,  i, c, n) {
      v = tolower(v); if (substr(v, 1, 2) != "0x") return v + 0
      n = 0; for (i = 3; i <= length(v); i++) { c = index("0123456789abcdef", substr(v, i, 1)); n = n * 16 + c - 1 }
      return n }
    { if ($1 < 60) short++
      if ($2 != "1") { badver++; next }
      if (t($3)) { rsp++; if (t($5)) aoeerr++; if ($4 == 0 && $6 != "" && num($6) % 2 == 1) ataerr++; seen[$7] = 1 }
      else { req++; if ($4 == 0) ata++; asked[$7] = 1 } }
    END { for (k in asked) if (!(k in seen)) lost++
      printf "requests=%d ata_requests=%d responses=%d aoe_errors=%d ata_errors=%d short_frames=%d unanswered=%d not_version1=%d\n",
        req, ata, rsp, aoeerr, ataerr, short, lost, badver }' >"$OUT/capture-stats.txt"
  wait "$TSHARK_PID"
  trc=$?
  TSHARK_PID=""
  stats=$(cat "$OUT/capture-stats.txt")
  ata=$(echo "$stats" | sed -n 's/.*ata_requests=\([0-9]*\).*/\1/p')
  echo "E2E-CAPTURE $stats"
  if [ $trc != 0 ]; then
    hfail "tshark failed: $(head -c 300 "$OUT/tshark.err")"
  elif [ -s "$OUT/malformed.txt" ]; then
    hfail "tshark: $(wc -l <"$OUT/malformed.txt") malformed AoE frames, first: $(head -n3 "$OUT/malformed.txt" | tr '\n' ' ')"
  elif [ "${frames:-0}" -eq 0 ] || [ "${ata:-0}" -eq 0 ]; then
    hfail "tshark: capture has ${frames:-0} frames, ${ata:-0} ATA requests"
  else
    hpass "tshark: $frames AoE frames ($ata ATA requests), none malformed"
  fi
  if [ "$SCENARIO" = failover ]; then
    # frames dumpcap dropped, on both bridges (an answer whose request was dropped is not a fault)
    cdrops=$(sed -n "s/.*Packets received\/dropped on interface '[^']*': [0-9]*\/\([0-9]*\).*/\1/p" "$OUT/dumpcap.log" |
      awk '{n += $1} END {print n + 0}')
    python3 "$HERE/failover-capture.py" "$OUT/failover-events.txt" "$cdrops" <"$FRAMES" >"$OUT/failover-capture.txt"
    fc=$?
    rm -f "$FRAMES"
    grep '^E2E-FAILOVER' "$OUT/failover-capture.txt"
    if [ $fc = 0 ]; then
      hpass "failover capture: every e0.2 answer on its request's link; br0 alone while aoe3 was down, both links after"
    else
      hfail "failover capture: $(sed -n 's/^FAIL //p' "$OUT/failover-capture.txt" | tr '\n' ';')"
    fi
  fi
  timing tshark "$(phase_dt)"
fi

# ------------------------------------------------------------------ result
TOTAL=$(ts | tr -d ' ')
echo "guest: ${SUMMARY:-none}"
tr -d '\r' <"$CON" | grep -E '^E2E-(PASS|FAIL|SKIP)' | sed 's/^/  /'
echo "host: pass=$HOST_PASS fail=$HOST_FAIL"
echo "timings (s):$TIMINGS total=$TOTAL"
result=PASS
case "$SUMMARY" in *result=PASS*) ;; *) result=FAIL ;; esac
[ "$HOST_FAIL" = 0 ] || result=FAIL
echo "E2E-RESULT $result mtu=$MTU scenario=$SCENARIO total=${TOTAL}s out=$OUT"
[ $result = PASS ]
