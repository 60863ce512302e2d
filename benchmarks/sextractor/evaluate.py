#!/usr/bin/env python3
"""Match detection catalogues to `deepsky simulate sky` truth catalogues; print a JSON summary.

Usage:
  evaluate.py [options] CATALOG TRUTH [CATALOG TRUTH ...]
    CATALOG  detections: a FITS binary table (first table HDU; e.g. SExtractor FITS_1.0 or
             deepsky detect's catalog.fits) or a CSV with a header line
    TRUTH    the simulator's truth table (`<stem>_truth.fits`, HDU CATALOG)
  Several pairs are evaluated one by one and summed ("total": counts are added, then the ratios
  are recomputed from the sums). Options: --radius PX, --fwhm-px PX, --image IMG (read the FWHM
  from its header), --x-col/--y-col, --flux-col/--fluxerr-col, --label NAME.

This is the reference for `deepsky detect evaluate --catalog CAT --truth TRUTH`, which must
implement exactly the same rules:

1. Positions. Detections: columns X_IMAGE, Y_IMAGE (SExtractor) or x, y (deepsky; column names
   are matched case-insensitively, X_IMAGE first), FITS 1-based pixels: the centre of the first
   pixel is (1.0, 1.0). Truth: columns x, y, same convention. Rows of either with a non-finite
   position are dropped.

2. Truth rows. Sources = classes `star`, `galaxy`, `saturated_star`. Artefacts = `cosmic_ray`,
   `bad_column`. Every truth row takes part in the matching.

3. Match radius R = max(1.5 px, FWHM_px), FWHM_px = PSF_FWHM / PIXSCALE from the image header
   (2.5 px for the default simulator config, so R = 2.5 px); --radius overrides. Without
   --image or --fwhm-px the FWHM is taken from the truth file's HISTORY config
   (psf.fwhm / pixel_scale), else 2.5 px. Why 1 FWHM: SExtractor's isophotal barycentres of
   S/N 3-10 sources scatter by ~1 px and more in blends; at 1.5 px about 5 % of the matches in
   that range are lost. The price: at the default density a random point lies within 2.5 px of
   some source with probability ~5.5 % (1.5 px: ~1.9 %), the chance-coincidence rate of a
   spurious detection.

4. Distance d(truth, detection):
   - star, galaxy: Euclidean distance between the truth (x, y) and the detection (x, y).
   - saturated_star, cosmic_ray, bad_column (extended footprints: bleed trails, tracks,
     columns): distance from the detection (x, y) to the truth bounding box, taken as the
     rectangle [bbox_xmin - 0.5, bbox_xmax + 0.5] x [bbox_ymin - 0.5, bbox_ymax + 0.5]
     (the pixels' outer edges); 0 inside it.

5. One-to-one greedy matching: all pairs with d <= R, sorted by (d, truth row index,
   detection row index) ascending; a pair is accepted if neither its truth row nor its
   detection is taken yet. (Row indices are 0-based file order.)

6. Completeness (sources only): found / total, in bins of the truth column `snr` (the
   matched-filter S/N of the noiseless source): [0,3) [3,5) [5,10) [10,20) [20,50) [50,inf),
   and over [3,10) ("snr3_10", the issue's target range) and over all sources ("all").
   Sources with a NaN snr count only in "all". Also per class (star, galaxy, saturated_star).

7. Detections are one of: matched to a source, matched to an artefact, unmatched.
   purity          = (matched to a source + matched to an artefact) / all detections
   purity_sources  = matched to a source / all detections   (artefacts count as false)
   Unmatched detections are split for diagnosis into "near truth" (within 2R of some truth row,
   by the distance of rule 4: mostly shreds of a deblended galaxy or a second piece of a
   bleed trail) and "isolated" (noise peaks).
   Artefacts found are reported per class (found / total) and are not part of completeness.

8. F1 = 2 P C / (P + C) with P = purity and C = completeness over all sources;
   f1_snr3_10 uses C = completeness over [3,10) with the same P. Ratios with a zero
   denominator are null.

9. Purity by measured S/N (for plots): detections binned by their own S/N, flux / flux_err
   from the aperture-flux columns (FLUX_APER/FLUXERR_APER for SExtractor; for deepsky
   flux_aper/flux_aper_err, else flux/flux_err; --flux-col/--fluxerr-col override; the first
   element of a vector column), same bin edges, detections with a non-finite S/N in the first
   bin; purity within each bin by the definition of rule 7.

Output: {"label", "total": {...}, "fields": [...]} with, per field and summed: n_detections,
n_sources, matched_source, matched_artefact, unmatched(_near_truth|_isolated), purity,
purity_sources, completeness, completeness_snr3_10, f1, f1_snr3_10, bins{name: n, found,
completeness} (names "0-3" ... "50+", "snr3_10", "all"), classes{star|galaxy|saturated_star},
artefacts{cosmic_ray|bad_column: n, found}, det_snr_bins{name: n, matched, purity}; per field
also radius_px, fwhm_px and the median / 90th percentile offset of matched stars and galaxies.
"""
import argparse
import json
import math
import re
import sys

