#!/bin/sh
# /init of the AoE end-to-end guest (busybox ash).  Parameters come from the
# kernel command line (e2e_*=...), results go to the serial console as
#   E2E-PASS <step> <seconds> [detail]
#   E2E-FAIL <step> <reason>
#   E2E-SKIP <step> <reason>
#   E2E-INFO key=value ...
# and one final line
#   E2E-SUMMARY result=PASS|FAIL pass=N fail=M skip=K elapsed=S
# after which the guest powers off.  Keep the fio job parameters in sync with
# host_verify() in run-guest.sh: the host re-verifies what the guest wrote.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/mdadm /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
exec </dev/console >/dev/console 2>&1

# ------------------------------------------------------------------ parameters
param() { # name default
  v=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n1)
  echo "${v:-$2}"
}
MTU=$(param e2e_mtu 1500)
RUN=$(param e2e_run norun)
SCEN=$(param e2e_scenario full)
SEC0=$(param e2e_sec0 0)
SEC1=$(param e2e_sec1 0)
PAYLOAD=$(param e2e_payload 0)
DISC_TO=$(param e2e_disc_timeout 60)
RAW_OFF=$(param e2e_raw_off_mb 160)
RAW_MB=$(param e2e_raw_mb 16)
MARKER=$(param e2e_marker_sector 491520)
EXT4_MB=$(param e2e_ext4_mb 128)
MD_MB=$(param e2e_md_mb 64)
MD_FIO_MB=$(param e2e_md_fio_mb 16)
MD_TO=$(param e2e_md_timeout 400)
RL_OFF=$(param e2e_reload_off_mb 64)
RL_MB=$(param e2e_reload_mb 16)
RL_MAX=$(param e2e_reload_max 150)
RL_DONE=$(param e2e_reload_done e2.0)
NL_OFF=$(param e2e_nodeloss_off_mb 8)
RS_OFF=$(param e2e_restart_off_mb 0)
LL_OFF=$(param e2e_linkloss_off_mb 16)
FO_MB=$(param e2e_failover_mb 8)
# the devices every scenario discovers; failover adds e0.2, seen on two paths
DEVS="0 1"
IFACES="eth0"
if [ "$SCEN" = failover ]; then
  DEVS="0 1 2"
  IFACES="eth0 eth1"
fi

T0=$(cut -d' ' -f1 /proc/uptime)
now() { cut -d' ' -f1 /proc/uptime; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
NPASS=0
NFAIL=0
NSKIP=0
pass() { NPASS=$((NPASS + 1)); echo "E2E-PASS $1 $(secs "$STEP_T0") ${2:-}"; }
fail() { NFAIL=$((NFAIL + 1)); echo "E2E-FAIL $1 $2"; }
skip() { NSKIP=$((NSKIP + 1)); echo "E2E-SKIP $1 $2"; }
begin() { STEP_T0=$(now); echo "E2E-STEP $1 (t=$(now))"; }
# run CMD...: run, echo output indented; return its status
run() {
  echo "+ $*"
  "$@" >/tmp/run.out 2>&1
  rc=$?
  sed 's/^/  | /' /tmp/run.out | tail -n 40
  return $rc
}
# fio_run NAME ARGS...: run fio, print the bandwidth summary (all of it on error)
fio_run() {
  echo "+ fio $*"
  fio "$@" >/tmp/fio.out 2>&1
  rc=$?
  if [ $rc = 0 ]; then
    grep -E '^ *(READ|WRITE):' /tmp/fio.out | sed 's/^ */  | /'
  else
    sed 's/^/  | /' /tmp/fio.out | tail -n 60
  fi
  return $rc
}
finish() {
  echo "E2E-INFO kernel=$(uname -r) uptime=$(now)"
  dmesg | grep -iE 'aoe|md0|md/raid|EXT4|blk_update|I/O error|BUG|WARN|stall' | tail -n 40 | sed 's/^/  dmesg| /'
  r=PASS
  [ "$NFAIL" -eq 0 ] && [ "$NPASS" -gt 0 ] || r=FAIL
  echo "E2E-SUMMARY result=$r pass=$NPASS fail=$NFAIL skip=$NSKIP elapsed=$(secs "$T0")"
  sync
  # -no-reboot makes QEMU exit on reboot; poweroff -f needs ACPI.
  poweroff -f
  sleep 2
  reboot -f
  sleep 30
}

echo "E2E-BOOT run=$RUN scenario=$SCEN mtu=$MTU uptime=$T0"
echo 1 >/proc/sys/kernel/printk_ratelimit_burst 2>/dev/null

# ------------------------------------------------------------------ network
begin net
modprobe virtio_pci && modprobe virtio_net
ok=1
msg=""
for e in $IFACES; do
  i=0
  while [ ! -e /sys/class/net/$e ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  if [ ! -e /sys/class/net/$e ]; then
    fail net "no $e"
    finish
  fi
  ip link set $e mtu "$MTU"
  ip link set $e up
  m=$(cat /sys/class/net/$e/mtu)
  msg="$msg $e mtu=$m mac=$(cat /sys/class/net/$e/address)"
  [ "$m" = "$MTU" ] || { fail net "$e mtu is $m, wanted $MTU"; ok=0; }
done
[ $ok = 1 ] && pass net "$msg"

# ------------------------------------------------------------------ discover
begin discover
modprobe aoe aoe_iflist=eth0 aoe_deadsecs=20 || fail discover "modprobe aoe failed"
# a list with a space would not survive modprobe's option parsing
echo "$IFACES" >/sys/module/aoe/parameters/aoe_iflist
# ntargets eX.Y: how many target MACs (paths) the driver knows for the device
ntargets() { grep -cE '^[0-9a-f]{12}:' "/sys/kernel/debug/aoe/$1" 2>/dev/null; }
dev_up() { # n
  s=$(cat "/sys/block/etherd!e0.$1/state" 2>/dev/null) || return 1
  case "$s" in *up*) [ -b "/dev/etherd/e0.$1" ] ;; *) return 1 ;; esac
}
t=$(now)
found=0
n=0
while :; do
  found=1
  for i in $DEVS; do dev_up $i || found=0; done
  # failover: e0.2 must be known through both of its target MACs (one per path)
  [ "$SCEN" = failover ] && [ "$(ntargets e0.2)" != 2 ] && found=0
  [ $found = 1 ] && break
  if [ "$(awk -v a="$t" -v b="$(now)" -v to="$DISC_TO" 'BEGIN{print (b-a>to)}')" = 1 ]; then break; fi
  [ -e /dev/etherd/discover ] && echo discover >/dev/etherd/discover && n=$((n + 1))
  sleep 0.5
