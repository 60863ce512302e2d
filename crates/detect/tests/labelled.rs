//! A user's own labelled image: a simulated field written as any FITS image, its sources
//! written as user catalogues (CSV with pixel positions, a FITS table with RA/Dec), and the
//! truth objects made from them compared with the simulator's own.

use std::path::{Path, PathBuf};

use deepsky_detect::boxes::BBox;
use deepsky_detect::catalog::read_image;
use deepsky_detect::labelled::{
    labelled_truth, labelled_truth_from_files, read_user_catalog, CatalogColumns, UserSource,
};
use deepsky_detect::metrics::TruthObject;
use deepsky_io::fits::{FitsWriter, Header, TableMeta};
use deepsky_sim::sky::{simulate_sky, SkyConfig, SkyField, SourceClass};
use polars::prelude::*;

struct Field {
    sky: SkyField,
    image: PathBuf,
    truth: PathBuf,
    /// Stars and galaxies centred on the image: the rows a user's catalogue lists.
    rows: Vec<usize>,
    fwhm: f64,
}

fn field(dir: &Path) -> Field {
    let cfg = SkyConfig {
        width: 256,
        height: 256,
        seed: 2121,
        n_stars: 60,
        ..Default::default()
    };
    let sky = simulate_sky(&cfg, &()).unwrap();
    let image = dir.join("field.fits");
    let truth = deepsky_sim::files::sky(&image, &sky, &[]).unwrap();
    let c = &sky.catalog;
    let on = |v: f64| (0.5..256.5).contains(&v);
    let rows = (0..c.len())
        .filter(|&i| matches!(c.class[i], SourceClass::Star | SourceClass::Galaxy))
        .filter(|&i| on(c.x[i]) && on(c.y[i]))
        .collect();
    let fwhm = cfg.psf.fwhm() / cfg.pixel_scale;
    Field {
        sky,
        image,
        truth,
        rows,
        fwhm,
    }
}

fn classes() -> Vec<String> {
    vec!["star".into(), "galaxy".into()]
}

fn class_id(c: SourceClass) -> usize {
    (c == SourceClass::Galaxy) as usize
}

/// The simulator's truth for row `i`.
fn sim_truth(f: &Field, i: usize) -> (f32, f32, BBox, f64) {
    let c = &f.sky.catalog;
    let bbox = BBox::from_fits_pixels(
        c.bbox_xmin[i],
        c.bbox_ymin[i],
        c.bbox_xmax[i],
        c.bbox_ymax[i],
    );
    ((c.x[i] - 0.5) as f32, (c.y[i] - 0.5) as f32, bbox, c.snr[i])
}

/// The catalogue a user would have: FITS 1-based x, y and a class name, nothing else.
fn write_csv(f: &Field, dir: &Path) -> PathBuf {
    let c = &f.sky.catalog;
    let df = df!(
        "x" => f.rows.iter().map(|&i| c.x[i]).collect::<Vec<f64>>(),
        "y" => f.rows.iter().map(|&i| c.y[i]).collect::<Vec<f64>>(),
        "class" => f.rows.iter().map(|&i| c.class[i].name()).collect::<Vec<&str>>(),
    )
    .unwrap();
    deepsky_io::tabular::write_csv(dir.join("cat.csv"), &df).unwrap()
}

fn write_fits_table(path: &Path, df: &DataFrame) {
    let mut w = FitsWriter::create(path).unwrap();
    w.write_primary_header(&[]).unwrap();
    w.write_table("SOURCES", df, &TableMeta::new(), &[])
        .unwrap();
    w.finish().unwrap();
}

/// Spearman's rank correlation (no ties expected in continuous data).
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let rank = |v: &[f64]| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        for (k, &i) in idx.iter().enumerate() {
            r[i] = k as f64;
        }
        r
    };
    let (ra, rb) = (rank(a), rank(b));
    let n = a.len() as f64;
    let d2: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - y).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

