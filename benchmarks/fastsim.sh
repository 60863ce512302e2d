#!/usr/bin/env bash
# Fast-simulation benchmark of issue 7: the bundled shower GAN (data/models/fastsim) against
# the project's reference shower simulator, both measured in the same run by
# `deepsky fastsim validate` (pipelines/configs/fastsim.toml, [speed] section):
#   speed: showers/s of the simulator at 1, 10 and 100 GeV (e-), grown until a run takes
#     speed.simulator_seconds; showers/s of the generator at batch 1, 100 and 10 000 at the
#     same energies (one warm-up batch, then >= 2000 showers, up to the showers in memory);
#     both on $THREADS threads (RAYON_NUM_THREADS: the simulator's worker pool and candle's).
#   fidelity: 2 x 2000 reference showers (1-100 GeV, seeds 1001/1002) against 2000 generated
#     at the first sample's energies: chi2 separation power and W1 per observable, classifier
#     AUCs (high-level, all cells) with their reference-vs-reference floor.
# Usage: benchmarks/fastsim.sh [WORKDIR]   env: THREADS (1), DEEPSKY (target/debug/deepsky)
# Prints a Markdown table; the full report is WORKDIR/t$THREADS/report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
THREADS=${THREADS:-1}
DEEPSKY=${DEEPSKY:-target/debug/deepsky}
# The dev profile compiles every crate at opt-level 3 (Cargo.toml): the test build serves.
[ -x "$DEEPSKY" ] || PATH="$PWD/.venv/bin:$PATH" cargo build -q --workspace --locked
out="$WORK/t$THREADS"
RAYON_NUM_THREADS=$THREADS "$DEEPSKY" -q fastsim validate -c pipelines/configs/fastsim.toml -o "$out"
python3 - "$out/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["speed"]
print(f"threads: {s['threads']}, device {s['device']}\n")
print("| energy | simulator showers/s | GAN batch 1 | GAN batch 100 | GAN batch 10 000 | speed-up (best batch) |")
print("| --- | --- | --- | --- | --- | --- |")
for p in s["points"]:
    g = dict((b, v) for b, v in p["generator"])
    cell = lambda b: f"{g[b]:,.0f}" if b in g else "-"
    print(f"| {p['energy_gev']:g} GeV | {p['simulator_showers_per_s']:,.1f} | {cell(1)} | {cell(100)} | {cell(10000)} | {p['speedup']:,.0f}x |")
print()
print(f"AUC high-level {r['auc_high_level']:.3f} (reference vs reference {r['reference_auc_high_level']:.3f}); "
      f"all cells {r['auc_all_cells']:.3f} ({r['reference_auc_all_cells']:.3f})\n")
print("| observable | chi2 GAN | chi2 ref-ref | W1 GAN | W1 ref-ref |")
print("| --- | --- | --- | --- | --- |")
for k, o in r["observables"].items():
    print(f"| {k} | {o['chi2']:.3f} | {o['reference_chi2']:.3f} | {o['w1']:.4g} | {o['reference_w1']:.4g} |")
PY
