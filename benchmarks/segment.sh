#!/usr/bin/env bash
# Cosmic-ray masks, inpainting and source footprints: `deepsky segment predict` side by side with
# astroscrappy 1.3.0 (LACosmic), deepCR 0.3.1 (every mask model it ships) and SExtractor's
# segmentation map, on fields made by GalSim with a cosmic-ray injector that is not deepsky's
# (benchmarks/segment_fields.py; scoring rules in benchmarks/segment_compare.py's docstring).
#   dev fields (seeds $DEV_SEEDS): every threshold/setting of every tool, deepsky's included, is
#     chosen there (FPR <= 1e-3, highest TPR)
#   report fields (seeds $REPORT_SEEDS): the numbers
# Usage: benchmarks/segment.sh   env: OUT (out/segbench), DEV_SEEDS ("100 101 102"),
#   REPORT_SEEDS ("200 201 202 203 204 205"), SIZE (512), VENV (.venv-bench), DEEPSKY
#   (target/release/deepsky: `cargo build --release` first), SEGMENT_CONFIG
#   (pipelines/configs/segment.toml; its relative paths are taken from the checkout's root),
#   SEGMENT_MODEL (deepsky --model DIR; default: the config's input.model),
#   COMPARE_ARGS (extra options of segment_compare.py, e.g.
#   "--deepcr-models ACS-WFC decam --sigclip 4 4.5 --objlim 2 5" for a quick run)
# Installs what it needs: the venv with benchmarks/requirements-segment.txt (torch from PyPI, large)
# and Debian's source-extractor. deepsky is skipped with a note if the binary has no `segment`
# or its run fails (e.g. no trained model yet); it runs with its default threads (all cores).
# 10-16 min on 2 cores at the defaults (the two astroscrappy sweeps, 36 settings x 9 fields each,
# are most of it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out/segbench}
DEV_SEEDS=${DEV_SEEDS:-"100 101 102"}
REPORT_SEEDS=${REPORT_SEEDS:-"200 201 202 203 204 205"}
SIZE=${SIZE:-512}
VENV=${VENV:-$ROOT/.venv-bench}
DEEPSKY=${DEEPSKY:-$ROOT/target/release/deepsky}
SEGMENT_CONFIG=${SEGMENT_CONFIG:-$ROOT/pipelines/configs/segment.toml}

# ---- what it needs -------------------------------------------------------------------------
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import astroscrappy, deepCR, galsim, scipy, matplotlib" 2>/dev/null \
  || "$VENV/bin/pip" install -q -r benchmarks/requirements-segment.txt
SEX=$(command -v source-extractor || command -v sex || true)
if [ -z "$SEX" ]; then
  apt-get update -qq && apt-get install -y -qq source-extractor >/dev/null
  SEX=$(command -v source-extractor)
fi
PY=$VENV/bin/python
mkdir -p "$OUT"
T0=$(date +%s)

# ---- fields --------------------------------------------------------------------------------
# shellcheck disable=SC2086
"$PY" benchmarks/segment_fields.py "$OUT/fields/dev" --seeds $DEV_SEEDS --size "$SIZE"
# shellcheck disable=SC2086
"$PY" benchmarks/segment_fields.py "$OUT/fields/report" --seeds $REPORT_SEEDS --size "$SIZE"
echo "fields in $(( $(date +%s) - T0 )) s" >&2

# ---- every tool, scores, tables --------------------------------------------------------------
DSKV=$([ -x "$DEEPSKY" ] && "$DEEPSKY" --version 2>/dev/null | awk '{print $2}' || echo "absent")
{
  echo "## deepsky segment vs astroscrappy, deepCR, SExtractor ($(date -u +%F))"
  echo
  echo "$(nproc) cores; astroscrappy $("$PY" -c 'import astroscrappy; print(astroscrappy.__version__)'),"\
    "deepCR $("$PY" -c 'import importlib.metadata as m; print(m.version("deepCR"))'),"\
    "torch $("$PY" -c 'import torch; print(torch.__version__, "threads", torch.get_num_threads())'),"\
    "GalSim $("$PY" -c 'import galsim; print(galsim.__version__)'), $("$SEX" -v 2>&1 | head -1),"\
    "deepsky $DSKV; fields ${SIZE}², dev seeds $DEV_SEEDS, report seeds $REPORT_SEEDS"
  # shellcheck disable=SC2086 # COMPARE_ARGS is a list of options
  "$PY" benchmarks/segment_compare.py "$OUT" --deepsky "$DEEPSKY" --config "$SEGMENT_CONFIG" --sex "$SEX" \
    ${SEGMENT_MODEL:+--deepsky-model "$SEGMENT_MODEL"} ${COMPARE_ARGS:-} 2> >(grep -v -i warning >&2)
  echo
  echo "Reproduce: OUT=$OUT DEV_SEEDS=\"$DEV_SEEDS\" REPORT_SEEDS=\"$REPORT_SEEDS\" SIZE=$SIZE"\
    "DEEPSKY=$DEEPSKY SEGMENT_CONFIG=$SEGMENT_CONFIG${SEGMENT_MODEL:+ SEGMENT_MODEL=$SEGMENT_MODEL}${COMPARE_ARGS:+ COMPARE_ARGS=\"$COMPARE_ARGS\"} benchmarks/segment.sh"
} | tee "$OUT/RESULTS.md"
echo
echo "total $(( $(date +%s) - T0 )) s; $OUT/RESULTS.md, $OUT/results/segment.json, $OUT/results/roc.png"
