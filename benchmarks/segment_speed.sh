#!/usr/bin/env bash
# Throughput of `deepsky segment predict` against astroscrappy (LACosmic, its defaults) as whole
# processes on larger fields than benchmarks/segment.sh's 512² (where starting Python or
# loading a model is much of the time): GalSim fields with the benchmark's own cosmic-ray
# injector (benchmarks/segment_fields.py, seed 300) of SIZES pixels a side. Best wall time of
# REPEATS runs each, peak RSS from GNU time; deepsky with its default threads (all cores),
# astroscrappy single-threaded as it runs. Prints a markdown table.
# Usage: benchmarks/segment_speed.sh   env: OUT (out/segspeed), SIZES ("1024 2048 4096"),
#   REPEATS (3), VENV (.venv-bench, made by benchmarks/segment.sh), DEEPSKY
#   (target/release/deepsky: `cargo build --release` first)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out/segspeed}
SIZES=${SIZES:-"1024 2048 4096"}
REPEATS=${REPEATS:-3}
VENV=${VENV:-$ROOT/.venv-bench}
DEEPSKY=${DEEPSKY:-$ROOT/target/release/deepsky}
PY=$VENV/bin/python
mkdir -p "$OUT"

# best wall seconds and the peak RSS (MiB) of that run, over $REPEATS runs of "$@"
best() {
  local best_t="" best_m=""
  for _ in $(seq "$REPEATS"); do
    /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" >/dev/null 2>&1
    read -r t m < "$OUT/time.txt"
    if [ -z "$best_t" ] || awk -v a="$t" -v b="$best_t" 'BEGIN{exit !(a<b)}'; then best_t=$t; best_m=$m; fi
  done
  echo "$best_t $(( best_m / 1024 ))"
}

echo "| pixels | astroscrappy wall s | RSS MiB | Mpix/s | deepsky wall s | RSS MiB | Mpix/s | deepsky ÷ astroscrappy throughput |"
echo "|---|---|---|---|---|---|---|---|"
for n in $SIZES; do
  f="$OUT/fields_$n/field_300.fits"
  [ -f "$f" ] || "$PY" benchmarks/segment_fields.py "$OUT/fields_$n" --seeds 300 --size "$n" >/dev/null
  read -r ta ma < <(best "$PY" benchmarks/segment_tool.py astroscrappy "$f" "$OUT/astroscrappy_$n")
  read -r td md < <(best "$DEEPSKY" -q segment predict -c pipelines/configs/segment.toml \
    --input "$f" -o "$OUT/deepsky_$n")
  awk -v n="$n" -v ta="$ta" -v ma="$ma" -v td="$td" -v md="$md" 'BEGIN {
    mp = n * n / 1e6
    printf "| %d² | %.2f | %d | %.2f | %.2f | %d | %.2f | %.2f× |\n", n, ta, ma, mp / ta, td, md, mp / td, ta / td }'
done
