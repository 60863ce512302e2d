//! `deepsky detect` end to end: the bundled detector on the bundled field (against its truth
//! and beside the classical baseline), the catalogue's conventions (FITS pixels, WCS, DS9
//! regions) checked with astropy and fitsverify, tiling at the seams, a short training run
//! through the shared loop, and clear errors.

#[path = "support/mod.rs"]
mod support;

use support::*;

fn predict(out: &std::path::Path, extra: &[&str]) {
    let o = out.to_str().unwrap();
    let mut args = vec![
        "detect",
        "predict",
        "-c",
        "pipelines/configs/detect.toml",
        "--input",
        "data/sky_field.fits",
        "-o",
        o,
    ];
    args.extend_from_slice(extra);
    ok(&deepsky(&args));
}

#[test]
fn bundled_detector_finds_the_bundled_field_and_beats_the_baseline_at_low_snr() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    predict(&out, &["--truth", "data/sky_field_truth.fits"]);
    let r = json(&out.join("report.json"));
    let (c, p) = (
        r["completeness"].as_f64().unwrap(),
        r["purity"].as_f64().unwrap(),
    );
    assert!(c > 0.7 && p > 0.8, "completeness {c}, purity {p}");
    assert!(r["map50"].as_f64().unwrap() > 0.2, "{}", r["map50"]);
    assert!(r["f1"].as_f64().unwrap() > 0.75);
    // The baseline is evaluated the same way in the same run.
    let b = &r["baseline"];
    assert!(b["completeness"].as_f64().unwrap() > 0.3);
    let (c310, b310) = (
        r["completeness_snr_3_10"].as_f64().unwrap(),
        b["completeness_snr_3_10"].as_f64().unwrap(),
    );
    eprintln!("S/N 3-10 completeness: detector {c310:.3}, baseline {b310:.3}");
    assert!(
        c310 >= b310,
        "detector {c310} < baseline {b310} at S/N 3-10"
    );
    let bins = r["snr_bins"].as_array().unwrap();
    assert_eq!(bins.len(), 6);
    for k in ["star", "galaxy"] {
        assert!(r["per_class"][k]["ap50"].as_f64().is_some(), "{k}");
    }
    for plot in [
        "plots/overlay.png",
        "plots/completeness_vs_snr.png",
        "plots/purity_vs_snr.png",
    ] {
        assert!(out.join(plot).metadata().unwrap().len() > 5000, "{plot}");
    }

    // The catalogue: FITS pixel convention and WCS, read by astropy, fitsverify clean.
    fitsverify_ok(&out.join("catalog.fits"));
    let py = run_python(
        r#"
import sys, numpy as np
from astropy.io import fits
from astropy.wcs import WCS
cat = fits.getdata(sys.argv[1], 'CATALOG')
truth = fits.getdata(sys.argv[2], 'CATALOG')
w = WCS(fits.getheader(sys.argv[3]))
m = cat['truth_id'] > 0
t = truth[cat['truth_id'][m] - 1]
src = np.isin(np.char.strip(t['class'].astype(str)), ['star', 'galaxy'])
dx = (cat['x'][m] - t['x'])[src]
dy = (cat['y'][m] - t['y'])[src]
ra, dec = w.all_pix2world(cat['x'], cat['y'], 1)
print(len(cat), m.sum(), np.median(np.abs(dx)), np.median(np.abs(dy)),
      np.max(np.abs(ra - cat['ra'])) * 3600, np.max(np.abs(dec - cat['dec'])) * 3600,
      np.sum(cat['flux_aper'] > 0) / len(cat))
"#,
        &[
            out.join("catalog.fits").to_str().unwrap(),
            root().join("data/sky_field_truth.fits").to_str().unwrap(),
            root().join("data/sky_field.fits").to_str().unwrap(),
        ],
    );
    let v: Vec<f64> = py.split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert_eq!(v[0] as u64, r["n_detections"].as_u64().unwrap());
    // Positions agree with the truth in the same 1-based convention: a half-pixel error
    // would show as a median offset near 0.5.
    assert!(
        v[2] < 0.25 && v[3] < 0.25,
        "median |dx| {} |dy| {}",
        v[2],
        v[3]
    );
    // ra/dec are astropy's for the same 1-based pixel (to 1 mas).
    assert!(
        v[4] < 1e-3 && v[5] < 1e-3,
        "WCS differs from astropy by {} {} arcsec",
        v[4],
        v[5]
    );
    assert!(v[6] > 0.9, "positive aperture fluxes: {}", v[6]);

    // DS9 regions: one box per detection, in image coordinates.
    let reg = std::fs::read_to_string(out.join("detections.reg")).unwrap();
    assert!(reg.starts_with("# Region file format: DS9 version 4.1"));
    assert_eq!(
        reg.lines().filter(|l| l.starts_with("box(")).count() as f64,
        v[0]
    );

    // `detect evaluate` on our own catalogue gives predict's numbers.
    let e = d.path().join("eval");
    ok(&deepsky(&[
        "detect",
        "evaluate",
        "--catalog",
        out.join("catalog.fits").to_str().unwrap(),
        "--truth",
        "data/sky_field_truth.fits",
        "-o",
        e.to_str().unwrap(),
    ]));
    let re = json(&e.join("report.json"));
    for k in ["completeness", "purity", "f1", "completeness_snr_3_10"] {
        assert_eq!(re[k], r[k], "{k}");
    }
}

