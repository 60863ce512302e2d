#!/usr/bin/env python3
"""Cosmic-ray masks, inpainting and source footprints: `deepsky segment predict` against astroscrappy
(LACosmic), deepCR and SExtractor's segmentation map, on the fields of benchmarks/segment_fields.py
(driver: benchmarks/segment.sh).

Usage:
  segment_compare.py OUT [--deepsky BIN] [--config TOML] [--deepsky-model DIR] [--sex source-extractor]
      [--sigclip 3 3.5 4 4.5 5 6] [--objlim 0.5 1 2 3 5 8] [--deepcr-models ...] [--target-fpr 1e-3]
Reads OUT/fields/dev/field_*.fits and OUT/fields/report/field_*.fits (with _clean and _truth);
writes every tool's outputs under OUT/runs/, OUT/results/segment.json, OUT/results/roc.png and
prints the Markdown tables.

Rules (the same for every tool):
  * Everything a tool lets one choose (astroscrappy's sigclip x objlim, deepCR's threshold and
    input units, deepsky's COSMIC_RAY threshold) is chosen on the dev fields only: the setting with
    FPR <= target (1e-3) and the highest TPR there. Numbers are measured on the report fields.
  * CR pixels: truth HDU CR. FPR = flagged non-CR pixels / non-CR pixels; TPR = flagged CR pixels /
    CR pixels, both summed over the report fields.
  * "TPR @ FPR 1e-3" is read off the report-field ROC, interpolated linearly in FPR: from the
    probability map for deepCR and deepsky (flag = p > t), from the upper envelope of the swept
    settings for astroscrappy (with (0, 0) as its first point).
  * Star cores: fraction of STARCORE pixels (noiseless star > 50 sigma, not CR) flagged at the
    operating point.
  * Inpainting: RMS of (tool's cleaned image - CR-free image) over true CR pixels, in units of each
    pixel's noise sigma (sqrt(clean x gain + rn^2) / gain); missed CRs count with their full
    residual. astroscrappy: its cleaned image (meanmask); deepCR: its inpainting network
    ACS-WFC-F606W-2-32 for the ACS-WFC mask models (the one inpaint model in deepCR's inpaint_dict),
    its 5x5 median-mask inpainting for the others; deepsky: cleaned.fits.
  * Throughput: megapixels / wall time of one whole process per field (read, run, write), the
    median over the report fields; astroscrappy (OpenMP) and torch use all cores (2 here).
  * Footprints: IoU of (FOOTPRINT > 0) with the tool's source pixels, summed over the report fields:
    SExtractor 2.25 default.sex with DETECT_THRESH 1.5, filter gauss_3.0_5x5.conv,
    CHECKIMAGE_TYPE SEGMENTATION (> 0); deepsky's segmentation.fits (> 0).
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from astropy.io import fits

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import segment_tool  # noqa: E402

PY = sys.executable
TOOL = os.path.join(HERE, "segment_tool.py")
DEEPCR_MODELS = ["ACS-WFC", "ACS-WFC-F435W", "ACS-WFC-F606W", "ACS-WFC-F814W", "ACS-WFC-F606W-2-4",
                 "WFC3-UVIS", "decam", "example_model"]
DEEPCR_INPAINT = "ACS-WFC-F606W-2-32"
SEXDIR = "/usr/share/source-extractor"
STRONG = 5.0   # "strong" CR pixels: added signal > 5 sigma (the truth's CR plane starts at 0.5 sigma)


# ---- data -------------------------------------------------------------------------------------
def fields(out, split):
    return sorted(f for f in glob.glob(os.path.join(out, "fields", split, "field_*.fits"))
                  if not f.endswith(("_clean.fits", "_truth.fits")))


class Field:
    def __init__(self, path):
        self.path = path
        self.stem = os.path.basename(path)[:-5]
        self.data, self.hdr = fits.getdata(path, header=True)
        self.clean = fits.getdata(path[:-5] + "_clean.fits").astype(np.float64)
        with fits.open(path[:-5] + "_truth.fits") as t:
            self.cr = t["CR"].data.astype(bool)
            self.core = t["STARCORE"].data.astype(bool)
            self.fp = t["FOOTPRINT"].data > 0
        g, rn = float(self.hdr["GAIN"]), float(self.hdr["RDNOISE"])
        self.sigma = np.sqrt(np.maximum(self.clean, 0) * g + rn * rn) / g
        self.strong = self.cr & ((self.data - self.clean) > STRONG * self.sigma)
        self.mpix = self.data.size / 1e6


def timed(cmd, **kw):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return dt, r.stdout


# ---- metrics ----------------------------------------------------------------------------------
def counts(masks, flds):
    tp = sum(int((m & f.cr).sum()) for m, f in zip(masks, flds))
    fp = sum(int((m & ~f.cr).sum()) for m, f in zip(masks, flds))
    npos = sum(int(f.cr.sum()) for f in flds)
    nneg = sum(int((~f.cr).sum()) for f in flds)
    core = sum(int((m & f.core).sum()) for m, f in zip(masks, flds))
    ncore = sum(int(f.core.sum()) for f in flds)
    strong = sum(int((m & f.strong).sum()) for m, f in zip(masks, flds))
    nstrong = sum(int(f.strong.sum()) for f in flds)
    return {"tpr": tp / npos, "fpr": fp / nneg, "tp": tp, "fp": fp, "n_cr": npos, "n_noncr": nneg,
            "tpr_strong": strong / nstrong if nstrong else None, "n_strong": nstrong,
            "starcore_fp": core / ncore if ncore else None, "n_starcore": ncore}


def roc(probs, flds):
    """(fpr, tpr) ascending in FPR for flag = p > t over all distinct t, with (0, 0) and (1, 1)."""
    pos = np.sort(np.concatenate([p[f.cr] for p, f in zip(probs, flds)]))
    neg = np.sort(np.concatenate([p[~f.cr] for p, f in zip(probs, flds)]))
    t = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = (pos.size - np.searchsorted(pos, t, "right")) / pos.size
    fpr = (neg.size - np.searchsorted(neg, t, "right")) / neg.size
    return np.r_[0.0, fpr, 1.0], np.r_[0.0, tpr, 1.0]


def threshold_at(probs, flds, target):
    """The lowest t with (non-CR pixels with p > t) <= target x non-CR pixels."""
    neg = np.sort(np.concatenate([p[~f.cr] for p, f in zip(probs, flds)]))
    k = int(np.floor(target * neg.size))
    return float(neg[neg.size - 1 - k])


def tpr_at(fpr, tpr, target):
    return float(np.interp(target, fpr, tpr))


def envelope(points):
    """Upper envelope (FPR ascending, TPR non-decreasing) of (fpr, tpr) points, from (0, 0)."""
    env = [(0.0, 0.0)]
    for f, t in sorted(points):
        if t > env[-1][1]:
            env.append((f, t))
    return np.array([e[0] for e in env]), np.array([e[1] for e in env])


def inpaint_rms(cleaned, flds):
    r = np.concatenate([((c.astype(np.float64) - f.clean) / f.sigma)[f.cr] for c, f in zip(cleaned, flds)])
    a = np.concatenate([(c.astype(np.float64) - f.clean)[f.cr] for c, f in zip(cleaned, flds)])
    return {"rms_sigma": float(np.sqrt(np.mean(r * r))), "rms_adu": float(np.sqrt(np.mean(a * a))),
            "median_abs_sigma": float(np.median(np.abs(r)))}


def iou(preds, flds):
    inter = sum(int((p & f.fp).sum()) for p, f in zip(preds, flds))
    union = sum(int((p | f.fp).sum()) for p, f in zip(preds, flds))
    return inter / union


def mpix_per_s(times, flds):
    return statistics.median(f.mpix / t for t, f in zip(times, flds))


# ---- tools ------------------------------------------------------------------------------------
def astroscrappy_part(out, dev, rep, sigclips, objlims, target, psf=False):
    """The sigclip x objlim sweep on dev and report fields (in-process), its report-field envelope,
    the dev-chosen setting; then timed processes on the report fields at the chosen setting (and at
    the defaults 4.5 / 5 unless psf)."""
    res = {"sweep": [], "fsmode": "convolve (true PSF)" if psf else "median (default)"}
    for sc in sigclips:
        for ol in objlims:
            pt = {"sigclip": sc, "objlim": ol}
            for name, flds in (("dev", dev), ("report", rep)):
                masks = [segment_tool.run_astroscrappy(f.data, f.hdr, sc, ol, psf)[0] for f in flds]
                pt[name] = counts(masks, flds)
            res["sweep"].append(pt)
            print(f"astroscrappy{' psf' if psf else ''} sigclip {sc:g} objlim {ol:g}: dev TPR {pt['dev']['tpr']:.3f} "
                  f"FPR {pt['dev']['fpr']:.2e}", file=sys.stderr)
    ok = [p for p in res["sweep"] if p["dev"]["fpr"] <= target]
    chosen = max(ok, key=lambda p: p["dev"]["tpr"]) if ok else min(res["sweep"], key=lambda p: p["dev"]["fpr"])
    fpr, tpr = envelope([(p["report"]["fpr"], p["report"]["tpr"]) for p in res["sweep"]])
    res["envelope"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    # If no swept setting reaches the target FPR, the envelope's last TPR is a lower bound.
    res["tpr_at_target"] = tpr_at(fpr, tpr, target) if fpr[-1] >= target else float(tpr[-1])
    res["tpr_at_target_is_lower_bound"] = bool(fpr[-1] < target)
    rows = {}
    todo = [("dev-chosen", chosen["sigclip"], chosen["objlim"])]
    if not psf:
        todo.insert(0, ("defaults", 4.5, 5.0))
    for label, sc, ol in todo:
        times, masks, cleaned = [], [], []
        for f in rep:
            d = os.path.join(out, "runs", f"astroscrappy{'_psf' if psf else ''}_{sc:g}_{ol:g}", f.stem)
            dt, _ = timed([PY, TOOL, "astroscrappy", f.path, d, "--sigclip", f"{sc:g}", "--objlim", f"{ol:g}"]
                          + (["--psf"] if psf else []))
            times.append(dt)
            masks.append(fits.getdata(os.path.join(d, "mask.fits")).astype(bool))
            cleaned.append(fits.getdata(os.path.join(d, "cleaned.fits")))
        rows[label] = {"setting": f"sigclip {sc:g}, objlim {ol:g}" + (", fsmode convolve, true PSF" if psf else ""),
                       **counts(masks, rep), "inpaint": inpaint_rms(cleaned, rep), "mpix_s": mpix_per_s(times, rep),
                       "seconds": times, "tpr_at_target": res["tpr_at_target"],
                       "tpr_at_target_is_lower_bound": res["tpr_at_target_is_lower_bound"]}
    res["rows"] = rows
    res["chosen"] = {"sigclip": chosen["sigclip"], "objlim": chosen["objlim"], "dev": chosen["dev"],
                     "note": None if ok else f"no setting reaches FPR <= {target:g} on dev: lowest-FPR one"}
    return res


def deepcr_part(out, dev, rep, models, target):
    res = {}
    for name in models:
        inpaint = DEEPCR_INPAINT if name.startswith("ACS-WFC") else "medmask"
        mdl = segment_tool.deepcr_model(name, None)
        # dev: input units and threshold
        best = None
        per_units = {}
        for units in ("e", "e-sky"):
            probs = [mdl.clean(segment_tool.deepcr_input(f.data, f.hdr, units)[0], binary=False) for f in dev]
            fpr, tpr = roc(probs, dev)
            per_units[units] = tpr_at(fpr, tpr, target)
            if best is None or per_units[units] > best[1]:
                best = (units, per_units[units], threshold_at(probs, dev, target))
        units, _, thr = best
        # report: one timed process per field, with inpainting
        times, probs, cleaned = [], [], []
        for f in rep:
            d = os.path.join(out, "runs", f"deepcr_{name}", f.stem)
            dt, _ = timed([PY, TOOL, "deepcr", f.path, d, "--model", name, "--inpaint", inpaint,
                           "--threshold", repr(thr), "--units", units])
            times.append(dt)
            probs.append(fits.getdata(os.path.join(d, "probabilities.fits")))
            cleaned.append(fits.getdata(os.path.join(d, "cleaned.fits")))
        fpr, tpr = roc(probs, rep)
        r = {"setting": f"p > {thr:.3g}, input {units}", "units": units, "threshold": thr, "inpaint": None,
             "dev_tpr_at_target_by_units": per_units, "tpr_at_target": tpr_at(fpr, tpr, target),
             **counts([p > thr for p in probs], rep), "inpaint_model": inpaint,
             "mpix_s": mpix_per_s(times, rep), "seconds": times,
             "at_0.5": counts([p > 0.5 for p in probs], rep), "roc": thin_roc(fpr, tpr)}
        r["inpaint"] = inpaint_rms(cleaned, rep)
        res[name] = r
        print(f"deepCR {name}: units {units} t {thr:.3g}; report TPR@{target:g} {r['tpr_at_target']:.3f}, "
              f"op TPR {r['tpr']:.3f} FPR {r['fpr']:.2e}", file=sys.stderr)
    return res


def deepsky_available(binary):
    if not binary or not os.access(binary, os.X_OK):
        return f"binary {binary} not found"
    r = subprocess.run([binary, "segment", "--help"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"{binary} has no `segment` subcommand"


def read_cr_bit(path):
    """The COSMIC_RAY plane of deepsky's mask.fits (HDU MASK, bit named by the MP_COSMIC_RAY card)."""
    with fits.open(path) as h:
        m = h["MASK"]
        bit = m.header.get("MP_COSMIC_RAY")
        return None if bit is None else (m.data.astype(np.int64) >> int(bit)) & 1 > 0


