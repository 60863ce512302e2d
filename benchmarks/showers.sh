#!/usr/bin/env bash
# Shower Monte Carlo speed (issue 3): showers/s at 1, 10 and 100 GeV, e-, with 1 and 2 threads.
# Usage: benchmarks/showers.sh [DEEPSKY]   (default: the test build, target/debug/deepsky,
# whose crates are all compiled with opt-level 3 — see Cargo.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
DEEPSKY=${1:-target/debug/deepsky}
tmp=$(mktemp -d)
echo "# $(date -u +%F) $(nproc) cores, $DEEPSKY"
for e in 1 10 100; do
  n=$(( e == 1 ? 4000 : (e == 10 ? 400 : 60) ))
  for t in 1 2; do
    s=$( { /usr/bin/time -f %e env RAYON_NUM_THREADS=$t "$DEEPSKY" -q simulate showers --energy $e -n $n --seed 1 -o "$tmp/s.h5" ; } 2>&1 | tail -1)
    echo "E=${e} GeV threads=$t showers=$n seconds=$s showers_per_s=$(awk "BEGIN{printf \"%.1f\", $n/$s}")"
  done
done
rm -rf "$tmp"