#[test]
fn small_tiles_give_the_same_catalogue_as_one_tile() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("whole"), d.path().join("tiled"));
    predict(&a, &[]);
    // 96-pixel tiles with at least 32 pixels of overlap: 4 × 4 tiles (starts 0, 64, 128, 160),
    // with seams through the field.
    predict(
        &b,
        &["--set", "predict.tile=96", "--set", "predict.overlap=32"],
    );
    let (ra, rb) = (json(&a.join("report.json")), json(&b.join("report.json")));
    assert_eq!(ra["tiles"], 1);
    assert_eq!(rb["tiles"], 16);
    let py = run_python(
        r#"
import sys, numpy as np
from astropy.io import fits
a = fits.getdata(sys.argv[1], 'CATALOG'); b = fits.getdata(sys.argv[2], 'CATALOG')
d = np.hypot(a['x'][:, None] - b['x'][None, :], a['y'][:, None] - b['y'][None, :])
print(len(a), len(b), np.sum(d.min(axis=1) < 1.0), np.sum(d.min(axis=0) < 1.0))
"#,
        &[
            a.join("catalog.fits").to_str().unwrap(),
            b.join("catalog.fits").to_str().unwrap(),
        ],
    );
    let v: Vec<f64> = py.split_whitespace().map(|s| s.parse().unwrap()).collect();
    // Tiles see less context at their edges, so a few marginal detections may differ; no
    // source is lost or doubled at the seams.
    assert!((v[0] - v[1]).abs() <= 0.05 * v[0], "{v:?}");
    assert!(v[2] >= 0.95 * v[0] && v[3] >= 0.95 * v[1], "{v:?}");
}

