#!/usr/bin/env python3
"""Scores deepsky, SExtractor and sep on the GalSim validation fields (benchmarks/detect_galsim.sh).

Usage: galsim_compare.py WORK
  WORK/fields/<imager>_s<seed>.fits and _truth.fits   (benchmarks/galsim_fields.py)
  WORK/cat/deepsky/<stem>/catalog.fits                (deepsky detect predict, default config)
  WORK/cat/deepsky_low/<stem>/catalog.fits            (the same with score_threshold 0.02)
  WORK/cat/sexA/<stem>.fits                           (SExtractor, benchmarks/sextractor/detect.sex)
Runs itself: SExtractor "B" (a careful user: SEEING_FWHM and PIXEL_SCALE set to the truth, a
Gaussian filter of the true FWHM written to WORK/conv/<imager>.conv, DETECT_THRESH =
ANALYSIS_THRESH swept over SEX_THRESH) and sep (sep.Background defaults, filter_kernel = the
same Gaussian, err = the scalar global background RMS, thresh swept over SEP_THRESH). With a
scalar err sep filters like SExtractor (kernel normalised, threshold in units of the unfiltered
RMS applied to the filtered image), so the same threshold grid serves; its noise-weighted
"matched" mode needs a noise array, and with one (bkg.rms()) it merged this field's sources into
a few footprints of ~300 px (31 objects of 75 at thresh 1 on a 256² test field), so it is not
used. Writes
WORK/results/*.json and prints Markdown tables.

Scoring: benchmarks/sextractor/evaluate.py's own evaluate()/total() (match radius max(1.5 px,
FWHM px) from the truth file, one-to-one greedy matching, purity, F1), with its S/N bin edges
set to 0, 3, 10, 30, inf so that the bins are the ones reported here (3-10, 10-30, >30).
Operating points picked from a sweep, per imager (a careful user tunes per camera): the
threshold with the highest completeness at S/N 3-10 among those whose purity, summed over the
imager's fields, is at least the target (deepsky's default purity on that imager, or 0.90).
"""
import glob
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from astropy.io import fits
from astropy.table import Table

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "sextractor"))
import evaluate  # noqa: E402

evaluate.SNR_EDGES = [0.0, 3.0, 10.0, 30.0, math.inf]
evaluate.BIN_NAMES = [evaluate.bin_name(lo, hi) for lo, hi in zip(evaluate.SNR_EDGES[:-1], evaluate.SNR_EDGES[1:])]
OPTS = evaluate.default_options()

SEX_THRESH = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0]
SEP_THRESH = SEX_THRESH
DEEPSKY_SCORES = [round(x, 3) for x in np.arange(0.02, 0.951, 0.02)]
SEX = os.environ.get("SEX", "source-extractor")


def gauss_kernel(fwhm):
    """Circular Gaussian of the given FWHM (px) integrated over pixels, 1 at the centre; half-size ceil(1.5 FWHM)."""
    from math import erf, sqrt
    s = fwhm / (2 * math.sqrt(2 * math.log(2)))
    h = int(math.ceil(1.5 * fwhm))
    g = np.array([0.5 * (erf((i + 0.5) / (sqrt(2) * s)) - erf((i - 0.5) / (sqrt(2) * s))) for i in range(-h, h + 1)])
    k = np.outer(g, g)
    return k / k.max()


def write_conv(path, fwhm):
    k = gauss_kernel(fwhm)
    with open(path, "w") as f:
        f.write("CONV NORM\n")
        f.write(f"# {k.shape[0]}x{k.shape[1]} Gaussian of FWHM {fwhm:g} px (the imager's true PSF FWHM), "
                "pixel-integrated, 1 at the centre (benchmarks/galsim_compare.py)\n")
        for row in k:
            f.write(" ".join(f"{v:.6f}" for v in row) + "\n")


def score(pairs):
    """evaluate.py's total over (catalogue, truth) pairs."""
    return evaluate.total([evaluate.evaluate(c, t, OPTS) for c, t in pairs])


def summary(t, **extra):
    b = t["bins"]
    return {"n_detections": t["n_detections"], "purity": t["purity"], "f1": t["f1"],
            "c_3_10": b["snr3_10"]["completeness"], "n_3_10": b["snr3_10"]["n"],
            "c_10_30": b["10-30"]["completeness"], "n_10_30": b["10-30"]["n"],
            "c_30": b["30+"]["completeness"], "n_30": b["30+"]["n"],
            "c_all": b["all"]["completeness"], "n_all": b["all"]["n"],
            "found": {k: b[k]["found"] for k in ("snr3_10", "10-30", "30+", "all")},
            "matched": t["matched_source"] + t["matched_artefact"], **extra}


