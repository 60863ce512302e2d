#!/usr/bin/env python3
"""deepsky's completeness at S/N 3-10 at the purity of a reference catalogue (SExtractor), on
the same fields: the comparison of the two detectors' completeness-purity curves at one point.

deepsky's catalogues must have been made with a score threshold at or below the ones tried
here (its `score` column is cut at each threshold in turn; the NMS argument of tune_deepsky.py
makes that equal to running with the higher threshold). For every threshold on a fine grid the
detections are scored with evaluate.py's rules, summed over the fields; the lowest threshold
whose purity is at least the reference's gives the reported completeness.

Usage:
  matched_purity.py --reference REF.json DEEPSKY_CATALOG TRUTH [DEEPSKY_CATALOG TRUTH ...]
    REF.json  evaluate.py's output for the reference detector on the same fields
Prints one JSON object: the reference's purity and completeness, and deepsky's threshold,
purity and completeness at the matched purity.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
from astropy.table import Table

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("pairs", nargs="+")
    args = ap.parse_args()
    ref = json.load(open(args.reference))
    ref = ref.get("total", ref)
    pairs = list(zip(args.pairs[::2], args.pairs[1::2]))
    cats = [(Table.read(c), t) for c, t in pairs]
    lowest = min(float(c["score"].min()) for c, _ in cats if len(c))
    opts = evaluate.default_options()
    tmp = tempfile.mkdtemp()
    for thr in np.arange(np.ceil(lowest * 200) / 200, 0.6, 0.005):
        results = []
        for k, (cat, truth) in enumerate(cats):
            path = os.path.join(tmp, f"cut{k}.fits")
            cat[cat["score"] >= thr].write(path, overwrite=True)
            results.append(evaluate.evaluate(path, truth, opts))
        t = evaluate.total(results)
        if t["purity"] >= ref["purity"]:
            print(json.dumps({
                "reference_purity": ref["purity"],
                "reference_completeness_snr3_10": ref["completeness_snr3_10"],
                "deepsky_score_threshold": round(float(thr), 3),
                "deepsky_purity": t["purity"],
                "deepsky_completeness_snr3_10": t["completeness_snr3_10"],
                "deepsky_completeness": t["completeness"],
            }))
            return
    sys.exit("no threshold reaches the reference's purity")


if __name__ == "__main__":
    main()
