#!/usr/bin/env bash
# Worker pool shapes on this machine, saturation, interleaved rounds (issue 26; docs/performance.md).
#   scripts/bench/bench_pool_shapes.sh [ROUNDS] [COUNT] [extra bench_e2e args...]
# Each run starts its own local stack; reports go to runs/bench-e2e/bench_e2e-sat-<shape>-<round>.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}; COUNT=${2:-150}; shift $(( $# > 2 ? 2 : $# )) || true
PY=${PY:-.venv/bin/python}
shapes=(
  "prefork-c1-t1:--pool prefork --concurrency 1 --worker-env PLATEVEIL_THREADS=1"
  "prefork-c2-t1:--pool prefork --concurrency 2 --worker-env PLATEVEIL_THREADS=1"
  "prefork-c1-t2:--pool prefork --concurrency 1 --worker-env PLATEVEIL_THREADS=2"
  "threads-c2-t1:--pool threads --concurrency 2 --worker-env PLATEVEIL_THREADS=1"
)
for round in $(seq 1 "$ROUNDS"); do
  for entry in "${shapes[@]}"; do
    name=${entry%%:*}; opts=${entry#*:}
    echo "== $name round $round; $(uptime)"
    # shellcheck disable=SC2086
    "$PY" scripts/bench/bench_e2e.py --mode saturation --count "$COUNT" $opts --label "sat-$name-$round" "$@" 2>&1 \
      | grep -E "^(target|saturation|e2e |CPU ms)" || true
  done
done
