#!/usr/bin/env bash
# Tests the Debian package the way an admin meets it, in a fresh Debian root:
#   npm run test:package     (root) both variants, one after the other:
#                            the Debian-native package in trixie, the
#                            --bundle-node one in bookworm
#   bash packaging/test-deb.sh --suite trixie|bookworm [--deb FILE]
#                            one of them (--deb: a prebuilt package)
#
#  1. builds the package (packaging/build-deb.sh; --bundle-node for bookworm,
#     whose nodejs is 18) and runs lintian on it, if the host has lintian;
#  2. makes a minbase root of the suite with debootstrap (plus systemd, procps,
#     man-db, acl, and trixie's nodejs), cached as a tarball in
#     .cache/packaging/ so later runs need no network;
#  3. installs the package with dpkg and checks what it put in place: user and
#     group, state directory, conffile, unit, man pages, bash completion,
#     wrappers, the runtime (Debian's nodejs or the bundled one), that only
#     runtime files ship, `systemd-analyze verify` and `security`, `aoed
#     check` and `aoectl --help`;
#  4. runs the installed daemon the way the unit does (user aoed, no
#     supplementary groups, CAP_NET_RAW only) on a veth pair between two
#     network namespaces, and checks the exports are discovered, the control
#     socket and metrics work, and SIGTERM stops it cleanly;
#  5. boots the root with systemd-nspawn (systemd as PID 1) and drives
#     aoed.service through start (Type=notify), reload (truthful when the file
#     is rejected), journald priorities, the watchdog, stop, a broken config
#     and package upgrades (AOED_TEST_NSPAWN=0 skips this);
#  6. reinstalls, removes and purges the package.
# Every chroot mount lives in a private mount namespace and dies with it; the
# trap deletes the namespaces, the daemon and the temporary root. The host's
# /etc and systemd are not touched. Ends with "N passed, N failed".
#
# Environment: AOED_DEBOOTSTRAP_MIRROR, AOED_TEST_CACHE (where the root
# tarballs are kept; default .cache/packaging), AOED_TEST_KEEP=1 (keep the
# temporary root for inspection).
# Shell snippets for the chroot are single-quoted on purpose:
# shellcheck disable=SC2016
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=""
DEB=""
while [ $# -gt 0 ]; do
  case $1 in
  --suite | --deb)
    [ $# -ge 2 ] || {
      echo "test-deb: $1 needs a value" >&2
      exit 2
    }
    if [ "$1" = --suite ]; then SUITE=$2; else DEB=$(realpath "$2"); fi
    shift
    ;;
  *)
    echo "test-deb: unknown option '$1' (usage: test-deb.sh [--suite trixie|bookworm] [--deb FILE])" >&2
    exit 2
    ;;
  esac
  shift
done
if [ -z "$SUITE" ]; then
  [ -z "$DEB" ] || {
    echo "test-deb: --deb needs --suite" >&2
    exit 2
  }
  rc=0
  for suite in trixie bookworm; do
    printf '\n######## %s\n' "$suite"
    bash "${BASH_SOURCE[0]}" --suite "$suite" || rc=1
  done
  exit $rc
fi
case $SUITE in
# Debian 13: Node.js 20 from Debian, the package depends on it.
trixie) INCLUDE=systemd,procps,man-db,nodejs,acl BUILD_FLAGS=() ;;
# Debian 12: nodejs is 18, so the package carries its own runtime (gzip: xz on
# 90 MB takes minutes, and the contents are what is tested).
bookworm) INCLUDE=systemd,procps,man-db,acl BUILD_FLAGS=(--bundle-node --compress gzip) ;;
*)
  echo "test-deb: --suite must be trixie or bookworm, not '$SUITE'" >&2
  exit 2
  ;;