import numpy as np
from astropy.io import fits
from astropy.table import Table

SNR_EDGES = [0.0, 3.0, 5.0, 10.0, 20.0, 50.0, math.inf]
SOURCE_CLASSES = ("star", "galaxy", "saturated_star")
ARTEFACT_CLASSES = ("cosmic_ray", "bad_column")
FOOTPRINT_CLASSES = ("saturated_star", "cosmic_ray", "bad_column")


def bin_name(lo, hi):
    return f"{lo:g}-{hi:g}" if math.isfinite(hi) else f"{lo:g}+"


BIN_NAMES = [bin_name(lo, hi) for lo, hi in zip(SNR_EDGES[:-1], SNR_EDGES[1:])]


def ratio(a, b):
    return None if b == 0 else a / b


def col(table, *names):
    lower = {c.lower(): c for c in table.colnames}
    for n in names:
        if n is not None and n.lower() in lower:
            return lower[n.lower()]
    return None


def read_table(path):
    if path.lower().endswith(".csv"):
        return Table.read(path, format="ascii.csv")
    with fits.open(path) as h:
        for hdu in h:
            if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
                return Table(hdu.data)
    raise SystemExit(f"{path}: no table HDU")


def fwhm_from_truth(path):
    """psf.fwhm / pixel_scale from the simulator's HISTORY config, or None."""
    try:
        hist = "".join(str(v) for v in fits.getheader(path, 0).get("HISTORY", []))
        m = re.search(r"config: (\{.*\})", hist)
        cfg = json.loads(m.group(1))
        return cfg["psf"]["fwhm"] / cfg["pixel_scale"]
    except Exception:
        return None


def fwhm_from_image(path):
    h = fits.getheader(path, 0)
    return float(h["PSF_FWHM"]) / float(h["PIXSCALE"])


