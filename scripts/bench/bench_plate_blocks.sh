#!/usr/bin/env bash
# Issue 37 before/after on the same code, interleaved: "before" = PLATEVEIL_PLATE_BLOCKS=false (the whole-photo path
# of main: full decode for the detector, whole-photo re-encode), "after" = the defaults (make up).
#   scripts/bench/bench_plate_blocks.sh [ROUNDS] [open|saturation] [listing|validation] [extra bench_e2e args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-1}; MODE=${2:-open}; PHOTOS=${3:-listing}; shift $(( $# > 3 ? 3 : $# )) || true
PY=${PY:-.venv/bin/python}
if [ "$MODE" = open ]; then load=(--rate 5 --duration 30); else load=(--mode saturation --count 150); fi
for round in $(seq 1 "$ROUNDS"); do
  for which in before after; do
    echo "== $which ($MODE, $PHOTOS) round $round; $(uptime)"
    if [ "$which" = before ]; then opts=(--worker-env PLATEVEIL_PLATE_BLOCKS=false); else opts=(); fi
    "$PY" scripts/bench/bench_e2e.py "${load[@]}" --photos "$PHOTOS" ${opts[@]+"${opts[@]}"} \
      --label "$MODE-$PHOTOS-$which-$round" "$@" 2>&1 | grep -vE "job/s\]|^\s*$" | grep -A30 "^target" || true
  done
done