def deepsky_part(out, dev, rep, binary, config, model, target):
    # The config's paths (input.model = "data/models/segment") are relative to its checkout's root.
    cwd = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(config))))
    config = os.path.abspath(config)
    extra = ["--model", os.path.abspath(model)] if model else []

    def run(flds, split):
        times, probs, cleaned, seg, mask = [], [], [], [], []
        for f in flds:
            d = os.path.abspath(os.path.join(out, "runs", "deepsky", split, f.stem))
            dt, _ = timed([binary, "-q", "segment", "predict", "-c", config, *extra,
                           "--input", os.path.abspath(f.path), "-o", d], cwd=cwd)
            times.append(dt)
            probs.append(fits.getdata(os.path.join(d, "probabilities.fits"), extname="COSMIC_RAY"))
            cleaned.append(fits.getdata(os.path.join(d, "cleaned.fits")))
            seg.append(fits.getdata(os.path.join(d, "segmentation.fits"), extname="SEGMENTATION") > 0)
            mask.append(read_cr_bit(os.path.join(d, "mask.fits")))
        return times, probs, cleaned, seg, mask
    _, dprobs, _, _, _ = run(dev, "dev")
    thr = threshold_at(dprobs, dev, target)
    times, probs, cleaned, seg, mask = run(rep, "report")
    fpr, tpr = roc(probs, rep)
    r = {"setting": f"COSMIC_RAY p > {thr:.3g}", "threshold": thr, "tpr_at_target": tpr_at(fpr, tpr, target),
         **counts([p > thr for p in probs], rep), "inpaint": inpaint_rms(cleaned, rep),
         "mpix_s": mpix_per_s(times, rep), "seconds": times, "iou": iou(seg, rep), "roc": thin_roc(fpr, tpr)}
    if all(m is not None for m in mask):
        r["own_mask"] = counts(mask, rep)
    return r


