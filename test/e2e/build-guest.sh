#!/usr/bin/env bash
# Build (or reuse) the guest used by the AoE end-to-end harness:
#   .cache/e2e/vmlinux-$KVER      uncompressed kernel (booted through PVH)
#   .cache/e2e/initramfs.cpio     busybox + fio + mdadm + e2fsprogs + kmod + modules + /init
#   .cache/e2e/guest.env          KVER/VMLINUX/INITRD, sourced by run-guest.sh
#
# Idempotent: a stamp over every input (this script, guest-init.sh, the kernel
# package and the versions of the host packages we copy binaries from) decides
# whether anything needs rebuilding.  Set E2E_REBUILD=1 to force a rebuild,
# E2E_KERNEL_PKG=linux-image-6.1.0-NN-amd64[=VERSION] to pin the kernel,
# E2E_INITRD_COMPRESS=gzip for a smaller (but slower to boot under TCG) initramfs.
#
# Needs (Debian 12, root): apt-get, dpkg, kmod, cpio, busybox-static, fio,
# mdadm, e2fsprogs, xz-utils.  See README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${E2E_CACHE:-$ROOT/.cache/e2e}"
COMPRESS="${E2E_INITRD_COMPRESS:-none}"

log() { printf '[build-guest] %s\n' "$*" >&2; }
die() { printf '[build-guest] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (dpkg -x ownership, depmod)"
for t in apt-get apt-cache dpkg-deb depmod modprobe cpio xz ldd busybox fio mdadm mke2fs e2fsck kmod flock ldconfig; do
  command -v "$t" >/dev/null 2>&1 || die "missing tool: $t (see test/e2e/README.md for the apt packages)"
done
[ -x /bin/busybox ] && file_is_static=$(ldd /bin/busybox 2>&1 || true)
case "${file_is_static:-}" in
*"not a dynamic"*|*"statically linked"*) ;;
*) die "/bin/busybox is not static: apt-get install busybox-static" ;;
esac

mkdir -p "$CACHE/debs"
# one build at a time (parallel harness runs share the cache)
exec 9>"$CACHE/.build.lock"
flock -w 600 9 || die "timed out waiting for $CACHE/.build.lock"

# ---------------------------------------------------------------- kernel package
# apt-cache needs package lists; on a fresh machine run apt-get update once.
resolve_kernel_pkg() {
  if [ -n "${E2E_KERNEL_PKG:-}" ]; then
    echo "$E2E_KERNEL_PKG"
    return
  fi
  local dep
  dep="$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
    sed -n 's/^Depends: *//p' | head -n1)"
  if [ -z "$dep" ]; then
    log "apt lists empty; running apt-get update"
    timeout 600 apt-get update -qq >&2
    dep="$(apt-cache show --no-all-versions linux-image-amd64 | sed -n 's/^Depends: *//p' | head -n1)"
  fi
  # "linux-image-6.1.0-56-amd64 (= 6.1.192-2)" -> "linux-image-6.1.0-56-amd64=6.1.192-2"
  local name ver
  name="$(echo "$dep" | sed -E 's/^([^ ,(]+).*/\1/')"
  ver="$(echo "$dep" | sed -nE 's/.*\(= *([^)]+)\).*/\1/p')"
  [ -n "$name" ] || die "cannot resolve linux-image-amd64's dependency"
  if [ -n "$ver" ]; then echo "$name=$ver"; else echo "$name"; fi
}

KPKG_SPEC="$(resolve_kernel_pkg)"
KPKG_NAME="${KPKG_SPEC%%=*}"
KPKG_DEB="$(ls "$CACHE"/debs/"${KPKG_NAME}"_*.deb 2>/dev/null | head -n1 || true)"
if [ -n "$KPKG_DEB" ] && [ "$KPKG_SPEC" != "$KPKG_NAME" ]; then
  # pinned version: make sure the cached file is that version
  want_ver="${KPKG_SPEC#*=}"
  have_ver="$(dpkg-deb -f "$KPKG_DEB" Version)"
  if [ "$want_ver" != "$have_ver" ]; then
    log "cached $KPKG_DEB is $have_ver, want $want_ver"
    rm -f "$KPKG_DEB"
    KPKG_DEB=""
  fi