def pick(sweep, target):
    """The swept point with the highest completeness at S/N 3-10 among those with purity >= target."""
    ok = [s for s in sweep if s["purity"] is not None and s["purity"] >= target - 1e-12]
    if not ok:
        best = max(sweep, key=lambda s: (s["purity"] or 0))
        return dict(best, note=f"no threshold reaches purity {target:.3f}")
    return max(ok, key=lambda s: (s["c_3_10"] or 0, s["purity"]))


def combine(points):
    """Sum per-imager operating points into one overall point (counts added, ratios recomputed)."""
    n_det = sum(p["n_detections"] for p in points)
    matched = sum(p["matched"] for p in points)
    out = {"n_detections": n_det, "purity": matched / n_det if n_det else None, "matched": matched}
    for key, nk, fk in (("c_3_10", "n_3_10", "snr3_10"), ("c_10_30", "n_10_30", "10-30"),
                        ("c_30", "n_30", "30+"), ("c_all", "n_all", "all")):
        n = sum(p[nk] for p in points)
        out[nk] = n
        out[key] = sum(p["found"][fk] for p in points) / n if n else None
    p, c = out["purity"], out["c_all"]
    out["f1"] = 2 * p * c / (p + c) if p and c else None
    return out


def match_classes(cat_path, truth_path, cls_col):
    """(truth class, detected class) of every matched star/galaxy, by evaluate.py's matching."""
    det = evaluate.read_table(cat_path)
    truth = Table.read(truth_path, hdu="CATALOG")
    xc, yc = evaluate.col(det, "X_IMAGE", "x"), evaluate.col(det, "Y_IMAGE", "y")
    dx, dy = np.asarray(det[xc], float), np.asarray(det[yc], float)
    ok = np.isfinite(dx) & np.isfinite(dy)
    dx, dy, dcls = dx[ok], dy[ok], np.asarray(cls_col(det))[ok]
    tx, ty = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
    tcls = np.array([str(c).strip() for c in truth["class"]])
    radius = max(1.5, evaluate.fwhm_from_truth(truth_path) or 2.5)
    i, j, d = evaluate.candidate_pairs((tx, ty, tx, ty), dx, dy, 2 * radius)
    t2d, _ = evaluate.greedy_match(i, j, d, len(tx), len(dx), radius)
    m = t2d >= 0
    return list(zip(tcls[m], dcls[t2d[m]]))


def class_accuracy(pairs):
    n = len(pairs)
    st = [p for p in pairs if p[0] == "star"]
    ga = [p for p in pairs if p[0] == "galaxy"]
    return {"n": n, "accuracy": sum(a == b for a, b in pairs) / n if n else None,
            "stars": len(st), "stars_as_star": sum(b == "star" for _, b in st) / len(st) if st else None,
            "galaxies": len(ga), "galaxies_as_galaxy": sum(b == "galaxy" for _, b in ga) / len(ga) if ga else None}


def run_sex(img, out, thresh, conv):
    scale = fits.getheader(img.replace(".fits", "_truth.fits"))["PIXSCALE"]
    seeing = fits.getheader(img.replace(".fits", "_truth.fits"))["PSF_FWHM"]
    fwhm_px = seeing / scale
    subprocess.run([SEX, img, "-c", os.path.join(HERE, "sextractor", "detect.sex"), "-CATALOG_NAME", out,
                    "-FILTER_NAME", conv, "-SEEING_FWHM", f"{seeing:g}", "-PIXEL_SCALE", f"{scale:g}",
                    "-PHOT_APERTURES", f"{2 * fwhm_px:g}",
                    "-DETECT_THRESH", f"{thresh:g}", "-ANALYSIS_THRESH", f"{thresh:g}"], check=True)


def run_sep(img, fwhm_px, thresh_list, tmp):
    """sep at every threshold of thresh_list; returns {thresh: catalogue path}."""
    import sep
    data = fits.getdata(img).astype(np.float64)
    bkg = sep.Background(data)
    sub = data - bkg
    kernel = gauss_kernel(fwhm_px)
    sep.set_extract_pixstack(3_000_000)
    sep.set_sub_object_limit(4096)
    paths = {}
    for th in thresh_list:
        obj = sep.extract(sub, th, err=bkg.globalrms, filter_kernel=kernel)
        t = Table({"x": obj["x"] + 1.0, "y": obj["y"] + 1.0})   # sep is 0-based; FITS 1-based
        p = os.path.join(tmp, f"{os.path.basename(img)[:-5]}_sep{th:g}.fits")
        t.write(p, overwrite=True)
        paths[th] = p
    return paths