done
if [ $found = 1 ]; then
  pass discover "$(for i in $DEVS; do printf 'e0.%s ' $i; done)up after $n discover(s)"
else
  fail discover "timeout ${DISC_TO}s: $(ls /sys/block | tr '\n' ' ')"
  for i in $DEVS; do cat "/sys/block/etherd!e0.$i/state" 2>/dev/null; done
  finish
fi
for i in $DEVS; do
  d="/sys/block/etherd!e0.$i"
  echo "E2E-INFO dev=e0.$i size=$(cat $d/size) state=$(cat $d/state) mac=$(cat $d/mac) netif=$(cat $d/netif) fwver=$(cat $d/firmware-version) payload=$(cat $d/payload 2>/dev/null)"
done

# ------------------------------------------------------------------ sizes
begin sizes
ok=1
msg=""
for i in 0 1; do
  eval want=\$SEC$i
  got=$(cat "/sys/block/etherd!e0.$i/size")
  msg="$msg e0.$i=$got"
  if [ "$want" != 0 ] && [ "$got" != "$want" ]; then
    fail sizes "e0.$i has $got sectors, expected $want"
    ok=0
  fi
  bs=$(blockdev --getsize64 "/dev/etherd/e0.$i")
  if [ "$bs" != "$((got * 512))" ]; then
    fail sizes "e0.$i blockdev says $bs bytes, sysfs $got sectors"
    ok=0
  fi
done
if [ "$PAYLOAD" != 0 ]; then
  got=$(cat "/sys/block/etherd!e0.0/payload" 2>/dev/null)
  msg="$msg payload=$got"
  if [ "$got" != "$PAYLOAD" ]; then
    fail sizes "payload per frame is $got bytes, expected $PAYLOAD (MTU $MTU)"
    ok=0
  fi
fi
[ $ok = 1 ] && pass sizes "$msg"

