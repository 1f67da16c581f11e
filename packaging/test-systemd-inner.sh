#!/bin/sh
# Runs inside the test root booted with systemd-nspawn (systemd as PID 1), as
# a oneshot unit started after multi-user.target: drives the installed
# aoed.service through start, reload, journald, the watchdog, stop, a broken
# config and package upgrades (dpkg -i of /var/tmp/aoed.deb over itself), and
# writes "ok"/"FAIL" lines to /var/tmp/aoed-systemd-test.out for
# packaging/test-deb.sh.
# Usage: aoed-systemd-test TARGET_IFACE INITIATOR_IFACE CAN_LOWER_OOM
#   (a veth pair; 1 if this host's root may lower oom_score_adj, else 0)
set -u
IF_T=$1
IF_C=$2
CAN_LOWER_OOM=$3
OUT=/var/tmp/aoed-systemd-test.out
LOG=/var/tmp/aoed-systemd-test.log
: >"$OUT"
: >"$LOG"
ok() { echo "ok    $*" >>"$OUT"; }
bad() { echo "FAIL  $*" >>"$OUT"; }
check() {
  what=$1
  shift
  echo "# $what: $*" >>"$LOG"
  if "$@" >>"$LOG" 2>&1; then ok "$what"; else bad "$what"; fi
}
prop() { systemctl show -P "$1" aoed.service; }
# wait_for SECONDS CMD...: until CMD succeeds.
wait_for() {
  n=$(($1 * 10))
  shift
  while [ "$n" -gt 0 ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
    n=$((n - 1))
  done
  return 1
}
config() {
  echo "state-dir: /var/lib/aoed"
  echo "control-group: aoed"
  echo "exports:"
  for slot in "$@"; do
    printf '  - name: sd%s\n    path: /srv/aoe/sd%s.img\n    shelf: 1\n    slot: %s\n    interfaces: [%s]\n' \
      "$slot" "$slot" "$slot" "$IF_T"
  done
}
status_is() { [ "$(prop ActiveState)" = "$1" ] && [ "$(prop StatusText)" = "$2" ]; }
discovers() { aoectl discover "$IF_C" --timeout 1500 | grep -q "^e1\.$1[[:space:]]"; }

# systemd-nspawn --network-namespace-path= leaves the host's /sys/class/net in
# view, and aoed checks interface names there: show this namespace's instead.
if ! [ -e "/sys/class/net/$IF_T" ]; then
  mkdir -p /run/aoed-test-sysfs
  mount -t sysfs -o ro sysfs /run/aoed-test-sysfs && mount --bind /run/aoed-test-sysfs/class/net /sys/class/net
fi

mkdir -p /srv/aoe
for slot in 2 3; do
  truncate -s 8M /srv/aoe/sd$slot.img
  chown aoed:aoed /srv/aoe/sd$slot.img
done
config 2 >/etc/aoed.yaml

# Type=notify: `systemctl start` returns only once aoed sent READY=1.
if timeout 90 systemctl start aoed.service >>"$LOG" 2>&1; then
  ok "systemctl start aoed returns: READY=1 arrived"
else
  bad "systemctl start aoed"
fi
check "active, status 'serving 1 export(s)'" status_is active "serving 1 export(s)"
pid=$(prop MainPID)
check "MainPID is node running aoed.cjs" grep -q "aoed.cjs" "/proc/$pid/cmdline"
check "runs as user aoed" [ "$(stat -c %U "/proc/$pid")" = aoed ]
check "effective capabilities: CAP_NET_RAW alone" grep -Eq "^CapEff:[[:space:]]+0000000000002000$" "/proc/$pid/status"
check "not in group disk (block devices: ACLs from aoed-device-access)" sh -c \
  "! grep -Eq '^Groups:.*[[:space:]]$(getent group disk | cut -d: -f3)([[:space:]]|\$)' /proc/$pid/status"
check "OOMScoreAdjust=-500 in the unit" [ "$(prop OOMScoreAdjust)" = -500 ]
# Lowering it needs CAP_SYS_RESOURCE, which some test hosts' root lacks (systemd then goes on without).
if [ "$CAN_LOWER_OOM" = 1 ]; then
  check "OOMScoreAdjust applied to the process" [ "$(cat "/proc/$pid/oom_score_adj")" = -500 ]
fi
check "WatchdogSec=30s" [ "$(prop WatchdogUSec)" = 30s ]
check "IPAddressAllow=localhost, IPAddressDeny=any" sh -c \
  "systemctl show -P IPAddressDeny aoed.service | grep -q '0.0.0.0/0' && systemctl show -P IPAddressAllow aoed.service | grep -q '127.0.0.0/8'"
# journald: readable lines with priorities (JOURNAL_STREAM names the daemon's stdout).
check "systemctl status shows readable lines, not JSON" sh -c \
  "systemctl status --no-pager -n 20 aoed.service | grep -q 'INFO  aoed ready, serving 1 export' &&
   ! systemctl status --no-pager -n 20 aoed.service | grep -q '{\"level\"'"
check "journal priority 6 for info lines" sh -c "journalctl -u aoed.service -p info..info -o cat | grep -q 'aoed ready'"
check "NoNewPrivs" grep -Eq "^NoNewPrivs:[[:space:]]+1$" "/proc/$pid/status"
# Node raises its soft RLIMIT_NOFILE to the hard limit: the syscall filter must let it.
check "open files limit raised above 1024" sh -c "awk '/^Max open files/ { exit !(\$4 > 1024) }' /proc/$pid/limits"
# Its view of the file system, from inside its mount namespace:
check "ProtectSystem=strict: /etc is read-only to it" sh -c "! nsenter -t $pid -m touch /etc/aoed-write-probe"
check "StateDirectory: /var/lib/aoed is writable to it" nsenter -t "$pid" -m sh -c "touch /var/lib/aoed/p && rm /var/lib/aoed/p"
check "ReadWritePaths: /srv/aoe is writable to it" nsenter -t "$pid" -m sh -c "touch /srv/aoe/p && rm /srv/aoe/p"
check "ProtectHome: /root is empty to it" nsenter -t "$pid" -m sh -c "[ -z \"\$(ls -A /root)\" ]"
check "the export is discovered from the other end" discovers 2
check "aoectl status" sh -c "aoectl status | grep -q sd2"
check "/run/aoed/aoed.sock is 0660 aoed:aoed" [ "$(stat -c %a:%U:%G /run/aoed/aoed.sock)" = 660:aoed:aoed ]

config 2 3 >/etc/aoed.yaml
check "systemctl reload aoed" timeout 30 systemctl reload aoed.service
check "after the reload: active, 'serving 2 export(s)'" wait_for 20 status_is active "serving 2 export(s)"
check "the new export is discovered" discovers 3
check "the main process did not change" [ "$(prop MainPID)" = "$pid" ]

echo "exports: [" >/etc/aoed.yaml
# ExecReload=aoectl reload: the rejection reaches systemctl, aoectl's reason the journal.
if timeout 30 systemctl reload aoed.service >>"$LOG" 2>&1; then
  bad "systemctl reload fails when the file is rejected"
else
  ok "systemctl reload fails when the file is rejected"
fi
check "a broken config is not applied: still serving 2" wait_for 10 status_is active "serving 2 export(s); the last reload failed (see the log)"
check "aoectl's reason is in the unit's journal" wait_for 10 sh -c "journalctl -u aoed.service -o cat | grep -q '^aoectl: '"
check "journalctl -p err finds 'config not reloaded'" wait_for 10 sh -c "journalctl -u aoed.service -p err -o cat | grep -q 'config not reloaded'"
check "and not at a lower priority than err" sh -c "! journalctl -u aoed.service -p info..info -o cat | grep -q 'config not reloaded'"
config 2 3 >/etc/aoed.yaml
check "systemctl reload succeeds again once the file is fixed" timeout 30 systemctl reload aoed.service

# Upgrades (dpkg -i of the same package is one: postinst configure with the old version).
check "upgrade with a valid config: aoed check passes, the daemon is restarted" sh -c "
  dpkg -i /var/tmp/aoed.deb >/var/tmp/aoed-upgrade1.log 2>&1 && [ \"\$(systemctl show -P MainPID aoed.service)\" != $pid ]"
sh -c "cat /var/tmp/aoed-upgrade1.log" >>"$LOG"
check "and active after it" wait_for 30 status_is active "serving 2 export(s)"
pid=$(prop MainPID)
echo "exports: [" >/etc/aoed.yaml
check "upgrade with a broken config: dpkg succeeds" sh -c "dpkg -i /var/tmp/aoed.deb >/var/tmp/aoed-upgrade2.log 2>&1"
cat /var/tmp/aoed-upgrade2.log >>"$LOG"
check "and says the daemon was not restarted" grep -q "was NOT restarted" /var/tmp/aoed-upgrade2.log
check "and the old daemon keeps running" sh -c "[ \"\$(systemctl show -P MainPID aoed.service)\" = $pid ] && [ \"\$(systemctl show -P ActiveState aoed.service)\" = active ]"
config 2 3 >/etc/aoed.yaml
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
check "upgrade under policy-rc.d exit 101: not restarted" sh -c "
  dpkg -i /var/tmp/aoed.deb >>$LOG 2>&1 && [ \"\$(systemctl show -P MainPID aoed.service)\" = $pid ]"
rm -f /usr/sbin/policy-rc.d

# A wedged event loop (SIGSTOP stands in for it) misses WATCHDOG=1: killed, restarted, logged.
mkdir -p /run/systemd/system/aoed.service.d
printf '[Service]\nWatchdogSec=3s\nTimeoutAbortSec=5s\n' >/run/systemd/system/aoed.service.d/watchdog-test.conf
systemctl daemon-reload
timeout 60 systemctl restart aoed.service >>"$LOG" 2>&1
pid=$(prop MainPID)
restarts=$(prop NRestarts)
kill -STOP "$pid"
check "watchdog: a stopped loop is restarted" wait_for 40 sh -c \
  "[ \"\$(systemctl show -P NRestarts aoed.service)\" -gt $restarts ] && [ \"\$(systemctl show -P ActiveState aoed.service)\" = active ] && [ \"\$(systemctl show -P MainPID aoed.service)\" != $pid ]"
check "watchdog: logged by systemd" sh -c "journalctl -u aoed.service -o cat | grep -qi 'watchdog timeout'"
rm -f /run/systemd/system/aoed.service.d/watchdog-test.conf
systemctl daemon-reload

check "systemctl stop aoed" timeout 90 systemctl stop aoed.service
check "stopped cleanly (Result=success)" [ "$(prop Result)" = success ]
check "logged 'stopped'" sh -c "journalctl -u aoed.service -o cat | grep -Eq '^INFO +stopped'"

echo "exports: []" >/etc/aoed.yaml
if timeout 30 systemctl start aoed.service >>"$LOG" 2>&1; then
  bad "start with a config without exports fails"
else
  ok "start with a config without exports fails"
fi
check "exit status 2" [ "$(prop ExecMainStatus)" = 2 ]
sleep 3
check "and is not restarted (RestartPreventExitStatus=2)" [ "$(prop NRestarts)" = 0 ]

journalctl -u aoed.service --no-pager -o short-monotonic >>"$LOG" 2>&1
echo "done" >>"$OUT"
