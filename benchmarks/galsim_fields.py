#!/usr/bin/env python3
"""Validation fields for source detection made by GalSim, an independent simulator (issue 21).

Every field is one imager (PSF profile and FWHM, pixel scale, sky, gain, read noise, whether the
sky was subtracted) and one seed. The same imager and seed give the same field, bit for bit.
Nothing here comes from `deepsky simulate`: profiles, PSFs and pixel integration are GalSim's,
the noise is drawn here.

Usage:
  galsim_fields.py OUTDIR --seeds 2101 2102 [--imagers NAME,NAME|all] [--size 512] [--list]
Writes OUTDIR/<imager>_s<seed>.fits (the image, ADU) and OUTDIR/<imager>_s<seed>_truth.fits
(primary header + table HDU CATALOG) for every imager and seed; --list prints the imagers.

Image header: a TAN WCS with a CD matrix (the pixel scale lives only there), EXPTIME, GAIN,
RDNOISE, SATURATE, SKYSUB, IMAGER, SEED, the command line in HISTORY, and SEEING (arcsec)
only on the imagers whose `seeing_key` is true: a detector must cope without it.

Truth table (the columns benchmarks/sextractor/evaluate.py reads, as `deepsky simulate sky`
writes them): id, class ('star' | 'galaxy'), class_id (0 | 1), x, y (FITS 1-based: the centre
of the first pixel is (1, 1)), ra, dec, flux (total, ADU), flux_in_image, mag, snr, saturated,
bbox_xmin/ymin/xmax/ymax, sersic_n, r_half (px), r_half_arcsec, ellipticity, position_angle.
  snr is the matched-filter S/N of the noiseless source alone, the definition of deepsky's
  simulator (crates/sim/src/sky/catalog.rs): sqrt(sum_i s_i^2 / ((s_i + b)/g + (rn/g)^2)) over
  the on-image pixels of the source's stamp with s_i > 0 (s_i ADU, b the sky in ADU, g the gain
  e-/ADU, rn the read noise e-); it ignores neighbours.
  Boxes as deepsky's simulator: centred on (x, y), half-size 1.5 FWHM for stars and
  3 sqrt(r_half^2 + (FWHM/2)^2) for galaxies, clipped to the image.
The truth file's primary header has PSF, PSF_FWHM (arcsec), FWHMPIX, PSF_BETA, PIXSCALE and a
HISTORY `config: {...}` JSON with psf.fwhm and pixel_scale, from which evaluate.py takes the
match radius max(1.5 px, FWHM px) by itself.

Sources: N_SOURCES per 512^2 (scaled by area), 35 % stars, 65 % galaxies (Sersic n in
{0.5, 1, 1.5, 2.5, 4}, half-light radius 0.2-1.5" log-uniform, shear |g| <= 0.5), positions
uniform over the image. Each source's flux is set so that its snr is a drawn target: 15 % in
[1.5, 3), 55 % in [3, 30), 30 % in [30, 300], log-uniform within each range.
"""
import argparse
import json
import math
import os
import shlex
import sys

import galsim
import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

# name: psf profile, FWHM in pixels, Moffat beta, pixel scale "/px, sky e-/px, gain e-/ADU,
# read noise e-, sky subtracted, SEEING card written.
# The PSF FWHMs 2-6 px at 0.2" and 0.4" pixels span the issue's range; the training simulator
# knows one PSF (Moffat beta 3, 2.5 px at 0.4"), which none of these is.
IMAGERS = {
    "moffat2_0.2_faint_sub":   dict(psf="moffat", fwhm_px=2.0, beta=3.0, scale=0.2, sky_e=200.0, gain=1.5, rn=4.0, sub=True, seeing_key=True),
    "kolmo3_0.2_bright_raw":   dict(psf="kolmogorov", fwhm_px=3.0, beta=None, scale=0.2, sky_e=3000.0, gain=2.0, rn=6.0, sub=False, seeing_key=False),
    "moffat4_0.2_bright_raw":  dict(psf="moffat", fwhm_px=4.0, beta=3.0, scale=0.2, sky_e=2500.0, gain=2.5, rn=5.0, sub=False, seeing_key=True),
    "gauss6_0.2_faint_sub":    dict(psf="gaussian", fwhm_px=6.0, beta=None, scale=0.2, sky_e=300.0, gain=1.0, rn=3.0, sub=True, seeing_key=False),
    "moffat2_0.4_bright_raw":  dict(psf="moffat", fwhm_px=2.0, beta=2.5, scale=0.4, sky_e=4000.0, gain=2.0, rn=5.0, sub=False, seeing_key=False),
    "kolmo3_0.4_faint_sub":    dict(psf="kolmogorov", fwhm_px=3.0, beta=None, scale=0.4, sky_e=150.0, gain=1.2, rn=3.5, sub=True, seeing_key=True),
    "kolmo4_0.4_faint_raw":    dict(psf="kolmogorov", fwhm_px=4.0, beta=None, scale=0.4, sky_e=400.0, gain=3.0, rn=8.0, sub=False, seeing_key=False),
    "moffat6_0.4_bright_sub":  dict(psf="moffat", fwhm_px=6.0, beta=3.5, scale=0.4, sky_e=2000.0, gain=2.0, rn=5.0, sub=True, seeing_key=True),
}
N_SOURCES = 300          # per 512x512
STAR_FRACTION = 0.35
SERSIC_N = (0.5, 1.0, 1.5, 2.5, 4.0)
R_HALF_ARCSEC = (0.2, 1.5)
SNR_RANGES = ((0.15, 1.5, 3.0), (0.55, 3.0, 30.0), (0.30, 30.0, 300.0))
EXPTIME = 100.0
ZEROPOINT = 28.0         # magnitude of 1 ADU/s
SATURATE = 65535.0
CRVAL = (150.1, 2.2)