def sextractor_part(out, rep, sex):
    os.makedirs(os.path.join(out, "runs", "sextractor"), exist_ok=True)
    param = os.path.join(out, "runs", "sextractor", "segment.param")
    with open(param, "w") as fh:
        fh.write("NUMBER\nX_IMAGE\nY_IMAGE\nFLUX_AUTO\nFLAGS\n")
    res = {}
    for label, suffix in (("with CRs", ""), ("CR-free image (reference)", "_clean")):
        times, segs = [], []
        for f in rep:
            img = f.path[:-5] + suffix + ".fits"
            base = os.path.join(out, "runs", "sextractor", f.stem + suffix)
            dt, _ = timed([sex, img, "-c", os.path.join(SEXDIR, "default.sex"), "-PARAMETERS_NAME", param,
                           "-FILTER_NAME", os.path.join(SEXDIR, "gauss_3.0_5x5.conv"),
                           "-DETECT_THRESH", "1.5", "-ANALYSIS_THRESH", "1.5",
                           "-CATALOG_NAME", base + ".cat", "-CATALOG_TYPE", "ASCII_HEAD",
                           "-CHECKIMAGE_TYPE", "SEGMENTATION", "-CHECKIMAGE_NAME", base + "_seg.fits",
                           "-STARNNW_NAME", os.path.join(SEXDIR, "default.nnw"), "-VERBOSE_TYPE", "QUIET"])
            times.append(dt)
            segs.append(fits.getdata(base + "_seg.fits") > 0)
        res[label] = {"iou": iou(segs, rep), "mpix_s": mpix_per_s(times, rep), "seconds": times}
    return res


