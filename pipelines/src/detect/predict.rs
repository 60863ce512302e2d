//! `deepsky detect predict`: one image, or many (`--input` files, folders, globs, `@list`)
//! processed one after another in sorted order; `--shard K/N` takes the K-th contiguous
//! block of that list, through exactly the same steps.
//!
//! With `--mask MASK.fits` (or `input.mask`; one image only, since a mask describes the
//! pixels of one image) the mask's pixels in `input.mask_planes` become NaN in the copy of
//! the image that is searched and measured, so they are missing data exactly as NaN pixels
//! are: left out of the background, read as background by the network, never the centre of
//! a detection, left out of centroids and apertures (counted in the catalogue's
//! `aper_masked`). The overlay plot shows the image as read.

use std::path::{Path, PathBuf};
use std::time::Instant;

use deepsky_detect::config::DetectConfig;
use deepsky_detect::measure::MeasuredObject;
use deepsky_detect::metrics::TruthObject;
use deepsky_detect::report::{
    ImageRecord, MaskRecord, PredictReport, PredictTiming, ScoreThreshold, TruthReport,
};
use deepsky_detect::{catalog, figures, measure, predict, psf, stargal, Detector};
use deepsky_io::wcs::Wcs;
use deepsky_runtime::{Progress, RunError, Shard};

use deepsky_runtime::inputs;

use super::{detect_error, write_catalog, PredictArgs};
use crate::common::Plots;
use crate::common::{self, RunFrame};

/// What one image gave: its objects, its record for report.json, and (with `--truth`) the
/// evaluation.
struct ImageResult {
    objects: Vec<MeasuredObject>,
    record: ImageRecord,
    evaluation: Option<TruthReport>,
}

/// Folder of per-image products in runs over several images.
const IMAGES_DIR: &str = "images";

/// The mask of `--mask`: which pixels to treat as missing.
struct HiddenPixels {
    path: PathBuf,
    planes: Vec<String>,
    hidden: ndarray::Array2<bool>,
}

impl HiddenPixels {
    /// Read `path` and take the pixels of `cfg.input.mask_planes`.
    fn read(path: &Path, cfg: &DetectConfig) -> Result<HiddenPixels, RunError> {
        let planes = cfg.input.mask_planes().map_err(|e| e.within("input"))?;
        let mask = deepsky_io::mask::read_mask(path, &cfg.input.mask_hdu)?;
        let absent: Vec<&str> = planes
            .iter()
            .filter(|&&p| mask.bit_of(p).is_none())
            .map(|p| p.name())
            .collect();
        if !absent.is_empty() {
            tracing::info!(
                "{}: no MP_ card for {}; those planes hide nothing",
                path.display(),
                absent.join(", ")
            );
        }
        Ok(HiddenPixels {
            path: path.to_path_buf(),
            planes: planes.iter().map(|p| p.name().to_string()).collect(),
            hidden: mask.any_of(&planes),
        })
    }

    /// A copy of `image` (read from `image_path`) with the hidden pixels NaN, and how many
    /// were hidden; a mask of another shape is an input error naming both files.
    fn apply(
        &self,
        image: &ndarray::Array2<f32>,
        image_path: &Path,
    ) -> Result<(ndarray::Array2<f32>, usize), RunError> {
        if self.hidden.dim() != image.dim() {
            let (mh, mw) = self.hidden.dim();
            let (h, w) = image.dim();
            return Err(RunError::input(format!(
                "{}: the mask is {mw}×{mh} pixels but {} is {w}×{h}",
                self.path.display(),
                image_path.display()
            )));
        }
        let mut searched = image.clone();
        let mut count = 0;
        searched.zip_mut_with(&self.hidden, |v, &hide| {
            if hide {
                *v = f32::NAN;
                count += 1;
            }
        });
        Ok((searched, count))
    }
}

