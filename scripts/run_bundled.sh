#!/usr/bin/env bash
# Run every bundled config, and the CLI's other output-producing commands, with one deepsky
# binary, so that two binaries' outputs can be compared file by file with
# scripts/compare_outputs.py (the bit-identity check of refactors such as issue 19).
#
# Usage: scripts/run_bundled.sh DEEPSKY_BIN OUTDIR [--quick]
#
#   DEEPSKY_BIN  the binary to run (e.g. target/debug/deepsky)
#   OUTDIR       created; must be missing or empty. One subfolder per run (NAME/), holding the
#                run's outputs (its -o folder, or its captured stdout FILE for inspect,
#                --dump-config and submit --dry-run) and its logs: NAME/_run.stdout.log,
#                NAME/_run.stderr.log (or NAME/FILE.stderr.log; timings, for humans, not
#                compared) and NAME/_run.exit (or NAME/FILE.exit: the exit code, compared).
#                OUTDIR/_timings.tsv lists each command's wall time and exit code.
#   --quick      shrink the long trainings (detect train, fastsim train, fastsim images) to
#                smoke runs of 5-20 s; everything else runs as bundled: about 2.5 min on 2
#                cores. Without it, the bundled configs run exactly as they are (the
#                contract): about 10 min on 2 cores (fastsim train 4 min, fastsim images 3,
#                detect train 1.5), longer when the cores are shared.
#
# Environment: THREADS (default 2): numeric threads, passed as `--threads` and
# RAYON_NUM_THREADS. Every deepsky call also gets `-q`.
#
# Typical use (the data/ and configs used are those of the checkout holding this script):
#   scripts/run_bundled.sh /work/baseline-bin/deepsky /tmp/old --quick
#   scripts/run_bundled.sh target/debug/deepsky        /tmp/new --quick
#   .venv/bin/python scripts/compare_outputs.py /tmp/old /tmp/new
# Both trees must be made with the same THREADS and the same mode: the command lines are
# compared too. Two runs of one binary give identical trees (checked for the baseline).
#
# Reproducible command lines. Every output records the command that made it (provenance.json,
# FITS HISTORY cards, HDF5 attributes). So that these are the same for any OUTDIR, checkout or
# binary location, every command runs in OUTDIR/.work/, which holds symlinks `data`,
# `pipelines` and `notebooks` to this checkout's folders and `out` -> OUTDIR, and calls the
# binary as plain `deepsky` through OUTDIR/.bin/ on PATH. Commands thus read `deepsky -q
# --threads 2 detect predict -c pipelines/configs/detect.toml --input data/sky_field.fits -o
# out/detect_predict_truth` wherever they run. (Only `submit` writes absolute paths: the
# binary and the working directory; its captured output replaces them by <DEEPSKY> and <WORK>.)
#
# A failing command does not stop the script: its exit code is recorded in NAME/*.exit (and the
# comparison reports it), and the script exits 1 at the end, naming the failed runs.
set -uo pipefail
# The whole script is one block, which bash reads before running it: editing the file while a
# run is in progress cannot change that run.
{
usage() { sed -n '2,/^set -uo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2; exit 2; }
[[ $# -ge 2 && $# -le 3 ]] || usage
QUICK=0
if [[ $# -eq 3 ]]; then
    [[ $3 == --quick ]] || usage
    QUICK=1
fi
BIN=$(realpath -e "$1") || { echo "run_bundled: no binary at $1" >&2; exit 2; }
[[ -x $BIN ]] || { echo "run_bundled: $BIN is not executable" >&2; exit 2; }
mkdir -p "$2" || exit 2
OUT=$(realpath "$2")
if [[ -n $(ls -A "$OUT") ]]; then
    echo "run_bundled: $OUT is not empty; give a new folder (old outputs would mix in)" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
THREADS=${THREADS:-2}
export RAYON_NUM_THREADS=$THREADS
# Nothing in the environment may change a run: the thread setting is ours, logging is quiet.
unset DEEPSKY_THREADS DEEPSKY_LOG CANDLE_NUM_THREADS

WORK=$OUT/.work
mkdir -p "$WORK" "$OUT/.bin"
for d in data pipelines notebooks; do ln -s "$ROOT/$d" "$WORK/$d"; done
ln -s "$OUT" "$WORK/out"
ln -s "$BIN" "$OUT/.bin/deepsky"
export PATH="$OUT/.bin:$PATH"

TIMINGS=$OUT/_timings.tsv
printf 'run\tseconds\texit\n' >"$TIMINGS"
FAILED=()
START=$(date +%s)
echo "run_bundled: $BIN -> $OUT ($([[ $QUICK == 1 ]] && echo quick || echo full), $THREADS threads)"
"$BIN" --version >"$OUT/_version.txt" 2>&1

# exec_logged NAME LOG STDOUT_FILE CMD...: run CMD in the work folder, stdout to STDOUT_FILE,
# stderr to NAME/LOG.stderr.log, exit code to NAME/LOG.exit, wall time to _timings.tsv.
exec_logged() {
    local name=$1 log=$2 stdout=$3; shift 3
    local dir=$OUT/$name
    mkdir -p "$dir"
    local t0=$EPOCHREALTIME rc secs
    (cd "$WORK" && exec "$@") >"$stdout" 2>"$dir/$log.stderr.log"
    rc=$?
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    echo "$rc" >"$dir/$log.exit"
    printf '%s\t%s\t%s\n' "$name/$log" "$secs" "$rc" >>"$TIMINGS"
    printf '  %-50s %7s s%s\n' "$name/$log" "$secs" \
        "$([[ $rc == 0 ]] || echo "  FAILED (exit $rc; see $dir/$log.stderr.log)")"
    [[ $rc == 0 ]] || FAILED+=("$name/$log")
    return 0
}

# run NAME[:LOG] ARGS...: `deepsky -q --threads N ARGS...`; the run writes into out/NAME
# (give `-o out/NAME` in ARGS, or a file in it). Its stdout is a log: NAME/LOG.stdout.log
# (LOG defaults to _run; give one when several commands write into one folder).
run() {
    local name=${1%%:*} log=_run
    [[ $1 == *:* ]] && log=${1#*:}
    shift
    mkdir -p "$OUT/$name"
    exec_logged "$name" "$log" "$OUT/$name/$log.stdout.log" deepsky -q --threads "$THREADS" "$@"
}

# capture NAME FILE ARGS...: like run, but stdout is the output, saved as NAME/FILE; logs
# NAME/FILE.stderr.log and NAME/FILE.exit.
capture() {
    local name=$1 file=$2; shift 2
    mkdir -p "$OUT/$name"
    exec_logged "$name" "$file" "$OUT/$name/$file" deepsky -q --threads "$THREADS" "$@"
}

# dump NAME ARGS...: `--dump-config` output of ARGS, as dump_config/NAME.dump.toml.
dump() {
    local name=$1; shift
    capture dump_config "$name.dump.toml" "$@" --dump-config
}

CFG=pipelines/configs
NB=notebooks/configs

echo "== simulate (the bundled samples' commands and seeds, as data/regenerate.sh)"
run sim_sky        simulate sky     -c $CFG/sky.toml     -o out/sim_sky/sky_field.fits
run sim_cutouts    simulate cutouts -c $CFG/cutouts.toml -o out/sim_cutouts/cutouts.h5
run sim_events     simulate events  -c $CFG/events.toml  -o out/sim_events/events.fits
run sim_showers    simulate showers --particle e- --energy-range 1,100 -n 1000 --seed 4 \
    -o out/sim_showers/showers_calogan.h5
run sim_showers_calochallenge simulate showers --particle e- --energy-range 1,100 -n 1000 \
    --seed 4 --layout calochallenge -o out/sim_showers_calochallenge/showers.h5
# Other settings: the simulators' defaults, a fixed energy and another particle; events with another feature bin.
run sim_sky_defaults simulate sky --seed 5 -o out/sim_sky_defaults/sky.fits
run sim_showers_gamma50 simulate showers --particle gamma --energy 50 -n 200 --seed 7 \
    -o out/sim_showers_gamma50/showers.h5
run sim_events_bin1000 simulate events -c $CFG/events.toml --seed 11 --feature-bin 1000 \
    -o out/sim_events_bin1000/events.fits
# Fresh fields for the detector (the demo's seed 7, and seed 8), in their own folder.
run sim_fields:field7 simulate sky -c $CFG/sky.toml --seed 7 -o out/sim_fields/field7.fits
run sim_fields:field8 simulate sky -c $CFG/sky.toml --seed 8 -o out/sim_fields/field8.fits
for s in sky cutouts events showers; do
    dump simulate_${s}_defaults simulate $s
done
dump simulate_sky     simulate sky     -c $CFG/sky.toml
dump simulate_cutouts simulate cutouts -c $CFG/cutouts.toml
dump simulate_events  simulate events  -c $CFG/events.toml
dump simulate_showers_seed4 simulate showers --seed 4

echo "== inspect (every file in data/; stdout is the output)"
for f in "$ROOT"/data/*.fits "$ROOT"/data/*.h5; do
    b=$(basename "$f")
    capture inspect_json_stats  "$b.json" inspect --json --stats  "data/$b"
    capture inspect_json_header "$b.json" inspect --json --header "data/$b"
    capture inspect_text        "$b.txt"  inspect "data/$b"
    capture inspect_text_stats  "$b.txt"  inspect --stats "data/$b"
done
capture inspect_json_all all.json inspect --json --stats data/sky_field.fits data/events.fits \
    data/cutouts.h5 data/showers_calogan.h5
capture inspect_select events_columns.json inspect --json --stats --hdu EVENTS \
    --columns TIME,ENERGY,PI data/events.fits
capture inspect_select cutouts_images.txt inspect --stats --hdu /images data/cutouts.h5

echo "== anomaly"
run anomaly    anomaly -c $CFG/anomaly.toml -o out/anomaly
run anomaly_lc anomaly -c $CFG/anomaly_lightcurves.toml -o out/anomaly_lc
run anomaly_small anomaly -c $CFG/anomaly.toml -c $NB/anomaly_small.toml -o out/anomaly_small
run anomaly_apply anomaly -c $CFG/anomaly.toml --model out/anomaly/model -o out/anomaly_apply
for k in 0 1; do
    run anomaly_shard$k anomaly -c $CFG/anomaly.toml --model out/anomaly/model --shard $k/2 \
        -o out/anomaly_shard$k
done
# Shards named out of order on purpose: the merge orders them by index.
run anomaly_merged anomaly -c $CFG/anomaly.toml -o out/anomaly_merged \
    --merge out/anomaly_shard1 out/anomaly_shard0
run anomaly_lc_apply anomaly -c $CFG/anomaly_lightcurves.toml --model out/anomaly_lc/model \
    -o out/anomaly_lc_apply
# Code paths the bundled configs do not take (small and fast): a VAE, a Gaussian mixture,
# stamps cut from a FITS image around a catalogue, and a Parquet table as input.
run anomaly_lc_vae_gmm anomaly -c $CFG/anomaly_lightcurves.toml --set model.variational=true \
    --set cluster.method=gmm -o out/anomaly_lc_vae_gmm
run anomaly_fits_stamps anomaly --set input.kind=fits_stamps \
    --set 'input.path="data/sky_field.fits"' --set 'input.catalog="data/sky_field_truth.fits"' \
    --set input.catalog_hdu=CATALOG --set input.x_column=x --set input.y_column=y \
    --set input.id_column=id --set input.labels=class_id --set input.stamp_size=16 \
    --set 'input.label_names=[]' --set model.kind=dense --set 'model.widths=[32]' \
    --set model.latent=4 --set train.epochs=3 --set 'output.plots=["png","svg"]' \
    -o out/anomaly_fits_stamps
run anomaly_parquet anomaly --set input.kind=table \
    --set 'input.path="out/anomaly_lc/latent.parquet"' --set input.id_column=id \
    --set input.labels=label --set 'input.columns=["z0","z1","score"]' \
    --set input.normalise=standardise --set model.kind=dense --set 'model.widths=[8]' \
    --set model.latent=2 --set train.epochs=5 --set train.val_fraction=0.0 \
    --set output.top_k=5 --set 'output.plots=["png"]' -o out/anomaly_parquet
dump anomaly          anomaly -c $CFG/anomaly.toml
dump anomaly_lc       anomaly -c $CFG/anomaly_lightcurves.toml
dump anomaly_small    anomaly -c $CFG/anomaly.toml -c $NB/anomaly_small.toml
dump anomaly_defaults anomaly

echo "== detect"
run detect_predict_truth detect predict -c $CFG/detect.toml --input data/sky_field.fits \
    --truth data/sky_field_truth.fits -o out/detect_predict_truth
run detect_predict_fresh detect predict -c $CFG/detect.toml --input out/sim_fields/field7.fits \
    --truth out/sim_fields/field7_truth.fits -o out/detect_predict_fresh
# Several images (named out of sorted order), the same in two shards, and their merge.
MULTI=(out/sim_fields/field8.fits data/sky_field.fits out/sim_fields/field7.fits)
run detect_predict_multi detect predict -c $CFG/detect.toml --input "${MULTI[@]}" \
    -o out/detect_predict_multi
for k in 0 1; do
    run detect_shard$k detect predict -c $CFG/detect.toml --input "${MULTI[@]}" --shard $k/2 \
        -o out/detect_shard$k
done
run detect_merged detect merge -c $CFG/detect.toml out/detect_shard1 out/detect_shard0 \
    -o out/detect_merged
# Tiles with seams through the field, and the fast single-orientation operating point.
run detect_predict_tiled detect predict -c $CFG/detect.toml --input data/sky_field.fits \
    --truth data/sky_field_truth.fits --set predict.tile=96 --set predict.overlap=32 \
    --set predict.orientations=1 -o out/detect_predict_tiled
run detect_evaluate detect evaluate -c $CFG/detect.toml \
    --catalog out/detect_predict_truth/catalog.fits --truth data/sky_field_truth.fits \
    -o out/detect_evaluate
run detect_evaluate_multi detect evaluate -c $CFG/detect.toml \
    --catalog out/detect_predict_fresh/catalog.fits --truth out/sim_fields/field7_truth.fits \
    --label fresh -o out/detect_evaluate_fresh
if [[ $QUICK == 1 ]]; then
    # The bundled settings on 8 instead of 48 fields, for 6 instead of 40 epochs (the
    # validation split, schedule and checkpoints as bundled): about half a minute.
    DETECT_TRAIN_QUICK=(--set data.fields=8 --set train.epochs=6)
else
    DETECT_TRAIN_QUICK=()
fi
run detect_train detect train -c $CFG/detect_train.toml "${DETECT_TRAIN_QUICK[@]}" -o out/detect_train
run detect_predict_trained detect predict -c $CFG/detect.toml --input data/sky_field.fits \
    --truth data/sky_field_truth.fits --model out/detect_train/model -o out/detect_predict_trained
dump detect_predict  detect predict  -c $CFG/detect.toml --input data/sky_field.fits
dump detect_merge    detect merge    -c $CFG/detect.toml out/detect_shard0
dump detect_evaluate detect evaluate -c $CFG/detect.toml --catalog x.fits --truth y.fits
dump detect_train    detect train    -c $CFG/detect_train.toml
dump detect_train_quick detect train -c $CFG/detect_train.toml "${DETECT_TRAIN_QUICK[@]}"
dump detect_defaults detect predict --input data/sky_field.fits

echo "== submit --dry-run (prints the Slurm scripts; absolute paths replaced)"
capture submit_dry_run stdout.txt submit -n 2 -o out/submit_dry_run/survey \
    --input "${MULTI[@]}" --time 30:00 --mem 4G --cpus-per-task 2 \
    --sbatch-line=--qos=short --dry-run -- detect predict -c $CFG/detect.toml
# The scripts name the binary and the working folder by absolute path.
sed -i -e "s|$BIN|<DEEPSKY>|g" -e "s|$WORK|<WORK>|g" "$OUT/submit_dry_run/stdout.txt"

echo "== fastsim"
run fastsim_generate fastsim generate -c $CFG/fastsim.toml --energy 50 -n 1000 \
    -o out/fastsim_generate
run fastsim_generate_calochallenge fastsim generate -c $CFG/fastsim.toml --energy-range 1,100 \
    -n 1000 --set 'generate.layout="calochallenge"' -o out/fastsim_generate_calochallenge
run fastsim_generate_seed fastsim generate -c $CFG/fastsim.toml --energy 10 -n 100 --seed 5 \
    --particle e- -o out/fastsim_generate_seed
# --no-speed: the speed table is a timing, different on every run.
run fastsim_validate fastsim validate -c $CFG/fastsim.toml --no-speed -o out/fastsim_validate
run fastsim_validate_small fastsim validate -c $CFG/fastsim.toml -c $NB/fastsim_small.toml \
    --no-speed -o out/fastsim_validate_small
if [[ $QUICK == 1 ]]; then
    # The bundled network for 20 of its 600 epochs, with progress checks and checkpoints.
    FASTSIM_TRAIN_QUICK=(--set train.epochs=20 --set progress.every=10
        --set train.checkpoint_every=10)
    # The bundled image GAN for 3 of its 40 epochs.
    FASTSIM_IMAGES_QUICK=(--set images.train.epochs=3 --set images.train.checkpoint_every=2)
else
    FASTSIM_TRAIN_QUICK=()
    FASTSIM_IMAGES_QUICK=()
fi
run fastsim_train fastsim train -c $CFG/fastsim.toml "${FASTSIM_TRAIN_QUICK[@]}" -o out/fastsim_train
run fastsim_generate_trained fastsim generate -c $CFG/fastsim.toml --model out/fastsim_train/model \
    --energy 50 -n 500 -o out/fastsim_generate_trained
run fastsim_images fastsim images -c $CFG/fastsim.toml "${FASTSIM_IMAGES_QUICK[@]}" \
    -o out/fastsim_images
dump fastsim_train    fastsim train    -c $CFG/fastsim.toml
dump fastsim_generate fastsim generate -c $CFG/fastsim.toml
dump fastsim_validate fastsim validate -c $CFG/fastsim.toml
dump fastsim_validate_small fastsim validate -c $CFG/fastsim.toml -c $NB/fastsim_small.toml
dump fastsim_images   fastsim images   -c $CFG/fastsim.toml
dump fastsim_train_quick  fastsim train  -c $CFG/fastsim.toml "${FASTSIM_TRAIN_QUICK[@]}"
dump fastsim_images_quick fastsim images -c $CFG/fastsim.toml "${FASTSIM_IMAGES_QUICK[@]}"
dump fastsim_defaults fastsim train

END=$(date +%s)
printf 'total\t%d\t-\n' "$((END - START))" >>"$TIMINGS"
echo "run_bundled: done in $((END - START)) s; outputs in $OUT"
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "run_bundled: ${#FAILED[@]} run(s) failed: ${FAILED[*]}" >&2
    exit 1
fi
exit 0
}
