//! Renders every plot kind to PNG, SVG and PDF and checks the files as a reader would get
//! them: the PNG decodes and shows a picture, the SVG is well-formed XML with text and shapes,
//! the PDF has a page whose content is vector drawing (and raster images only where the plot
//! is an image).

use std::path::{Path, PathBuf};

use deepsky_plot::*;
use ndarray::Array2;

/// Small deterministic pseudo-random numbers, so the tests need no extra crate.
struct Lcg(u64);
impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Decodes a PNG: (width, height, RGB(A) bytes, bytes per pixel, pixels per metre).
fn decode_png(path: &Path) -> (u32, u32, Vec<u8>, usize, Option<u32>) {
    let dec = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bpp = info.color_type.samples();
    let ppm = reader.info().pixel_dims.map(|d| d.xppu);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf, bpp, ppm)
}

fn check_png(path: &Path, expect_size: Option<(u32, u32)>) {
    let (w, h, buf, bpp, ppm) = decode_png(path);
    if let Some(size) = expect_size {
        assert_eq!((w, h), size, "{}", path.display());
    }
    // 300 dpi recorded, so the file prints at the intended size.
    assert_eq!(ppm, Some((300.0f64 / 0.0254).round() as u32));
    let mut colours = std::collections::HashSet::new();
    let mut non_white = 0usize;
    for px in buf.chunks(bpp) {
        colours.insert((px[0], px[1], px[2]));
        if px[..3] != [255, 255, 255] {
            non_white += 1;
        }
    }
    let total = (w * h) as usize;
    assert!(
        colours.len() >= 16,
        "{}: only {} colours",
        path.display(),
        colours.len()
    );
    assert!(
        non_white * 100 > total,
        "{}: almost blank ({non_white} of {total} pixels drawn)",
        path.display()
    );
    assert!(
        non_white * 100 < total * 99,
        "{}: almost all one colour",
        path.display()
    );
}

fn check_svg(path: &Path, min_shapes: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc =
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let count = |name: &str| {
        doc.descendants()
            .filter(|n| n.tag_name().name() == name)
            .count()
    };
    assert!(count("text") >= 1, "{}: no text", path.display());
    assert!(
        count("polyline") + count("path") + count("rect") + count("circle") >= min_shapes,
        "{}: no shapes",
        path.display()
    );
    assert!(
        text.contains("DejaVu Sans"),
        "{}: font family not named",
        path.display()
    );
}