def main():
    work = sys.argv[1]
    res = os.path.join(work, "results")
    os.makedirs(res, exist_ok=True)
    os.makedirs(os.path.join(work, "conv"), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=work)
    fields = sorted(f for f in glob.glob(os.path.join(work, "fields", "*.fits")) if not f.endswith("_truth.fits"))
    by_imager = {}
    for f in fields:
        by_imager.setdefault(fits.getheader(f)["IMAGER"], []).append(f)
    out = {}
    for imager, imgs in sorted(by_imager.items()):
        th = fits.getheader(imgs[0].replace(".fits", "_truth.fits"))
        fwhm_px = th["FWHMPIX"]
        truths = [i.replace(".fits", "_truth.fits") for i in imgs]
        stems = [os.path.basename(i)[:-5] for i in imgs]
        r = {"psf": th["PSF"], "fwhm_px": fwhm_px, "pixscale": th["PIXSCALE"], "seeing_card": "SEEING" in fits.getheader(imgs[0]),
             "sky_subtracted": bool(th["SKYSUB"]), "sky_e": th["SKYLEVEL"], "n_fields": len(imgs)}
        # deepsky, default config
        dcats = [os.path.join(work, "cat", "deepsky", s, "catalog.fits") for s in stems]
        r["deepsky"] = summary(score(list(zip(dcats, truths))))
        pairs = sum((match_classes(c, t, lambda d: [str(v).strip() for v in d["class"]]) for c, t in zip(dcats, truths)), [])
        r["deepsky_class"] = class_accuracy(pairs)
        target = r["deepsky"]["purity"]
        # deepsky's own score threshold swept (an oracle: the best it could do if its scores were calibrated)
        lows = [Table.read(os.path.join(work, "cat", "deepsky_low", s, "catalog.fits")) for s in stems]
        sweep = []
        for thr in DEEPSKY_SCORES:
            ps = []
            for k, (cat, t) in enumerate(zip(lows, truths)):
                p = os.path.join(tmp, f"dsk{k}.fits")
                cat[cat["score"] >= thr].write(p, overwrite=True)
                ps.append((p, t))
            sweep.append(summary(score(ps), threshold=thr))
        r["deepsky_sweep"] = sweep
        r["deepsky@0.90"] = pick(sweep, 0.90)
        # SExtractor A: detect.sex as it is
        r["sexA"] = summary(score([(os.path.join(work, "cat", "sexA", s + ".fits"), t) for s, t in zip(stems, truths)]))
        # SExtractor B: a careful user's settings, DETECT_THRESH swept
        conv = os.path.join(work, "conv", f"{imager}.conv")
        write_conv(conv, fwhm_px)
        sweep = []
        for thr in SEX_THRESH:
            ps = []
            for img, s, t in zip(imgs, stems, truths):
                p = os.path.join(tmp, f"{s}_sex{thr:g}.fits")
                run_sex(img, p, thr, conv)
                ps.append((p, t))
            sweep.append(summary(score(ps), threshold=thr))
        r["sexB_sweep"] = sweep
        r["sexB@deepsky"] = pick(sweep, target)
        r["sexB@0.90"] = pick(sweep, 0.90)
        # SExtractor B's CLASS_STAR (> 0.5 = star) at the threshold matched to deepsky's purity
        thr = r["sexB@deepsky"]["threshold"]
        pairs = []
        for img, s, t in zip(imgs, stems, truths):
            p = os.path.join(tmp, f"{s}_sex{thr:g}.fits")
            pairs += match_classes(p, t, lambda d: np.where(np.asarray(d["CLASS_STAR"]) > 0.5, "star", "galaxy"))
        r["sexB_class"] = class_accuracy(pairs)
        # sep: matched filter of the true FWHM, thresh swept
        per = [run_sep(img, fwhm_px, SEP_THRESH, tmp) for img in imgs]
        sweep = [summary(score([(pp[thr], t) for pp, t in zip(per, truths)]), threshold=thr) for thr in SEP_THRESH]
        r["sep_sweep"] = sweep
        r["sep@deepsky"] = pick(sweep, target)
        r["sep@0.90"] = pick(sweep, 0.90)
        out[imager] = r
        print(f"{imager}: deepsky purity {target:.3f} c3-10 {r['deepsky']['c_3_10']:.3f}; "
              f"SExtractor B@deepsky t={r['sexB@deepsky']['threshold']} c3-10 {r['sexB@deepsky']['c_3_10']:.3f}",
              file=sys.stderr)
    rows = ["deepsky", "deepsky@0.90", "sexA", "sexB@deepsky", "sexB@0.90", "sep@deepsky", "sep@0.90"]
    overall = {k: combine([out[i][k] for i in out]) for k in rows}
    json.dump({"imagers": out, "overall": overall}, open(os.path.join(res, "galsim.json"), "w"), indent=1)
    print_tables(out, overall, rows)


