#!/usr/bin/env python3
"""Choose deepsky detect's operating point (score and NMS IoU thresholds and the test-time
orientations in pipelines/configs/detect.toml) on TRAINING fields, by the same rule tune.py uses for SExtractor.

The fields are the ones tune.py uses: 256x256, pipelines/configs/sky.toml, seeds 1001-1008
(none of them is a benchmark field or a field the bundled model was trained on: those are seeds
10000-10047). The winner is the setting with the highest completeness for truth S/N in [3,10)
among those with purity >= 0.90 (evaluate.py's rules, counts summed over the 8 fields); ties go
to the higher purity.

`deepsky detect predict` runs once per NMS IoU with a low score threshold; higher score
thresholds are then applied to its catalogue. That equals running with the higher threshold:
greedy NMS visits boxes in falling score order, so a box is only ever suppressed by boxes that
score higher, and those pass any threshold the box passes.

Usage (from the repository root; needs target/debug/deepsky and the .venv):
  .venv/bin/python benchmarks/sextractor/tune_deepsky.py [WORKDIR]
Prints one TSV line per setting (best first) and the winner; ~5 min on 2 cores.
"""
import itertools
import os
import subprocess
import sys
import tempfile

import numpy as np
from astropy.table import Table

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402
import tune  # noqa: E402  (the same fields and the same rule as SExtractor's tuning)

IOU = [0.3, 0.45]
ORIENTATIONS = [1, 4, 8]
SCORE = [round(s, 3) for s in np.arange(0.04, 0.301, 0.01)]


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    deepsky = os.environ.get("DEEPSKY", "target/debug/deepsky")
    fields = tune.training_fields(work, deepsky)
    opts = evaluate.default_options()
    rows = []
    for orient, iou in itertools.product(ORIENTATIONS, IOU):
        cats = []
        for img, _ in fields:
            out = os.path.join(work, "deepsky", f"o{orient}_iou{iou}", os.path.basename(img)[:-5])
            subprocess.run([deepsky, "-q", "detect", "predict", "-c", "pipelines/configs/detect.toml",
                            "--set", f"predict.score_threshold={min(SCORE)}",
                            "--set", f"predict.iou_threshold={iou}",
                            "--set", f"predict.orientations={orient}",
                            "--input", img, "-o", out], check=True, stdout=subprocess.DEVNULL)
            cats.append(Table.read(os.path.join(out, "catalog.fits")))
        for score in SCORE:
            results = []
            for (img, truth), cat in zip(fields, cats):
                path = os.path.join(work, "deepsky", "cut.fits")
                cat[cat["score"] >= score].write(path, overwrite=True)
                opts.image = img
                results.append(evaluate.evaluate(path, truth, opts))
            t = evaluate.total(results)
            rows.append(((score, iou, orient), t["completeness_snr3_10"], t["purity"], t["purity_sources"],
                         t["completeness"], t["n_detections"]))
    tune.report(["score_threshold", "iou_threshold", "orientations"], rows, len(fields))


if __name__ == "__main__":
    main()