/// Raw and inflated contents of every stream in a PDF.
fn pdf_streams(pdf: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = find(&pdf[i..], b"stream\n") {
        let start = i + p + 7;
        let Some(len) = find(&pdf[start..], b"\nendstream") else {
            break;
        };
        let raw = &pdf[start..start + len];
        out.push(
            miniz_oxide::inflate::decompress_to_vec_zlib(raw).unwrap_or_else(|_| raw.to_vec()),
        );
        i = start + len + b"\nendstream".len();
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn check_pdf(path: &Path, images: usize) {
    let pdf = std::fs::read(path).unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "{}: not a PDF", path.display());
    assert!(
        find(&pdf, b"/Type /Page\n").is_some() || find(&pdf, b"/Type /Page ").is_some(),
        "{}: no page",
        path.display()
    );
    assert!(find(&pdf, b"%%EOF").is_some());
    // Vector content: path construction operators in the content streams (after inflating).
    let count_ops = |names: &[&str]| -> usize {
        pdf_streams(&pdf)
            .iter()
            .map(|s| {
                let t = String::from_utf8_lossy(s);
                t.split_ascii_whitespace()
                    .filter(|t| names.contains(t))
                    .count()
            })
            .sum()
    };
    let vector_ops = count_ops(&["m", "l", "re", "c"]);
    let min_ops = if images > 0 { 1 } else { 20 };
    assert!(
        vector_ops >= min_ops,
        "{}: only {vector_ops} path operators",
        path.display()
    );
    // Text is drawn as glyph outlines (Bézier curves), so the file needs no font at all.
    let curves = count_ops(&["c"]);
    assert!(
        curves >= 20,
        "{}: only {curves} curves, text missing?",
        path.display()
    );
    assert!(
        find(&pdf, b"/Font").is_none(),
        "{}: depends on a font",
        path.display()
    );
    let n_images = pdf.windows(15).filter(|w| w == b"/Subtype /Image").count();
    assert_eq!(n_images, images, "{}: raster images", path.display());
    if images > 0 {
        assert!(
            find(&pdf, b"/Interpolate false").is_some(),
            "{}: images would be smoothed",
            path.display()
        );
    }
}

/// Renders `$plot` to all three formats in a fresh folder and checks each file.
macro_rules! check_all {
    ($plot:expr, $name:expr, images = $images:expr) => {{
        let dir = tempfile::tempdir().unwrap();
        let written = save_all(&$plot, dir.path().join($name)).unwrap();
        let ext: Vec<&str> = written
            .iter()
            .map(|p| p.extension().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(ext, ["png", "svg", "pdf"]);
        check_png(&written[0], Some($plot.size(&Style::default())));
        check_svg(&written[1], if $images > 0 { 2 } else { 10 });
        check_pdf(&written[2], $images);
        // Atomic writes leave nothing else behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
        if std::env::var_os("DEEPSKY_PLOT_KEEP").is_some() {
            let keep = PathBuf::from(std::env::var_os("DEEPSKY_PLOT_KEEP").unwrap());
            std::fs::create_dir_all(&keep).unwrap();
            for p in &written {
                std::fs::copy(p, keep.join(p.file_name().unwrap())).unwrap();
            }
        }
    }};
}

fn hist() -> Hist1d {
    let mut r = Lcg(1);
    let a: Vec<f64> = (0..3000).map(|_| r.normal()).collect();
    let b: Vec<f64> = (0..300).map(|_| 0.1 + r.normal()).collect();
    Hist1d {
        title: "Test histogram".into(),
        x_label: "x".into(),
        edges: uniform_edges(-4.0, 4.0, 24),
        samples: vec![
            HistSample::weighted("sim", a, vec![0.1; 3000]).with_style(HistStyle::Filled),
            HistSample::values("data", b).with_style(HistStyle::Points),
        ],
        ratio_to: Some(0),
        ..Default::default()
    }
}

#[test]
fn hist1d_with_ratio_panel() {
    check_all!(hist(), "hist", images = 0);
}

#[test]
fn hist1d_log_density_without_ratio() {
    let mut h = hist();
    h.ratio_to = None;
    h.log_y = true;
    h.density = true;
    h.samples
        .push(HistSample::binned("binned", vec![5.0; 24], None));
    check_all!(h, "hist_log", images = 0);
}

#[test]
fn heatmap_log_colour() {
    let mut r = Lcg(2);
    let (x, y): (Vec<f64>, Vec<f64>) = (0..20000).map(|_| (r.normal(), r.normal())).unzip();
    let e = uniform_edges(-3.0, 3.0, 30);
    let hm = Heatmap {
        title: "2-D".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        data: Heatmap::histogram2d(&x, &y, None, &e, &e).unwrap(),
        x_edges: e.clone(),
        y_edges: e,
        log_color: true,
        color_label: "Events".into(),
        ..Default::default()
    };
    check_all!(hm, "heatmap", images = 0);
    // Linear colour scale on bin-index axes.
    let lin = Heatmap::new(Array2::from_shape_fn((12, 8), |(i, j)| (i * j) as f64));
    check_all!(lin, "heatmap_lin", images = 0);
}

#[test]
fn loss_curves() {
    let c = Curves {
        x_label: "Epoch".into(),
        y_label: "Loss".into(),
        series: vec![
            Series::epochs("train", (1..=30).map(|i| 1.0 / i as f64).collect()),
            Series::epochs("val", (1..=30).map(|i| 1.2 / i as f64 + 0.05).collect())
                .with_dash(Dash::Dashed)
                .with_markers(),
        ],
        log_y: true,
        ..Default::default()
    };
    check_all!(c, "curves", images = 0);
}

#[test]
fn roc_with_auc_in_legend() {
    let mut r = Lcg(3);
    let labels: Vec<bool> = (0..2000).map(|i| i % 3 == 0).collect();
    let scores: Vec<f64> = labels
        .iter()
        .map(|&l| if l { 1.5 } else { 0.0 } + r.normal())
        .collect();
    let curve = RocCurve::from_scores("net", &scores, &labels).unwrap();
    assert!(curve.auc > 0.8 && curve.auc < 0.9, "{}", curve.auc);
    let roc = Roc {
        curves: vec![curve.clone()],
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("roc.svg");
    roc.save(&svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains(&format!("net (AUC = {:.3})", curve.auc)),
        "AUC missing from the legend"
    );
    check_all!(roc, "roc", images = 0);
    let log = Roc {
        curves: vec![curve],
        log_x: true,
        ..Default::default()
    };
    check_all!(log, "roc_log", images = 0);
}

#[test]
fn scatter_by_category() {
    let mut r = Lcg(4);
    let n = 400;
    let s = Scatter {
        x_label: "a".into(),
        y_label: "b".into(),
        x: (0..n).map(|i| (i % 4) as f64 + 0.3 * r.normal()).collect(),
        y: (0..n).map(|_| r.normal()).collect(),
        category: (0..n).map(|i| i % 4).collect(),
        category_names: vec!["w".into(), "x".into(), "y".into(), "z".into()],
        ..Default::default()
    };
    check_all!(s, "scatter", images = 0);
}

fn sky_data() -> Array2<f32> {
    let mut r = Lcg(5);
    Array2::from_shape_fn((60, 80), |(row, col)| {
        let d2 = (col as f64 - 30.0).powi(2) + (row as f64 - 20.0).powi(2);
        let v = 100.0 + 3.0 * r.normal() + 500.0 * (-d2 / 8.0).exp();
        if row > 50 && col < 5 {
            f32::NAN
        } else {
            v as f32
        }
    })
}

#[test]
fn sky_image_asinh_with_overlays() {
    let img = SkyImage {
        title: "field".into(),
        interval: Interval::Percentile(99.5),
        stretch: Stretch::ASINH,
        color_label: "Counts".into(),
        overlays: vec![
            Overlay::rect(25.5, 15.5, 36.5, 26.5).with_label("source"),
            Overlay::circle(60.0, 40.0, 6.0).with_label("ring"),
            Overlay::text(10.0, 10.0, "note"),
        ],
        ..SkyImage::new(sky_data())
    };
    check_all!(img, "sky", images = 1);
}

#[test]
fn sky_image_zscale_bare() {
    let img = SkyImage {
        title: "bare".into(),
        colorbar: false,
        axes: false,
        colormap: Colormap::Magma,
        ..SkyImage::new(sky_data())
    };
    check_all!(img, "sky_bare", images = 1);
}

#[test]
fn gallery_of_stamps() {
    let stamps: Vec<Stamp> = (0..7)
        .map(|k| {
            let mut s = Stamp::new(
                Array2::from_shape_fn((16, 16), |(r, c)| {
                    ((r as f32 - 7.5).powi(2) + (c as f32 - 7.5).powi(2) + k as f32).sqrt()
                }),
                format!("stamp number {k} with a long title"),
            );
            s.overlays.push(Overlay::circle(8.5, 8.5, 3.0));
            s
        })
        .collect();
    let g = Gallery {
        title: "Stamps".into(),
        stamps,
        columns: 4,
        ..Default::default()
    };
    check_all!(g, "gallery", images = 7);
}

#[test]
fn format_follows_extension_and_config_list() {
    let dir = tempfile::tempdir().unwrap();
    let h = hist();
    for ext in ["png", "svg", "pdf"] {
        let p = dir.path().join(format!("h.{ext}"));
        save(&h, &p).unwrap();
        let head = std::fs::read(&p).unwrap()[..5].to_vec();
        let expect: &[u8] = match ext {
            "png" => b"\x89PNG\r",
            "svg" => b"<svg ",
            _ => b"%PDF-",
        };
        assert_eq!(head, expect, "{ext}");
    }
    let formats: Vec<Format> = ["pdf", "PNG"]
        .iter()
        .filter_map(|s| Format::parse(s))
        .collect();
    let written = save_formats(&h, dir.path().join("run.v2"), &formats).unwrap();
    assert_eq!(
        written,
        [dir.path().join("run.v2.pdf"), dir.path().join("run.v2.png")]
    );
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad_ext = dir.path().join("plot.jpg");
    let e = save(&hist(), &bad_ext).unwrap_err();
    assert!(matches!(e, Error::UnknownFormat { .. }));
    assert!(e.to_string().contains("plot.jpg"), "{e}");

    let mut h = hist();
    h.samples
        .push(HistSample::binned("short", vec![1.0, 2.0], None));
    let p = dir.path().join("bad.pdf");
    let e = save(&h, &p).unwrap_err();
    assert!(
        e.to_string().contains("bad.pdf") && e.to_string().contains("'short'"),
        "{e}"
    );
    assert!(!p.exists());

    let e = save(&hist(), dir.path().join("missing/sub/h.png")).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("missing/sub/h.png"),
        "{e}"
    );
}

#[test]
fn degenerate_inputs_still_draw() {
    let dir = tempfile::tempdir().unwrap();
    // No samples: empty axes.
    let h = Hist1d {
        edges: uniform_edges(0.0, 1.0, 4),
        ..Default::default()
    };
    save(&h, dir.path().join("empty.png")).unwrap();
    // An image that is all NaN, and one that is constant.
    save(
        &SkyImage::new(Array2::from_elem((8, 8), f32::NAN)),
        dir.path().join("nan.pdf"),
    )
    .unwrap();
    save(
        &SkyImage::new(Array2::from_elem((8, 8), 3.0)),
        dir.path().join("flat.svg"),
    )
    .unwrap();
    // A single point.
    let c = Curves {
        series: vec![Series::new("one", vec![1.0], vec![2.0])],
        ..Default::default()
    };
    save(&c, dir.path().join("one.png")).unwrap();
    // Nothing to draw at all is an error, not a blank file.
    assert!(save(&Curves::default(), dir.path().join("none.png")).is_err());
}

#[test]
fn in_memory_rendering() {
    let style = Style::default();
    let png = render_png(&hist(), &style).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let svg = render_svg(&hist(), &style).unwrap();
    assert!(svg.starts_with("<svg"));
    let pdf = render_pdf(&hist(), &style).unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    // A full-width figure: twice the width in the same style.
    let wide = Style {
        width: 2100,
        ..Style::default()
    };
    let png = render_png(&hist(), &wide).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wide.png");
    std::fs::write(&p, png).unwrap();
    check_png(&p, Some((2100, 750)));
}
