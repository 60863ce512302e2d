#!/usr/bin/env bash
# Regenerate every bundled sample in data/ from the committed configs and seeds.
# Usage: data/regenerate.sh [OUTDIR] [DEEPSKY]   (defaults: data/ and target/debug/deepsky)
# The test suite runs this into a temporary folder and compares with the committed files.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/data}"
deepsky="${2:-$root/target/debug/deepsky}"
cfg="$root/pipelines/configs"
mkdir -p "$out"
cd "$out"
# Relative output names, so that the command recorded in each file's provenance is the same
# wherever it is run.
"$deepsky" -q simulate sky      -c "$cfg/sky.toml"     -o sky_field.fits
"$deepsky" -q simulate cutouts  -c "$cfg/cutouts.toml" -o cutouts.h5
"$deepsky" -q simulate events   -c "$cfg/events.toml"  -o events.fits
"$deepsky" -q simulate showers  --particle e- --energy-range 1,100 -n 1000 --seed 4 -o showers_calogan.h5