# ------------------------------------------------------------------ reload
# The reload scenario (aoed): "E2E-STEP reload" below starts the host's config
# churn (test/e2e/config-churn.ts via aoed-target.sh), which rewrites aoed's
# config 50 times. Meanwhile this runs verified fio passes on e0.0: each one
# writes RL_MB MiB at random offsets in 4..128 KiB blocks, with a pattern unique
# to the pass and the block's offset (so lost, stale or misplaced writes show),
# and reads them back as it goes and at the end. A background loop sends a
# discover every second and watches e0.0's state. The churn's last valid config
# adds RL_DONE: once it shows up, the passes stop, the last pass is verified
# once more, and every etherd device is flushed and discovered afresh: the
# list must be exactly what aoed exports now (the host compares).
# pat_fio DEV OFF_MB MB SEED [extra fio args]: one verified pass (or, with
# --verify_only, its check): random writes of 4..128 KiB over MB MiB at OFF_MB,
# with a pattern unique to SEED plus each block's offset, read back as it goes
# and at the end. Output in $FIO_OUT (default /tmp/fio.out). The host re-checks
# passes with the same parameters (run-guest.sh, verify_pass).
pat_fio() {
  fio --name=pass$4 --filename="$1" --rw=randwrite --bsrange=4k-128k \
    --ioengine=libaio --iodepth=8 --direct=1 --offset=${2}M --size=${3}M \
    --verify=pattern --verify_pattern="$(printf '0x5eed%04x' "$4")%o" --do_verify=1 \
    --verify_backlog=64 --verify_fatal=1 --randrepeat=1 --randseed="$4" --verify_state_save=0 \
    ${5:-} >"${FIO_OUT:-/tmp/fio.out}" 2>&1
}
rl_fio() { pat_fio /dev/etherd/e0.0 "$RL_OFF" "$RL_MB" "$@"; }
# mon_start DEV: in the background, sample DEV's state every 0.5 s (every
# sample that is not up goes to /tmp/mon.state) and send a discover every
# second; mon_stop ends it and takes a last sample
mon_start() {
  rm -f /tmp/mon.stop
  : >/tmp/mon.state
  (
    i=0
    while [ ! -e /tmp/mon.stop ]; do
      s=$(cat "/sys/block/etherd!$1/state" 2>/dev/null)
      case "$s" in up | up,*) ;; *) echo "t=$(now) state=${s:-gone}" >>/tmp/mon.state ;; esac
      [ $((i % 2)) = 0 ] && echo discover >/dev/etherd/discover
      i=$((i + 1))
      sleep 0.5
    done
  ) &
  MON_PID=$!
  MON_DEV=$1
}
mon_stop() {
  touch /tmp/mon.stop
  wait $MON_PID
  s=$(cat "/sys/block/etherd!$MON_DEV/state" 2>/dev/null)
  case "$s" in up | up,*) ;; *) echo "t=$(now) state=${s:-gone} (at the end)" >>/tmp/mon.state ;; esac
}
if [ "$SCEN" = reload ]; then
  begin reload
  ok=1
  mon_start e0.0
  # the driver's own error channel: "retransmit eS.L ...", "unexpected rsp ..."
  cat /dev/etherd/err >/tmp/rl.err 2>/dev/null &
  rl_err=$!
  t=$(now)
  k=0
  seen=0
  while :; do
    k=$((k + 1))
    if ! rl_fio $k; then
      fail reload "fio pass $k on e0.0: $(grep -iE 'error|verify|bad|pattern' /tmp/fio.out | head -n3 | tr '\n' ' ')"
      sed 's/^/  | /' /tmp/fio.out | tail -n 30
      ok=0
      break
    fi
    echo "  pass $k done at $(secs "$t")s: $(awk '/^ *(READ|WRITE):/ {printf "%s %s ", $1, $2}' /tmp/fio.out)"
    if [ -e "/sys/block/etherd!$RL_DONE" ]; then
      seen=1
      break
    fi
    [ "$(awk -v a="$t" -v b="$(now)" -v m="$RL_MAX" 'BEGIN{print (b-a>=m)}')" = 1 ] && break
  done
  rl_s=$(secs "$t")
  if [ $ok = 1 ] && [ $seen = 0 ]; then
    fail reload "$RL_DONE (added by the churn's last valid config) not seen after ${RL_MAX}s"
    ok=0
  fi
  if [ $ok = 1 ]; then
    if rl_fio $k --verify_only; then
      echo "  pass $k verified again after the churn"
    else
      fail reload "final verify of pass $k: $(grep -iE 'error|verify|bad|pattern' /tmp/fio.out | head -n3 | tr '\n' ' ')"
      ok=0
    fi
  fi
  echo "E2E-INFO reload_passes=$k reload_seed=$k reload_pattern=$(printf '0x5eed%04x' $k) reload_off_mb=$RL_OFF reload_mb=$RL_MB reload_s=$rl_s"
  mon_stop
  kill $rl_err 2>/dev/null
  if [ -s /tmp/mon.state ]; then
    fail reload "e0.0 was not up $(wc -l </tmp/mon.state) time(s): $(head -n3 /tmp/mon.state | tr '\n' ' ')"
    ok=0
  fi
  dmesg | grep -E 'aoe|etherd|blk_|I/O' | grep -iE 'timeout|no mac|error|can.t find|fail|down' >/tmp/rl.dmesg
  if grep -qE 'e0\.0([^0-9]|$)' /tmp/rl.dmesg; then
    fail reload "dmesg about e0.0: $(grep -E 'e0\.0([^0-9]|$)' /tmp/rl.dmesg | head -n3 | tr '\n' ' ')"
    ok=0
  fi
  sed 's/^/  dmesg| /' /tmp/rl.dmesg | head -n 20
  rexmit=$(grep -c 'retransmit e0\.0 ' /tmp/rl.err)
  sed 's/^/  etherd\/err| /' /tmp/rl.err | head -n 20
  echo "E2E-INFO reload_retransmits_e0.0=$rexmit reload_aoe_err_lines=$(wc -l </tmp/rl.err) reload_dmesg_lines=$(wc -l </tmp/rl.dmesg)"
  # what aoed exports now, as a fresh discovery sees it: drop every device,
  # discover every 0.5 s until the list has been the same for 2 s
  echo all >/dev/etherd/flush
  sleep 1
  echo all >/dev/etherd/flush
  prev=""
  same=0
  i=0
  while [ $i -lt 40 ]; do
    echo discover >/dev/etherd/discover
    sleep 0.5
    cur=$(ls /sys/block | sed -n 's/^etherd!//p' | sort | tr '\n' ',')
    cur=${cur%,}
    if [ -n "$cur" ] && [ "$cur" = "$prev" ]; then
      same=$((same + 1))
      [ $same -ge 4 ] && break
    else
      same=0
    fi
    prev=$cur
    i=$((i + 1))
  done
  echo "E2E-INFO reload_devices=$cur"
  for d in $(echo "$cur" | tr ',' ' '); do
    echo "E2E-INFO reload_device $d state=$(cat "/sys/block/etherd!$d/state") size=$(cat "/sys/block/etherd!$d/size")"
  done
  [ $ok = 1 ] && pass reload "$k passes of ${RL_MB} MiB on e0.0 (write+verify, pattern per pass) in ${rl_s}s of config churn, final verify ok, e0.0 up throughout, $rexmit retransmits; discovery now: $cur"
  finish
