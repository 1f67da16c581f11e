#!/bin/sh
# The e2e target command for aoed: exports the harness's two backing files as
# e0.0 and e0.1 on its interface, in the foreground.
# With AOE_SCENARIO=reload (run-guest.sh --scenario reload) it also starts the
# config churn (config-churn.ts), which rewrites this config 50 times while the
# guest runs its workload; E2E_CHURN_SEED picks the churn's random choices.
# Usage: aoed-target.sh IFACE FILE0 FILE1 OUTDIR
set -eu
iface=$1 file0=$2 file1=$3 out=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
# A control socket of its own: another aoed on this machine may hold the default one.
sock="$out/aoed.sock"
[ ${#sock} -le 100 ] || sock=off
cat > "$out/aoed.yaml" <<EOT
state-dir: $out/aoed-state
watch-config: true
control-socket: $sock
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
if [ "${AOE_SCENARIO:-}" = reload ]; then
  # $$ becomes aoed's pid at the exec below (the churn sends it SIGHUPs). The
  # churn stays in this process group, so the harness stops it along with aoed.
  node "$root/dist/test/e2e/config-churn.js" --config "$out/aoed.yaml" --out "$out" \
    --aoed "$root/dist/src/bin/aoed.cjs" --pid $$ --seed "${E2E_CHURN_SEED:-1}" \
    >"$out/churn.log" 2>&1 &
fi
exec node "$root/dist/src/bin/aoed.cjs" --config "$out/aoed.yaml" ${AOED_E2E_ARGS:-}
