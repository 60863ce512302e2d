#!/usr/bin/env python3
"""One cosmic-ray tool run as a whole process, so that benchmarks/segment_compare.py can time each
tool like `deepsky segment predict`: read the FITS file, run, write the outputs.

Usage:
  segment_tool.py astroscrappy FIELD OUTDIR [--sigclip 4.5] [--objlim 5] [--psf]
      detect_cosmics with gain, readnoise and satlevel (SATURATE x GAIN, in e- as astroscrappy
      wants it) from the header; every other argument at astroscrappy's default, except with --psf:
      fsmode='convolve' with the header's PSF (Moffat PSFBETA, or Gaussian for Kolmogorov) and
      FWHMPIX
  segment_tool.py deepcr FIELD OUTDIR --model NAME [--inpaint NAME|medmask|none] [--threshold 0.5]
      [--units e|e-sky]
      deepCR(mask=NAME, inpaint=..., device="CPU"); the image is fed in electrons (ADU x GAIN, as
      deepCR's docstring asks of ACS/WFC _flc images), or in electrons less the median (--units
      e-sky); the probability map is clean(img, binary=False), the binary mask is p > threshold
      (deepCR's own rule), the inpainted image comes back in ADU
Writes OUTDIR/mask.fits (uint8), OUTDIR/cleaned.fits (float32, ADU) and, for deepCR,
OUTDIR/probabilities.fits (float32, 0-1). Prints the wall time of the tool's call (not the process)
on stdout as JSON.
"""
import argparse
import json
import os
import time

import numpy as np
from astropy.io import fits

# The mask models deepCR 0.3.1 ships (deepCR/learned_models/mask/*.pth). Those not named in its
# mask_dict are batch-norm U-Nets of the hidden width given here, registered the way mask_dict
# registers its own (class, (in, out, hidden), scale).
EXTRA_MASKS = {"ACS-WFC-F435W": 32, "ACS-WFC-F606W": 32, "ACS-WFC-F814W": 32, "ACS-WFC-F606W-2-4": 4}


def deepcr_model(name, inpaint):
    from deepCR import deepCR  # before learned_models: the two import each other
    import learned_models
    from deepCR.unet_batchnorm import UNet2SigmoidBatchNorm
    if name in EXTRA_MASKS and name not in learned_models.mask_dict:
        learned_models.mask_dict[name] = [UNet2SigmoidBatchNorm, (1, 1, EXTRA_MASKS[name]), 1]
    return deepCR(mask=name, inpaint=None if inpaint in (None, "medmask", "none") else inpaint, device="CPU")


def psf_kwargs(hdr):
    """astroscrappy's fine-structure image from the true PSF (fsmode='convolve'): a Moffat of the
    header's PSFBETA on Moffat fields, a Gaussian on Kolmogorov ones, FWHM = FWHMPIX."""
    fwhm = float(hdr["FWHMPIX"])
    size = int(max(7, 2 * round(fwhm) + 1)) | 1
    kw = dict(fsmode="convolve", psffwhm=fwhm, psfsize=size)
    if str(hdr.get("PSF", "")).lower() == "moffat":
        kw.update(psfmodel="moffat", psfbeta=float(hdr["PSFBETA"]))
    else:
        kw.update(psfmodel="gauss")
    return kw


def run_astroscrappy(data, hdr, sigclip, objlim, psf=False):
    """detect_cosmics on an ADU image with the header's gain, read noise and saturation (in e-);
    with psf, its fine-structure image from the true PSF (psf_kwargs), else its default median."""
    import astroscrappy
    gain = float(hdr["GAIN"])
    return astroscrappy.detect_cosmics(data.astype(np.float32), sigclip=sigclip, objlim=objlim, gain=gain,
                                       readnoise=float(hdr["RDNOISE"]), satlevel=float(hdr["SATURATE"]) * gain,
                                       **(psf_kwargs(hdr) if psf else {}))


def deepcr_input(data, hdr, units):
    e = data.astype(np.float32) * np.float32(hdr["GAIN"])
    off = float(np.median(e)) if units == "e-sky" else 0.0
    return e - np.float32(off), off


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tool", choices=["astroscrappy", "deepcr"])
    ap.add_argument("field")
    ap.add_argument("outdir")
    ap.add_argument("--sigclip", type=float, default=4.5)
    ap.add_argument("--objlim", type=float, default=5.0)
    ap.add_argument("--psf", action="store_true", help="astroscrappy: fsmode='convolve' with the true PSF")
    ap.add_argument("--model")
    ap.add_argument("--inpaint", default="medmask")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--units", choices=["e", "e-sky"], default="e")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    data, hdr = fits.getdata(a.field, header=True)
    gain = float(hdr["GAIN"])
    t0 = time.perf_counter()
    info = {}
    if a.tool == "astroscrappy":
        mask, cleaned = run_astroscrappy(data, hdr, a.sigclip, a.objlim, a.psf)
        # astroscrappy 1.3 returns the cleaned image in the input's units (ADU) when gain is given
        info.update(sigclip=a.sigclip, objlim=a.objlim, psf=a.psf)
    else:
        import torch
        mdl = deepcr_model(a.model, a.inpaint)
        img, off = deepcr_input(data, hdr, a.units)
        prob = mdl.clean(img, binary=False)
        mask = prob > a.threshold
        if a.inpaint == "none":
            cleaned = data
        else:
            cleaned = (mdl.inpaint(img, mask.astype(np.float32)) + off) / gain
        fits.PrimaryHDU(prob.astype(np.float32)).writeto(os.path.join(a.outdir, "probabilities.fits"), overwrite=True)
        info.update(model=a.model, inpaint=a.inpaint, threshold=a.threshold, units=a.units,
                    torch_threads=torch.get_num_threads())
    info["seconds_call"] = time.perf_counter() - t0
    fits.PrimaryHDU(np.asarray(mask, np.uint8)).writeto(os.path.join(a.outdir, "mask.fits"), overwrite=True)
    fits.PrimaryHDU(np.asarray(cleaned, np.float32), header=hdr).writeto(os.path.join(a.outdir, "cleaned.fits"), overwrite=True)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
