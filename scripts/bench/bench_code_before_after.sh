#!/usr/bin/env bash
# make bench-e2e on two checkouts of the code, interleaved (each run starts its own local stack from that checkout):
# BEFORE (a folder holding another commit's tree, e.g. `git archive main | tar -x -C /tmp/before` with its JPEG
# extension built: `python -m plateveil._native.build` there) and this checkout, one after the other, for each run
# of the plan: listing photos open loop 5/s (plate blocks on; this checkout also with them off), listing saturation,
# the 1024-px validation photos open loop 5/s. Reports (bench_e2e JSON + plots) under OUT.
#   scripts/bench/bench_code_before_after.sh BEFORE_DIR [OUT] [plan: all|open|saturation|validation]
set -uo pipefail
cd "$(dirname "$0")/../.."
AFTER=$(pwd)
BEFORE=$(cd "${1:?BEFORE_DIR: a checkout of the code to compare with}" && pwd)
OUT=$(mkdir -p "${2:-runs/bench-before-after}" && cd "${2:-runs/bench-before-after}" && pwd)
PLAN=${3:-all}
PY=${PY:-$AFTER/.venv/bin/python}
BENCH=$AFTER/scripts/bench/bench_e2e.py   # the same benchmark (and report fields) for both; each stack runs its own code

run() {   # run WHICH LABEL ARGS...: WHICH = before | after
  local which=$1 label=$2; shift 2
  local dir=$AFTER; [ "$which" = before ] && dir=$BEFORE
  echo "== $label ($which: $dir) $(date -u +%H:%M:%S); $(uptime)"
  (cd "$dir" && PYTHONPATH="$dir" "$PY" "$BENCH" "$@" --label "$label" --out "$OUT" 2>&1) \
    | grep -vE "job/s\]|^\s*$" | grep -A32 "^target" || true
}

if [ "$PLAN" = all ] || [ "$PLAN" = open ]; then
  run after  listing-open-after  --rate 5 --duration 30
  run before listing-open-before --rate 5 --duration 30
  run after  listing-open-after-blocks-off --rate 5 --duration 30 --worker-env PLATEVEIL_PLATE_BLOCKS=false
fi
if [ "$PLAN" = all ] || [ "$PLAN" = saturation ]; then
  run after  listing-saturation-after  --mode saturation --count 300
  run before listing-saturation-before --mode saturation --count 300
fi
if [ "$PLAN" = all ] || [ "$PLAN" = validation ]; then
  run after  validation-open-after  --rate 5 --duration 30 --photos validation
  run before validation-open-before --rate 5 --duration 30 --photos validation
fi
echo "== done $(date -u +%H:%M:%S); $(uptime)"
