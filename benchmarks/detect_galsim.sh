#!/usr/bin/env bash
# Source detection on fields made by GalSim, an independent simulator (issue 21's validation):
# `deepsky detect predict` (default config, bundled model), real SExtractor and sep, side by
# side on the same images, scored by the same rules (benchmarks/sextractor/evaluate.py).
#   fields: benchmarks/galsim_fields.py, 8 imagers (Moffat / Kolmogorov / Gaussian PSFs of FWHM
#     2, 3, 4, 6 px; 0.2" and 0.4" pixels; faint and bright sky, subtracted or not; SEEING card on
#     half of them) x $SEEDS (validation seeds 2101-2104: never used for tuning anything; a
#     future tuning on GalSim fields must use other seeds), $SIZE^2 pixels each
#   deepsky: `deepsky detect predict --input FIELD -o OUT`, nothing else; once more with
#     --set predict.score_threshold=0.02 for the score sweep (an oracle, not an operating point)
#   SExtractor A: benchmarks/sextractor/detect.sex as it is (defaults, 2.5 px filter)
#   SExtractor B: a careful user: SEEING_FWHM and PIXEL_SCALE true, a Gaussian filter of the true
#     FWHM, DETECT_THRESH swept; the best threshold at purity >= deepsky's (and >= 0.90) per imager
#   sep: background defaults, matched filter of the true FWHM, thresh swept, same picks
# Usage: benchmarks/detect_galsim.sh [WORKDIR]   env: SEEDS ("2101 2102 2103 2104"), SIZE (512),
#   DEEPSKY (target/debug/deepsky), DEEPSKY_ARGS (extra options for every `deepsky detect predict`,
#   e.g. "--set predict.psf_tolerance=1.2")
# Needs: apt-get install source-extractor; .venv with benchmarks/requirements-galsim.txt
#   (.venv/bin/pip install -r benchmarks/requirements-galsim.txt). ~7 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
SEEDS=${SEEDS:-"2101 2102 2103 2104"}
SIZE=${SIZE:-512}
PY=.venv/bin/python
DEEPSKY=${DEEPSKY:-target/debug/deepsky}
SEX=$(command -v source-extractor || command -v sex) \
  || { echo "SExtractor not found: apt-get install source-extractor" >&2; exit 2; }
"$PY" -c "import galsim, sep" 2>/dev/null \
  || { echo "GalSim/sep missing: .venv/bin/pip install -r benchmarks/requirements-galsim.txt" >&2; exit 2; }
[ -x "$DEEPSKY" ] || PATH="$PWD/.venv/bin:$PATH" cargo build -q --workspace --locked
mkdir -p "$WORK"/{fields,cat/deepsky,cat/deepsky_low,cat/sexA,results}
T0=$(date +%s)

# ---- fields -------------------------------------------------------------------------------
# shellcheck disable=SC2086
"$PY" benchmarks/galsim_fields.py "$WORK/fields" --seeds $SEEDS --size "$SIZE" 2>/dev/null
FIELDS=$(ls "$WORK"/fields/*.fits | grep -v '_truth\.fits$')
echo "fields: $(echo "$FIELDS" | wc -l) in $(( $(date +%s) - T0 )) s" >&2

# ---- deepsky detect predict: default config, bundled model --------------------------------
for f in $FIELDS; do
  s=$(basename "$f" .fits)
  # shellcheck disable=SC2086 # DEEPSKY_ARGS is a list of options
  "$DEEPSKY" -q detect predict ${DEEPSKY_ARGS:-} --input "$f" -o "$WORK/cat/deepsky/$s" >/dev/null
  # shellcheck disable=SC2086
  "$DEEPSKY" -q detect predict ${DEEPSKY_ARGS:-} --set predict.score_threshold=0.02 --input "$f" -o "$WORK/cat/deepsky_low/$s" >/dev/null
done
echo "deepsky done at $(( $(date +%s) - T0 )) s" >&2

# ---- SExtractor A: detect.sex as it is ------------------------------------------------------
for f in $FIELDS; do
  "$SEX" "$f" -c benchmarks/sextractor/detect.sex -CATALOG_NAME "$WORK/cat/sexA/$(basename "$f")"
done

# ---- SExtractor B and sep sweeps, scoring, tables -----------------------------------------
echo "# $(date -u +%F) $(nproc) cores; GalSim $("$PY" -c 'import galsim; print(galsim.__version__)');" \
  "sep $("$PY" -c 'import sep; print(sep.__version__)'); $("$SEX" -v 2>&1 | head -1);" \
  "deepsky $("$DEEPSKY" --version | awk '{print $2}'); fields ${SIZE}², seeds $SEEDS"
SEX="$SEX" "$PY" benchmarks/galsim_compare.py "$WORK"
echo
echo "total $(( $(date +%s) - T0 )) s; results: $WORK/results/galsim.json"
