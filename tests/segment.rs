//! `deepsky segment` end to end: the bundled U-Net on a simulated field with physical cosmic
//! rays and a trail (scored against the simulator's truth masks), its outputs read by astropy
//! and checked by fitsverify, the chain segment → detect --mask, sharded runs merged, a short
//! training run, and clear errors for bad images.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::*;

/// A 256×256 field with physical cosmic rays, a trail and a saturated star, and its masks.
fn simulate(dir: &Path, name: &str, seed: u32) -> (PathBuf, PathBuf) {
    let field = dir.join(format!("{name}.fits"));
    ok(&deepsky(&[
        "-q",
        "simulate",
        "sky",
        "-c",
        "pipelines/configs/sky.toml",
        "--seed",
        &seed.to_string(),
        "--set",
        "artefacts.cosmic_rays=60",
        "--set",
        "artefacts.cosmic_ray_model=\"physical\"",
        "--set",
        "artefacts.trails=1",
        "--set",
        "artefacts.hot_pixels=10",
        "-o",
        field.to_str().unwrap(),
    ]));
    let masks = dir.join(format!("{name}_masks.fits"));
    assert!(masks.is_file());
    (field, masks)
}

fn segment(args: &[&str]) -> std::process::Output {
    let mut all = vec!["-q", "segment"];
    all.extend_from_slice(args);
    deepsky(&all)
}

#[test]
fn bundled_segmenter_finds_cosmic_rays_and_writes_what_astropy_and_fitsverify_read() {
    let d = tempfile::tempdir().unwrap();
    let (field, masks) = simulate(d.path(), "f", 4242);
    let out = d.path().join("out");
    ok(&segment(&[
        "predict",
        "-c",
        "pipelines/configs/segment.toml",
        "--input",
        field.to_str().unwrap(),
        "--truth",
        masks.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]));
    let r = json(&out.join("report.json"));
    let image = &r["images"][0];
    let planes = image["evaluation"]["planes"].as_array().unwrap();
    let cr = planes.iter().find(|p| p["plane"] == "COSMIC_RAY").unwrap();
    let (tpr, fpr) = (cr["tpr"].as_f64().unwrap(), cr["fpr"].as_f64().unwrap());
    let at_1e3 = cr["tpr_at_fpr_1e3"].as_f64().unwrap();
    eprintln!(
        "cosmic rays: TPR {tpr:.3} FPR {fpr:.2e} (TPR {at_1e3:.3} at FPR 1e-3), AUC {}",
        cr["auc"]
    );
    assert!(cr["positives"].as_u64().unwrap() > 200);
    // The model's own threshold (FPR 1e-3 on its calibration fields), and the ranking.
    assert!(tpr > 0.65 && fpr < 2e-3, "cosmic-ray TPR {tpr}, FPR {fpr}");
    assert!(at_1e3 > 0.8, "cosmic-ray TPR at FPR 1e-3: {at_1e3}");
    let det = planes.iter().find(|p| p["plane"] == "DETECTED").unwrap();
    assert!(det["auc"].as_f64().unwrap() > 0.95, "{det}");
    assert!(image["timing"]["megapixels_per_s"].as_f64().unwrap() > 0.0);
    for f in [
        "mask.fits",
        "probabilities.fits",
        "segmentation.fits",
        "cleaned.fits",
    ] {
        fitsverify_ok(&out.join(f));
    }
    assert!(out.join("plots/overlay.png").metadata().unwrap().len() > 5000);

    let py = run_python(
        r#"
import sys, csv, numpy as np
from astropy.io import fits
out, field = sys.argv[1], sys.argv[2]
img = fits.getdata(field).astype(float)
mh = fits.getheader(out + '/mask.fits', 'MASK')
mask = fits.getdata(out + '/mask.fits', 'MASK')
assert mask.shape == img.shape and mask.dtype.kind == 'i'
bits = {k[3:]: mh[k] for k in mh if k.startswith('MP_')}
assert bits['COSMIC_RAY'] == 0 and bits['NO_DATA'] == 5, bits
assert mh['CTYPE1'].startswith('RA---'), mh['CTYPE1']
with fits.open(out + '/probabilities.fits') as p:
    names = [h.name for h in p[1:]]
    assert names == ['COSMIC_RAY', 'SATURATED', 'BAD_COLUMN', 'TRAIL', 'DETECTED'], names
    cr = p['COSMIC_RAY'].data
    assert cr.dtype.kind == 'f' and cr.dtype.itemsize == 4 and cr.min() >= 0 and cr.max() <= 1
    # The mask is the probability at the header's threshold.
    t = mh['TH_COSMIC_RAY']
    assert ((cr >= t) == ((mask & 1) > 0)).all()
seg = fits.getdata(out + '/segmentation.fits', 'SEGMENTATION')
rows = list(csv.DictReader(open(out + '/sources.csv')))
assert seg.max() == len(rows) > 10, (seg.max(), len(rows))
assert [int(r['NUMBER']) for r in rows] == list(range(1, len(rows) + 1))
# A source's centroid lies in its own segment.
inside = sum(seg[int(round(float(r['Y_IMAGE']))) - 1, int(round(float(r['X_IMAGE']))) - 1] == int(r['NUMBER']) for r in rows)
assert inside >= 0.9 * len(rows), (inside, len(rows))
clean = fits.getdata(out + '/cleaned.fits').astype(float)
changed = clean != img
assert changed.any() and not (changed & ((mask & 1) == 0)).any()
# Inpainted cosmic-ray pixels are far closer to the sky than the hits were.
hit = (mask & 1) > 0
print(float(np.median(img[hit])), float(np.median(clean[hit])), float(np.median(img)))
"#,
        &[out.to_str().unwrap(), field.to_str().unwrap()],
    );
    let v: Vec<f64> = py.split_whitespace().map(|s| s.parse().unwrap()).collect();
    let (hits, cleaned, sky) = (v[0], v[1], v[2]);
    assert!(
        hits - sky > 5.0 * (cleaned - sky).abs().max(1.0),
        "{hits} {cleaned} {sky}"
    );
}