#[test]
fn pixel_catalogue_gives_the_simulators_centres_classes_and_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let f = field(dir.path());
    let csv = write_csv(&f, dir.path());
    let (image, header, truth) = labelled_truth_from_files(
        &f.image,
        "",
        &csv,
        &CatalogColumns::default(),
        &classes(),
        Some(f.fwhm),
    )
    .unwrap();
    assert_eq!(image.dim(), (256, 256));
    assert!(header.get_f64("PSF_FWHM").is_some());
    assert_eq!(truth.len(), f.rows.len());
    let n_gal = f
        .rows
        .iter()
        .filter(|&&i| f.sky.catalog.class[i] == SourceClass::Galaxy)
        .count();
    assert!(n_gal > 50 && f.rows.len() - n_gal > 30, "{n_gal} galaxies");

    let mut galaxy_ratio = Vec::new();
    let (mut snr_truth, mut snr_ours) = (Vec::new(), Vec::new());
    for (t, &i) in truth.iter().zip(&f.rows) {
        let (x, y, bbox, snr) = sim_truth(&f, i);
        let class = f.sky.catalog.class[i];
        assert!((t.x - x).abs() < 0.01 && (t.y - y).abs() < 0.01, "row {i}");
        assert_eq!(t.class, class_id(class), "row {i}");
        assert!(!t.artefact && !t.match_box);
        if class == SourceClass::Star {
            // The same pixels as the simulator's box: half-size 1.5·FWHM.
            assert_eq!(t.bbox, bbox, "star row {i}");
            let clipped = bbox.x0 == 0.0 || bbox.y0 == 0.0 || bbox.x1 == 256.0 || bbox.y1 == 256.0;
            if !clipped {
                assert!((t.bbox.width() as f64 - 3.0 * f.fwhm).abs() <= 1.0);
            }
        } else if snr > 30.0 {
            galaxy_ratio.push((t.bbox.width() / bbox.width()) as f64);
        }
        if snr > 3.0 {
            snr_truth.push(snr);
            snr_ours.push(t.snr);
        }
    }
    // Galaxy sizes measured on the image (no size column): the simulator's boxes within a
    // factor 1.5 for the bright ones, unbiased to 20 % on the median.
    galaxy_ratio.sort_by(f64::total_cmp);
    let median = galaxy_ratio[galaxy_ratio.len() / 2];
    let within = galaxy_ratio
        .iter()
        .filter(|r| (1.0 / 1.5..=1.5).contains(*r))
        .count();
    eprintln!("bright galaxies: box ratios {galaxy_ratio:.2?}");
    assert!(
        galaxy_ratio.len() >= 15,
        "{} bright galaxies",
        galaxy_ratio.len()
    );
    assert!((0.8..1.25).contains(&median), "median box ratio {median}");
    assert!(
        within as f64 >= 0.85 * galaxy_ratio.len() as f64,
        "{within} of {} within a factor 1.5",
        galaxy_ratio.len()
    );
    // S/N measured on the image follows the simulator's optimal S/N: ranked alike, and for
    // S/N > 10 (where neighbours and noise matter less) within a factor 2, nearly unbiased.
    let rho = spearman(&snr_truth, &snr_ours);
    assert!(rho > 0.8, "Spearman {rho}");
    let mut ratios: Vec<f64> = snr_truth
        .iter()
        .zip(&snr_ours)
        .filter(|(t, _)| **t > 10.0)
        .map(|(t, o)| o / t)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let good = ratios.iter().filter(|r| (0.5..=2.0).contains(*r)).count();
    let median = ratios[ratios.len() / 2];
    eprintln!(
        "S/N: Spearman {rho:.3}, {good} of {} within a factor 2, median ratio {median:.2}",
        ratios.len()
    );
    assert!(ratios.len() > 100);
    assert!(
        good as f64 >= 0.9 * ratios.len() as f64,
        "{good} of {} S/N ratios within a factor 2",
        ratios.len()
    );
    assert!((0.7..1.2).contains(&median), "median S/N ratio {median}");

    // Without a FWHM, the header's PSF_FWHM gives the same truth.
    let (_, _, from_header) = labelled_truth_from_files(
        &f.image,
        "",
        &csv,
        &CatalogColumns::default(),
        &classes(),
        None,
    )
    .unwrap();
    let same = from_header
        .iter()
        .zip(&truth)
        .filter(|(a, b)| a.bbox == b.bbox)
        .count();
    assert!(same as f64 >= 0.98 * truth.len() as f64);
}