esac
MIRROR=${AOED_DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}
CACHE=${AOED_TEST_CACHE:-$REPO/.cache/packaging}
ARCH=$(dpkg --print-architecture)
ROOTFS_KEY=$(printf '%s\n' v1 "$SUITE" minbase "$ARCH" "$INCLUDE" "$MIRROR" | sha256sum | cut -c1-12)
ROOTFS_TAR=$CACHE/rootfs-$SUITE-minbase-$ARCH-$ROOTFS_KEY.tar.zst

PASSED=0
FAILED=0
START=$SECONDS
step() { printf '\n== %s [%ss]\n' "$*" "$((SECONDS - START))"; }
ok() {
  PASSED=$((PASSED + 1))
  printf '  ok    %s\n' "$*"
}
bad() {
  FAILED=$((FAILED + 1))
  printf '  FAIL  %s\n' "$*"
}
# check "description" command...: passes when the command succeeds.
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
die() {
  printf 'test-deb: %s\n' "$*" >&2
  printf '%d passed, %d failed\n' "$PASSED" "$((FAILED + 1))"
  exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot, network namespaces)"
for tool in dpkg-deb unshare chroot ip tar zstd setpriv; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
if ! command -v debootstrap >/dev/null; then
  step "installing debootstrap on the host"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null ||
    die "debootstrap is missing and could not be installed"
fi

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d /var/tmp/aoed-pkgtest.XXXXXX)
ROOT=$WORK/root
TAG=aoedpkg$$
NS_T=${TAG}t # the daemon's namespace
NS_C=${TAG}c # the initiator's namespace
DAEMON_PID=""
cleanup() {
  set +e
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  ip netns del "$NS_T" 2>/dev/null
  ip netns del "$NS_C" 2>/dev/null
  ip netns del "${TAG}s" 2>/dev/null
  # Mounts are made in private namespaces and vanish with them; never delete through one.
  if findmnt -rno TARGET | grep -q "^$WORK/"; then
    findmnt -rno TARGET | grep "^$WORK/" | sort -r | xargs -r -n1 umount -l
  fi
  if [ "${AOED_TEST_KEEP:-}" = 1 ]; then
    echo "kept $WORK"
  elif findmnt -rno TARGET | grep -q "^$WORK/"; then
    echo "test-deb: something is still mounted under $WORK; not deleting it" >&2
  else
    rm -rf --one-file-system "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The environment of commands in the root, as systemd would give it (no host variables).
export CLEAN_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root"

# in_root CMD: run a shell command in the test root as root, with /proc and
# /sys mounted in a private mount namespace (gone when the command ends).
in_root() {
  unshare --mount --propagation private -- /bin/sh -c '
    mount -t proc proc "$0/proc" && mount -t sysfs -o ro sysfs "$0/sys" || exit 99
    exec chroot "$0" env -i $CLEAN_ENV /bin/sh -c "$1"' "$ROOT" "$1"
}
# The same inside network namespace $1.
in_root_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" unshare --mount --propagation private -- /bin/sh -c '
    mount -t proc proc "$0/proc" && mount -t sysfs -o ro sysfs "$0/sys" || exit 99
    exec chroot "$0" env -i $CLEAN_ENV /bin/sh -c "$1"' "$ROOT" "$1"
}

# ---------------------------------------------------------------- 1. the package
if [ -n "$DEB" ]; then
  [ -f "$DEB" ] || die "--deb $DEB: no such file"
else
  step "building the package (packaging/build-deb.sh ${BUILD_FLAGS[*]})"
  DEB=$(timeout 1200 bash "$REPO/packaging/build-deb.sh" "${BUILD_FLAGS[@]}" | tail -n1) || die "build-deb.sh failed"