#[test]
fn segment_mask_chains_into_detect_and_cosmic_rays_are_not_reported() {
    let d = tempfile::tempdir().unwrap();
    let (field, _) = simulate(d.path(), "chain", 4343);
    let seg_out = d.path().join("seg");
    ok(&segment(&[
        "predict",
        "-c",
        "pipelines/configs/segment.toml",
        "--input",
        field.to_str().unwrap(),
        "-o",
        seg_out.to_str().unwrap(),
    ]));
    let truth = d.path().join("chain_truth.fits");
    let detect = |name: &str, extra: &[&str]| {
        let o = d.path().join(name);
        let mut args = vec![
            "-q",
            "detect",
            "predict",
            "-c",
            "pipelines/configs/detect.toml",
            "--input",
            field.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
            "-o",
            o.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(&deepsky(&args));
        json(&o.join("report.json"))
    };
    let plain = detect("plain", &[]);
    let mask = seg_out.join("mask.fits");
    let masked = detect("masked", &["--mask", mask.to_str().unwrap()]);
    // Cosmic rays the detector "finds" (matched to a cosmic-ray truth object, whatever class
    // it gives them): most without the mask, next to none with it.
    let found = |r: &serde_json::Value| {
        r["per_class"]["cosmic_ray"]["completeness"]
            .as_f64()
            .unwrap()
    };
    eprintln!(
        "cosmic rays found as sources: {:.2} without the mask, {:.2} with it",
        found(&plain),
        found(&masked)
    );
    // What is still "found" is mostly real sources within the match radius of a hit.
    assert!(found(&plain) > 0.5, "{plain}");
    assert!(found(&masked) < 0.5 * found(&plain), "{masked}");
    let as_cr = |r: &serde_json::Value| r["per_class_counts"]["cosmic_ray"].as_u64().unwrap();
    assert_eq!(as_cr(&masked), 0, "{masked}");
    let c = |r: &serde_json::Value| r["completeness"].as_f64().unwrap();
    assert!(
        c(&masked) > c(&plain) - 0.05,
        "{} vs {}",
        c(&masked),
        c(&plain)
    );

    // And on to anomaly: stamps around the masked run's detections, the same mask hiding the
    // artefacts' pixels (README "Chaining").
    let anom = d.path().join("anom");
    let set = |k: &str, p: &Path| format!("input.{k}=\"{}\"", p.display());
    ok(&deepsky(&[
        "-q",
        "anomaly",
        "-c",
        "pipelines/configs/anomaly_detections.toml",
        "--set",
        &set("path", &field),
        "--set",
        &set("catalog", &d.path().join("masked/catalog.fits")),
        "--set",
        &set("mask", &mask),
        "--set",
        "train.epochs=2",
        "-o",
        anom.to_str().unwrap(),
    ]));
    let a = json(&anom.join("report.json"));
    assert_eq!(a["n_objects"], masked["n_detections"], "{a}");
}

#[test]
fn sharded_runs_merge_to_the_unsharded_result() {
    let d = tempfile::tempdir().unwrap();
    let imgs = d.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for (k, seed) in [(1, 11u32), (2, 12), (3, 13)] {
        simulate(&imgs, &format!("s{k}"), seed);
        std::fs::remove_file(imgs.join(format!("s{k}_masks.fits"))).unwrap();
        std::fs::remove_file(imgs.join(format!("s{k}_truth.fits"))).unwrap();
    }
    let glob = format!("{}/*.fits", imgs.display());
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "predict",
            "-c",
            "pipelines/configs/segment.toml",
            "--set",
            "output.plots=[]",
            "--input",
            &glob,
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(&segment(&args));
    };
    let whole = d.path().join("whole");
    run(&whole, &[]);
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    run(&a, &["--shard", "0/2"]);
    run(&b, &["--shard", "1/2"]);
    let merged = d.path().join("merged");
    ok(&segment(&[
        "merge",
        b.to_str().unwrap(),
        a.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]));
    let (rw, rm) = (
        json(&whole.join("report.json")),
        json(&merged.join("report.json")),
    );
    assert_eq!(rw["summary"]["n_images"], 3);
    assert_eq!(rm["summary"]["n_images"], 3);
    for k in 0..3 {
        let (iw, im) = (&rw["images"][k], &rm["images"][k]);
        assert_eq!(iw["image"], im["image"]);
        assert_eq!(iw["planes"], im["planes"]);
        assert_eq!(iw["n_sources"], im["n_sources"]);
        assert_eq!(iw["outputs"], im["outputs"]);
        for f in iw["outputs"].as_array().unwrap() {
            let f = f.as_str().unwrap();
            if f.ends_with("mask.fits") || f.ends_with(".csv") {
                let data = |root: &Path| {
                    run_python(
                        "import sys; from astropy.io import fits; import hashlib\nf=sys.argv[1]\nprint(hashlib.sha1(open(f,'rb').read()).hexdigest() if f.endswith('.csv') else hashlib.sha1(fits.getdata(f,'MASK').tobytes()).hexdigest())",
                        &[root.join(f).to_str().unwrap()],
                    )
                };
                assert_eq!(data(&whole), data(&merged), "{f}");
            }
        }
    }
}