fi

# ------------------------------------------------------------------ failover
# The failover scenario (aoed, test/e2e/failover-target.sh): node A exports
# e0.0, node B e0.1, node C e0.2 on two links (aoe2 on br0, aoe3 on br1). The
# guest asks the host for each failure with an "E2E-HOST <what>" line; the
# target's orchestrator watches the console, does it, and answers
# "ok <what> ..." on the guest's ttyS1. Meanwhile verified fio passes run in
# the background (loop_start); any fio error or verify failure fails the step.
if [ "$SCEN" = failover ]; then
  # ttyS1 stays open: a closed serial port drops what arrives
  exec 3<>/dev/ttyS1
  stty -F /dev/ttyS1 -echo
  # host WHAT: ask the host for WHAT and wait for its answer (in HOST_ACK)
  host() {
    echo "E2E-HOST $1 (t=$(now))"
    HOST_ACK=""
    read -t 120 -r HOST_ACK <&3
    HOST_ACK=$(echo "$HOST_ACK" | tr -d '\r')
    echo "  host: ${HOST_ACK:-no answer within 120 s}"
    case "$HOST_ACK" in "ok $1"*) return 0 ;; *) return 1 ;; esac
  }
  # wait_until LIMIT_S CMD...: eval CMD every 0.2 s until it succeeds; 1 after LIMIT_S
  wait_until() {
    wu_t=$(now)
    wu_lim=$1
    shift
    until eval "$@"; do
      [ "$(awk -v a="$wu_t" -v b="$(now)" -v m="$wu_lim" 'BEGIN{print (b-a>=m)}')" = 1 ] && return 1
      sleep 0.2
    done
  }
  # loop_start DEV OFF_MB SEED0: pat_fio passes of FO_MB MiB one after another in
  # the background until loop_stop; pass k has seed SEED0+k. /tmp/loop.log gets
  # "ok SEED" or "fail SEED" per pass; a failure ends the loop.
  loop_start() {
    rm -f /tmp/loop.stop
    : >/tmp/loop.log
    (
      k=$3
      while [ ! -e /tmp/loop.stop ]; do
        k=$((k + 1))
        if FIO_OUT=/tmp/loop.fio pat_fio "$1" "$2" "$FO_MB" $k; then
          echo "ok $k $(now)" >>/tmp/loop.log
        else
          echo "fail $k $(now)" >>/tmp/loop.log
          cp /tmp/loop.fio /tmp/loop.failed
          break
        fi
      done
    ) &
    LOOP_PID=$!
    LOOP_DEV=$1
    LOOP_SYS=/sys/block/$(echo "${1#/dev/}" | tr / !)
    LOOP_OFF=$2
  }
  loop_ok() { grep -c '^ok' /tmp/loop.log; }
  loop_failed() { grep -q '^fail' /tmp/loop.log; }
  # loop_wait N LIMIT_S: until N passes are done; 1 on a failed pass or timeout
  loop_wait() { wait_until "$2" 'loop_failed || [ "$(loop_ok)" -ge '"$1"' ]' && ! loop_failed; }
  # loop_busy: the first pass is done and the next one has requests in flight,
  # so a failure the host makes now lands in the middle of a pass, not between
  # two (fio takes a while to start)
  loop_busy() { loop_wait 1 120 && busy_seen 30 && ! loop_failed; }
  # busy_seen LIMIT_S: until the device has requests in flight (sysfs), read
  # every ~10 ms by the shell itself, no process per look: against a fast
  # target a pass's I/O lasts only tens of ms, which a look every 0.2 s with
  # a forked awk missed for 30 s in two runs out of eight
  busy_seen() {
    bs_i=0
    while [ $bs_i -lt $(($1 * 100)) ]; do
      read -r bs_r bs_w <"$LOOP_SYS/inflight" && [ $((bs_r + bs_w)) -gt 0 ] && return 0
      if [ $((bs_i % 50)) = 0 ] && loop_failed; then return 1; fi
      sleep 0.01
      bs_i=$((bs_i + 1))
    done
    return 1
  }
  # loop_stop STEP: end the loop after its current pass and check every pass;
  # then verify the last one once more. Sets LAST (its seed).
  loop_stop() {
    touch /tmp/loop.stop
    wait $LOOP_PID
    LAST=$(sed -n 's/^ok \([0-9]*\) .*/\1/p' /tmp/loop.log | tail -n1)
    if loop_failed; then
      fail "$1" "fio pass $(sed -n 's/^fail //p' /tmp/loop.log) on $LOOP_DEV: $(grep -iE 'error|verify|bad|pattern' /tmp/loop.failed | head -n3 | tr '\n' ' ')"
      sed 's/^/  | /' /tmp/loop.failed | tail -n 30
      return 1
    fi
    if ! pat_fio "$LOOP_DEV" "$LOOP_OFF" "$FO_MB" "$LAST" --verify_only; then
      fail "$1" "final verify of pass $LAST on $LOOP_DEV: $(grep -iE 'error|verify|bad|pattern' /tmp/fio.out | head -n3 | tr '\n' ' ')"
      return 1
    fi
    echo "E2E-INFO ${1}_passes=$(loop_ok) ${1}_seed=$LAST ${1}_pattern=$(printf '0x5eed%04x' "$LAST") ${1}_off_mb=$LOOP_OFF ${1}_mb=$FO_MB"
  }
  # path_pkts DEV: "MAC frames-sent" per target MAC of DEV (debugfs r: + w:)
  path_pkts() {
    awk '/^[0-9a-f]{12}:/ {m = substr($0, 1, 12)} /^\t[rw]:/ {split($0, a, ":"); n[m] += a[2]}
      END {for (k in n) print k, n[k]}' "/sys/kernel/debug/aoe/$1" | sort
  }
  # grown BEFORE AFTER: the MACs whose count grew
  grown() { echo "$2" | while read -r m c; do
    b=$(echo "$1" | awk -v m="$m" '$1 == m {print $2}')
    [ "$c" -gt "${b:-0}" ] && echo "$m"
  done | tr '\n' ' '; }
  cat /dev/etherd/err >/tmp/fo.err 2>/dev/null &
  fo_err=$!
  dead0=$(cat /sys/module/aoe/parameters/aoe_deadsecs)
  md="/sys/block/md0/md"

  # -------------------------------------------------------------- node loss
  # md RAID1 over e0.0 (node A) and e0.1 (node B) with a write-intent bitmap.
  # The legs are new, all-zero sparse files, so --assume-clean is true (and the
  # md check at the end proves it). aoe_deadsecs=5: the driver fails e0.0 5 s
  # after node A stops answering, md fails the leg and carries on with e0.1.
  begin nodeloss
  ok=1
  modprobe raid1
  echo 1000000 >/proc/sys/dev/raid/speed_limit_max
  echo 500000 >/proc/sys/dev/raid/speed_limit_min
  echo 5 >/sys/module/aoe/parameters/aoe_deadsecs
  # just big enough for the fio region: md's check reads all of it
  if ! run mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 \
    --size=$(((NL_OFF + FO_MB + 8) * 1024)) --bitmap=internal --bitmap-chunk=1M --assume-clean --homehost=e2e \
    /dev/etherd/e0.0 /dev/etherd/e0.1; then
    fail nodeloss "mdadm --create"
    finish
  fi
  for i in 0 1; do echo "E2E-INFO md_data_offset_e0.$i=$(cat "$md/dev-etherd!e0.$i/offset")"; done
  echo "E2E-INFO md_size_kib=$(cat $md/component_size)"
  loop_start /dev/md0 "$NL_OFF" 1000
  loop_busy || { fail nodeloss "no verified pass followed by requests in flight on md0"; ok=0; }
  if [ $ok = 1 ] && host kill-node-a; then
    t=$(now)
    if wait_until 60 'grep -q faulty "$md/dev-etherd!e0.0/state"'; then
      nl_faulty=$(secs "$t")
      echo "  e0.0 faulty in md ${nl_faulty}s after node A was killed: $(cat $md/dev-etherd!e0.0/state)"
    else
      fail nodeloss "e0.0 not faulty in md 60 s after node A was killed: $(cat "$md/dev-etherd!e0.0/state")"
      ok=0
    fi
    # I/O goes on, degraded, on e0.1 alone
    n=$(loop_ok)
    loop_wait $((n + 1)) 120 || ok=0
    deg=$(cat $md/degraded)
    [ "$deg" = 1 ] || { fail nodeloss "md degraded=$deg after the leg failed"; ok=0; }
  else
    fail nodeloss "host did not kill node A"
    ok=0
  fi
  if [ $ok = 1 ] && host start-node-a; then
    # md lets go of the failed leg, the driver finds node A again, md takes it back
    run mdadm /dev/md0 --remove /dev/etherd/e0.0 || ok=0
    t=$(now)
    echo e0.0 >/dev/etherd/revalidate 2>/dev/null
    if wait_until 60 'dev_up 0 || { echo discover >/dev/etherd/discover; false; }'; then
      nl_reval=$(secs "$t")
    else
      fail nodeloss "e0.0 not up 60 s after node A restarted: $(cat "/sys/block/etherd!e0.0/state")"
      ok=0
    fi
    t=$(now)
    if [ $ok = 1 ] && run mdadm /dev/md0 --re-add /dev/etherd/e0.0; then
      if wait_until "$MD_TO" '[ "$(cat $md/degraded)" = 0 ] && [ "$(cat $md/sync_action)" = idle ]'; then
        nl_resync=$(secs "$t")
      else
        fail nodeloss "no recovery after re-add: $(grep -A3 md0 /proc/mdstat | tr '\n' ' ')"
        ok=0
      fi
    else
      fail nodeloss "mdadm --re-add e0.0"
      ok=0
    fi
    # one more pass on the healed array
    n=$(loop_ok)
    [ $ok = 1 ] && { loop_wait $((n + 1)) 120 || ok=0; }
  else
    [ $ok = 1 ] && { fail nodeloss "host did not restart node A"; ok=0; }
  fi
  loop_stop nodeloss || ok=0
  if [ $ok = 1 ]; then
    echo check >$md/sync_action
    sleep 0.5
    wait_until "$MD_TO" '[ "$(cat $md/sync_action)" = idle ]'
    mm=$(cat $md/mismatch_cnt)
    [ "$mm" = 0 ] || { fail nodeloss "md check: mismatch_cnt=$mm"; ok=0; }
  fi
  grep -A3 md0 /proc/mdstat | sed 's/^/  | /'
  echo "E2E-INFO nodeloss_faulty_s=${nl_faulty:-} nodeloss_revalidate_s=${nl_reval:-} nodeloss_resync_s=${nl_resync:-} nodeloss_mismatch_cnt=${mm:-}"
  run mdadm --stop /dev/md0 || { fail nodeloss "mdadm --stop"; ok=0; }
  echo "$dead0" >/sys/module/aoe/parameters/aoe_deadsecs
  [ $ok = 1 ] && pass nodeloss "node A killed under verified writes on md0: no I/O error, e0.0 faulty after ${nl_faulty}s, up again ${nl_reval}s after the restart, bitmap resync ${nl_resync}s, md check 0 mismatches, $(loop_ok) passes"

  # io_begin STEP OFF_MB SEED0 [passes]: the step starts with e0.2 watched
  # (mon_start), one verified pass done and the next one's requests in flight
  # (loop_busy), or with "passes" only the first pass done (the step checks
  # for traffic itself); io_end STEP ends both and checks them
  io_begin() {
    begin "$1"
    ok=1
    mon_start e0.2
    loop_start /dev/etherd/e0.2 "$2" "$3"
    if [ "${4:-}" = passes ]; then
      loop_wait 1 120 || { fail "$1" "no verified pass on e0.2 within 120 s"; ok=0; }
    else
      loop_busy || { fail "$1" "no verified pass followed by requests in flight on e0.2"; ok=0; }
    fi
  }
  io_end() {
    loop_stop "$1" || ok=0
    mon_stop
    if [ -s /tmp/mon.state ]; then
      fail "$1" "e0.2 was not up $(wc -l </tmp/mon.state) time(s): $(head -n3 /tmp/mon.state | tr '\n' ' ')"
      ok=0
    fi
  }

  # ----------------------------------------------------------------- link loss
  # e0.2 is reached through eth0 (node C's aoe2) and eth1 (its aoe3). The host
  # takes aoe3 down during verified writes and brings it back; the host's
  # capture checks which link answered what.
  # It runs before the restart: a whole-target outage can leave the driver
  # avoiding one of the two paths for good (README.md, "Failures under load"),
  # and this step needs both in use before the link goes down.
  io_begin linkloss "$LL_OFF" 3000 passes
  both_grown='[ "$(grown "$p0" "$(path_pkts e0.2)" | wc -w)" = 2 ]'
  p0=$(path_pkts e0.2)
  if [ $ok = 1 ] && ! wait_until 30 "$both_grown || loop_failed"; then
    fail linkloss "the driver did not use both paths before the link loss: $(path_pkts e0.2 | tr '\n' ' ')"
    ok=0
  fi
  loop_failed && ok=0
  # Once down, aoe3 comes back up whatever happens meanwhile: the restart step needs it.
  ll_down=0
  if [ $ok = 1 ] && host link-down; then
    ll_down=1
    n=$(loop_ok)
    loop_wait $((n + 2)) 120 || ok=0
    echo "  two passes with aoe3 down"
  elif [ $ok = 1 ]; then
    fail linkloss "host did not take aoe3 down"
    ok=0
  fi
  if [ $ll_down = 1 ] && host link-up; then
    t=$(now)
    p0=$(path_pkts e0.2)
    if [ $ok = 0 ]; then
      :
    elif wait_until 60 "$both_grown || loop_failed" && ! loop_failed; then
      ll_back=$(secs "$t")
      echo "  frames on both paths again ${ll_back}s after the link came back: $(path_pkts e0.2 | tr '\n' ' ')"
    elif ! loop_failed; then
      fail linkloss "the driver did not use both paths within 60 s: before $(echo "$p0" | tr '\n' ' '), now $(path_pkts e0.2 | tr '\n' ' ')"
      ok=0
    fi
    n=$(loop_ok)
    [ $ok = 1 ] && { loop_wait $((n + 1)) 120 || ok=0; }
  elif [ $ll_down = 1 ]; then
    fail linkloss "host did not bring aoe3 back"
    ok=0
  fi
  io_end linkloss
  echo "E2E-INFO linkloss_both_paths_s=${ll_back:-} linkloss_paths=$(path_pkts e0.2 | tr ' \n' '=,')"
  [ $ok = 1 ] && pass linkloss "aoe3 down and up under verified writes on e0.2: no I/O error, both paths used again after ${ll_back}s, $(loop_ok) passes"
  # node C's counters before the restart clears them
  host metrics-linkloss || fail linkloss "host did not save the nodes' metrics"

  # ------------------------------------------------------- restart under load
  # node C is stopped with SIGTERM and started again while fio writes to e0.2;
  # nothing may fail and e0.2 must stay up (aoe_deadsecs as at the start)
  io_begin restart "$RS_OFF" 2000
  if [ $ok = 1 ] && host restart-node-c; then
    n=$(loop_ok)
    loop_wait $((n + 2)) 120 || ok=0
  elif [ $ok = 1 ]; then
    fail restart "host did not restart node C"
    ok=0
  fi
  io_end restart
  [ $ok = 1 ] && pass restart "node C restarted under verified writes on e0.2 ($HOST_ACK): no I/O error, e0.2 up throughout, $(loop_ok) passes"
  host metrics-end || fail restart "host did not save the nodes' metrics"

  kill $fo_err 2>/dev/null
  echo "E2E-INFO failover_retransmits_e0.2=$(grep -c 'retransmit e0\.2 ' /tmp/fo.err) failover_aoe_err_lines=$(wc -l </tmp/fo.err)"
  sed 's/^/  etherd\/err| /' /tmp/fo.err | head -n 20
  finish
