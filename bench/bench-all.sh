#!/usr/bin/env bash
# bench-all.sh: `npm run bench`. The tmpfs matrix, then the durable-write rows
# on the disk; arguments go to both (e.g. -Q for a quick run of each).
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$BENCH/run-bench.sh" "$@"
bash "$BENCH/run-bench.sh" -y /var/tmp/aoebench "$@"
