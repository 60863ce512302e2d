//! `deepsky segment predict`: one image, or many (`--input` files, folders, globs, `@list`)
//! in sorted order; `--shard K/N` takes the K-th contiguous block of that list. Per image:
//! mask.fits, probabilities.fits, segmentation.fits + sources.csv, cleaned.fits and an
//! overlay plot (under `images/<stem>/` when there are several); one report.json.

use std::path::Path;
use std::time::Instant;

use deepsky_core::mask::MaskPlane;
use deepsky_detect::catalog;
use deepsky_io::fits::{Card, FitsWriter, Header};
use deepsky_io::NdData;
use deepsky_runtime::{inputs, Progress, RunError, Shard};
use deepsky_segment::predict::{predict, Prediction};
use deepsky_segment::{calibrate, figures, inpaint, segmentation, SegmentConfig, Segmenter};
use ndarray::{Array2, Axis};
use serde_json::{json, Value};

use super::PredictArgs;
use crate::common::{self, Plots, RunFrame};
use crate::detect::detect_error;

/// Folder of per-image products in runs over several images.
pub const IMAGES_DIR: &str = "images";

pub fn run(args: &PredictArgs, cfg: &SegmentConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    let images = inputs::expand(&args.input)?;
    let shard = args.common.shard.unwrap_or(Shard::WHOLE);
    let multi = images.len() > 1;
    if args.truth.is_some() && (multi || !shard.is_whole()) {
        return Err(RunError::input(
            "--truth scores one image in one run; give a single --input image without --shard",
        ));
    }
    let mine = shard.select(&images);
    let (model_dir, seg) = super::load_model(args.model.as_ref(), cfg, &device, frame)?;
    let net = seg.compile().map_err(common::nn_error)?;
    for image in mine {
        frame.provenance.input(image, "image")?;
    }
    let truth = match &args.truth {
        Some(p) => {
            frame.provenance.input(p, "truth")?;
            Some((
                p.clone(),
                deepsky_io::mask::read_mask(p, &cfg.input.truth_hdu)?,
            ))
        }
        None => None,
    };
    let formats = common::plot_formats(&cfg.output.plots)?;
    let mut records = Vec::with_capacity(mine.len());
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
            &seg,
            &net,
            truth.as_ref(),
            cfg,
            &formats,
            frame,
        )?;
        if deepsky_runtime::interrupt::interrupted() {
            return Err(RunError::Interrupted);
        }
        records.push(r);
    }
    let report = summarise(records, &model_dir, &seg, cfg, images.len(), shard);
    frame.out.write_report(&report)?;
    eprintln!(
        "masked {} image{}{}; outputs in {}",
        mine.len(),
        if mine.len() == 1 { "" } else { "s" },
        if shard.is_whole() {
            String::new()
        } else {
            format!(" (shard {shard} of {} images)", images.len())
        },
        frame.out.published_root().display()
    );
    Ok(())
}

/// report.json from the per-image records (also used by `segment merge`).
pub fn summarise(
    images: Vec<Value>,
    model_dir: &Path,
    seg: &Segmenter,
    cfg: &SegmentConfig,
    n_inputs: usize,
    shard: Shard,
) -> Value {
    let thresholds: Vec<Value> = seg
        .planes()
        .iter()
        .map(|&p| {
            let (t, source) = cfg.predict.threshold_for(seg, p);
            json!({"plane": p.name(), "threshold": t, "source": source})
        })
        .collect();
    let planes: Vec<Value> = MaskPlane::ALL
        .iter()
        .map(|p| json!({"name": p.name(), "bit": p.bit_number(), "card": p.card_key(), "meaning": p.description()}))
        .collect();
    json!({
        "summary": {
            "model": model_dir.display().to_string(),
            "n_images": images.len(),
            "n_inputs": n_inputs,
            "shard": (!shard.is_whole()).then(|| shard.to_string()),
            "planes": planes,
            "thresholds": thresholds,
        },
        "images": images,
    })
}