fi
VERSION=$(dpkg-deb -f "$DEB" Version)
echo "package: $DEB ($(du -h "$DEB" | cut -f1), version $VERSION, installed size $(dpkg-deb -f "$DEB" Installed-Size) KiB)"
if command -v lintian >/dev/null; then
  lintian_out=$(lintian "$DEB" 2>&1 || true)
  echo "lintian: $(grep -c '^E:' <<<"$lintian_out") error(s), $(grep -c '^W:' <<<"$lintian_out") warning(s)"
  if grep -q '^[EW]:' <<<"$lintian_out"; then
    bad "lintian: no errors or warnings (outside packaging/debian/lintian-overrides*)"
    grep '^[EW]:' <<<"$lintian_out"
  else
    ok "lintian: no errors or warnings (outside packaging/debian/lintian-overrides*)"
  fi
fi

# ---------------------------------------------------------------- 2. the Debian root
mkdir -p "$CACHE"
exec 9>"$CACHE/rootfs.lock"
flock -w 1200 9 || die "timed out waiting for another run's debootstrap"
if [ ! -f "$ROOTFS_TAR" ]; then
  step "debootstrap $SUITE minbase (+ $INCLUDE) from $MIRROR; cached as $(basename "$ROOTFS_TAR")"
  boot=$WORK/bootstrap
  ok_boot=""
  for attempt in 1 2; do
    rm -rf --one-file-system "$boot"
    if timeout 900 debootstrap --variant=minbase --arch="$ARCH" --include="$INCLUDE" \
      "$SUITE" "$boot" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
      ok_boot=1
      break
    fi
    echo "debootstrap attempt $attempt failed:" >&2
    tail -5 "$WORK/debootstrap.log" >&2
  done
  [ -n "$ok_boot" ] || die "debootstrap failed"
  rm -rf "$boot"/var/cache/apt/archives/*.deb "$boot"/var/lib/apt/lists/*_Packages
  tar -C "$boot" --numeric-owner --xattrs -cf - . | zstd -q -T0 -3 -o "$ROOTFS_TAR.tmp"
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf --one-file-system "$boot"
  # Older cache generations are of no further use.
  find "$CACHE" -maxdepth 1 -name "rootfs-$SUITE-*.tar.zst" ! -name "$(basename "$ROOTFS_TAR")" -delete
fi
flock -u 9
step "unpacking the cached root"
mkdir -p "$ROOT"
zstd -q -dc "$ROOTFS_TAR" | tar -C "$ROOT" --numeric-owner --xattrs -xf -

# ---------------------------------------------------------------- 3. install and inspect
step "dpkg -i $(basename "$DEB")"
cp "$DEB" "$ROOT/var/tmp/aoed.deb"
if in_root "dpkg -i /var/tmp/aoed.deb" >"$WORK/dpkg-install.log" 2>&1; then
  ok "dpkg -i installs with its dependencies ($INCLUDE)"
else
  cat "$WORK/dpkg-install.log"
  die "dpkg -i failed"
fi
check "dpkg says installed" in_root "dpkg-query -W -f='\${Status}' aoed | grep -qx 'install ok installed'"
check "postinst told the admin what to do next" grep -q "systemctl enable --now aoed" "$WORK/dpkg-install.log"

step "user, group and directories"
check "system user aoed: uid < 1000, home /var/lib/aoed, nologin" in_root '
  IFS=: read -r name _ uid gid _ home shell <<EOF
$(getent passwd aoed)
EOF
  [ "$name" = aoed ] && [ "$uid" -lt 1000 ] && [ "$home" = /var/lib/aoed ] &&
    [ "$shell" = /usr/sbin/nologin ] && [ "$gid" = "$(getent group aoed | cut -d: -f3)" ]'
check "/var/lib/aoed is aoed:aoed 0750" in_root '[ "$(stat -c %U:%G:%a /var/lib/aoed)" = aoed:aoed:750 ]'

step "files"
check "/etc/aoed.yaml is a conffile, unmodified" in_root '
  dpkg-query -W -f="\${Conffiles}\n" aoed | grep -q "^ /etc/aoed.yaml [0-9a-f]\{32\}$" &&
  [ "$(dpkg-query -W -f="\${Conffiles}\n" aoed | awk "/aoed.yaml/ {print \$2}")" = "$(md5sum </etc/aoed.yaml | cut -d" " -f1)" ]'
check "unit in /usr/lib/systemd/system" in_root 'grep -q "^Type=notify$" /usr/lib/systemd/system/aoed.service'
check "bash completion for aoed and aoectl" in_root '
  for t in aoed aoectl; do grep -q "complete -F _$t $t" /usr/share/bash-completion/completions/$t || exit 1; done'
check "only runtime files: no node-addon-api, tests, benchmarks or library command-line tools" in_root '
  cd /usr/lib/aoed/node_modules && ! [ -e node-addon-api ] && ! [ -e .bin ] &&
  [ -z "$(find . -type d \( -name test -o -name tests -o -name benchmarks -o -name examples -o -name docs \))" ]'
check "unit not enabled on a fresh install" in_root '! [ -e /etc/systemd/system/multi-user.target.wants/aoed.service ]'
for page in man8/aoed.8 man8/aoectl.8 man5/aoed.yaml.5; do
  check "man page $page.gz" in_root "gzip -t /usr/share/man/$page.gz"
done
check "man aoed.yaml finds the page" in_root 'man -w aoed.yaml | grep -q "/usr/share/man/man5/aoed.yaml.5.gz"'
check "copyright, README.Debian, example config" in_root '
  [ -s /usr/share/doc/aoed/copyright ] && [ -s /usr/share/doc/aoed/README.Debian ] &&
  [ -s /usr/share/doc/aoed/examples/aoed.yaml ]'
check "wrappers /usr/bin/aoed and /usr/bin/aoectl are executable" in_root '[ -x /usr/bin/aoed ] && [ -x /usr/bin/aoectl ]'
if [ "$SUITE" = trixie ]; then
  check "Debian-native: no bundled runtime, Depends: nodejs (>= 20), runs /usr/bin/node" in_root '
    ! [ -e /usr/lib/aoed/node ] && dpkg-query -W -f="\${Depends}" aoed | grep -q "nodejs (>= 20)" &&
    grep -q "^exec /usr/bin/node " /usr/bin/aoed'
else
  check "bundled: its own runtime, none on the system's PATH" in_root '
    grep -q /usr/lib/aoed/node/ /usr/bin/aoed && ! command -v node >/dev/null'
fi
if in_root '[ -x /usr/lib/aoed/node/bin/node ]'; then
  check "bundled node and the addon have all their libraries" in_root '
    ! ldd /usr/lib/aoed/node/bin/node /usr/lib/aoed/build/Release/aoed_native.node | grep -q "not found"'
  check "bundled Node.js license shipped" in_root '[ -s /usr/share/doc/aoed/LICENSE.nodejs ]'
fi
check "aoed --version prints the package version" in_root "aoed --version | grep -qx 'aoed ${VERSION%%[~+]*}.*'"
if out=$(in_root 'aoectl --help' 2>&1) && grep -q "^usage: aoectl" <<<"$out"; then
  ok "aoectl --help"
else
  bad "aoectl --help: $out"
fi

step "systemd-analyze verify (in the root, with its systemd $(in_root 'systemctl --version | head -1 | cut -d" " -f2'))"
if out=$(in_root 'systemd-analyze verify /usr/lib/systemd/system/aoed.service' 2>&1); then
  ok "systemd-analyze verify aoed.service"
else
  bad "systemd-analyze verify aoed.service: $out"
fi
exposure=$(in_root 'systemd-analyze security --offline=true /usr/lib/systemd/system/aoed.service' 2>&1 |
  sed -n 's/.*Overall exposure level for aoed.service: \([0-9.]*\).*/\1/p')
