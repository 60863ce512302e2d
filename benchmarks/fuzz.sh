#!/usr/bin/env bash
# Damaged-input benchmark of issue 20: a seeded corpus of truncated, bit-flipped, zeroed and
# header-mangled copies of the bundled files and of the files astropy, PyTables and h5py wrote
# (../shared/testdata/external), read by deepsky and, side by side on the same corpus, by
# astropy/h5py (benchmarks/fuzz_peer.py). Counts per verdict go into RELIABILITY.md.
# Usage: benchmarks/fuzz.sh [PER_SOURCE] [SEED] [WORKDIR]   (needs `make setup`)
#   PER_SOURCE damaged copies of each source file (default 100: about 2 000 files);
#   PEER_PER_SOURCE (env, default 30) for the slower Python peer.
set -euo pipefail
cd "$(dirname "$0")/.."
PER_SOURCE=${1:-100}
SEED=${2:-1}
WORK=${3:-target/fuzz}
PEER_PER_SOURCE=${PEER_PER_SOURCE:-30}
# The dev profile compiles every crate with opt-level 3 (Cargo.toml), so the test build serves;
# pass PROFILE=release for a release build.
PROFILE=${PROFILE:-dev}
PATH="$PWD/.venv/bin:$PATH" cargo build -q --profile "$PROFILE" --workspace --locked
BIN=target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
SOURCES=(data ../shared/testdata/external/fits ../shared/testdata/external/hdf5)

echo "## deepsky, $PER_SOURCE damaged copies per source, seed $SEED"
echo
status=0
"$BIN/deepsky-fuzz" --deepsky "$BIN/deepsky" --sources "${SOURCES[@]}" \
  --per-source "$PER_SOURCE" --seed "$SEED" --out "$WORK/deepsky" || status=$?

echo
echo "## deepsky's library readers (deepsky-fuzz-read: images as f32 with WCS, streamed tables, HDF5 tables, showers), same corpus"
echo
"$BIN/deepsky-fuzz" --deepsky "$BIN/deepsky-fuzz-read" --sources "${SOURCES[@]}" \
  --per-source "$PER_SOURCE" --seed "$SEED" --out "$WORK/library" --reader "{}" || status=$?

echo
echo "## deepsky and astropy/h5py on the same corpus, $PEER_PER_SOURCE damaged copies per source, seed $SEED"
echo
echo "### deepsky (inspect --json --stats)"
"$BIN/deepsky-fuzz" --deepsky "$BIN/deepsky" --sources "${SOURCES[@]}" \
  --per-source "$PEER_PER_SOURCE" --seed "$SEED" --out "$WORK/deepsky-small" \
  --reader "inspect --json --stats {}" || status=$?
echo
echo "### astropy $(.venv/bin/python -c 'import astropy; print(astropy.__version__)') / h5py $(.venv/bin/python -c 'import h5py; print(h5py.__version__)') (open, read every HDU's data / every dataset and attribute)"
"$BIN/deepsky-fuzz" --deepsky .venv/bin/python --sources "${SOURCES[@]}" \
  --per-source "$PEER_PER_SOURCE" --seed "$SEED" --out "$WORK/peer" \
  --reader "benchmarks/fuzz_peer.py {}" || true
exit $status