fi

[ "$SCEN" = discover ] && finish

# ------------------------------------------------------------------ raw I/O
# Each disk i gets a fio crc32c-verified region at RAW_OFF + i*RAW_MB MiB and
# a text marker sector; the host re-checks both in the backing files.
begin raw
ok=1
for i in 0 1; do
  off=$((RAW_OFF + i * RAW_MB))
  if ! fio_run --name=raw$i --filename=/dev/etherd/e0.$i --rw=write --bs=64k \
    --ioengine=libaio --iodepth=8 --direct=1 --offset=${off}M --size=${RAW_MB}M \
    --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=1 --verify_state_save=0; then
    fail raw "fio write/verify on e0.$i"
    ok=0
  fi
  printf 'AOED-E2E run=%s disk=e0.%s marker\n' "$RUN" "$i" |
    dd of=/dev/etherd/e0.$i bs=512 seek="$MARKER" conv=sync,notrunc,fsync 2>/dev/null
  got=$(dd if=/dev/etherd/e0.$i bs=512 skip="$MARKER" count=1 iflag=direct 2>/dev/null | tr -d '\000')
  if [ "$got" != "AOED-E2E run=$RUN disk=e0.$i marker" ]; then
    fail raw "marker read back from e0.$i: '$got'"
    ok=0
  fi
