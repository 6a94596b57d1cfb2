#!/usr/bin/env bash
# Issue 26 before/after on the same code, interleaved: "before" = the settings of the path before the issue-26
# changes (one worker process, no fast paths, no upload hand-off), "after" = the defaults (make up).
#   scripts/bench/bench_before_after.sh [ROUNDS] [open|saturation] [extra bench_e2e args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}; MODE=${2:-open}; shift $(( $# > 2 ? 2 : $# )) || true
PY=${PY:-.venv/bin/python}
if [ "$MODE" = open ]; then load=(--rate 5 --duration 30); else load=(--mode saturation --count 200); fi
before=(--concurrency 1 --worker-env PLATEVEIL_FAST_PATHS=false --worker-env PLATEVEIL_HANDOFF_MAX_BYTES=0)
after=(--concurrency 2)
for round in $(seq 1 "$ROUNDS"); do
  for which in before after; do
    echo "== $which ($MODE) round $round; $(uptime)"
    if [ "$which" = before ]; then opts=("${before[@]}"); else opts=("${after[@]}"); fi
    "$PY" scripts/bench/bench_e2e.py "${load[@]}" "${opts[@]}" --label "$MODE-$which-$round" "$@" 2>&1 \
      | grep -vE "job/s\]|^\s*$" | grep -A30 "^target" || true
  done
done