#[test]
fn size_column_reproduces_the_simulators_galaxy_boxes() {
    // The simulator's truth catalogue as a user catalogue: x, y, class and r_half by name.
    let dir = tempfile::tempdir().unwrap();
    let f = field(dir.path());
    let all: Vec<String> = SourceClass::ALL
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let (image, header) = read_image(&f.image, "").unwrap();
    let cols = CatalogColumns::default();
    let sources = read_user_catalog(&f.truth, &header, &cols, &all, "star").unwrap();
    assert_eq!(sources.len(), f.sky.catalog.len());
    let c = &f.sky.catalog;
    let picked: Vec<UserSource> = f.rows.iter().map(|&i| sources[i]).collect();
    assert!(picked
        .iter()
        .zip(&f.rows)
        .all(|(s, &i)| s.row == i && s.size.is_some() == (c.class[i] == SourceClass::Galaxy)));
    let truth = labelled_truth(image.view(), &picked, f.fwhm, &all, None).unwrap();
    for (t, &i) in truth.iter().zip(&f.rows) {
        assert_eq!(t.bbox, sim_truth(&f, i).2, "row {i} ({:?})", c.class[i]);
    }
}

#[test]
fn sky_catalogue_gives_the_same_positions_as_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let f = field(dir.path());
    let c = &f.sky.catalog;
    let (_, header) = read_image(&f.image, "").unwrap();
    // SExtractor-style names, the class as an index of the detector's classes.
    let df = df!(
        "ALPHA_J2000" => f.rows.iter().map(|&i| c.ra[i]).collect::<Vec<f64>>(),
        "DELTA_J2000" => f.rows.iter().map(|&i| c.dec[i]).collect::<Vec<f64>>(),
        "TYPE" => f.rows.iter().map(|&i| class_id(c.class[i]) as i64).collect::<Vec<i64>>(),
    )
    .unwrap();
    let sky_path = dir.path().join("radec.fits");
    write_fits_table(&sky_path, &df);
    let csv = write_csv(&f, dir.path());
    let cols = CatalogColumns::default();
    let by_pixel = read_user_catalog(&csv, &header, &cols, &classes(), "star").unwrap();
    let by_sky = read_user_catalog(&sky_path, &header, &cols, &classes(), "star").unwrap();
    assert_eq!(by_pixel.len(), f.rows.len());
    assert_eq!(by_sky.len(), by_pixel.len());
    for (a, b) in by_sky.iter().zip(&by_pixel) {
        assert!(
            (a.x - b.x).abs() < 0.01 && (a.y - b.y).abs() < 0.01,
            "row {}: ({}, {}) vs ({}, {})",
            a.row,
            a.x,
            a.y,
            b.x,
            b.y
        );
        assert_eq!((a.class, a.size), (b.class, None));
    }
    // The same columns named in the configuration, and the HDU by name.
    let named = CatalogColumns {
        ra: Some("alpha_j2000".into()),
        dec: Some("DELTA_J2000".into()),
        class: Some("TYPE".into()),
        hdu: "SOURCES".into(),
        ..Default::default()
    };
    let again = read_user_catalog(&sky_path, &header, &named, &classes(), "star").unwrap();
    assert_eq!(again, by_sky);

    // RA/Dec need the image's WCS.
    let no_wcs = Header::new(vec![]);
    let err = read_user_catalog(&sky_path, &no_wcs, &cols, &classes(), "star")
        .unwrap_err()
        .to_string();
    assert!(err.contains("radec.fits") && err.contains("WCS"), "{err}");
    assert!(err.contains("columns.x"), "{err}");
    // Pixel positions do not.
    assert_eq!(
        read_user_catalog(&csv, &no_wcs, &cols, &classes(), "star").unwrap(),
        by_pixel
    );
}