done
[ $ok = 1 ] && pass raw "2x ${RAW_MB} MiB fio crc32c write+verify, markers"

[ "$SCEN" = raw ] && finish

# ------------------------------------------------------------------ ext4
begin ext4
modprobe ext4
ok=1
if ! run mkfs.ext4 -F -q -L e2e /dev/etherd/e0.0 "${EXT4_MB}M"; then
  fail ext4 "mkfs.ext4"
  ok=0
elif ! mount -t ext4 /dev/etherd/e0.0 /mnt; then
  fail ext4 "mount"
  ok=0
else
  mkdir -p /mnt/d/sub
  j=1
  while [ $j -le 8 ]; do
    dd if=/dev/urandom of=/mnt/d/big$j bs=64k count=$((j * 8)) 2>/dev/null
    j=$((j + 1))
  done
  j=1
  while [ $j -le 200 ]; do
    echo "small file $j run $RUN" >/mnt/d/sub/s$j
    j=$((j + 1))
  done
  (cd /mnt && find d -type f | sort | xargs md5sum) >/tmp/sums
  sync
  echo "  wrote $(wc -l </tmp/sums) files, $(du -sk /mnt/d | cut -f1) KiB"
  umount /mnt || { fail ext4 umount; ok=0; }
  echo 3 >/proc/sys/vm/drop_caches
  if ! run e2fsck -fn /dev/etherd/e0.0; then
    fail ext4 "e2fsck -fn not clean"
    ok=0
  fi
  if mount -t ext4 -o ro /dev/etherd/e0.0 /mnt; then
    if ! (cd /mnt && md5sum -c -s /tmp/sums); then
      fail ext4 "checksums differ after remount"
      ok=0
    fi
    umount /mnt
  else
    fail ext4 "remount"
    ok=0
  fi
