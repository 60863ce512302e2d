#!/usr/bin/env bash
# Detector speed against SExtractor (issue 22): the whole process (read the FITS image,
# background, detection, measurement, catalogue and all other outputs) of
#   deepsky detect predict -c pipelines/configs/detect.toml --input F -o OUT   (default config)
#   source-extractor F -c benchmarks/sextractor/detect.sex -CATALOG_NAME C     (SExtractor 2.25)
# on the same fields of the training simulator at the bundled field's source density
# (benchmarks/sextractor/field4k.toml with counts scaled by area), 256² to 8192² pixels, files in
# page cache. For each size: best wall time of $REPEATS runs, CPU time, peak RSS (GNU time),
# throughput in Mpix/s and the ratio deepsky/SExtractor (> 1: deepsky is faster). deepsky uses
# every core; SExtractor 2.25 (Debian's build) one.
# Usage: benchmarks/detect_speed.sh [WORKDIR]
#   env: REPEATS (5), SIZES ("256 1024 4096 8192"), DEEPSKY (target/release/deepsky, built when
#        missing), EXTRA (more `--set` arguments for deepsky, e.g. "--set predict.tile=256")
# Installs SExtractor (apt-get install source-extractor) when it is missing and this runs as root.
# The 8192² field takes ~5 min and ~6 GB to simulate; SIZES="256 1024 4096" skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
REPEATS=${REPEATS:-5}
SIZES=${SIZES:-"256 1024 4096 8192"}
DEEPSKY=${DEEPSKY:-target/release/deepsky}
EXTRA=${EXTRA:-}
if ! command -v source-extractor >/dev/null && ! command -v sex >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq source-extractor >/dev/null
  else
    echo "SExtractor not found: apt-get install source-extractor" >&2; exit 2
  fi
fi
SEX=$(command -v source-extractor || command -v sex)
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found: apt-get install time" >&2; exit 2; }
# The release build (what `cargo install` gives a user); the whole workspace so that feature
# unification matches the other builds.
[ -x "$DEEPSKY" ] || PATH="$PWD/.venv/bin:$PATH" cargo build -q --release --workspace --locked
SD=benchmarks/sextractor
mkdir -p "$WORK"/{fields,out}

# best_of LABEL COMMAND... -> "wall_s cpu_s max_rss_kb" of the fastest of $REPEATS runs
best_of() {
  shift
  local best=""
  for _ in $(seq "$REPEATS"); do
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" "$@" >/dev/null 2>&1
    read -r wall user sys rss < "$WORK/time.txt"
    local line; line="$wall $(awk "BEGIN{print $user + $sys}") $rss"
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < ${best%% *})}"; then best=$line; fi
  done
  echo "$best"
}

echo "| pixels | Mpix | SExtractor wall s | CPU s | RSS MiB | Mpix/s | deepsky wall s | CPU s | RSS MiB | Mpix/s | detections (SE / deepsky) | deepsky ÷ SExtractor throughput |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in $SIZES; do
  f=$WORK/fields/f$n.fits
  if [ ! -f "$f" ]; then
    # Counts of field4k.toml scaled by area (bad columns by width), seed = side.
    a=$(awk "BEGIN{print ($n / 4096)^2}"); l=$(awk "BEGIN{print $n / 4096}")
    cnt() { awk "BEGIN{printf \"%.0f\", $1 * $2}"; }
    "$DEEPSKY" -q simulate sky -c $SD/field4k.toml --seed "$n" -o "$f" \
      --set width="$n" --set height="$n" \
      --set n_stars="$(cnt 7680 "$a")" --set n_galaxies="$(cnt 38400 "$a")" \
      --set artefacts.cosmic_rays="$(cnt 1280 "$a")" \
      --set artefacts.saturated_stars="$(cnt 256 "$a")" \
      --set artefacts.bad_columns="$(cnt 16 "$l")" >/dev/null 2>&1
  fi
  cat "$f" > /dev/null # page cache
  mpix=$(awk "BEGIN{print $n * $n / 1000000}")
  read -r sw sc sr <<< "$(best_of se "$SEX" "$f" -c $SD/detect.sex -CATALOG_NAME "$WORK/out/se$n.fits")"
  # shellcheck disable=SC2086
  read -r dw dc dr <<< "$(best_of ds "$DEEPSKY" -q detect predict -c pipelines/configs/detect.toml \
    --input "$f" -o "$WORK/out/ds$n" $EXTRA)"
  nse=$(.venv/bin/python -c "from astropy.table import Table; print(len(Table.read('$WORK/out/se$n.fits')))" 2>/dev/null || echo "?")
  nds=$(.venv/bin/python -c "from astropy.table import Table; print(len(Table.read('$WORK/out/ds$n/catalog.fits')))" 2>/dev/null || echo "?")
  awk -v n="$n" -v m="$mpix" -v sw="$sw" -v sc="$sc" -v sr="$sr" -v dw="$dw" -v dc="$dc" \
    -v dr="$dr" -v nse="$nse" -v nds="$nds" 'BEGIN{
      printf "| %s² | %.3f | %.3f | %.3f | %.0f | %.1f | %.3f | %.3f | %.0f | %.1f | %s / %s | %.2f× |\n",
        n, m, sw, sc, sr / 1024, m / sw, dw, dc, dr / 1024, m / dw, nse, nds, sw / dw }'
done
echo
echo "SExtractor: $("$SEX" -v 2>&1 | head -1); deepsky: $("$DEEPSKY" --version); $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
