#!/bin/sh
# Runs aoed as a benchmark target: one export of FILE as SHELF.SLOT on IFACE.
# Usage: aoed-target.sh IFACE FILE SHELF SLOT   (extra aoed flags in $AOED_ARGS)
set -eu
iface=$1 file=$2 shelf=$3 slot=$4
root=$(cd "$(dirname "$0")/.." && pwd)
conf="$file.aoed.yaml" # beside the backing file, removed with it
cat > "$conf" <<EOT
log-level: warn
metrics: off
control-socket: off
exports:
  - path: $file
    shelf: $shelf
    slot: $slot
    interfaces: [$iface]
    write-cache: ${AOED_WRITE_CACHE:-true}
    direct-io: ${AOED_DIRECT_IO:-false}
EOT
exec node "$root/dist/src/bin/aoed.cjs" --config "$conf" ${AOED_ARGS:-}