fi
[ $ok = 1 ] && pass ext4 "mkfs ${EXT4_MB}M, $(wc -l </tmp/sums) files, fsck clean, remount md5 ok"

[ "$SCEN" = ext4 ] && finish

# ------------------------------------------------------------------ md raid1
begin md
modprobe raid1
echo 1000000 >/proc/sys/dev/raid/speed_limit_max
echo 500000 >/proc/sys/dev/raid/speed_limit_min
ok=1
if ! run mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 \
  --size=$((MD_MB * 1024)) --bitmap=none --homehost=e2e /dev/etherd/e0.0 /dev/etherd/e0.1; then
  fail md "mdadm --create"
  ok=0
else
  t=$(now)
  last=$t
  while :; do
    a=$(cat /sys/block/md0/md/sync_action 2>/dev/null)
    [ "$a" = idle ] && break
    el=$(awk -v a="$t" -v b="$(now)" 'BEGIN{print int(b-a)}')
    if [ "$el" -ge "$MD_TO" ]; then
      fail md "resync not done after ${MD_TO}s: $(grep -A2 md0 /proc/mdstat | tr '\n' ' ')"
      ok=0
      break
    fi
    if [ "$(awk -v a="$last" -v b="$(now)" 'BEGIN{print (b-a>=10)}')" = 1 ]; then
      echo "  resync: $(grep -o 'resync *=.*' /proc/mdstat)"
      last=$(now)
    fi
    sleep 1
  done
  echo "  resync done in $(secs "$t")s"
  echo "E2E-INFO md_resync_s=$(secs "$t")"
  grep -A3 md0 /proc/mdstat | sed 's/^/  | /'
  if [ $ok = 1 ]; then
    deg=$(cat /sys/block/md0/md/degraded)
    [ "$deg" = 0 ] || { fail md "array degraded=$deg"; ok=0; }
    for i in 0 1; do
      o=$(cat "/sys/block/md0/md/dev-etherd!e0.$i/offset")
      echo "E2E-INFO md_data_offset_e0.$i=$o"
    done
    echo "E2E-INFO md_size_kib=$(cat /sys/block/md0/md/component_size)"
    if ! fio_run --name=md --filename=/dev/md0 --rw=write --bs=64k --ioengine=libaio \
      --iodepth=8 --direct=1 --offset=0 --size=${MD_FIO_MB}M --verify=crc32c --do_verify=1 \
      --verify_fatal=1 --randrepeat=1 --verify_state_save=0; then
      fail md "fio write/verify on md0"
      ok=0
    fi
  fi
  run mdadm --stop /dev/md0 || { fail md "mdadm --stop"; ok=0; }
fi
[ $ok = 1 ] && pass md "raid1 2x${MD_MB} MiB resync + ${MD_FIO_MB} MiB fio verify"

# debugfs per target line: MAC:nout:maxout:nframes (nframes = the buffer count
# the target advertised, capped by the driver; it cannot use a target with < 2)
for i in 0 1; do
  f="/sys/kernel/debug/aoe/e0.$i"
  echo "E2E-INFO aoe_debug_e0.$i: $(tr '\n\t' '  ' <"$f" 2>/dev/null | tr -s ' ' | head -c 600)"
  grep -E '^[0-9a-f]{12}:' "$f" 2>/dev/null | head -n1 |
    awk -F: -v d="e0.$i" '{print "E2E-INFO aoe_target_" d " mac=" $1 " nout=" $2 " maxout=" $3 " nframes=" $4}'
done
finish
