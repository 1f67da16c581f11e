#!/usr/bin/env bash
# Install the Debian 12 packages the end-to-end harness needs (root, CI).
# Keep this list in sync with README.md.
set -euo pipefail
PKGS=(
  qemu-system-x86 # QEMU (TCG) for the guest
  busybox-static  # guest userland (copied into the initramfs)
  fio             # guest + host-side data verification
  mdadm           # guest RAID1
  e2fsprogs       # guest mkfs.ext4 / e2fsck
  kmod            # guest modprobe, host depmod for the module closure
  cpio            # initramfs
  xz-utils        # vmlinux extraction (Debian bzImage payload is xz)
  iproute2        # namespaces, bridge, veth, tap
  util-linux      # setsid, flock
  vblade          # reference AoE target
  aoetools        # aoeping
  tshark          # capture + AoE dissector (pulls in dumpcap, capinfos)
  python3-minimal # aoe-pad-relay.py, failover-capture.py
  curl            # failover-target.sh reads aoed's metrics
)
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "e2e deps: all installed"
  exit 0
fi
echo "e2e deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