NAMES = {
    "deepsky": "deepsky (default config)",
    "deepsky@0.90": "deepsky, score threshold picked per imager for purity ≥ 0.90 (oracle)",
    "sexA": "SExtractor A (detect.sex defaults)",
    "sexB@deepsky": "SExtractor B, best DETECT_THRESH at purity ≥ deepsky's",
    "sexB@0.90": "SExtractor B, best DETECT_THRESH at purity ≥ 0.90",
    "sep@deepsky": "sep, best thresh at purity ≥ deepsky's",
    "sep@0.90": "sep, best thresh at purity ≥ 0.90",
}


def f(x, d=3):
    return "—" if x is None else f"{x:.{d}f}"


def line(name, p, extra=""):
    thr = f" (t={p['threshold']:g})" if "threshold" in p else ""
    note = " ⚠ " + p["note"] if "note" in p else ""
    return (f"| {name}{thr}{note} | {f(p['c_3_10'], 2)} | {f(p['c_10_30'], 2)} | {f(p['c_30'], 2)} | {f(p['c_all'], 2)}"
            f" | {f(p['purity'])} | {f(p['f1'])} | {p['n_detections']} |{extra}")


def print_tables(out, overall, rows):
    head = ("| detector | C S/N 3–10 | C 10–30 | C >30 | C all | purity | F1 (all S/N) | detections |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |")
    any_r = next(iter(out.values()))
    print(f"\n### Overall ({len(out)} imagers × {any_r['n_fields']} fields; thresholds picked per imager)\n")
    print(f"Sources: {overall['deepsky']['n_3_10']} at S/N 3–10, {overall['deepsky']['n_10_30']} at 10–30, "
          f"{overall['deepsky']['n_30']} above 30, {overall['deepsky']['n_all']} in all.\n")
    print(head)
    for k in rows:
        print(line(NAMES[k], overall[k]))
    d, s = overall["deepsky"], overall["sexB@deepsky"]
    print(f"\nGoal check: deepsky default purity {f(d['purity'])} (goal ≥ 0.90); completeness S/N 3–10 "
          f"{f(d['c_3_10'])} vs SExtractor B at ≥ deepsky's purity {f(s['c_3_10'])}: "
          f"difference {f(d['c_3_10'] - s['c_3_10'])} (goal ≥ +0.05, at purity ≥ 0.90).")
    print("\n### Per imager\n")
    for imager, r in out.items():
        print(f"**{imager}**: {r['psf']} PSF, FWHM {r['fwhm_px']:g} px = {r['fwhm_px'] * r['pixscale']:.2f}″, "
              f"{r['pixscale']:g}″/px, sky {r['sky_e']:g} e⁻/px {'subtracted' if r['sky_subtracted'] else 'not subtracted'}, "
              f"SEEING card {'yes' if r['seeing_card'] else 'no'}; {r['n_fields']} fields, "
              f"{r['deepsky']['n_3_10']} sources at S/N 3–10 of {r['deepsky']['n_all']}\n")
        print(head)
        for k in rows:
            print(line(NAMES[k], r[k]))
        print()
    print("\n### Star/galaxy classification of matched true stars and galaxies\n")
    print("| imager | deepsky accuracy | deepsky: stars called star | deepsky: galaxies called galaxy | "
          "SExtractor B CLASS_STAR>0.5 accuracy | stars called star | galaxies called galaxy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    tot = {"deepsky_class": [], "sexB_class": []}
    for imager, r in out.items():
        a, b = r["deepsky_class"], r["sexB_class"]
        print(f"| {imager} | {f(a['accuracy'])} ({a['n']}) | {f(a['stars_as_star'])} ({a['stars']}) | "
              f"{f(a['galaxies_as_galaxy'])} ({a['galaxies']}) | {f(b['accuracy'])} ({b['n']}) | "
              f"{f(b['stars_as_star'])} ({b['stars']}) | {f(b['galaxies_as_galaxy'])} ({b['galaxies']}) |")
        for k in tot:
            tot[k].append(r[k])

    def agg(lst):
        n = sum(x["n"] for x in lst)
        ns = sum(x["stars"] for x in lst)
        ng = sum(x["galaxies"] for x in lst)
        acc = sum((x["accuracy"] or 0) * x["n"] for x in lst) / n if n else None
        st = sum((x["stars_as_star"] or 0) * x["stars"] for x in lst) / ns if ns else None
        ga = sum((x["galaxies_as_galaxy"] or 0) * x["galaxies"] for x in lst) / ng if ng else None
        return acc, n, st, ns, ga, ng
    a, b = agg(tot["deepsky_class"]), agg(tot["sexB_class"])
    print(f"| **all** | {f(a[0])} ({a[1]}) | {f(a[2])} ({a[3]}) | {f(a[4])} ({a[5]}) | {f(b[0])} ({b[1]}) | "
          f"{f(b[2])} ({b[3]}) | {f(b[4])} ({b[5]}) |")


if __name__ == "__main__":
    main()