pub fn run(args: &PredictArgs, cfg: &DetectConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    let images = inputs::expand(&args.input)?;
    let shard = args.common.shard.unwrap_or(Shard::WHOLE);
    let multi = images.len() > 1;
    if args.truth.is_some() && (multi || !shard.is_whole()) {
        return Err(RunError::input(
            "--truth evaluates one image in one run; give a single --input image without --shard",
        ));
    }
    let mask_path = args.mask.clone().or_else(|| {
        let configured = &cfg.input.mask;
        (!configured.as_os_str().is_empty()).then(|| configured.clone())
    });
    if let Some(m) = &mask_path {
        if images.len() > 1 {
            return Err(RunError::input(format!(
                "{}: a mask describes the pixels of one image; give a single --input image (found {})",
                m.display(),
                images.len()
            )));
        }
    }
    let mine = shard.select(&images);
    let (model_dir, det) = super::load_model(args.model.as_ref(), cfg, &device, frame)?;
    for image in mine {
        frame.provenance.input(image, "image")?;
    }
    let mask = match &mask_path {
        Some(p) => {
            frame.provenance.input(p, "mask")?;
            Some(HiddenPixels::read(p, cfg)?)
        }
        None => None,
    };
    let classes = det.classes();
    let truth = match &args.truth {
        Some(p) => {
            frame.provenance.input(p, "truth")?;
            Some(catalog::read_truth(p, &cfg.input.truth_hdu, classes).map_err(detect_error)?)
        }
        None => None,
    };
    let formats = common::plot_formats(&cfg.output.plots)?;

    // Each image in turn: the same steps for one image, a directory of them, or a shard.
    let mut results = Vec::with_capacity(mine.len());
    for (k, image) in mine.iter().enumerate() {
        if mine.len() > 1 {
            tracing::info!("image {}/{}: {}", k + 1, mine.len(), image.display());
        }
        let prefix = if multi {
            format!("{IMAGES_DIR}/{}/", inputs::stem(image))
        } else {
            String::new()
        };
        let r = process_image(
            image,
            &prefix,
            &det,
            truth.as_deref(),
            mask.as_ref(),
            cfg,
            &formats,
            frame,
        )?;
        if deepsky_runtime::interrupt::interrupted() {
            return Err(RunError::Interrupted);
        }
        results.push(r);
    }

    // The catalogue over all images, in input order.
    let mut objects = Vec::new();
    let mut image_names = Vec::new();
    for (p, r) in mine.iter().zip(&results) {
        objects.extend(r.objects.iter().cloned());
        image_names.extend(r.objects.iter().map(|_| p.display().to_string()));
    }
    // Only a one-image run has an evaluation.
    let evaluation = results.first_mut().and_then(|r| r.evaluation.take());
    let truth_ids = evaluation.as_ref().map(|e| e.detector.truth_ids());
    let (df, meta) = catalog::catalog_frame(&objects, classes, truth_ids.as_deref());
    let (df, meta) = catalog::with_image_column(df, meta, image_names);
    // Only with a mask, so that catalogues without one keep their columns.
    let (df, meta) = match &mask {
        Some(_) => catalog::with_masked_column(df, meta, &objects),
        None => (df, meta),
    };
    let cards = catalog::header_cards(&images, &model_dir, cfg.photometry.aperture_radius);
    write_catalog(frame, &df, &meta, &cards)?;

    let records = results.into_iter().map(|r| r.record).collect();
    let mut report = PredictReport::summarise(records, multi, &model_dir, classes, images.len());
    report.evaluation = evaluation;
    report.summary.truth = args.truth.as_ref().map(|t| t.display().to_string());
    report.summary.shard = (!shard.is_whole()).then(|| shard.to_string());
    let (value, source) = cfg.predict.threshold_for(&det);
    report.summary.score_threshold = Some(ScoreThreshold { value, source });
    frame.out.write_report(&report)?;
    eprintln!(
        "{} detections in {} image{}{}; catalogue in {}",
        objects.len(),
        mine.len(),
        if mine.len() == 1 { "" } else { "s" },
        if shard.is_whole() {
            String::new()
        } else {
            format!(" (shard {shard} of {} images)", images.len())
        },
        frame.out.published("catalog.fits").display()
    );
    Ok(())
}

