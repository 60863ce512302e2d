#!/usr/bin/env bash
# Source-detection benchmark of issue 6: SExtractor (Debian `source-extractor`) on simulated
# fields with truth, side by side with `deepsky detect` (section marked below).
#   accuracy: completeness by truth S/N, purity, F1 (rules: benchmarks/sextractor/evaluate.py),
#     and deepsky's completeness at SExtractor B's purity (benchmarks/sextractor/matched_purity.py)
#     - the bundled field data/sky_field.fits (256x256, seed 1) with data/sky_field_truth.fits
#     - 8 other 256x256 fields, pipelines/configs/sky.toml, seeds 2-9
#     - the 4096x4096 field below
#   speed: wall time of the whole command (read FITS, background, detect, measure, write the
#     catalogue) on a 4096x4096 field with the bundled field's source density
#     (benchmarks/sextractor/field4k.toml, seed 4096), best of $REPEATS, with CPU time and
#     peak RSS from /usr/bin/time.
# SExtractor runs at two documented operating points: A = benchmarks/sextractor/detect.sex
# (SExtractor's defaults, DETECT_THRESH 1.5, DETECT_MINAREA 5) and B = tuned.sex (tuned on
# training fields, seeds 1001-1008, by benchmarks/sextractor/tune.py; TUNE=1 reruns it); deepsky's
# operating point was chosen on the same fields by benchmarks/sextractor/tune_deepsky.py.
# Usage: benchmarks/detect.sh [WORKDIR]   env: REPEATS (3), TUNE (0), DEEPSKY (target/debug/deepsky)
# Needs: apt-get install source-extractor; the .venv of `make setup` (numpy, astropy).
# Writes ~0.1 GB into WORKDIR (fields, catalogues, results/*.json) and prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
REPEATS=${REPEATS:-3}
PY=.venv/bin/python
DEEPSKY=${DEEPSKY:-target/debug/deepsky}
SEX=$(command -v source-extractor || command -v sex) \
  || { echo "SExtractor not found: apt-get install source-extractor" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found: apt-get install time" >&2; exit 2; }
# The dev profile compiles every crate at opt-level 3 (Cargo.toml): the test build serves.
# Build only when it is missing, and always the whole workspace (a package subset changes
# feature unification and rebuilds polars).
[ -x "$DEEPSKY" ] || PATH="$PWD/.venv/bin:$PATH" cargo build -q --workspace --locked
SD=benchmarks/sextractor
mkdir -p "$WORK"/{fields,cat,results}
RES=$WORK/results

# ---- (a) fields ---------------------------------------------------------------------------
cp data/sky_field.fits "$WORK/fields/bundled.fits"
cp data/sky_field_truth.fits "$WORK/fields/bundled_truth.fits"
OTHER_SEEDS="2 3 4 5 6 7 8 9"
for s in $OTHER_SEEDS; do
  f=$WORK/fields/s$s.fits
  [ -f "$f" ] || "$DEEPSKY" -q simulate sky -c pipelines/configs/sky.toml --seed "$s" -o "$f" 2> >(grep -v "^wrote" >&2)
done
BIG=$WORK/fields/field4k.fits
[ -f "$BIG" ] || "$DEEPSKY" -q simulate sky -c $SD/field4k.toml --seed 4096 -o "$BIG" 2> >(grep -v "^wrote" >&2)
MPIX=$("$PY" -c "from astropy.io import fits; h = fits.getheader('$BIG'); print(h['NAXIS1'] * h['NAXIS2'] / 1e6)")
if [ "${TUNE:-0}" = 1 ]; then
  "$PY" $SD/tune.py "$WORK/tune" | tee "$RES/tune.tsv" | tail -1
fi

# ---- helpers ------------------------------------------------------------------------------
# evaluate LABEL SET CATALOG TRUTH [CATALOG TRUTH ...]  -> $RES/<LABEL>__<SET>.json
evaluate() {
  local label=$1 set=$2; shift 2
  "$PY" $SD/evaluate.py --label "$label" --fields "$@" > "$RES/${label}__${set}.json"
}
# timed LABEL NDET_CATALOG COMMAND...  -> $RES/<LABEL>__speed.json (best wall of $REPEATS runs)
timed() {
  local label=$1 cat=$2; shift 2
  local runs=()
  for _ in $(seq "$REPEATS"); do
    local load; load=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" "$@"
    runs+=("$(cat "$WORK/time.txt") $load")
  done
  printf '%s\n' "${runs[@]}" | "$PY" -c '
import sys, json
from astropy.table import Table
label, mpix, cat = sys.argv[1], float(sys.argv[2]), sys.argv[3]
runs = [dict(zip(("wall_s", "user_s", "sys_s", "max_rss_kb", "loadavg_1min"), map(float, l.split()))) for l in sys.stdin]
best = min(runs, key=lambda r: r["wall_s"])
out = {"label": label, "megapixels": mpix, "n_detections": len(Table.read(cat)), **best,
       "mpix_per_s": mpix / best["wall_s"], "mpix_per_cpu_s": mpix / (best["user_s"] + best["sys_s"]),
       "runs": runs}
print(json.dumps(out, indent=1))' "$label" "$MPIX" "$cat" > "$RES/${label}__speed.json"
}

# ---- (b, c) SExtractor: both operating points ----------------------------------------------
SEXVER=$("$SEX" -v 2>&1 | head -1)
for op in A B; do
  conf=$SD/$([ $op = A ] && echo detect.sex || echo tuned.sex)
  label="SExtractor-$op"
  sx() { "$SEX" "$1" -c "$conf" -CATALOG_NAME "$2"; }
  sx "$WORK/fields/bundled.fits" "$WORK/cat/${label}_bundled.fits"
  evaluate "$label" bundled "$WORK/cat/${label}_bundled.fits" "$WORK/fields/bundled_truth.fits"
  pairs=()
  for s in $OTHER_SEEDS; do
    sx "$WORK/fields/s$s.fits" "$WORK/cat/${label}_s$s.fits"
    pairs+=("$WORK/cat/${label}_s$s.fits" "$WORK/fields/s${s}_truth.fits")
  done
  evaluate "$label" other256 "${pairs[@]}"
  timed "$label" "$WORK/cat/${label}_4k.fits" "$SEX" "$BIG" -c "$conf" -CATALOG_NAME "$WORK/cat/${label}_4k.fits"
  evaluate "$label" 4k "$WORK/cat/${label}_4k.fits" "$WORK/fields/field4k_truth.fits"
done

# ---- deepsky detect predict: the bundled detector on the same images ----------------------
# pipelines/configs/detect.toml with the bundled model (data/models/detect); the catalogue's
# x, y are FITS 1-based like SExtractor's, and evaluate.py scores both the same way.
# Threads: deepsky uses both cores (candle's CPU backend), SExtractor 2.25 one.
dsk() { "$DEEPSKY" -q detect predict -c pipelines/configs/detect.toml --input "$1" -o "$2"; }
dsk "$WORK/fields/bundled.fits" "$WORK/cat/deepsky_bundled"
evaluate deepsky bundled "$WORK/cat/deepsky_bundled/catalog.fits" "$WORK/fields/bundled_truth.fits"
pairs=()
for s in $OTHER_SEEDS; do
  dsk "$WORK/fields/s$s.fits" "$WORK/cat/deepsky_s$s"
  pairs+=("$WORK/cat/deepsky_s$s/catalog.fits" "$WORK/fields/s${s}_truth.fits")
done
evaluate deepsky other256 "${pairs[@]}"
timed deepsky "$WORK/cat/deepsky_4k/catalog.fits" "$DEEPSKY" -q detect predict -c pipelines/configs/detect.toml \
  --input "$BIG" -o "$WORK/cat/deepsky_4k"
evaluate deepsky 4k "$WORK/cat/deepsky_4k/catalog.fits" "$WORK/fields/field4k_truth.fits"
# At SExtractor B's purity on each set (benchmarks/sextractor/matched_purity.py): catalogues
# with a lower score threshold for the 256² fields; the 4k catalogue's purity already exceeds B's.
low() { "$DEEPSKY" -q detect predict -c pipelines/configs/detect.toml --set predict.score_threshold=0.04 --input "$1" -o "$2" >/dev/null; }
low "$WORK/fields/bundled.fits" "$WORK/cat/deepsky_low_bundled"
"$PY" $SD/matched_purity.py --reference "$RES/SExtractor-B__bundled.json" \
  "$WORK/cat/deepsky_low_bundled/catalog.fits" "$WORK/fields/bundled_truth.fits" > "$RES/matched_bundled.txt"
pairs=()
for s in $OTHER_SEEDS; do
  low "$WORK/fields/s$s.fits" "$WORK/cat/deepsky_low_s$s"
  pairs+=("$WORK/cat/deepsky_low_s$s/catalog.fits" "$WORK/fields/s${s}_truth.fits")
done
"$PY" $SD/matched_purity.py --reference "$RES/SExtractor-B__other256.json" "${pairs[@]}" > "$RES/matched_other256.txt"
"$PY" $SD/matched_purity.py --reference "$RES/SExtractor-B__4k.json" \
  "$WORK/cat/deepsky_4k/catalog.fits" "$WORK/fields/field4k_truth.fits" > "$RES/matched_4k.txt"
# ---- end of deepsky detect predict ---------------------------------------------------------

# ---- (d) tables ----------------------------------------------------------------------------
echo "# $(date -u +%F) $(nproc) cores; $SEXVER; deepsky $("$DEEPSKY" --version | awk '{print $2}'); load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$RES" <<'PYEOF'
import glob, json, os, sys
res = sys.argv[1]
acc = sorted(glob.glob(os.path.join(res, "*__*.json")))
sets = {"bundled": "data/sky_field.fits (seed 1)", "other256": "8 fields 256², seeds 2–9",
        "4k": "4096² field, seed 4096"}
bins = ["0-3", "3-5", "5-10", "10-20", "20-50", "50+", "snr3_10", "all"]
def f(x, d=3):
    return "—" if x is None else f"{x:.{d}f}"
print("\n| detector | field(s) | " + " | ".join(("S/N " + b.replace("snr3_10", "3–10 (goal)").replace("all", "all")) for b in bins)
      + " | purity | purity (sources only) | F1 | detections | artefacts found (CR, bad col.) |")
print("|" + " --- |" * (len(bins) + 7))
for s in sets:
    for p in acc:
        label, kind = os.path.basename(p)[:-5].split("__")
        if kind != s:
            continue
        t = json.load(open(p))["total"]
        a = t["artefacts"]
        cells = [f"{f(t['bins'][b]['completeness'], 2)} ({t['bins'][b]['n']})" for b in bins]
        print(f"| {label} | {sets[s]} | " + " | ".join(cells)
              + f" | {f(t['purity'])} | {f(t['purity_sources'])} | {f(t['f1'])} | {t['n_detections']}"
              + f" | {a['cosmic_ray']['found']}/{a['cosmic_ray']['n']}, {a['bad_column']['found']}/{a['bad_column']['n']} |")
print("\nCompleteness per truth S/N bin (number of true sources in the bin); match radius "
      + ", ".join(sorted({f"{r:g}" for p in acc if not p.endswith('__speed.json') for r in json.load(open(p))['total']['radius_px']})) + " px.")
print("\n| detector | 4096² wall (best) | MPix/s | CPU s (user+sys) | MPix per CPU s | peak RSS | detections | load (1 min) during runs |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for p in sorted(glob.glob(os.path.join(res, "*__speed.json"))):
    t = json.load(open(p))
    loads = ", ".join(f"{r['loadavg_1min']:.1f}" for r in t["runs"])
    walls = ", ".join(f"{r['wall_s']:.2f}" for r in t["runs"])
    print(f"| {t['label']} | {t['wall_s']:.2f} s (runs: {walls}) | {t['mpix_per_s']:.2f} | {t['user_s'] + t['sys_s']:.2f}"
          f" | {t['mpix_per_cpu_s']:.2f} | {t['max_rss_kb'] / 1024:.0f} MiB | {t['n_detections']} | {loads} |")
PYEOF
echo
echo "deepsky at SExtractor B's purity (completeness at S/N 3-10):"
for set in bundled other256 4k; do echo "  $set: $(cat "$RES/matched_$set.txt")"; done
echo
echo "Results: $RES"
