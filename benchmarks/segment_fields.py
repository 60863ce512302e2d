#!/usr/bin/env python3
"""Cosmic-ray benchmark fields for `deepsky segment` and its rivals, made by GalSim plus a cosmic-ray
injector written here (benchmarks/segment.sh).

Nothing here comes from `deepsky simulate`: profiles, PSFs and pixel integration are GalSim's; the
noise and the cosmic rays are drawn here, by rules that differ on purpose from deepsky's training
simulator (which uses Moyal charge along tracks through a depletion layer, random-walk worms,
compact spots and Gaussian diffusion):
  tracks   straight; projected length log-normal (median 7 px, sigma 0.9 in ln, 1.5-150 px, not a
           depletion depth times tan(theta)); charge per 0.25 px step Landau-distributed
           (scipy.stats.landau; log-normal if this scipy lacks it) around a per-track most
           probable value that is itself log-normal (median 350 e-/px); no diffusion: every step is
           splatted onto the pixels by a raised-cosine radial profile of half-width 0.75-1.4 px
           (anti-aliased line, charge conserved)
  worms    cubic Bezier curves (4 control points spread 4-20 px), charge rising along the path
           (x (1 + 2 s^3), a low-energy electron stopping), half-width 0.75-1.1 px
  spots    one or two compact hits, log-normal total charge (median 1200 e-), half-width 0.75-1.0 px
  showers  3-8 short tracks (2-10 px) from within 6 px of a common point, directions within
           +-25 deg of a common one
Events per field: Poisson(CR_RATE x megapixels); mix 50 % tracks, 25 % spots, 15 % worms, 10 %
showers. Charge is added in electrons after the noise is drawn (the clean image is the same noise
realisation without them), then both images are clipped at the saturation level.

Every field (seed) draws its own imager: pixel scale 0.2-0.4"/px, PSF FWHM 0.6-1.2" (Kolmogorov or
Moffat beta 2.5-4.5), gain 1-3 e-/ADU, read noise 3-8 e-, sky 300-3000 e-/px (not subtracted),
full well 60-120 ke- (SATURATE = full well / gain in ADU, at most 65535; pixels above it are set
to it: no bleed trails are simulated). Sources: ~150 stars per 512^2 with magnitudes from a power law
(dN/dm ~ 10^(0.3 m)) between a peak of 1 sigma and 30 % of saturation, 4-8 bright stars whose
noiseless peak is 0.5-4 x the saturation level (log-uniform), ~150 galaxies (Sersic n in 0.5, 1
(exponential, 40 %), 1.5, 2.5, 4; half-light radius 0.25-2" log-uniform; shear |g| <= 0.5), total
flux log-uniform from 10 sigma to 3e4 sigma (sigma = background noise per pixel, e-), never above
70 % of saturation at the peak.

Usage:
  segment_fields.py OUTDIR --seeds 100 101 102 [--size 512] [--cr-rate 450]
Writes, per seed, OUTDIR/field_<seed>.fits (float32 ADU, with CRs), OUTDIR/field_<seed>_clean.fits
(the same noisy image without CRs) and OUTDIR/field_<seed>_truth.fits with HDUs
  CR        uint8: 1 where the added CR signal (after clipping) > 0.5 x the pixel's noise sigma
            (sqrt(expected e- + rn^2) / gain, ADU)
  STARCORE  uint8: 1 where one star's noiseless image > 50 x the background sigma (sky + read noise)
            and the pixel is not CR: where LACosmic classically fires falsely
  FOOTPRINT int32: 0 sky, else the 1-based index (CATALOG id) of the source whose noiseless light
            is largest there, where that light > 1 x the background sigma
  CATALOG   table: id, class, x, y (FITS 1-based), flux_e, peak_e, bright
Image header: a TAN WCS with a CD matrix, BUNIT, EXPTIME, GAIN, RDNOISE, SATURATE, PIXSCALE,
SEEING (arcsec), FWHMPIX, PSF, SKYLEVEL, SEED, NCREVENT, the command line in HISTORY.
"""
import argparse
import math
import os
import shlex
import sys