if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e <= 3.0) }'; then
  ok "systemd-analyze security: exposure $exposure (at most 3.0)"
else
  bad "systemd-analyze security: exposure '$exposure', want at most 3.0"
fi

step "aoed check"
set +e
out=$(in_root 'aoed check --config /etc/aoed.yaml' 2>&1)
rc=$?
set -e
if [ "$rc" = 2 ] && grep -q "error(s); nothing started" <<<"$out" && grep -q "exports" <<<"$out" &&
  [ "$(grep -c ": error: " <<<"$out")" = 1 ]; then
  ok "the packaged /etc/aoed.yaml is valid except that it has no exports (exit 2)"
else
  bad "aoed check of the packaged config: exit $rc: $out"
fi

# A veth pair: the daemon's end in NS_T, an initiator's end in NS_C.
ip netns add "$NS_T"
ip netns add "$NS_C"
ip -n "$NS_T" link set lo up
ip -n "$NS_C" link set lo up
ip link add "${TAG}a" netns "$NS_C" type veth peer name "${TAG}b" netns "$NS_T"
ip -n "$NS_C" link set "${TAG}a" up
ip -n "$NS_T" link set "${TAG}b" up

cat >"$ROOT/tmp/aoed-test.yaml" <<EOF
state-dir: /var/lib/aoed
metrics:
  listen: 127.0.0.1:9288