/// The WCS cards of `header` (to copy onto every output image).
fn wcs_cards(header: &Header) -> Vec<Card> {
    const PREFIXES: [&str; 11] = [
        "CTYPE", "CRVAL", "CRPIX", "CDELT", "CUNIT", "CROTA", "CD1_", "CD2_", "PC1_", "PC2_", "PV",
    ];
    const KEYS: [&str; 7] = [
        "WCSAXES", "RADESYS", "EQUINOX", "LONPOLE", "LATPOLE", "MJD-OBS", "DATE-OBS",
    ];
    header
        .cards()
        .iter()
        .filter(|c| c.value.is_some())
        .filter(|c| PREFIXES.iter().any(|p| c.key.starts_with(p)) || KEYS.contains(&c.key.as_str()))
        .cloned()
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn process_image(
    path: &Path,
    prefix: &str,
    seg: &Segmenter,
    net: &deepsky_segment::unet::CompiledUNet,
    truth: Option<&(std::path::PathBuf, deepsky_io::mask::MaskImage)>,
    cfg: &SegmentConfig,
    formats: &[deepsky_plot::Format],
    frame: &mut RunFrame,
) -> Result<Value, RunError> {
    let for_image = |e| match e {
        deepsky_detect::DetectError::Input(m) => {
            RunError::input(format!("{}: {m}", path.display()))
        }
        e => detect_error(e),
    };
    let t0 = Instant::now();
    let (image, header) = catalog::read_image(path, &cfg.input.hdu).map_err(for_image)?;
    let (h, w) = image.dim();
    let t_read = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let total = deepsky_segment::predict::tile_count(net, h, w, &cfg.predict);
    let bar = Progress::new("segmenting", total as u64, "tiles");
    let on_tiles = |done: usize, _total: usize| {
        bar.inc((done as u64).saturating_sub(bar.done()));
        !deepsky_runtime::interrupt::interrupted()
    };
    let pred = predict(seg, net, image.view(), &cfg.predict, &on_tiles).map_err(for_image)?;
    bar.finish();
    let t_predict = t1.elapsed().as_secs_f64();

    // Outputs.
    let t2 = Instant::now();
    let wcs = wcs_cards(&header);
    let mut outputs = Vec::new();
    let provenance = frame.provenance.fits_cards();
    let mut put = |frame: &mut RunFrame, name: &str, role: &str| {
        let rel = format!("{prefix}{name}");
        frame.provenance.output(&rel, role);
        outputs.push(rel.clone());
        rel
    };
    let rel = put(frame, "mask.fits", "mask");
    write_mask(&frame.out.path(&rel), &pred, &wcs, &provenance)?;
    if cfg.output.probabilities {
        let rel = put(frame, "probabilities.fits", "probabilities");
        write_probabilities(&frame.out.path(&rel), &pred, &wcs, &provenance)?;
    }
    let detected = pred.bits.mapv(|b| MaskPlane::Detected.is_set(b));
    let (segmap, sources) = segmentation::segment_sources(
        image.view(),
        &pred.background,
        detected.view(),
        &cfg.deblend,
    );
    let rel = put(frame, "segmentation.fits", "segmentation");
    {
        let mut f = FitsWriter::create(frame.out.path(&rel))?;
        f.write_primary_header(&provenance)?;
        let mut cards = vec![Card::new("BUNIT", "", "source number; 0 = sky")];
        cards.extend_from_slice(&wcs);
        f.write_image(
            Some("SEGMENTATION"),
            &NdData::I32(segmap.into_dyn()),
            &cards,
        )?;
        f.finish()?;
    }
    let rel = put(frame, "sources.csv", "sources");
    frame
        .out
        .write_text(&rel, &sources_csv(&sources, &header))?;
    if cfg.output.inpaint {
        let rel = put(frame, "cleaned.fits", "cleaned image");
        let cr = pred.bits.mapv(|b| MaskPlane::CosmicRay.is_set(b));
        let nan = image.mapv(|v| !v.is_finite());
        let cleaned = inpaint::inpaint_median(image.view(), cr.view(), nan.view());
        let mut f = FitsWriter::create(frame.out.path(&rel))?;
        let mut cards = provenance.clone();
        cards.push(Card::comment(
            "cosmic-ray pixels replaced by the median of unmasked neighbours",
        ));
        cards.extend_from_slice(&wcs);
        f.write_image(None, &NdData::F32(cleaned.into_dyn()), &cards)?;
        f.finish()?;
    }
    let plot_dir = if prefix.is_empty() { "plots" } else { prefix };
    let mut plots = Plots::new(frame, plot_dir, formats)?;
    let shown = [
        MaskPlane::CosmicRay,
        MaskPlane::Saturated,
        MaskPlane::BadColumn,
        MaskPlane::Trail,
    ];
    let overlay = figures::overlay(
        image.view(),
        &pred.bits,
        &shown,
        cfg.output.overlay_max_side,
    );
    plots.save(&overlay, "overlay")?;
    let t_write = t2.elapsed().as_secs_f64();

    // Per-plane counts.
    let npix = (h * w) as f64;
    let counts: Vec<Value> = MaskPlane::ALL
        .iter()
        .map(|p| {
            let n = pred.bits.iter().filter(|&&b| p.is_set(b)).count();
            json!({"plane": p.name(), "pixels": n, "fraction": n as f64 / npix})
        })
        .collect();
    let any_artefact = MaskPlane::ALL
        .iter()
        .filter(|p| **p != MaskPlane::Detected)
        .fold(0, |m, p| m | p.bit());
    let masked = pred.bits.iter().filter(|&&b| b & any_artefact != 0).count();
    let evaluation =
        match truth {
            Some((tp, t)) => {
                let bits = t.to_deepsky_bits();
                if bits.dim() != (h, w) {
                    return Err(RunError::input(format!(
                        "{}: the truth mask is {}×{} pixels, the image {} is {w}×{h}",
                        tp.display(),
                        bits.ncols(),
                        bits.nrows(),
                        path.display()
                    )));
                }
                let scores = calibrate::evaluate(&pred, &image, &bits);
                for s in &scores {
                    tracing::info!(
                    "{}: TPR {:.3} FPR {:.2e} (threshold {:.3}); AUC {:.4}; TPR at FPR 1e-3 {:.3}",
                    s.plane, s.tpr, s.fpr, s.threshold, s.auc, s.tpr_at_fpr_1e3
                );
                }
                Some(json!({"truth": tp.display().to_string(), "planes": scores}))
            }
            None => None,
        };
    let total = t0.elapsed().as_secs_f64();
    let mpix = npix / 1e6;
    tracing::info!(
        "{}: {w}×{h}, {} sources, {:.2} % masked, {:.2} Mpix/s",
        path.display(),
        sources.len(),
        100.0 * masked as f64 / npix,
        mpix / total
    );
    Ok(json!({
        "image": path.display().to_string(),
        "shape": [h, w],
        "tiles": pred.tiles,
        "planes": counts,
        "fraction_masked": masked as f64 / npix,
        "n_sources": sources.len(),
        "timing": {
            "read_s": t_read, "predict_s": t_predict, "write_s": t_write, "total_s": total,
            "megapixels_per_s": mpix / total, "network_megapixels_per_s": mpix / t_predict,
        },
        "outputs": outputs,
        "plots": plots.written,
        "evaluation": evaluation,
    }))
}

/// mask.fits: provenance in the primary header, HDU MASK with the plane cards, each plane's
/// threshold and the input's WCS.
fn write_mask(
    path: &Path,
    pred: &Prediction,
    wcs: &[Card],
    provenance: &[Card],
) -> Result<(), RunError> {
    let mut f = FitsWriter::create(path)?;
    f.write_primary_header(provenance)?;
    let mut cards: Vec<Card> = pred
        .thresholds
        .iter()
        .map(|(p, t, _)| {
            Card::new(
                &format!("TH_{}", p.name()),
                deepsky_io::fits::CardValue::Float(*t as f64),
                "probability threshold of the plane",
            )
        })
        .collect();
    cards.extend_from_slice(wcs);
    deepsky_io::mask::write_mask_hdu(&mut f, "MASK", &pred.bits, &cards)?;
    f.finish()?;
    Ok(())
}

/// probabilities.fits: one float32 image per plane, EXTNAME = the plane's name.
fn write_probabilities(
    path: &Path,
    pred: &Prediction,
    wcs: &[Card],
    provenance: &[Card],
) -> Result<(), RunError> {
    let mut f = FitsWriter::create(path)?;
    f.write_primary_header(provenance)?;
    for (k, p) in pred.planes.iter().enumerate() {
        let plane: Array2<f32> = pred.probabilities.index_axis(Axis(0), k).to_owned();
        let mut cards = vec![Card::new(
            "BUNIT",
            "",
            &format!("probability of {}", p.description()),
        )];
        cards.extend_from_slice(wcs);
        f.write_image(Some(p.name()), &NdData::F32(plane.into_dyn()), &cards)?;
    }
    f.finish()?;
    Ok(())
}

/// sources.csv: one row per number of the segmentation map, SExtractor's column names.
fn sources_csv(sources: &[segmentation::Source], header: &Header) -> String {
    let wcs = deepsky_io::wcs::Wcs::from_header(header).ok();
    let mut s = String::from(
        "NUMBER,X_IMAGE,Y_IMAGE,ISOAREA_IMAGE,FLUX_ISO,FLUX_MAX,ALPHA_J2000,DELTA_J2000\n",
    );
    for src in sources {
        let (ra, dec) = wcs
            .as_ref()
            .and_then(|w| w.pixel_to_world(src.x, src.y))
            .unwrap_or((f64::NAN, f64::NAN));
        s.push_str(&format!(
            "{},{:.3},{:.3},{},{:.6e},{:.6e},{:.7},{:.7}\n",
            src.number, src.x, src.y, src.area, src.flux, src.peak, ra, dec
        ));
    }
    s
}