import galsim
import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

try:
    from scipy.stats import landau as _landau
except ImportError:  # scipy < 1.15
    _landau = None

EXPTIME = 300.0
CRVAL = (150.1, 2.2)
N_STARS = 150            # per 512x512
N_GALAXIES = 150
N_BRIGHT = (4, 8)
STAR_SLOPE = 0.3         # dN/dm ~ 10^(0.3 m)
CR_RATE = 450.0          # events per megapixel
CR_MIX = (("track", 0.50), ("spot", 0.25), ("worm", 0.15), ("shower", 0.10))
SERSIC = ((0.5, 0.15), (1.0, 0.40), (1.5, 0.15), (2.5, 0.15), (4.0, 0.15))


def odd(n):
    n = int(math.ceil(n))
    return n + 1 - n % 2


# ---- cosmic rays ------------------------------------------------------------------------------
def splat(img, xs, ys, qs, w):
    """Add charges qs at points (xs, ys) (0-based, pixel centres at integers) with a raised-cosine
    radial profile of half-width w >= 0.75 px over pixel centres, normalised per point (charge kept)."""
    xs, ys, qs = (np.asarray(a, float).ravel() for a in (xs, ys, qs))
    r = int(math.ceil(w)) + 1
    off = np.arange(-r, r + 1)
    ix0, iy0 = np.rint(xs).astype(int), np.rint(ys).astype(int)
    px = ix0[:, None, None] + off[None, None, :]
    py = iy0[:, None, None] + off[None, :, None]
    d = np.hypot(px - xs[:, None, None], py - ys[:, None, None])
    wt = np.where(d < w, 0.5 * (1 + np.cos(np.pi * d / w)), 0.0)
    s = wt.sum(axis=(1, 2), keepdims=True)
    wt = wt / np.where(s > 0, s, 1.0) * qs[:, None, None]
    h, wd = img.shape
    px, py = np.broadcast_to(px, wt.shape), np.broadcast_to(py, wt.shape)
    ok = (px >= 0) & (px < wd) & (py >= 0) & (py < h) & (wt > 0)
    np.add.at(img, (py[ok], px[ok]), wt[ok])


def step_charge(rng, n, mpv):
    """Charge (e-) per 0.25 px step: Landau around mpv/4 (width 0.12 mpv/4), clipped to [0.1, 30] x."""
    m = mpv / 4.0
    if _landau is not None:
        q = m + 0.12 * m * _landau.rvs(size=n, random_state=rng)
    else:
        q = m * rng.lognormal(0.0, 0.45, n)
    return np.clip(q, 0.1 * m, 30 * m)


def track(img, rng, x0, y0, length, phi, mpv, w):
    n = max(2, int(length / 0.25) + 1)
    t = np.linspace(0.0, length, n)
    splat(img, x0 + t * math.cos(phi), y0 + t * math.sin(phi), step_charge(rng, n, mpv), w)