control-socket: /run/aoed/aoed.sock
control-group: aoed
exports:
  - name: pkgtest
    path: /srv/aoe/test.img
    shelf: 1
    slot: 2
    interfaces: [${TAG}b]
EOF
in_root 'mkdir -p /srv/aoe && truncate -s 16M /srv/aoe/test.img && chown aoed:aoed /srv/aoe/test.img'
if out=$(in_root_ns "$NS_T" 'aoed check --config /tmp/aoed-test.yaml' 2>&1) &&
  grep -q "OK, 1 export(s)" <<<"$out" && grep -q "e1.2" <<<"$out"; then
  ok "aoed check --config <a test config>: OK, 1 export"
else
  bad "aoed check --config <a test config>: $out"
fi
check "aoed check works as user aoed" in_root_ns "$NS_T" \
  'setpriv --reuid=aoed --regid=aoed --init-groups aoed check --config /tmp/aoed-test.yaml >/dev/null'

# ---------------------------------------------------------------- 4. run it as the unit would
step "aoed as the unit runs it: user aoed, no supplementary groups, CAP_NET_RAW only"
# Keep in step with packaging/aoed.service (User=, AmbientCapabilities=,
# CapabilityBoundingSet=, NoNewPrivileges=, RuntimeDirectory=).
in_root 'install -d -o aoed -g aoed -m 0755 /run/aoed'
ip netns exec "$NS_T" unshare --mount --propagation private -- /bin/sh -c '
  mount -t proc proc "$0/proc" && mount -t sysfs -o ro sysfs "$0/sys" || exit 99
  exec chroot "$0" env -i $CLEAN_ENV setpriv --reuid=aoed --regid=aoed --clear-groups \
    --inh-caps=-all,+net_raw --ambient-caps=-all,+net_raw --bounding-set=-all,+net_raw --no-new-privs \
    /usr/bin/aoed --config /tmp/aoed-test.yaml' "$ROOT" >"$WORK/aoed.log" 2>&1 &
DAEMON_PID=$!
ready=""
for _ in $(seq 1 300); do
  if grep -q '"aoed ready' "$WORK/aoed.log"; then
    ready=1
    break
  fi
  kill -0 "$DAEMON_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -n "$ready" ]; then
  ok "aoed started and logged 'aoed ready'"
else
  bad "aoed did not get ready: $(tail -5 "$WORK/aoed.log")"