def thin_roc(fpr, tpr, n=400):
    """The ROC at n FPRs log-spaced in [1e-6, 1] (for the JSON and the plot)."""
    grid = np.logspace(-6, 0, n)
    return {"fpr": grid.tolist(), "tpr": np.interp(grid, fpr, tpr).tolist()}


# ---- output -----------------------------------------------------------------------------------
def plot(res, path, target):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 6))
    for key, col, what in (("astroscrappy", "k", "median"), ("astroscrappy_psf", "0.45", "convolve, true PSF")):
        a = res.get(key)
        if not a:
            continue
        ax.plot([p["report"]["fpr"] for p in a["sweep"]], [p["report"]["tpr"] for p in a["sweep"]], ".", color=col,
                alpha=0.5, label=f"astroscrappy {what}: sigclip × objlim")
        # linear between envelope points, as tpr_at reads it (drawn on a fine grid for the log axis)
        g = np.logspace(-6, 0, 400)
        g = g[g <= a["envelope"]["fpr"][-1]]
        ax.plot(g, np.interp(g, a["envelope"]["fpr"], a["envelope"]["tpr"]), color=col, lw=2,
                label=f"astroscrappy {what}: envelope")
    for name, r in res.get("deepcr", {}).items():
        ax.plot(r["roc"]["fpr"], r["roc"]["tpr"], lw=1, label=f"deepCR {name}")
    if res.get("deepsky"):
        ax.plot(res["deepsky"]["roc"]["fpr"], res["deepsky"]["roc"]["tpr"], lw=2.5, color="C3", label="deepsky segment")
    ax.axvline(target, ls=":", color="0.4")
    ax.set_xscale("log")
    ax.set_xlim(1e-6, 1e-1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("FPR (non-CR pixels flagged)")
    ax.set_ylabel("TPR (CR pixels flagged)")
    ax.set_title("Cosmic-ray pixels, report fields")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def fmt(x, d=3):
    return "—" if x is None else f"{x:.{d}f}"


def print_tables(res, target, note):
    rows = []
    for key in ("astroscrappy", "astroscrappy_psf"):
        for label, r in res.get(key, {}).get("rows", {}).items():
            rows.append((f"astroscrappy 1.3.0, {label} ({r['setting']})", r))
    for name, r in res.get("deepcr", {}).items():
        rows.append((f"deepCR 0.3.1 `{name}` ({r['setting']}; inpaint {r['inpaint_model']})", r))
    if res.get("deepsky"):
        rows.append((f"deepsky segment ({res['deepsky']['setting']})", res["deepsky"]))
    print(f"\n### Cosmic-ray pixels ({res['n_report']} report fields, {res['n_cr']} CR pixels "
          f"({res['n_strong']} above {STRONG:g}σ), "
          f"{res['n_starcore']} star-core pixels; settings chosen on {res['n_dev']} dev fields)\n")
    print(f"| tool (operating point) | TPR @ FPR {target:g} | TPR at op | TPR at op, CR px > {STRONG:g}σ | FPR at op "
          f"| star-core FP at op | inpaint RMS over CR px (σ) | throughput (Mpix/s, whole process) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    base = res["input_rms"]
    print(f"| (input, nothing cleaned) | — | — | — | — | — | {fmt(base['rms_sigma'], 1)} | — |")
    for name, r in rows:
        ge = "≥ " if r.get("tpr_at_target_is_lower_bound") else ""
        print(f"| {name} | {ge}{fmt(r.get('tpr_at_target'))} | {fmt(r['tpr'])} | {fmt(r['tpr_strong'])} | {r['fpr']:.2e} | "
              f"{fmt(r['starcore_fp'])} | {fmt(r['inpaint']['rms_sigma'], 1)} | {fmt(r['mpix_s'], 3)} |")
    if res.get("deepsky", {}).get("own_mask"):
        m = res["deepsky"]["own_mask"]
        print(f"| deepsky segment, its own mask.fits COSMIC_RAY bit | — | {fmt(m['tpr'])} | {fmt(m['tpr_strong'])} | {m['fpr']:.2e} | "
              f"{fmt(m['starcore_fp'])} | — | — |")
    print("\n### Source footprints (pixels of any FOOTPRINT > 0)\n")
    print("| tool | IoU | throughput (Mpix/s, whole process) |\n| --- | --- | --- |")
    for label, r in res.get("sextractor", {}).items():
        print(f"| SExtractor 2.25 SEGMENTATION, {label} | {fmt(r['iou'])} | {fmt(r['mpix_s'], 2)} |")
    if res.get("deepsky"):
        print(f"| deepsky segment segmentation.fits > 0 | {fmt(res['deepsky']['iou'])} | {fmt(res['deepsky']['mpix_s'], 3)} |")
    print()
    for n in note:
        print(f"- {n}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--deepsky", default=os.path.join(root, "target/release/deepsky"))
    ap.add_argument("--config", default=os.path.join(root, "pipelines/configs/segment.toml"))
    ap.add_argument("--deepsky-model", help="model directory for deepsky (--model; default: the config's input.model)")
    ap.add_argument("--sex", default="source-extractor")
    ap.add_argument("--sigclip", type=float, nargs="+", default=[3, 3.5, 4, 4.5, 5, 6])
    ap.add_argument("--objlim", type=float, nargs="+", default=[0.5, 1, 2, 3, 5, 8])
    ap.add_argument("--deepcr-models", nargs="+", default=DEEPCR_MODELS)
    ap.add_argument("--target-fpr", type=float, default=1e-3)
    ap.add_argument("--skip", nargs="*", default=[], choices=["astroscrappy", "astroscrappy_psf", "deepcr", "deepsky", "sextractor"])
    a = ap.parse_args()
    dev = [Field(p) for p in fields(a.out, "dev")]
    rep = [Field(p) for p in fields(a.out, "report")]
    if not dev or not rep:
        sys.exit(f"no fields under {a.out}/fields/dev or /report: run benchmarks/segment_fields.py first")
    notes = [f"load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores: timings taken while "
             "other work shares the machine are not final"]
    res = {"n_dev": len(dev), "n_report": len(rep), "n_cr": sum(int(f.cr.sum()) for f in rep),
           "n_starcore": sum(int(f.core.sum()) for f in rep),
           "n_strong": sum(int(f.strong.sum()) for f in rep), "target_fpr": a.target_fpr,
           "dev_fields": [f.stem for f in dev], "report_fields": [f.stem for f in rep],
           "input_rms": inpaint_rms([f.data for f in rep], rep)}
    for key, psf in (("astroscrappy", False), ("astroscrappy_psf", True)):
        if key in a.skip:
            continue
        res[key] = astroscrappy_part(a.out, dev, rep, a.sigclip, a.objlim, a.target_fpr, psf)
        if res[key]["tpr_at_target_is_lower_bound"]:
            notes.append(f"{key}: no swept setting reaches FPR {a.target_fpr:g} on the report fields; "
                         "≥ marks the envelope's highest TPR, a lower bound")
        if res[key]["chosen"]["note"]:
            notes.append(f"{key}: " + res[key]["chosen"]["note"])
    if "deepcr" not in a.skip:
        res["deepcr"] = deepcr_part(a.out, dev, rep, a.deepcr_models, a.target_fpr)
    if "sextractor" not in a.skip:
        res["sextractor"] = sextractor_part(a.out, rep, a.sex)
    why = "skipped (--skip)" if "deepsky" in a.skip else deepsky_available(a.deepsky)
    if why is None and not os.path.exists(a.config):
        why = f"config {a.config} not found"
    if why is None:
        try:
            res["deepsky"] = deepsky_part(a.out, dev, rep, a.deepsky, a.config, a.deepsky_model, a.target_fpr)
        except RuntimeError as e:
            why = "failed: " + str(e).strip().splitlines()[-1]
    if why is not None:
        notes.append(f"deepsky segment not run: {why}")
        res["deepsky_skipped"] = why
    os.makedirs(os.path.join(a.out, "results"), exist_ok=True)
    with open(os.path.join(a.out, "results", "segment.json"), "w") as fh:
        json.dump(res, fh, indent=1)
    plot(res, os.path.join(a.out, "results", "roc.png"), a.target_fpr)
    print_tables(res, a.target_fpr, notes)


if __name__ == "__main__":
    main()
