#!/usr/bin/env bash
# The README's demo: what deepsky can do today on the bundled data.
set -euo pipefail
cd "$(dirname "$0")/.."
DEEPSKY=${DEEPSKY:-target/debug/deepsky}
echo "== deepsky inspect --stats over data/"
"$DEEPSKY" inspect --stats data/*.fits data/*.h5
out=${DEMO_OUT:-out/demo}
mkdir -p "$out"
echo "== deepsky simulate: a fresh sky field, event list and 100 showers in $out"
"$DEEPSKY" simulate sky -c pipelines/configs/sky.toml --seed 7 -o "$out/sky.fits"
"$DEEPSKY" simulate events -c pipelines/configs/events.toml --seed 7 -o "$out/events.fits"
"$DEEPSKY" simulate showers --energy 50 -n 100 --seed 7 -o "$out/showers.h5"
"$DEEPSKY" inspect "$out/sky.fits" "$out/sky_truth.fits" "$out/events.fits" "$out/showers.h5"
