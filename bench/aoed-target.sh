#!/bin/sh
# Runs aoed as a benchmark target: one export of FILE as SHELF.SLOT on IFACE.
# Usage: aoed-target.sh IFACE FILE SHELF SLOT   (extra aoed flags in $AOED_ARGS)
# Environment: AOED_DIRECT_IO (direct-io, default false), AOED_WRITE_CACHE
# (write-cache, default true), AOED_IO (io, aoed's I/O engine: auto, io_uring,
# threads, mmap, sync; default auto), AOED_WORKERS (workers, default 0), AOED_BUSY_POLL
# (the interface's busy-poll in µs; default: aoed's), AOED_CONF_DIR (where the config goes; default: beside
# FILE. run-bench.sh points it at its private scratch directory).
set -eu
iface=$1 file=$2 shelf=$3 slot=$4
root=$(cd "$(dirname "$0")/.." && pwd)
# named for the link too: targets served at once (run-bench.sh -A) each have one,
# and aoed reloads when its file changes
conf="${AOED_CONF_DIR:-$(dirname "$file")}/aoed-$iface-$shelf.$slot.yaml"
cat > "$conf" <<EOT
log-level: warn
workers: ${AOED_WORKERS:-0}
metrics: off
control-socket: off
interfaces:
  $iface:${AOED_BUSY_POLL:+ { busy-poll: $AOED_BUSY_POLL \}}
exports:
  - path: $file
    shelf: $shelf
    slot: $slot
    interfaces: [$iface]
    write-cache: ${AOED_WRITE_CACHE:-true}
    direct-io: ${AOED_DIRECT_IO:-false}
    io: ${AOED_IO:-auto}
EOT
exec node "$root/dist/src/bin/aoed.cjs" --config "$conf" ${AOED_ARGS:-}