#[test]
fn bad_images_are_one_line_errors_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    run_python(
        r#"
import sys, numpy as np
from astropy.io import fits
d = sys.argv[1]
fits.writeto(d + '/cube.fits', np.ones((3, 64, 64), np.float32))
fits.writeto(d + '/nan.fits', np.full((64, 64), np.nan, np.float32))
fits.writeto(d + '/tiny.fits', np.ones((8, 300), np.float32))
"#,
        &[d.path().to_str().unwrap()],
    );
    let predict = |input: &str| {
        segment(&[
            "predict",
            "-c",
            "pipelines/configs/segment.toml",
            "--input",
            input,
            "-o",
            &p("out"),
        ])
    };
    assert_fails(&predict(&p("cube.fits")), 2, &["cube.fits"]);
    assert_fails(&predict(&p("nan.fits")), 2, &["nan.fits", "NaN"]);
    assert_fails(
        &predict(&p("tiny.fits")),
        2,
        &["tiny.fits", "receptive field"],
    );
    assert!(!d.path().join("out/report.json").exists());
    // A truth mask of another size is named with both sizes.
    let (field, _) = simulate(d.path(), "g", 5);
    let o = segment(&[
        "predict",
        "-c",
        "pipelines/configs/segment.toml",
        "--input",
        field.to_str().unwrap(),
        "--truth",
        &p("tiny.fits"),
        "-o",
        &p("out2"),
    ]);
    assert_fails(&o, 2, &["tiny.fits", "MP_"]);
}