fi
download() {
  log "downloading $KPKG_SPEC"
  # apt-get download writes to the cwd; _apt cannot write into root-owned dirs,
  # so apt falls back to downloading as root (harmless warning, filtered).
  (cd "$CACHE/debs" && timeout 600 apt-get download -q "$KPKG_SPEC" 2>&1 |
    grep -v '^W: Download is performed unsandboxed' >&2) || true
  KPKG_DEB="$(ls "$CACHE"/debs/"${KPKG_NAME}"_*.deb 2>/dev/null | head -n1 || true)"
}
if [ -z "$KPKG_DEB" ]; then
  download
  if [ -z "$KPKG_DEB" ] && [ -z "${E2E_KERNEL_PKG:-}" ]; then
    # stale package lists (the archive moved on): refresh and resolve again
    log "download failed; running apt-get update and retrying"
    timeout 600 apt-get update -qq >&2 || true
    KPKG_SPEC="$(resolve_kernel_pkg)"
    KPKG_NAME="${KPKG_SPEC%%=*}"
    download
  fi
  [ -n "$KPKG_DEB" ] || die "apt-get download $KPKG_SPEC failed"
  # keep only the kernel package in use
  for old in "$CACHE"/debs/linux-image-*.deb; do
    [ "$old" = "$KPKG_DEB" ] || rm -f "$old"
  done
fi
KVER="${KPKG_NAME#linux-image-}"

# ---------------------------------------------------------------- stamp
pkgver() { dpkg-query -W -f='${Package}=${Version} ' "$@" 2>/dev/null || true; }
STAMP_INPUT="$(
  sha256sum "$HERE/build-guest.sh" "$HERE/guest-init.sh" | cut -d' ' -f1
  echo "$(basename "$KPKG_DEB") $(stat -c %s "$KPKG_DEB")"
  pkgver busybox-static fio mdadm e2fsprogs kmod libc6
  echo "compress=$COMPRESS"
)"
STAMP="$(echo "$STAMP_INPUT" | sha256sum | cut -d' ' -f1)"
VMLINUX="$CACHE/vmlinux-$KVER"
INITRD="$CACHE/initramfs.cpio"
[ "$COMPRESS" = gzip ] && INITRD="$CACHE/initramfs.cpio.gz"
if [ "${E2E_REBUILD:-0}" != 1 ] && [ -f "$CACHE/stamp" ] && [ "$(cat "$CACHE/stamp")" = "$STAMP" ] &&
  [ -s "$VMLINUX" ] && [ -s "$INITRD" ] && [ -f "$CACHE/guest.env" ]; then
  log "up to date ($KVER)"
  exit 0
fi

WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

log "unpacking $(basename "$KPKG_DEB")"
dpkg-deb -x "$KPKG_DEB" "$WORK/k"
BZ="$WORK/k/boot/vmlinuz-$KVER"
[ -f "$BZ" ] || die "no /boot/vmlinuz-$KVER in $KPKG_DEB"