#[test]
fn rows_without_position_are_skipped_and_sources_off_the_image_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("few.csv");
    std::fs::write(
        &path,
        "# hand-made\nX_IMAGE,Y_IMAGE,Class\n10.5,20.25,Galaxy\n,5,star\n30,40,\n300,40,star\n",
    )
    .unwrap();
    let header = Header::new(vec![]);
    let names = classes();
    let s =
        read_user_catalog(&path, &header, &CatalogColumns::default(), &names, "galaxy").unwrap();
    let got: Vec<(usize, f64, f64, usize)> = s.iter().map(|s| (s.row, s.x, s.y, s.class)).collect();
    // Row 1 has no x; row 2 no class (the default); FITS 10.5 is continuous 10.0.
    assert_eq!(
        got,
        [(0, 10.0, 19.75, 1), (2, 29.5, 39.5, 1), (3, 299.5, 39.5, 0)]
    );
    let image = ndarray::Array2::<f32>::from_elem((64, 64), 100.0);
    let truth: Vec<TruthObject> = labelled_truth(image.view(), &s, 2.5, &names, None).unwrap();
    assert_eq!(
        truth.len(),
        2,
        "the source at x = 300 is off the 64×64 image"
    );
    // A flat image: no size to measure, the galaxies get the star box.
    assert_eq!(truth[0].bbox.width(), 8.0); // pixel centres within 3.75 of 10.5
}

#[test]
fn errors_name_the_file_and_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let header = Header::new(vec![]);
    let names = classes();
    let cols = CatalogColumns::default();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let err = |p: &Path, cols: &CatalogColumns| {
        read_user_catalog(p, &header, cols, &names, "star")
            .unwrap_err()
            .to_string()
    };

    let none = write("cat.csv", "a,b\n1,2\n");
    let e = err(&none, &cols);
    assert!(
        e.starts_with(&format!("{}: no x/y or RA/Dec columns", none.display())),
        "{e}"
    );
    assert!(e.contains("X_IMAGE") || e.contains("x_image"), "{e}");
    assert!(
        e.contains("columns.x/columns.y or columns.ra/columns.dec"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");

    let only_x = write("onlyx.csv", "XWIN_IMAGE,b\n1,2\n");
    let e = err(&only_x, &cols);
    assert!(
        e.contains("onlyx.csv") && e.contains("set columns.y"),
        "{e}"
    );

    let given = CatalogColumns {
        x: Some("xc".into()),
        ..Default::default()
    };
    let e = err(&none, &given);
    assert!(
        e.contains("cat.csv: no column `xc` (set as columns.x)"),
        "{e}"
    );

    let bad_class = write("bad.csv", "x,y,class\n1,2,quasar\n");
    let e = err(&bad_class, &cols);
    assert!(
        e.contains("bad.csv: row 1: class `quasar`")
            && e.contains("is not one of the classes (star, galaxy)"),
        "{e}"
    );
    let bad_id = write("badid.csv", "x,y,class\n1,2,2\n");
    let e = err(&bad_id, &cols);
    assert!(e.contains("badid.csv") && e.contains("not an index"), "{e}");

    let e = read_user_catalog(&none, &header, &cols, &names, "qso")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`qso`") && e.contains("columns.default_class"),
        "{e}"
    );
    let empty = CatalogColumns {
        y: Some(" ".into()),
        ..Default::default()
    };
    assert!(err(&none, &empty).contains("columns.y"));
}