fi
if [ -n "$ready" ]; then
  status=/proc/$DAEMON_PID/status
  check "the daemon is the wrapper's exec'd node (MAINPID for sd_notify)" \
    grep -q "/usr/lib/aoed/dist/src/bin/aoed.cjs" "/proc/$DAEMON_PID/cmdline"
  aoed_uid=$(in_root 'id -u aoed')
  check "it runs as uid aoed ($aoed_uid)" grep -Eq "^Uid:[[:space:]]+${aoed_uid}[[:space:]]+${aoed_uid}" "$status"
  check "its effective capabilities are CAP_NET_RAW alone" grep -Eq "^CapEff:[[:space:]]+0000000000002000$" "$status"
  if out=$(in_root_ns "$NS_C" "aoectl discover ${TAG}a --timeout 2000" 2>&1) && grep -q "e1.2" <<<"$out"; then
    ok "an initiator on the other end discovers e1.2"
  else
    bad "aoectl discover: $out"
  fi
  if out=$(in_root_ns "$NS_C" "aoectl identify ${TAG}a e1.2" 2>&1); then
    ok "aoectl identify e1.2"
  else
    bad "aoectl identify e1.2: $out"
  fi
  if out=$(in_root 'aoectl status' 2>&1) && grep -q pkgtest <<<"$out"; then
    ok "aoectl status over /run/aoed/aoed.sock (root)"
  else
    bad "aoectl status: $out"
  fi
  in_root 'getent passwd aoedtest >/dev/null || useradd --system --no-create-home -G aoed aoedtest'
  check "a member of group aoed may use aoectl status" in_root \
    'setpriv --reuid=aoedtest --regid=aoedtest --init-groups aoectl status >/dev/null'
  check "socket is 0660, group aoed" in_root '[ "$(stat -c %a:%G /run/aoed/aoed.sock)" = 660:aoed ]'
  if out=$(ip netns exec "$NS_T" timeout 10 bash -c \
    'exec 3<>/dev/tcp/127.0.0.1/9288 && printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3' 2>&1) &&
    grep -q "^HTTP/1.[01] 200" <<<"$out" && grep -q "pkgtest" <<<"$out"; then
    ok "metrics on 127.0.0.1:9288 mention the export"
  else
    bad "metrics: $(head -c 300 <<<"$out")"
  fi
  kill -TERM "$DAEMON_PID"
  rc=0
  timeout 30 tail --pid="$DAEMON_PID" -f /dev/null || true
  wait "$DAEMON_PID" || rc=$?
  DAEMON_PID=""
  check "SIGTERM: exit 0 after a graceful stop" [ "$rc" = 0 ]
  check "logged 'stopped'" grep -q '"stopped"' "$WORK/aoed.log"
fi

