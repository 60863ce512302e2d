#!/usr/bin/env bash
# Autoencoder training throughput on the CPU, deepsky (candle) against PyTorch in the same run:
# the dense AE (widths [256, 64], latent 8) and the conv AE (widths [8, 16, 32], latent 8) on
# 32×32 single-channel stamps, batch 32, AdamW, the same steps and the same thread count.
# Each (implementation, model) runs REPEATS times as its own process, alternating deepsky and
# torch; the table gives the best run of each (samples/s over the timed steps, warm-up epoch
# excluded), the ratio of the medians over all runs too (this machine's speed drifts by ±15 %
# within minutes, and alternating spreads the drift over both sides), and how many cores other
# processes used meanwhile (others_cores; ~0 on a quiet machine). The raw JSON lines are
# printed first.
# Usage: benchmarks/ae_throughput.sh [STEPS]   (default 160 timed steps per run)
# Env: THREADS (default 2), REPEATS (default 5), TORCH_PY (default .venv-bench/bin/python, a
#   venv with torch: python3 -m venv .venv-bench && .venv-bench/bin/pip install torch).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-160}
THREADS=${THREADS:-2}
REPEATS=${REPEATS:-5}
PY=${TORCH_PY:-.venv-bench/bin/python}
"$PY" -c 'import torch' 2>/dev/null || {
  echo "no torch in $PY: python3 -m venv .venv-bench && .venv-bench/bin/pip install torch" >&2
  exit 1
}
# Always the whole workspace: building a package subset changes feature unification and
# rebuilds polars. The dev profile compiles the dependencies (candle, gemm) at opt-level 3.
PATH="$PWD/.venv/bin:$PATH" cargo build -q --workspace --examples --locked
BIN=target/debug/examples/ae_throughput
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "# $(date -u +%F) $(nproc) cores, threads=$THREADS, steps=$STEPS, repeats=$REPEATS," \
  "$("$PY" -c 'import torch; print("torch", torch.__version__)'), candle" \
  "$(awk '/^name = "candle-core"/{getline; gsub(/[^0-9.]/, ""); print}' Cargo.lock)"
export RAYON_NUM_THREADS=$THREADS
for _ in $(seq "$REPEATS"); do
  for model in dense conv; do
    "$BIN" --steps "$STEPS" --models "$model" | tee -a "$out"
    "$PY" benchmarks/ae_torch.py --steps "$STEPS" --models "$model" | tee -a "$out"
  done
done
echo
"$PY" - "$out" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best, runs = {}, {}
for r in rows:
    k = (r["impl"], r["model"])
    runs.setdefault(k, []).append(r["samples_per_s"])
    if k not in best or r["samples_per_s"] > best[k]["samples_per_s"]:
        best[k] = r
print("| model | params | deepsky samples/s | torch samples/s | deepsky / torch | median ratio | deepsky ms/step | torch ms/step | others' cores (deepsky / torch run) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for m in ("dense", "conv"):
    d, t = best.get(("deepsky", m)), best.get(("torch", m))
    if not d or not t:
        continue
    if d["params"] != t["params"]:
        print(f"warning: {m}: parameter counts differ ({d['params']} vs {t['params']})", file=sys.stderr)
    median = statistics.median(runs[("deepsky", m)]) / statistics.median(runs[("torch", m)])
    print(f"| {m} | {d['params']} | {d['samples_per_s']:.0f} | {t['samples_per_s']:.0f} | "
          f"{d['samples_per_s'] / t['samples_per_s']:.2f}× | {median:.2f}× | {d['ms_per_step']:.1f} | {t['ms_per_step']:.1f} | "
          f"{d['others_cores']} / {t['others_cores']} |")
PYEOF