def inject_crs(shape, rng, rate):
    """Cosmic-ray charge image (e-) and the number of events of each kind."""
    h, w = shape
    img = np.zeros(shape)
    n = rng.poisson(rate * h * w / 1e6)
    kinds = rng.choice([k for k, _ in CR_MIX], size=n, p=[p for _, p in CR_MIX])
    counts = {k: 0 for k, _ in CR_MIX}
    for kind in kinds:
        counts[kind] += 1
        x0, y0 = rng.uniform(-0.5, w - 0.5), rng.uniform(-0.5, h - 0.5)
        if kind == "track":
            length = float(np.clip(rng.lognormal(math.log(7.0), 0.9), 1.5, 150.0))
            track(img, rng, x0, y0, length, rng.uniform(0, 2 * math.pi),
                  350.0 * rng.lognormal(0.0, 0.6), rng.uniform(0.75, 1.4))
        elif kind == "spot":
            for _ in range(1 if rng.random() < 0.7 else 2):
                splat(img, [x0 + rng.normal(0, 0.7)], [y0 + rng.normal(0, 0.7)],
                      [1200.0 * rng.lognormal(0.0, 0.9)], rng.uniform(0.75, 1.0))
        elif kind == "worm":
            spread = rng.uniform(4.0, 20.0)
            p = np.array([[x0, y0]] + [[x0, y0] + rng.normal(0, spread, 2) for _ in range(3)])
            arc = sum(np.hypot(*(p[i + 1] - p[i])) for i in range(3))
            m = max(8, int(arc / 0.25))
            s = np.linspace(0, 1, m)[:, None]
            curve = ((1 - s) ** 3 * p[0] + 3 * (1 - s) ** 2 * s * p[1] + 3 * (1 - s) * s ** 2 * p[2]
                     + s ** 3 * p[3])
            seg = np.r_[0.0, np.hypot(*np.diff(curve, axis=0).T)]
            q = 300.0 * rng.lognormal(0.0, 0.5) * seg * rng.lognormal(0.0, 0.3, m) * (1 + 2 * s[:, 0] ** 3)
            splat(img, curve[:, 0], curve[:, 1], q, rng.uniform(0.75, 1.1))
        else:  # shower
            phi0 = rng.uniform(0, 2 * math.pi)
            mpv = 300.0 * rng.lognormal(0.0, 0.4)
            for _ in range(rng.integers(3, 9)):
                r, a = 6.0 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
                track(img, rng, x0 + r * math.cos(a), y0 + r * math.sin(a), rng.uniform(2.0, 10.0),
                      phi0 + math.radians(rng.normal(0, 25.0)), mpv, rng.uniform(0.75, 1.2))
    return img, counts


# ---- sky --------------------------------------------------------------------------------------
def imager(rng):
    scale = rng.uniform(0.2, 0.4)
    fwhm = rng.uniform(0.6, 1.2)
    kolmo = rng.random() < 0.5
    beta = None if kolmo else rng.uniform(2.5, 4.5)
    gain = rng.uniform(1.0, 3.0)
    full_well = rng.uniform(60e3, 120e3)
    return dict(scale=scale, fwhm=fwhm, psf="kolmogorov" if kolmo else "moffat", beta=beta, gain=gain,
                rn=rng.uniform(3.0, 8.0), sky_e=rng.uniform(300.0, 3000.0),
                saturate=float(min(65535.0, math.floor(full_well / gain))))


