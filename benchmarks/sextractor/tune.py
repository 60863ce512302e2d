#!/usr/bin/env python3
"""Choose SExtractor's "tuned" operating point (benchmarks/sextractor/tuned.sex) on TRAINING fields.

The grid below runs over 256x256 fields simulated with pipelines/configs/sky.toml and seeds
1001-1008 (the test fields use seeds 1-5; the bundled data/sky_field.fits is seed 1), all other
settings from detect.sex. The winner is the setting with the highest completeness for truth
S/N in [3,10) among those with purity >= 0.90 (evaluate.py's rules, counts summed over the 8
fields); ties go to the higher purity. DETECT_THRESH and ANALYSIS_THRESH move together.

Usage (from the repository root; needs source-extractor and target/debug/deepsky):
  .venv/bin/python benchmarks/sextractor/tune.py [WORKDIR] [--quick]
Prints one TSV line per setting (best first) and the winner; ~2-4 min on one core.
"""
import itertools
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402

SEEDS = range(1001, 1009)
GRID = {
    "DETECT_THRESH": [0.5, 0.6, 0.7, 0.8, 1.0, 1.5],
    "DETECT_MINAREA": [2, 3, 5],
    "DEBLEND_MINCONT": [0.005, 0.0001, 0.0],
    "DEBLEND_NTHRESH": [32, 64],
}
MIN_PURITY = 0.90


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    work = args[0] if args else tempfile.mkdtemp()
    deepsky = os.environ.get("DEEPSKY", "target/debug/deepsky")
    sex = shutil.which("source-extractor") or shutil.which("sex")
    fields = training_fields(work, deepsky)
    opts = evaluate.default_options()
    keys = list(GRID)
    rows = []
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(keys, values))
        results = []
        for img, truth in fields:
            cat = os.path.join(work, "train", "cat.fits")
            cmd = [sex, img, "-c", "benchmarks/sextractor/detect.sex", "-CATALOG_NAME", cat,
                   "-ANALYSIS_THRESH", str(setting["DETECT_THRESH"])]
            for k, v in setting.items():
                cmd += [f"-{k}", str(v)]
            subprocess.run(cmd, check=True)
            opts.image = img
            results.append(evaluate.evaluate(cat, truth, opts))
        t = evaluate.total(results)
        rows.append((values, t["completeness_snr3_10"], t["purity"], t["purity_sources"],
                     t["completeness"], t["n_detections"]))
    report(keys, rows, len(fields))


def training_fields(work, deepsky):
    """The training fields (image, truth) in WORK/train, simulated when missing."""
    os.makedirs(os.path.join(work, "train"), exist_ok=True)
    fields = []
    for s in SEEDS:
        img = os.path.join(work, "train", f"train_{s}.fits")
        if not os.path.exists(img):
            subprocess.run([deepsky, "-q", "simulate", "sky", "-c", "pipelines/configs/sky.toml",
                            "--seed", str(s), "-o", img], check=True, stderr=subprocess.DEVNULL)
        fields.append((img, img[:-5] + "_truth.fits"))
    return fields


def report(keys, rows, n_fields):
    """Sort the settings by the rule (purity >= MIN_PURITY first, then completeness at S/N
    3-10, then purity), print them as TSV and the winner. Each row is (values, completeness
    3-10, purity, purity of sources, completeness, detections)."""
    rows.sort(key=lambda r: (r[2] >= MIN_PURITY, r[1], r[2]), reverse=True)
    print("\t".join(keys + ["compl_snr3_10", "purity", "purity_sources", "compl_all", "n_det"]))
    for values, c, p, ps, ca, n in rows:
        print("\t".join([str(v) for v in values] + [f"{c:.4f}", f"{p:.4f}", f"{ps:.4f}", f"{ca:.4f}", str(n)]))
    best = rows[0]
    print(f"# best with purity >= {MIN_PURITY}: " + " ".join(f"{k} {v}" for k, v in zip(keys, best[0]))
          + f" -> completeness(3-10) {best[1]:.3f}, purity {best[2]:.3f} ({n_fields} training fields)")


if __name__ == "__main__":
    main()