def candidate_pairs(rect, dx, dy, reach, cell=32.0):
    """All (truth i, detection j, distance d) with d <= reach, d by rule 4.

    rect: (x0, y0, x1, y1) per truth row, a point for stars and galaxies (x0 = x1, y0 = y1),
    the pixel-edge bounding box for footprints. A sparse join on a grid of `cell`-pixel cells,
    so that a 4096x4096 field with ~50 000 rows on each side needs no dense distance matrix.
    """
    x0, y0, x1, y1 = rect
    empty = (np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    if len(x0) == 0 or len(dx) == 0:
        return empty
    off = 1 << 20
    cx0 = np.floor((x0 - reach) / cell).astype(np.int64)
    cy0 = np.floor((y0 - reach) / cell).astype(np.int64)
    nx = np.floor((x1 + reach) / cell).astype(np.int64) - cx0 + 1
    ny = np.floor((y1 + reach) / cell).astype(np.int64) - cy0 + 1
    counts = nx * ny
    ti = np.repeat(np.arange(len(x0)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cx = np.repeat(cx0, counts) + k % np.repeat(nx, counts)
    cy = np.repeat(cy0, counts) + k // np.repeat(nx, counts)
    tkey = (cx + off) * (2 * off) + (cy + off)
    dkey = ((np.floor(dx / cell).astype(np.int64) + off) * (2 * off)
            + (np.floor(dy / cell).astype(np.int64) + off))
    order = np.argsort(dkey, kind="stable")
    sd = dkey[order]
    lo = np.searchsorted(sd, tkey, "left")
    n = np.searchsorted(sd, tkey, "right") - lo
    i = np.repeat(ti, n)
    j = order[np.repeat(lo, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]
    ex = np.maximum(np.maximum(x0[i] - dx[j], dx[j] - x1[i]), 0.0)
    ey = np.maximum(np.maximum(y0[i] - dy[j], dy[j] - y1[i]), 0.0)
    d = np.hypot(ex, ey)
    keep = d <= reach
    return i[keep], j[keep], d[keep]


def greedy_match(i, j, d, n_truth, n_det, radius):
    """Rule 5: returns truth->detection and detection->truth index arrays (-1 = none)."""
    m = d <= radius
    i, j, d = i[m], j[m], d[m]
    t2d = np.full(n_truth, -1)
    d2t = np.full(n_det, -1)
    for k in np.lexsort((j, i, d)):
        if t2d[i[k]] < 0 and d2t[j[k]] < 0:
            t2d[i[k]], d2t[j[k]] = j[k], i[k]
    return t2d, d2t


def evaluate(cat_path, truth_path, args):
    det = read_table(cat_path)
    truth = Table.read(truth_path, hdu="CATALOG")
    xc, yc = col(det, args.x_col, "X_IMAGE", "x"), col(det, args.y_col, "Y_IMAGE", "y")
    if xc is None or yc is None:
        raise SystemExit(f"{cat_path}: no X_IMAGE/Y_IMAGE or x/y columns")
    dx = np.asarray(det[xc], dtype=float)
    dy = np.asarray(det[yc], dtype=float)
    fc = col(det, args.flux_col, "FLUX_APER", "flux_aper", "flux")
    ec = col(det, args.fluxerr_col, "FLUXERR_APER", "flux_aper_err", "fluxerr_aper", "flux_err")
    if fc is not None and ec is not None:
        f = np.asarray(det[fc], dtype=float)
        e = np.asarray(det[ec], dtype=float)
        f = f[:, 0] if f.ndim > 1 else f
        e = e[:, 0] if e.ndim > 1 else e
        with np.errstate(divide="ignore", invalid="ignore"):
            det_snr = f / e
    else:
        det_snr = None
    ok = np.isfinite(dx) & np.isfinite(dy)
    dx, dy = dx[ok], dy[ok]
    det_snr = det_snr[ok] if det_snr is not None else None

    cls = np.array([str(c).strip() for c in truth["class"]])
    tx = np.asarray(truth["x"], dtype=float)
    ty = np.asarray(truth["y"], dtype=float)
    tok = np.isfinite(tx) & np.isfinite(ty)
    cls, tx, ty = cls[tok], tx[tok], ty[tok]
    snr = np.asarray(truth["snr"].filled(np.nan) if hasattr(truth["snr"], "filled") else truth["snr"], dtype=float)[tok]
    tbox = [np.asarray(truth[c], dtype=float)[tok] for c in ("bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax")]
    extended = np.isin(cls, FOOTPRINT_CLASSES)

    if args.radius is not None:
        fwhm = None
        radius = args.radius
    else:
        fwhm = args.fwhm_px or (fwhm_from_image(args.image) if args.image else None) or fwhm_from_truth(truth_path) or 2.5
        radius = max(1.5, fwhm)

    # Rule 4: stars and galaxies are points, footprints the pixel-edge bounding box.
    rect = (np.where(extended, tbox[0] - 0.5, tx), np.where(extended, tbox[1] - 0.5, ty),
            np.where(extended, tbox[2] + 0.5, tx), np.where(extended, tbox[3] + 0.5, ty))
    pi, pj, pd = candidate_pairs(rect, dx, dy, 2 * radius)
    t2d, d2t = greedy_match(pi, pj, pd, len(tx), len(dx), radius)
    is_src = np.isin(cls, SOURCE_CLASSES)
    found = t2d >= 0

    det_kind = np.full(len(dx), "unmatched", dtype=object)
    det_kind[d2t >= 0] = np.where(is_src[d2t[d2t >= 0]], "source", "artefact")
    near = np.zeros(len(dx), bool)
    near[pj] = True  # within 2R of some truth row

    r = {"catalog": cat_path, "truth": truth_path, "radius_px": radius, "fwhm_px": fwhm,
         "n_detections": int(len(dx)), "n_sources": int(is_src.sum()),
         "matched_source": int((det_kind == "source").sum()),
         "matched_artefact": int((det_kind == "artefact").sum()),
         "unmatched": int((det_kind == "unmatched").sum()),
         "unmatched_near_truth": int(((det_kind == "unmatched") & near).sum()),
         "unmatched_isolated": int(((det_kind == "unmatched") & ~near).sum()),
         "bins": {}, "classes": {}, "artefacts": {}, "det_snr_bins": {}}
    for name, lo, hi in zip(BIN_NAMES, SNR_EDGES[:-1], SNR_EDGES[1:]):
        m = is_src & (snr >= lo) & (snr < hi)
        r["bins"][name] = {"n": int(m.sum()), "found": int((m & found).sum())}
    m = is_src & (snr >= 3) & (snr < 10)
    r["bins"]["snr3_10"] = {"n": int(m.sum()), "found": int((m & found).sum())}
    r["bins"]["all"] = {"n": int(is_src.sum()), "found": int((is_src & found).sum())}
    for c in SOURCE_CLASSES:
        m = cls == c
        r["classes"][c] = {"n": int(m.sum()), "found": int((m & found).sum())}
    for c in ARTEFACT_CLASSES:
        m = cls == c
        r["artefacts"][c] = {"n": int(m.sum()), "found": int((m & found).sum())}
    if det_snr is not None:
        for name, lo, hi in zip(BIN_NAMES, SNR_EDGES[:-1], SNR_EDGES[1:]):
            m = (det_snr >= lo) & (det_snr < hi) if lo > 0 else (det_snr < hi) | ~np.isfinite(det_snr)
            r["det_snr_bins"][name] = {"n": int(m.sum()), "matched": int((m & (det_kind != "unmatched")).sum())}
    # Position offsets of matched point sources (diagnostic; SExtractor's X_IMAGE is the
    # isophotal barycentre).
    pt = found & np.isin(cls, ("star", "galaxy"))
    off = np.hypot(tx[pt] - dx[t2d[pt]], ty[pt] - dy[t2d[pt]])
    r["offset_px_median"] = float(np.median(off)) if off.size else None
    r["offset_px_p90"] = float(np.percentile(off, 90)) if off.size else None
    return finish(r)


def finish(r):
    """Ratios from the counts (also used for the summed total)."""
    for b in r["bins"].values():
        b["completeness"] = ratio(b["found"], b["n"])
    for b in list(r["classes"].values()):
        b["completeness"] = ratio(b["found"], b["n"])
    for b in r["det_snr_bins"].values():
        b["purity"] = ratio(b["matched"], b["n"])
    n = r["n_detections"]
    p = ratio(r["matched_source"] + r["matched_artefact"], n)
    r["purity"] = p
    r["purity_sources"] = ratio(r["matched_source"], n)
    r["completeness"] = r["bins"]["all"]["completeness"]
    r["completeness_snr3_10"] = r["bins"]["snr3_10"]["completeness"]
    for key, c in (("f1", r["completeness"]), ("f1_snr3_10", r["completeness_snr3_10"])):
        r[key] = None if p is None or c is None or p + c == 0 else 2 * p * c / (p + c)
    return r


def total(results):
    t = {"n_fields": len(results), "radius_px": sorted({r["radius_px"] for r in results})}
    for k in ("n_detections", "n_sources", "matched_source", "matched_artefact", "unmatched",
              "unmatched_near_truth", "unmatched_isolated"):
        t[k] = sum(r[k] for r in results)
    for group in ("bins", "classes", "artefacts", "det_snr_bins"):
        t[group] = {}
        for r in results:
            for name, b in r[group].items():
                acc = t[group].setdefault(name, {k: 0 for k, v in b.items() if isinstance(v, int)})
                for k in acc:
                    acc[k] += b[k]
    return finish(t)


def default_options(image=None):
    """The command line's defaults as the options `evaluate` takes, for callers in Python."""
    return argparse.Namespace(radius=None, fwhm_px=None, image=image, x_col=None, y_col=None,
                              flux_col=None, fluxerr_col=None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pairs", nargs="+", metavar="CATALOG TRUTH")
    ap.add_argument("--radius", type=float, help="match radius, px (default max(1.5, FWHM_px))")
    ap.add_argument("--fwhm-px", type=float, help="PSF FWHM in pixels (default from --image or the truth HISTORY)")
    ap.add_argument("--image", help="image whose PSF_FWHM/PIXSCALE header cards give the FWHM")
    ap.add_argument("--x-col")
    ap.add_argument("--y-col")
    ap.add_argument("--flux-col")
    ap.add_argument("--fluxerr-col")
    ap.add_argument("--label", help="name stored in the JSON")
    ap.add_argument("--fields", action="store_true", help="include every field's result, not only the total")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("give CATALOG TRUTH pairs")
    results = [evaluate(c, t, args) for c, t in zip(args.pairs[::2], args.pairs[1::2])]
    out = {"label": args.label, "total": total(results)}
    if args.fields or len(results) == 1:
        out["fields"] = results
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