def psf_of(im):
    fwhm = im["fwhm_px"] * im["scale"]
    if im["psf"] == "moffat":
        return galsim.Moffat(beta=im["beta"], fwhm=fwhm, trunc=6 * fwhm)
    if im["psf"] == "kolmogorov":
        return galsim.Kolmogorov(fwhm=fwhm)
    return galsim.Gaussian(fwhm=fwhm)


def odd(n):
    n = int(math.ceil(n))
    return n + 1 - n % 2


def snr_of(s, sky_adu, gain, rn):
    s = s[s > 0]
    return math.sqrt(float(np.sum(s * s / ((s + sky_adu) / gain + (rn / gain) ** 2))))


def flux_for_snr(p, target, sky_adu, gain, rn):
    """Flux F (ADU) with snr_of(F p) = target, p the unit-flux stamp (bisection; snr grows with F)."""
    p = p[p > 0]
    f = lambda F: math.sqrt(float(np.sum(F * F * p * p / ((F * p + sky_adu) / gain + (rn / gain) ** 2))))
    lo, hi = 0.0, 1.0
    while f(hi) < target:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def make_field(name, seed, size, argv):
    im = IMAGERS[name]
    # One stream per (imager, seed): the same pair always gives the same field.
    rng = np.random.default_rng([seed, sorted(IMAGERS).index(name)])
    scale, fwhm_px, gain, rn = im["scale"], im["fwhm_px"], im["gain"], im["rn"]
    sky_adu = im["sky_e"] / gain
    psf = psf_of(im)
    n = int(round(N_SOURCES * size * size / 512 ** 2))
    model = galsim.ImageD(size, size, scale=scale)   # bounds (1, 1)-(size, size): FITS pixels
    rows = []
    for k in range(n):
        star = rng.random() < STAR_FRACTION
        x, y = rng.uniform(0.5, size + 0.5, 2)
        u = rng.random()
        for frac, lo, hi in SNR_RANGES:
            if u < frac:
                target = math.exp(rng.uniform(math.log(lo), math.log(hi)))
                break
            u -= frac
        if star:
            obj, sn, rh, e, pa = psf, np.nan, np.nan, np.nan, np.nan
            half_box = 1.5 * fwhm_px
            stamp_n = odd(max(8 * fwhm_px, 15))
        else:
            sn = float(rng.choice(SERSIC_N))
            rh = math.exp(rng.uniform(*np.log(R_HALF_ARCSEC)))
            e = rng.uniform(0.0, 0.5)
            pa = rng.uniform(0.0, 180.0)
            gal = galsim.Sersic(n=sn, half_light_radius=rh, trunc=5 * rh).shear(g=e, beta=pa * galsim.degrees)
            obj = galsim.Convolve(gal, psf)
            half_box = 3 * math.hypot(rh / scale, fwhm_px / 2)
            stamp_n = odd(min(max(8 * fwhm_px, 2 * (5 * rh / scale) + 4 * fwhm_px, 15), 201))
        ix, iy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        unit = obj.withFlux(1.0).drawImage(nx=stamp_n, ny=stamp_n, scale=scale, offset=(x - ix, y - iy))
        unit.setCenter(ix, iy)
        over = unit.bounds & model.bounds
        on = unit[over].array
        flux = flux_for_snr(on, target, sky_adu, gain, rn)
        peak = flux * on.max() + (0 if im["sub"] else sky_adu)
        if peak > 0.8 * SATURATE:   # keep every source unsaturated: rescale (and recompute snr)
            flux *= 0.8 * SATURATE / peak
        snr = snr_of(flux * on, sky_adu, gain, rn)
        model[over] += flux * unit[over]
        rows.append((k + 1, "star" if star else "galaxy", 0 if star else 1, x, y, flux,
                     float(flux * on.sum()), ZEROPOINT - 2.5 * math.log10(flux / EXPTIME), snr, False,
                     max(1, math.ceil(x - half_box - 0.5)), max(1, math.ceil(y - half_box - 0.5)),
                     min(size, math.floor(x + half_box + 0.5)), min(size, math.floor(y + half_box + 0.5)),
                     sn, rh / scale if not star else np.nan, rh if not star else np.nan, e, pa))
    # Noise: Poisson on source + sky electrons, Gaussian read noise, in ADU; then the sky level
    # is subtracted on the imagers that deliver sky-subtracted frames.
    expected_e = (model.array + sky_adu) * gain
    data = (rng.poisson(expected_e) + rng.normal(0.0, rn, expected_e.shape)) / gain
    if im["sub"]:
        data -= sky_adu
    data = np.minimum(data, SATURATE).astype(np.float32)

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = CRVAL
    w.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    w.wcs.cd = np.array([[-scale / 3600, 0.0], [0.0, scale / 3600]])
    w.wcs.radesys = "ICRS"
    hdr = w.to_header()
    cards = [("BUNIT", "adu", "pixel unit"), ("EXPTIME", EXPTIME, "[s] exposure time"),
             ("GAIN", gain, "[e-/adu] gain"), ("RDNOISE", rn, "[e-] read noise"),
             ("SATURATE", SATURATE, "[adu] saturation level"),
             ("MAGZP", ZEROPOINT, "[mag] magnitude giving 1 adu/s"),
             ("SKYSUB", im["sub"], "sky level subtracted"),
             ("IMAGER", name, "galsim_fields.py imager"), ("SEED", seed, "random seed of the field"),
             ("CREATOR", f"GalSim {galsim.__version__} (benchmarks/galsim_fields.py)", "")]
    if im["seeing_key"]:
        cards.append(("SEEING", round(fwhm_px * scale, 4), "[arcsec] PSF FWHM"))
    img_hdr = fits.Header()
    for c in cards:
        img_hdr[c[0]] = (c[1], c[2])
    img_hdr.extend(hdr)
    img_hdr.add_history("command: " + " ".join(shlex.quote(a) for a in argv))

    t = Table(rows=rows, names=("id", "class", "class_id", "x", "y", "flux", "flux_in_image", "mag",
                                "snr", "saturated", "bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax",
                                "sersic_n", "r_half", "r_half_arcsec", "ellipticity", "position_angle"),
              dtype=(np.int64, "U6", np.int64, float, float, float, float, float, float, bool,
                     np.int64, np.int64, np.int64, np.int64, float, float, float, float, float))
    ra, dec = w.all_pix2world(t["x"], t["y"], 1)
    t.add_column(ra, name="ra", index=5)
    t.add_column(dec, name="dec", index=6)
    t["x"].unit = t["y"].unit = t["r_half"].unit = "pix"
    t["flux"].unit = t["flux_in_image"].unit = "adu"
    t["position_angle"].unit = "deg"
    t["r_half_arcsec"].unit = "arcsec"
    th = fits.Header()
    for c in cards:
        th[c[0]] = (c[1], c[2])
    th["PSF"] = (im["psf"], "PSF profile")
    th["PSF_FWHM"] = (fwhm_px * scale, "[arcsec] PSF FWHM")
    th["FWHMPIX"] = (fwhm_px, "[pixel] PSF FWHM")
    th["PSF_BETA"] = (im["beta"] if im["beta"] else 0.0, "Moffat beta (0: not Moffat)")
    th["PIXSCALE"] = (scale, "[arcsec/pixel] pixel scale")
    th["SKYLEVEL"] = (im["sky_e"], "[e-/pixel] sky level")
    th["SKYADU"] = (sky_adu, "[adu/pixel] sky level")
    th.add_history("command: " + " ".join(shlex.quote(a) for a in argv))
    cfg = {"imager": name, "seed": seed, "width": size, "height": size, "pixel_scale": scale,
           "psf": {"profile": im["psf"], "fwhm": fwhm_px * scale, "beta": im["beta"]},
           "noise": {"sky_level": im["sky_e"], "gain": gain, "read_noise": rn}, "sky_subtracted": im["sub"]}
    th.add_history("config: " + json.dumps(cfg, separators=(",", ":")))
    return fits.PrimaryHDU(data, img_hdr), fits.HDUList([fits.PrimaryHDU(header=th), fits.table_to_hdu(t)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--seeds", type=int, nargs="+", default=[])
    ap.add_argument("--imagers", default="all", help="comma-separated names, or all")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--list", action="store_true", help="print the imagers as JSON and exit")
    args = ap.parse_args()
    if args.list:
        print(json.dumps(IMAGERS, indent=1))
        return
    if not args.outdir or not args.seeds:
        ap.error("give OUTDIR and --seeds")
    names = sorted(IMAGERS) if args.imagers == "all" else args.imagers.split(",")
    for name in names:
        if name not in IMAGERS:
            ap.error(f"unknown imager {name!r}; known: {', '.join(sorted(IMAGERS))}")
    os.makedirs(args.outdir, exist_ok=True)
    for name in names:
        for seed in args.seeds:
            argv = ["benchmarks/galsim_fields.py", "OUTDIR", "--seeds", str(seed), "--imagers", name,
                    "--size", str(args.size)]
            img, truth = make_field(name, seed, args.size, argv)
            stem = os.path.join(args.outdir, f"{name}_s{seed}")
            img.writeto(stem + ".fits", overwrite=True)
            truth[1].name = "CATALOG"
            truth.writeto(stem + "_truth.fits", overwrite=True)
            print(stem + ".fits", file=sys.stderr)


if __name__ == "__main__":
    main()