def make_field(seed, size, rate, argv):
    rng = np.random.default_rng([seed, 7021])
    im = imager(rng)
    scale, gain, rn, sky_e = im["scale"], im["gain"], im["rn"], im["sky_e"]
    fwhm_px = im["fwhm"] / scale
    sat_e = im["saturate"] * gain
    sig_bg = math.sqrt(sky_e + rn * rn)          # e-
    psf = galsim.Kolmogorov(fwhm=im["fwhm"]) if im["psf"] == "kolmogorov" else galsim.Moffat(beta=im["beta"], fwhm=im["fwhm"])
    unit_peak = psf.drawImage(nx=odd(4 * fwhm_px), ny=odd(4 * fwhm_px), scale=scale).array.max()
    area = size * size / 512 ** 2

    model = np.zeros((size, size))                # noiseless sources, e-
    best = np.zeros((size, size))                 # largest single-source light per pixel
    fp = np.zeros((size, size), np.int32)
    core = np.zeros((size, size), bool)
    rows = []

    def add(obj, x, y, stamp_n, cls, bright):
        ix, iy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        st = obj.drawImage(nx=stamp_n, ny=stamp_n, scale=scale, offset=(x - ix, y - iy))
        st.setCenter(ix, iy)
        b = st.bounds & galsim.BoundsI(1, size, 1, size)
        if not b.isDefined():
            return
        a = st[b].array
        sl = (slice(b.ymin - 1, b.ymax), slice(b.xmin - 1, b.xmax))
        model[sl] += a
        k = len(rows) + 1
        win = (a > best[sl]) & (a > sig_bg)
        fp[sl][win] = k
        best[sl] = np.maximum(best[sl], a)
        if cls == "star":
            core[sl] |= a > 50 * sig_bg
        rows.append((k, cls, x, y, float(obj.flux), float(a.max()), bright))

    # stars: power-law magnitudes between peak = 1 sigma and 30 % of saturation
    f_lo, f_hi = sig_bg / unit_peak, 0.3 * sat_e / unit_peak
    lo, hi = 10 ** (STAR_SLOPE * -2.5 * math.log10(f_hi)), 10 ** (STAR_SLOPE * -2.5 * math.log10(f_lo))
    n_bright = int(rng.integers(N_BRIGHT[0], N_BRIGHT[1] + 1))
    for i in range(int(round(N_STARS * area)) + n_bright):
        x, y = rng.uniform(0.5, size + 0.5, 2)
        bright = i < n_bright
        if bright:
            flux = math.exp(rng.uniform(math.log(0.5), math.log(4.0))) * sat_e / unit_peak
        else:
            mag = math.log10(lo + rng.random() * (hi - lo)) / STAR_SLOPE
            flux = 10 ** (-0.4 * mag)
        peak_sig = flux * unit_peak / sig_bg
        n = odd(min(max(2 * fwhm_px * (peak_sig ** (1 / 3.5)) + 3, 15), 301))
        add(psf.withFlux(flux), x, y, n, "star", bright)
    # galaxies
    for _ in range(int(round(N_GALAXIES * area))):
        x, y = rng.uniform(0.5, size + 0.5, 2)
        u, acc = rng.random(), 0.0
        for n_s, p in SERSIC:
            acc += p
            if u < acc:
                break
        rh = math.exp(rng.uniform(math.log(0.25), math.log(2.0)))
        gal = galsim.Sersic(n=n_s, half_light_radius=rh, trunc=5 * rh).shear(
            g=rng.uniform(0, 0.5), beta=rng.uniform(0, 180) * galsim.degrees)
        obj = galsim.Convolve(gal, psf)
        stamp_n = odd(min(max(2 * (5 * rh / scale) + 6 * fwhm_px, 15), 201))
        flux = math.exp(rng.uniform(math.log(10.0), math.log(3e4))) * sig_bg
        peak = flux * obj.withFlux(1.0).drawImage(nx=stamp_n, ny=stamp_n, scale=scale).array.max()
        if peak > 0.7 * sat_e:
            flux *= 0.7 * sat_e / peak
        add(obj.withFlux(flux), x, y, stamp_n, "galaxy", False)

    # noise (e-), then CRs (e-), then ADU and clipping
    expected = model + sky_e
    clean_e = rng.poisson(expected) + rng.normal(0.0, rn, expected.shape)
    cr_e, counts = inject_crs((size, size), rng, rate)
    clean = np.minimum(clean_e / gain, im["saturate"]).astype(np.float32)
    data = np.minimum((clean_e + cr_e) / gain, im["saturate"]).astype(np.float32)
    sigma_pix = np.sqrt(expected + rn * rn) / gain
    cr = (data.astype(np.float64) - clean) > 0.5 * sigma_pix
    starcore = core & ~cr

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = CRVAL
    w.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    w.wcs.cd = np.array([[-scale / 3600, 0.0], [0.0, scale / 3600]])
    w.wcs.radesys = "ICRS"
    hdr = fits.Header()
    for key, val, com in (
            ("BUNIT", "adu", "pixel unit"), ("EXPTIME", EXPTIME, "[s] exposure time"),
            ("GAIN", round(gain, 4), "[e-/adu] gain"), ("RDNOISE", round(rn, 3), "[e-] read noise"),
            ("SATURATE", im["saturate"], "[adu] saturation level (clipped there)"),
            ("SATCLIP", True, "clipped at SATURATE, no bleed trails"),
            ("PIXSCALE", round(scale, 5), "[arcsec/pixel] pixel scale"),
            ("SEEING", round(im["fwhm"], 4), "[arcsec] PSF FWHM"),
            ("FWHMPIX", round(fwhm_px, 4), "[pixel] PSF FWHM"),
            ("PSF", im["psf"], "PSF profile"), ("PSFBETA", round(im["beta"] or 0.0, 3), "Moffat beta (0: Kolmogorov)"),
            ("SKYLEVEL", round(sky_e / gain, 3), "[adu/pixel] sky level (not subtracted)"),
            ("SEED", seed, "random seed of the field"),
            ("NCREVENT", sum(counts.values()), "cosmic-ray events injected"),
            ("CRMODEL", "landau" if _landau is not None else "lognormal", "track charge distribution"),
            ("CREATOR", f"GalSim {galsim.__version__} (benchmarks/segment_fields.py)", "")):
        hdr[key] = (val, com)
    hdr.extend(w.to_header())
    hdr.add_history("command: " + " ".join(shlex.quote(a) for a in argv))
    hdr.add_history("CR events: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    cat = Table(rows=rows, names=("id", "class", "x", "y", "flux_e", "peak_e", "bright"),
                dtype=(np.int32, "U6", float, float, float, float, bool))
    cat["x"].unit = cat["y"].unit = "pix"
    cat["flux_e"].description = "total flux, e-"
    cat["peak_e"].description = "noiseless peak pixel, e-"
    th = hdr.copy()
    truth = fits.HDUList([fits.PrimaryHDU(header=th),
                          fits.ImageHDU(cr.astype(np.uint8), name="CR"),
                          fits.ImageHDU(starcore.astype(np.uint8), name="STARCORE"),
                          fits.ImageHDU(fp, name="FOOTPRINT"),
                          fits.BinTableHDU(cat, name="CATALOG")])
    truth["CR"].header["COMMENT"] = "added CR signal > 0.5 x pixel noise sigma (after clipping)"
    truth["STARCORE"].header["COMMENT"] = "noiseless star > 50 x background sigma, not CR"
    truth["FOOTPRINT"].header["COMMENT"] = "dominant source id where its noiseless light > 1 x background sigma"
    return (fits.PrimaryHDU(data, header=hdr), fits.PrimaryHDU(clean, header=hdr.copy()), truth,
            {"cr_frac": float(cr.mean()), "starcore": int(starcore.sum()), "events": counts,
             "sat_frac": float((data >= im["saturate"]).mean())})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--cr-rate", type=float, default=CR_RATE, help="CR events per megapixel")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    for seed in args.seeds:
        argv = ["benchmarks/segment_fields.py", "OUTDIR", "--seeds", str(seed), "--size", str(args.size),
                "--cr-rate", f"{args.cr_rate:g}"]
        img, clean, truth, info = make_field(seed, args.size, args.cr_rate, argv)
        stem = os.path.join(args.outdir, f"field_{seed:03d}")
        img.writeto(stem + ".fits", overwrite=True)
        clean.writeto(stem + "_clean.fits", overwrite=True)
        truth.writeto(stem + "_truth.fits", overwrite=True)
        h = img.header
        print(f"{stem}.fits: {h['PSF']} FWHM {h['SEEING']:.2f}\" {h['PIXSCALE']:.3f}\"/px gain {h['GAIN']:.2f} "
              f"sky {h['SKYLEVEL']:.0f} adu; CR px {info['cr_frac']:.4f} ({info['events']}), "
              f"star-core px {info['starcore']}, saturated px {info['sat_frac']:.5f}", file=sys.stderr)


if __name__ == "__main__":
    main()