#[test]
fn training_runs_through_the_shared_loop_and_its_model_predicts() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("train");
    let o = out.to_str().unwrap();
    let train = |o: &str, extra: &[&str]| {
        let mut args = vec![
            "detect",
            "train",
            "-c",
            "pipelines/configs/detect_train.toml",
            "--set",
            "data.fields=2",
            "--set",
            "data.crops_per_field=8",
            "--set",
            "data.crop=64",
            "--set",
            "data.sky.width=128",
            "--set",
            "data.sky.height=128",
            "--set",
            "train.batch_size=4",
            "--set",
            "train.lr=0.005",
            "--set",
            "train.val_fraction=0",
            "-o",
            o,
        ];
        args.extend_from_slice(extra);
        deepsky(&args)
    };
    ok(&train(o, &["--set", "train.epochs=8"]));
    let r = json(&out.join("report.json"));
    let (first, last) = (
        r["first_train_loss"].as_f64().unwrap(),
        r["final_train_loss"].as_f64().unwrap(),
    );
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    assert_eq!(r["epochs_run"], 8);
    assert!(r["validation_field"]["evaluation"]["snr_bins"].is_array());
    let card = json(&out.join("model/model.json"));
    assert_eq!(card["kind"], "deepsky-detect");
    assert!(out.join("checkpoints/latest.json").exists());
    // Resuming a finished run does no more epochs and gives the same model.
    let before = std::fs::read(out.join("model/model.safetensors")).unwrap();
    ok(&train(o, &["--set", "train.epochs=8", "--resume"]));
    assert_eq!(
        std::fs::read(out.join("model/model.safetensors")).unwrap(),
        before
    );
    // Same config and seed, another directory: the same weights.
    let again = d.path().join("again");
    ok(&train(
        again.to_str().unwrap(),
        &["--set", "train.epochs=8"],
    ));
    assert_eq!(
        std::fs::read(again.join("model/model.safetensors")).unwrap(),
        before,
        "same seed, same model"
    );
    // The trained model predicts through the same path as the bundled one.
    let p = d.path().join("pred");
    ok(&deepsky(&[
        "detect",
        "predict",
        "--input",
        "data/sky_field.fits",
        "--model",
        out.join("model").to_str().unwrap(),
        "-o",
        p.to_str().unwrap(),
    ]));
    assert!(p.join("catalog.fits").exists());
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let o = d.path().join("x");
    let o = o.to_str().unwrap();
    let f = deepsky(&[
        "detect",
        "predict",
        "--input",
        "data/sky_field.fits",
        "--model",
        "/nonexistent/model",
        "-o",
        o,
    ]);
    assert_fails(&f, 2, &["/nonexistent/model", "model.json"]);
    let f = deepsky(&["detect", "predict", "--input", "data/cutouts.h5", "-o", o]);
    assert_fails(&f, 2, &["data/cutouts.h5"]);
    let f = deepsky(&["detect", "predict", "--input", "data/events.fits", "-o", o]);
    assert_fails(&f, 2, &["data/events.fits"]);
    let f = deepsky(&[
        "detect",
        "predict",
        "--input",
        "data/sky_field.fits",
        "--set",
        "predict.tile=100",
        "-o",
        o,
    ]);
    assert_fails(&f, 2, &["predict.tile", "multiple of 16"]);
    let f = deepsky(&[
        "detect",
        "predict",
        "--input",
        "data/sky_field.fits",
        "--truth",
        "data/events.fits",
        "-o",
        o,
    ]);
    assert_fails(&f, 2, &["data/events.fits"]);
}

/// Images too small to search are refused by name; small ones that can be searched are
/// (padded to the network's stride) and give a catalogue. With resampling on, the PSF must be
/// known: with no stars to measure it from, the error names the setting.
#[test]
fn tiny_images_are_refused_clearly_and_small_ones_searched() {
    let d = tempfile::tempdir().unwrap();
    let make = |name: &str, shape: &str| {
        let p = d.path().join(name);
        run_python(
            &format!(
                "import sys, numpy as np; from astropy.io import fits; \
                 fits.PrimaryHDU(np.random.default_rng(1).normal(100, 5, {shape}).astype('f4')).writeto(sys.argv[1])"
            ),
            &[p.to_str().unwrap()],
        );
        p
    };
    let o = d.path().join("out");
    let o = o.to_str().unwrap();
    let one = make("one.fits", "(1, 1)");
    let f = deepsky(&[
        "detect",
        "predict",
        "--input",
        one.to_str().unwrap(),
        "-o",
        o,
    ]);
    assert_fails(&f, 2, &["one.fits", "at least 2 × 2"]);
    let empty = d.path().join("empty.fits");
    run_python(
        "import sys, numpy as np; from astropy.io import fits; fits.PrimaryHDU().writeto(sys.argv[1])",
        &[empty.to_str().unwrap()],
    );
    let f = deepsky(&[
        "detect",
        "predict",
        "--input",
        empty.to_str().unwrap(),
        "-o",
        o,
    ]);
    assert_fails(&f, 2, &["empty.fits", "no image"]);
    let small = make("small.fits", "(9, 12)");
    // Noise only: no stars to measure the PSF from, and no PSF keyword.
    let f = deepsky(&[
        "detect",
        "predict",
        "--input",
        small.to_str().unwrap(),
        "--set",
        "predict.psf_tolerance=1.2",
        "-o",
        o,
    ]);
    assert_eq!(f.status.code(), Some(2), "{}", stderr(&f));
    // One error line (after the warning that the image has no WCS).
    let err = stderr(&f);
    let errors: Vec<&str> = err.lines().filter(|l| !l.contains("WARN")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("small.fits") && errors[0].contains("predict.psf_fwhm_pixels"),
        "{err}"
    );
    ok(&deepsky(&[
        "detect",
        "predict",
        "-q",
        "--input",
        small.to_str().unwrap(),
        "--set",
        "predict.psf_tolerance=1.2",
        "--set",
        "predict.psf_fwhm_pixels=2.5",
        "-o",
        o,
    ]));
    // The point-source test needs the PSF too: without it and without resampling, the same
    // one-line error; with the test off the noise image is searched as it is.
    let f = deepsky(&[
        "detect",
        "predict",
        "--input",
        small.to_str().unwrap(),
        "-o",
        o,
    ]);
    assert_eq!(f.status.code(), Some(2), "{}", stderr(&f));
    assert!(
        stderr(&f).contains("predict.psf_fwhm_pixels"),
        "{}",
        stderr(&f)
    );
    ok(&deepsky(&[
        "detect",
        "predict",
        "-q",
        "--input",
        small.to_str().unwrap(),
        "--set",
        "star_galaxy.enabled=false",
        "-o",
        o,
    ]));
    let cat = d.path().join("out/catalog.fits");
    let rows = run_python(
        "import sys; from astropy.io import fits; print(len(fits.getdata(sys.argv[1], 1)))",
        &[cat.to_str().unwrap()],
    );
    assert!(rows.trim().parse::<usize>().is_ok(), "{rows}");
}