# ---------------------------------------------------------------- vmlinux
# extract-vmlinux style: locate each compressed-stream magic in the bzImage,
# decompress from there and keep the first result that is an ELF file.
is_elf() { [ "$(head -c4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
try_decomp() { # magic(printf-escaped) grep-pattern decompressor...
  local magic="$1"
  shift
  local off
  for off in $(LC_ALL=C grep -obUaP "$magic" "$BZ" 2>/dev/null | cut -d: -f1); do
    tail -c +"$((off + 1))" "$BZ" | "$@" >"$WORK/vmlinux" 2>/dev/null || true
    if [ -s "$WORK/vmlinux" ] && is_elf "$WORK/vmlinux"; then
      log "vmlinux: $* payload at offset $off"
      return 0
    fi
  done
  return 1
}
try_decomp '\xfd\x37\x7a\x58\x5a\x00' xz -dcq ||
  try_decomp '\x1f\x8b\x08' gzip -dcq ||
  try_decomp '\x28\xb5\x2f\xfd' zstd -dcq ||
  try_decomp '\x5d\x00\x00\x00' xz -dcq --format=lzma ||
  die "could not find a compressed vmlinux payload in $BZ"
grep -q 'CONFIG_PVH=y' "$WORK/k/boot/config-$KVER" || die "kernel $KVER lacks CONFIG_PVH (QEMU cannot boot vmlinux)"
install -m 0644 "$WORK/vmlinux" "$VMLINUX.tmp"
mv "$VMLINUX.tmp" "$VMLINUX"

# ---------------------------------------------------------------- modules
# Closure computed with an empty config dir so host modprobe.d settings
# (e.g. mdadm's "options md_mod start_ro=1") do not leak into the guest.
MODS="aoe raid1 ext4 virtio_net virtio_pci crc32c_generic crc32c_intel"
EMPTY="$WORK/empty-conf"
mkdir -p "$EMPTY"
KM="$WORK/k/lib/modules/$KVER"
depmod -b "$WORK/k" -C "$EMPTY" "$KVER"
R="$WORK/root"
mkdir -p "$R/lib/modules/$KVER"
for m in $MODS; do
  modprobe -d "$WORK/k" -S "$KVER" -C "$EMPTY" --show-depends "$m" ||
    die "module $m not found in $KVER"
done | awk '$1 == "insmod" {print $2}' | sort -u >"$WORK/modlist"
while read -r ko; do
  rel="${ko#"$KM"/}"
  mkdir -p "$R/lib/modules/$KVER/$(dirname "$rel")"
  cp "$ko" "$R/lib/modules/$KVER/$rel"
done <"$WORK/modlist"
for f in modules.order modules.builtin modules.builtin.modinfo; do
  [ -f "$KM/$f" ] && cp "$KM/$f" "$R/lib/modules/$KVER/"
done
depmod -b "$R" -C "$EMPTY" "$KVER"
log "modules: $(wc -l <"$WORK/modlist") ($(sed 's#.*/##' "$WORK/modlist" | tr '\n' ' '))"

# ---------------------------------------------------------------- userland
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,mnt,root,var/tmp,etc/modprobe.d}
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"
done
copy_bin() { # src dst
  mkdir -p "$R/$(dirname "$2")"
  cp -L "$1" "$R/$2"
  ldd "$1" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}' >>"$WORK/libs"
}
: >"$WORK/libs"
copy_bin "$(command -v fio)" /usr/bin/fio
copy_bin "$(command -v mdadm)" /usr/sbin/mdadm
copy_bin "$(command -v mke2fs)" /usr/sbin/mke2fs
copy_bin "$(command -v e2fsck)" /usr/sbin/e2fsck
copy_bin "$(readlink -f "$(command -v kmod)")" /usr/bin/kmod
for l in mkfs.ext4 mkfs.ext2; do ln -sf mke2fs "$R/usr/sbin/$l"; done
ln -sf e2fsck "$R/usr/sbin/fsck.ext4"
for l in modprobe insmod rmmod lsmod modinfo depmod; do
  ln -sf ../bin/kmod "$R/usr/sbin/$l"
  rm -f "$R/bin/$l"
done
ln -sf ../usr/bin/kmod "$R/sbin/modprobe" # kernel's request_module() helper path
rm -f "$R/bin/mke2fs"
sort -u "$WORK/libs" | while read -r lib; do
  [ -e "$lib" ] || die "library $lib (from ldd) missing"
  mkdir -p "$R/$(dirname "$lib")"
  cp -L "$lib" "$R/$lib"
done
# A loader cache so the dynamic linker finds everything without LD_LIBRARY_PATH.
sort -u "$WORK/libs" | xargs -n1 dirname | sort -u >"$R/etc/ld.so.conf"
ldconfig -r "$R" 2>/dev/null || true
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$R/etc/"
mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
install -m 0755 "$HERE/guest-init.sh" "$R/init"
echo "$KVER" >"$R/etc/e2e-kver"
log "userland: $(sort -u "$WORK/libs" | wc -l) libraries, root $(du -sh "$R" | cut -f1)"

# ---------------------------------------------------------------- cpio
(cd "$R" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  cpio --null --quiet -o -H newc --owner=0:0 --reproducible) >"$WORK/initramfs.cpio"
if [ "$COMPRESS" = gzip ]; then
  gzip -6 -n <"$WORK/initramfs.cpio" >"$INITRD.tmp"
else
  cp "$WORK/initramfs.cpio" "$INITRD.tmp"
fi
mv "$INITRD.tmp" "$INITRD"
# drop the other compression variant
if [ "$COMPRESS" = gzip ]; then rm -f "$CACHE/initramfs.cpio"; else rm -f "$CACHE/initramfs.cpio.gz"; fi

cat >"$CACHE/guest.env.tmp" <<EOF
KVER=$KVER
KPKG=$(basename "$KPKG_DEB")
VMLINUX=$VMLINUX
INITRD=$INITRD
EOF
mv "$CACHE/guest.env.tmp" "$CACHE/guest.env"
echo "$STAMP" >"$CACHE/stamp"
log "built: $VMLINUX ($(du -h "$VMLINUX" | cut -f1)), $INITRD ($(du -h "$INITRD" | cut -f1))"
