#!/bin/sh
# The e2e target command for aoed: exports the harness's two backing files as
# e0.0 and e0.1 on its interface, in the foreground.
# Usage: aoed-target.sh IFACE FILE0 FILE1 OUTDIR
set -eu
iface=$1 file0=$2 file1=$3 out=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
cat > "$out/aoed.yaml" <<EOT
state-dir: $out/aoed-state
exports:
  - name: e0.0
    path: $file0
    shelf: 0
    slot: 0
    interfaces: [$iface]
  - name: e0.1
    path: $file1
    shelf: 0
    slot: 1
    interfaces: [$iface]
EOT
exec node "$root/dist/src/bin/aoed.js" --config "$out/aoed.yaml" ${AOED_E2E_ARGS:-}