/// Many images in one run (folder, glob or list, processed in sorted order), the same run in
/// shards, and `detect merge` giving exactly the single run's files; clear errors for the
/// ways a merge or a multi-image run can go wrong.
#[test]
fn shards_of_a_multi_image_run_merge_into_the_single_run() {
    let d = tempfile::tempdir().unwrap();
    let fields = d.path().join("fields");
    std::fs::create_dir_all(&fields).unwrap();
    // Small fields (160²) from the bundled simulator settings.
    let sky = std::fs::read_to_string(root().join("pipelines/configs/sky.toml"))
        .unwrap()
        .replace("width = 256", "width = 160")
        .replace("height = 256", "height = 160");
    assert!(sky.contains("width = 160"));
    let sky_toml = d.path().join("sky.toml");
    std::fs::write(&sky_toml, sky).unwrap();
    for seed in [21, 22, 23] {
        ok(&deepsky(&[
            "-q",
            "simulate",
            "sky",
            "-c",
            sky_toml.to_str().unwrap(),
            "--seed",
            &seed.to_string(),
            "-o",
            fields.join(format!("f{seed}.fits")).to_str().unwrap(),
        ]));
    }
    let run = |out: &str, input: &[String], extra: &[&str]| {
        let o = d.path().join(out);
        let mut args: Vec<String> = [
            "detect",
            "predict",
            "-c",
            "pipelines/configs/detect.toml",
            "-o",
            o.to_str().unwrap(),
            "--input",
        ]
        .map(String::from)
        .to_vec();
        args.extend_from_slice(input);
        args.extend(extra.iter().map(|s| s.to_string()));
        deepsky(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let f = |s: u32| fields.join(format!("f{s}.fits")).display().to_string();
    // A glob (the truth catalogues beside the images do not match it).
    let glob = fields.join("f2?.fits").display().to_string();
    ok(&run("single", &[glob.clone()], &[]));
    // The same images named one by one in another order, and in a list file.
    ok(&run("named", &[f(23), f(21), f(22)], &[]));
    let list = d.path().join("list.txt");
    std::fs::write(
        &list,
        format!("# fields\n{}\n\n{}\n{}\n", f(22), f(23), f(21)),
    )
    .unwrap();
    ok(&run("listed", &[format!("@{}", list.display())], &[]));
    let single = d.path().join("single");
    for other in ["named", "listed"] {
        assert_eq!(
            std::fs::read(single.join("catalog.csv")).unwrap(),
            std::fs::read(d.path().join(other).join("catalog.csv")).unwrap(),
            "{other}"
        );
    }
    let r = json(&single.join("report.json"));
    assert_eq!(r["n_images"], 3);
    let per_image: u64 = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["n_detections"].as_u64().unwrap())
        .sum();
    assert_eq!(r["n_detections"].as_u64().unwrap(), per_image);
    assert!(per_image > 30, "{per_image}");
    for s in [21, 22, 23] {
        assert!(single.join(format!("images/f{s}/detections.reg")).exists());
        assert!(single.join(format!("images/f{s}/overlay.png")).exists());
    }

    // Two shards (images 1 | 2 and 3), merged in either order: the single run's catalogue.
    for k in 0..2 {
        ok(&run(
            &format!("s{k}"),
            &[glob.clone()],
            &["--shard", &format!("{k}/2")],
        ));
    }
    assert_eq!(json(&d.path().join("s0/report.json"))["n_images"], 1);
    assert_eq!(json(&d.path().join("s1/report.json"))["n_images"], 2);
    let (s0, s1, merged) = (
        d.path().join("s0"),
        d.path().join("s1"),
        d.path().join("merged"),
    );
    ok(&deepsky(&[
        "detect",
        "merge",
        s1.to_str().unwrap(),
        s0.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]));
    fitsverify_ok(&merged.join("catalog.fits"));
    assert_eq!(
        std::fs::read(merged.join("catalog.csv")).unwrap(),
        std::fs::read(single.join("catalog.csv")).unwrap()
    );
    let py = run_python(
        r#"
import sys, numpy as np
from astropy.io import fits
a = fits.getdata(sys.argv[1], 'CATALOG'); b = fits.getdata(sys.argv[2], 'CATALOG')
same = all(np.array_equal(a[c], b[c], equal_nan=True) if a[c].dtype.kind == 'f'
           else list(map(str.strip, a[c].astype(str))) == list(map(str.strip, b[c].astype(str)))
           for c in b.columns.names)
print(len(a), int(same), int(list(a['id']) == list(range(1, len(a) + 1))))
"#,
        &[
            merged.join("catalog.fits").to_str().unwrap(),
            single.join("catalog.fits").to_str().unwrap(),
        ],
    );
    assert_eq!(
        py.split_whitespace().collect::<Vec<_>>(),
        [per_image.to_string().as_str(), "1", "1"]
    );
    let rm = json(&merged.join("report.json"));
    assert_eq!(rm["images"].as_array().unwrap().len(), 3);
    assert_eq!(rm["per_class_counts"], r["per_class_counts"]);
    let prov = json(&merged.join("provenance.json"));
    assert_eq!(prov["shards"].as_array().unwrap().len(), 2);

    // Errors: one line, naming the problem.
    let o = deepsky(&[
        "detect",
        "merge",
        s0.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert_fails(&o, 2, &["shards 1/2 missing"]);
    let o = deepsky(&[
        "detect",
        "merge",
        single.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert_fails(&o, 2, &["no `shard`"]);
    let o = run(
        "bad",
        &[glob.clone()],
        &["--truth", "data/sky_field_truth.fits"],
    );
    assert_fails(&o, 2, &["--truth evaluates one image"]);
    let o = run(
        "bad",
        &[fields.join("nope*.fits").display().to_string()],
        &[],
    );
    assert_fails(&o, 2, &["no file matches"]);
    let o = run(
        "bad",
        &[format!("@{}", d.path().join("none.txt").display())],
        &[],
    );
    assert_fails(&o, 2, &["none.txt", "cannot read input list"]);
    // The folder holds the truth catalogues and masks too (`simulate sky` writes both beside
    // each field): not fields; the first in sorted order is named in the error.
    let o = run("bad", &[fields.display().to_string()], &["-q"]);
    assert_fails(&o, 2, &["f21_masks.fits"]);
}

/// The boxes (1-based inclusive pixels `[xmin, ymin, xmax, ymax]`) of the truth rows of
/// `class` in a `simulate sky` truth catalogue.
fn truth_boxes(truth: &std::path::Path, class: &str) -> Vec<[i64; 4]> {
    let df = deepsky_detect::catalog::read_table(truth, "CATALOG").unwrap();
    let names: Vec<String> = df
        .column("class")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|n| n.unwrap_or("").trim().to_string())
        .collect();
    let col = |c: &str| deepsky_detect::catalog::column_f64(truth, &df, &[c]).unwrap();
    let (x0, y0, x1, y1) = (
        col("bbox_xmin"),
        col("bbox_ymin"),
        col("bbox_xmax"),
        col("bbox_ymax"),
    );
    (0..names.len())
        .filter(|&i| names[i] == class && x0[i] <= x1[i] && y0[i] <= y1[i])
        .map(|i| [x0[i], y0[i], x1[i], y1[i]].map(|v| v as i64))
        .collect()
}

/// Write a `MASK` HDU of `(h, w)` pixels with `bit` set inside `boxes`.
fn write_box_mask(path: &std::path::Path, (h, w): (usize, usize), boxes: &[[i64; 4]], bit: u32) {
    let mut bits = ndarray::Array2::<u32>::zeros((h, w));
    for &[x0, y0, x1, y1] in boxes {
        for r in (y0 - 1).max(0)..y1.min(h as i64) {
            for c in (x0 - 1).max(0)..x1.min(w as i64) {
                bits[[r as usize, c as usize]] |= bit;
            }
        }
    }
    let mut f = deepsky_io::fits::FitsWriter::create(path).unwrap();
    deepsky_io::mask::write_mask_hdu(&mut f, "MASK", &bits, &[]).unwrap();
    f.finish().unwrap();
}

/// The centres of a catalogue's detection boxes, as 1-based pixel indices (the pixel
/// `predict` tests for missing data), with each row's class.
fn box_centre_pixels(catalog: &std::path::Path) -> Vec<(i64, i64, String)> {
    let df = deepsky_detect::catalog::read_table(catalog, "CATALOG").unwrap();
    let col = |c: &str| deepsky_detect::catalog::column_f64(catalog, &df, &[c]).unwrap();
    let (x0, y0, x1, y1) = (
        col("box_xmin"),
        col("box_ymin"),
        col("box_xmax"),
        col("box_ymax"),
    );
    let class = df.column("class").unwrap().str().unwrap().clone();
    // FITS continuous c lies in the 1-based pixel floor(c - 0.5) + 1.
    let pixel = |c: f64| (c - 0.5).floor() as i64 + 1;
    (0..x0.len())
        .map(|i| {
            (
                pixel((x0[i] + x1[i]) / 2.0),
                pixel((y0[i] + y1[i]) / 2.0),
                class.get(i).unwrap_or("").trim().to_string(),
            )
        })
        .collect()
}

/// `detect predict --mask`: cosmic rays under COSMIC_RAY bits (from the simulator's truth
/// boxes) are no longer reported, stars and galaxies are found as before, the catalogue says
/// which apertures lost pixels and report.json and provenance.json name the mask; a mask of
/// the wrong shape, one without MP_ cards, an unknown plane and a multi-image run are
/// one-line input errors.
#[test]
fn masked_cosmic_rays_are_not_reported_and_sources_still_found() {
    let d = tempfile::tempdir().unwrap();
    let field = d.path().join("crs.fits");
    let truth = d.path().join("crs_truth.fits");
    ok(&deepsky(&[
        "-q",
        "simulate",
        "sky",
        "-c",
        "pipelines/configs/sky.toml",
        "--seed",
        "31",
        "--set",
        "artefacts.cosmic_rays=40",
        "-o",
        field.to_str().unwrap(),
    ]));
    let crs = truth_boxes(&truth, "cosmic_ray");
    assert_eq!(crs.len(), 40);
    let mask = d.path().join("mask.fits");
    write_box_mask(&mask, (256, 256), &crs, 1 << 0);
    let run = |out: &str, extra: &[&str]| {
        let o = d.path().join(out);
        let mut args = vec![
            "detect",
            "predict",
            "-q",
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
        (deepsky(&args), o)
    };
    let (plain_run, plain) = run("plain", &[]);
    ok(&plain_run);
    let (masked_run, masked) = run("masked", &["--mask", mask.to_str().unwrap()]);
    ok(&masked_run);

    let on_a_cr = |(x, y, _): &(i64, i64, String)| {
        crs.iter()
            .any(|&[x0, y0, x1, y1]| (x0..=x1).contains(x) && (y0..=y1).contains(y))
    };
    let before = box_centre_pixels(&plain.join("catalog.fits"));
    let after = box_centre_pixels(&masked.join("catalog.fits"));
    let hits_before = before.iter().filter(|d| on_a_cr(d)).count();
    let hits_after = after.iter().filter(|d| on_a_cr(d)).count();
    let cr_class = |v: &[(i64, i64, String)]| v.iter().filter(|d| d.2 == "cosmic_ray").count();
    eprintln!(
        "detections on cosmic rays: {hits_before} without the mask, {hits_after} with it; \
         cosmic_ray class {} -> {}",
        cr_class(&before),
        cr_class(&after)
    );
    assert!(
        hits_before > 0,
        "no detection on a cosmic ray without the mask"
    );
    assert_eq!(hits_after, 0);
    assert!(cr_class(&after) < cr_class(&before));

    // Stars and galaxies: found as before, within a few objects.
    let (rp, rm) = (
        json(&plain.join("report.json")),
        json(&masked.join("report.json")),
    );
    for class in ["star", "galaxy"] {
        let c = |r: &serde_json::Value| r["per_class"][class]["completeness"].as_f64().unwrap();
        let n = rp["per_class"][class]["n_truth"].as_f64().unwrap();
        eprintln!("{class}: completeness {:.3} -> {:.3}", c(&rp), c(&rm));
        assert!(
            c(&rm) >= c(&rp) - 2.0 / n - 0.02,
            "{class}: completeness {} without the mask, {} with it",
            c(&rp),
            c(&rm)
        );
    }

    // The record of the mask, and the column only the masked run has.
    let record = &rm["images"][0]["mask"];
    assert_eq!(record["path"], mask.display().to_string());
    assert_eq!(record["planes"].as_array().unwrap().len(), 4);
    let area: i64 = crs
        .iter()
        .map(|[x0, y0, x1, y1]| (x1 - x0 + 1) * (y1 - y0 + 1))
        .sum();
    let hidden = record["masked_pixels"].as_i64().unwrap();
    assert!(hidden > 0 && hidden <= area, "{hidden} of {area}");
    assert!(rp["images"][0].get("mask").is_none());
    let prov = std::fs::read_to_string(masked.join("provenance.json")).unwrap();
    assert!(prov.contains("mask.fits"), "mask not in provenance");
    let plain_csv = std::fs::read_to_string(plain.join("catalog.csv")).unwrap();
    let masked_csv = std::fs::read_to_string(masked.join("catalog.csv")).unwrap();
    assert!(!plain_csv.lines().next().unwrap().contains("aper_masked"));
    assert!(masked_csv.lines().next().unwrap().ends_with("aper_masked"));

    // Bad masks: one line, exit 2, naming the files.
    let o = d.path().join("bad");
    let bad = |extra: &[&str]| {
        let mut args = vec![
            "detect",
            "predict",
            "--input",
            field.to_str().unwrap(),
            "-o",
            o.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        deepsky(&args)
    };
    let small = d.path().join("small_mask.fits");
    write_box_mask(&small, (128, 256), &crs, 1);
    let f = bad(&["--mask", small.to_str().unwrap()]);
    assert_fails(
        &f,
        2,
        &["small_mask.fits", "crs.fits", "256×128", "256×256"],
    );
    let f = bad(&["--mask", field.to_str().unwrap()]);
    assert_fails(&f, 2, &["crs.fits", "MP_"]);
    let f = bad(&[
        "--mask",
        mask.to_str().unwrap(),
        "--set",
        "input.mask_planes=[\"COSMIC\"]",
    ]);
    assert_fails(&f, 2, &["input.mask_planes", "COSMIC_RAY"]);
    let f = deepsky(&[
        "detect",
        "predict",
        "--input",
        field.to_str().unwrap(),
        "data/sky_field.fits",
        "--mask",
        mask.to_str().unwrap(),
        "-o",
        o.to_str().unwrap(),
    ]);
    assert_fails(&f, 2, &["mask.fits", "single --input"]);
}