#[test]
fn a_short_training_run_gives_a_model_predict_can_use() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("train");
    ok(&segment(&[
        "train",
        "-c",
        "pipelines/configs/segment_train.toml",
        "--set",
        "data.fields=3",
        "--set",
        "data.crops_per_field=4",
        "--set",
        "model.widths=[4, 8]",
        "--set",
        "train.epochs=2",
        "--set",
        "calibrate.fields=1",
        "-o",
        out.to_str().unwrap(),
    ]));
    let r = json(&out.join("report.json"));
    assert_eq!(r["epochs_done"], 2);
    let t = r["thresholds"].as_array().unwrap();
    assert_eq!(t.len(), 5);
    assert!(t
        .iter()
        .all(|p| (0.0..=1.0).contains(&p["threshold"].as_f64().unwrap())));
    let (field, _) = simulate(d.path(), "h", 6);
    ok(&segment(&[
        "predict",
        "-c",
        "pipelines/configs/segment.toml",
        "--model",
        out.join("model").to_str().unwrap(),
        "--input",
        field.to_str().unwrap(),
        "-o",
        d.path().join("pred").to_str().unwrap(),
    ]));
    let m = json(&d.path().join("pred/report.json"));
    assert_eq!(m["summary"]["thresholds"][0]["source"], "model");
}

#[test]
fn submit_runs_segment_predict_as_a_job_array_with_a_merge() {
    let d = tempfile::tempdir().unwrap();
    let imgs = d.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for k in 0..3 {
        std::fs::copy(
            root().join("data/sky_field.fits"),
            imgs.join(format!("f{k}.fits")),
        )
        .unwrap();
    }
    let out = d.path().join("run");
    let glob = format!("{}/*.fits", imgs.display());
    let o = deepsky(&[
        "submit",
        "-n",
        "3",
        "-o",
        out.to_str().unwrap(),
        "--input",
        &glob,
        "--dry-run",
        "--",
        "segment",
        "predict",
        "-c",
        "pipelines/configs/segment.toml",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "#SBATCH --job-name=deepsky-segment\n",
        "#SBATCH --array=0-2\n",
        " segment predict -c pipelines/configs/segment.toml",
        "#SBATCH --job-name=deepsky-segment-merge\n",
        " segment merge ",
    ] {
        assert!(text.contains(needle), "`{needle}` in:\n{text}");
    }
    // --truth scores one image; it cannot be sharded.
    let o = deepsky(&[
        "submit",
        "-n",
        "2",
        "-o",
        out.to_str().unwrap(),
        "--input",
        &glob,
        "--dry-run",
        "--",
        "segment",
        "predict",
        "--truth",
        "x.fits",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