/// Read, detect, measure and (with `truth`) evaluate one image, with the pixels `mask` hides
/// as missing data; write its region file and plots under `prefix` (plots under `plots/` when
/// the prefix is empty).
#[allow(clippy::too_many_arguments)]
fn process_image(
    path: &Path,
    prefix: &str,
    det: &Detector,
    truth: Option<&[TruthObject]>,
    mask: Option<&HiddenPixels>,
    cfg: &DetectConfig,
    formats: &[deepsky_plot::Format],
    frame: &mut RunFrame,
) -> Result<ImageResult, RunError> {
    let classes = det.classes();
    let t0 = Instant::now();
    let (image, header) = catalog::read_image(path, &cfg.input.hdu).map_err(detect_error)?;
    let (h, w) = image.dim();
    let wcs = match Wcs::from_header(&header) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("{}: {e}; ra and dec will be NaN", path.display());
            None
        }
    };
    let gain = cfg.photometry.effective_gain(&header);
    // What is searched and measured: the image, or its copy with the masked pixels NaN.
    let masked = match mask {
        Some(m) => Some(m.apply(&image, path)?),
        None => None,
    };
    let mask_record = masked.as_ref().zip(mask).map(|((_, n), m)| MaskRecord {
        path: m.path.display().to_string(),
        planes: m.planes.clone(),
        masked_pixels: *n,
    });
    let searched = masked.as_ref().map_or(&image, |(s, _)| s);
    let t_read = t0.elapsed().as_secs_f64();

    // The network.
    let t1 = Instant::now();
    let total = predict::tile_count(h, w, &cfg.predict);
    let bar = Progress::new("detecting", total as u64, "tiles");
    let mut on_tiles = |done: usize, _total: usize| {
        bar.inc((done as u64).saturating_sub(bar.done()));
        !deepsky_runtime::interrupt::interrupted()
    };
    // What is wrong with this image: say which image.
    let for_image = |e| match e {
        deepsky_detect::DetectError::Input(m) => {
            RunError::input(format!("{}: {m}", path.display()))
        }
        e => detect_error(e),
    };
    // The PSF: configured, from the header, or measured. Needed by the point-source test
    // (`[star_galaxy]`) and by resampling (`predict.psf_tolerance`); with both off, recorded
    // when it can be found.
    let given = (cfg.predict.psf_fwhm_pixels > 0.0).then_some(cfg.predict.psf_fwhm_pixels);
    let resolved = psf::resolve_fwhm(given, &header, searched.view());
    let (fwhm, source) = match resolved {
        Ok((f, s)) => (f, Some(s)),
        // Resampling and the point-source test need the PSF.
        Err(e) if cfg.predict.psf_tolerance > 0.0 || cfg.star_galaxy.enabled => {
            return Err(for_image(e))
        }
        Err(e) => {
            tracing::debug!(
                "{}: PSF not known ({e}); not needed with star_galaxy and resampling off",
                path.display()
            );
            (0.0, None)
        }
    };
    let (pred, scale) = predict::predict_at_psf(
        det,
        searched.view(),
        None,
        &cfg.predict,
        fwhm,
        &mut on_tiles,
    )
    .map_err(for_image)?;
    if scale.resample_scale != 1.0 {
        tracing::info!(
            "{}: PSF {fwhm:.2} px; searched resampled by {:.3} to the trained {:.2} px",
            path.display(),
            scale.resample_scale,
            scale.trained_fwhm_pixels
        );
    }
    bar.finish();
    let t_net = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let bkg = &pred.background;
    let mut objects = measure::measure(
        searched.view(),
        bkg,
        &pred.detections,
        classes,
        &cfg.photometry,
        gain,
        wcs.as_ref(),
    );
    // Star or galaxy: a point source is one the image's own PSF fits, at any seeing.
    if fwhm > 0.0 {
        let psf = stargal::PsfProfile::from_fwhm(fwhm);
        let sg = &cfg.star_galaxy;
        if let Some(s) = stargal::apply(&mut objects, searched.view(), bkg, &psf, classes, sg) {
            tracing::debug!(
                "{}: point-source test zero point {:.4} from {} bright objects",
                path.display(),
                s.zero_point,
                s.locus_objects
            );
        }
    }
    let t_measure = t2.elapsed().as_secs_f64();
    let megapixels = (h * w) as f64 / 1e6;
    let timing = PredictTiming::new(megapixels, t_read, t_net, t_measure);

    let plot_dir = if prefix.is_empty() { "plots" } else { prefix };
    let mut plots = Plots::new(frame, plot_dir, formats)?;
    let mut evaluation = None;
    let mut missed = Vec::new();
    // Evaluation against the truth, and the classical baseline on the same image and
    // background beside it.
    if let Some(truth) = truth {
        let (eval, base) = (&cfg.evaluate, &cfg.baseline);
        let view = searched.view();
        let tr = TruthReport::compute(view, bkg, &objects, truth, classes, eval, base)
            .map_err(detect_error)?;
        let (e, be) = (&tr.detector, &tr.baseline.evaluation);
        missed = e.missed(truth);
        for (stem, plot) in figures::snr_curves(&[("detector", e), ("classical baseline", be)]) {
            plots.save(&plot, stem)?;
        }
        tracing::info!(
            "detector: completeness {:.3} purity {:.3} (S/N 3-10: {:.3}); baseline: {:.3} {:.3} ({:.3})",
            e.completeness.unwrap_or(f64::NAN),
            e.purity.unwrap_or(f64::NAN),
            e.completeness_snr_3_10.unwrap_or(f64::NAN),
            be.completeness.unwrap_or(f64::NAN),
            be.purity.unwrap_or(f64::NAN),
            be.completeness_snr_3_10.unwrap_or(f64::NAN),
        );
        evaluation = Some(tr);
    }

    // The image's own products: DS9 regions and the overlay plot.
    let reg = format!("{prefix}detections.reg");
    let regions = catalog::regions(&objects, classes, path);
    frame.out.write_text(&reg, &regions)?;
    frame.provenance.output(&reg, "regions");
    let max_side = cfg.output.overlay_max_side;
    let overlay = figures::overlay(image.view(), &objects, &missed, max_side);
    plots.save(&overlay, "overlay")?;
    let mut record = ImageRecord::new(path, [h, w], bkg, pred.tiles, &objects, classes, timing);
    record.outputs = vec![reg];
    record.plots = plots.written;
    record.mask = mask_record;
    record.psf = source.map(|source| deepsky_detect::report::PsfRecord {
        fwhm_pixels: fwhm,
        source: source.to_string(),
        trained_fwhm_pixels: scale.trained_fwhm_pixels,
        resample_scale: scale.resample_scale,
    });
    tracing::info!(
        "{} detections in {} ({}×{}, {:.1} Mpix/s)",
        objects.len(),
        path.display(),
        w,
        h,
        timing.megapixels_per_s,
    );
    Ok(ImageResult {
        objects,
        record,
        evaluation,
    })
}