# ---------------------------------------------------------------- 5. under systemd
if [ "${AOED_TEST_NSPAWN:-1}" = 1 ]; then
  step "booting the root with systemd-nspawn: aoed.service under systemd"
  NSPAWN=$(command -v systemd-nspawn || true)
  if [ -z "$NSPAWN" ]; then
    # Unpacked, not installed: its postinst would enable units on the host.
    nspawn_dir=$CACHE/systemd-container
    if [ ! -x "$nspawn_dir/usr/bin/systemd-nspawn" ]; then
      rm -rf "$nspawn_dir" && mkdir -p "$nspawn_dir/deb"
      (cd "$nspawn_dir/deb" && apt-get download -q "systemd-container=$(dpkg-query -W -f='${Version}' systemd)" >/dev/null) ||
        die "cannot download systemd-container (AOED_TEST_NSPAWN=0 skips this stage)"
      dpkg-deb -x "$nspawn_dir"/deb/systemd-container_*.deb "$nspawn_dir"
    fi
    NSPAWN=$nspawn_dir/usr/bin/systemd-nspawn
  fi
  # Both ends of a second veth pair in one namespace that the container joins.
  NS_S=${TAG}s
  ip netns add "$NS_S"
  ip -n "$NS_S" link set lo up
  ip -n "$NS_S" link add "${TAG}t" type veth peer name "${TAG}i"
  ip -n "$NS_S" link set "${TAG}t" up
  ip -n "$NS_S" link set "${TAG}i" up
  install -m 0755 "$REPO/packaging/test-systemd-inner.sh" "$ROOT/usr/local/sbin/aoed-systemd-test"
  can_lower_oom=0
  if sh -c 'echo -1 >/proc/self/oom_score_adj' 2>/dev/null; then can_lower_oom=1; fi
  [ "$can_lower_oom" = 1 ] || echo "(this host's root cannot lower oom_score_adj: OOMScoreAdjust= is checked in the unit only)"
  printf '%s\n' "[Unit]" "Description=aoed package test under systemd" "After=multi-user.target" \
    "[Service]" "Type=oneshot" "ExecStart=/usr/local/sbin/aoed-systemd-test ${TAG}t ${TAG}i $can_lower_oom" \
    "TimeoutStartSec=400" "ExecStopPost=/bin/systemctl poweroff --no-block" \
    >"$ROOT/etc/systemd/system/aoed-systemd-test.service"
  ln -sf /etc/systemd/system/aoed-systemd-test.service \
    "$ROOT/etc/systemd/system/multi-user.target.wants/aoed-systemd-test.service"
  rm -f "$ROOT/var/tmp/aoed-systemd-test.out"
  # --keep-unit --register=no: no systemd or machined on the host to talk to.
  # CAP_SYS_RESOURCE: so that systemd in there may apply OOMScoreAdjust=-500.
  if ! timeout 480 "$NSPAWN" --quiet --directory="$ROOT" --boot --register=no --keep-unit --capability=CAP_SYS_RESOURCE \
    --console=pipe --network-namespace-path="/run/netns/$NS_S" --machine="$TAG" \
    >"$WORK/nspawn.log" 2>&1 </dev/null; then
    echo "(systemd-nspawn exited non-zero)"
  fi
  ip netns del "$NS_S"
  if grep -q '^done$' "$ROOT/var/tmp/aoed-systemd-test.out" 2>/dev/null; then
    while read -r verdict what; do
      case $verdict in
      ok) ok "systemd: $what" ;;
      FAIL) bad "systemd: $what" ;;
      esac
    done <"$ROOT/var/tmp/aoed-systemd-test.out"
    if grep -q "^FAIL" "$ROOT/var/tmp/aoed-systemd-test.out"; then
      echo "---- in-container log"
      tail -60 "$ROOT/var/tmp/aoed-systemd-test.log"
    fi
  else
    bad "the in-container test did not finish"
    tail -30 "$WORK/nspawn.log"
    tail -30 "$ROOT/var/tmp/aoed-systemd-test.log" 2>/dev/null
  fi
  rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/aoed-systemd-test.service"
  # The next stage checks what the admin's edits leave behind: start from the packaged conffile.
  in_root 'dpkg-deb --fsys-tarfile /var/tmp/aoed.deb | tar -xO ./etc/aoed.yaml >/etc/aoed.yaml'
fi

# ---------------------------------------------------------------- 6. reinstall, remove, purge
step "reinstall, remove, purge"
echo "# local change" >>"$ROOT/etc/aoed.yaml"
check "reinstall over itself (postinst configure with the old version)" \
  in_root 'dpkg -i /var/tmp/aoed.deb >/dev/null 2>&1'
check "the admin's conffile change survives" grep -q "^# local change" "$ROOT/etc/aoed.yaml"
check "dpkg -r" in_root 'dpkg -r aoed >/dev/null 2>&1'
check "removed: program gone, conffile and state kept" in_root '
  ! [ -e /usr/lib/aoed ] && ! [ -e /usr/bin/aoed ] && [ -f /etc/aoed.yaml ] && [ -d /var/lib/aoed ]'
check "dpkg -P" in_root 'dpkg -P aoed >/dev/null 2>&1'
check "purged: conffile and state gone, user aoed kept" in_root '
  ! [ -e /etc/aoed.yaml ] && ! [ -e /var/lib/aoed ] && getent passwd aoed >/dev/null'

step "done in $((SECONDS - START))s"
printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[ "$FAILED" = 0 ]
