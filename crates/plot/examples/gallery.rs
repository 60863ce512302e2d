//! Renders one figure of each kind, to look at the house style.
//!
//! `cargo run -p deepsky-plot --example gallery [OUTPUT_DIR] [FORMATS]`
//!
//! OUTPUT_DIR defaults to `crates/plot/examples/gallery`, FORMATS (a comma-separated list, as
//! a pipeline configuration would give it) to `png`; `png,svg,pdf` writes all three.

use deepsky_plot::*;

/// A small deterministic generator, so the pictures are the same on every run.
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

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gallery").into());
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        path: dir.clone().into(),
        source: e,
    })?;
    let formats: Vec<Format> = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "png".into())
        .split(',')
        .map(|f| Format::parse(f).unwrap_or_else(|| panic!("unknown format {f:?}")))
        .collect();
    let mut rng = Lcg(42);
    let out = |name: &str| format!("{dir}/{name}");

    // 1-D histogram with ratio panel.
    let sim: Vec<f64> = (0..20000).map(|_| 3.0 + 1.2 * rng.normal()).collect();
    let data: Vec<f64> = (0..2000).map(|_| 3.1 + 1.25 * rng.normal()).collect();
    let alt: Vec<f64> = (0..20000).map(|_| 2.9 + 1.1 * rng.normal()).collect();
    let w = vec![0.1; 20000];
    let h = Hist1d {
        title: "Reconstructed energy".into(),
        x_label: "E [GeV]".into(),
        edges: uniform_edges(0.0, 7.0, 35),
        samples: vec![
            HistSample::weighted("Simulation", sim, w.clone()).with_style(HistStyle::Filled),
            HistSample::weighted("Alt. model", alt, w),
            HistSample::values("Data", data)
                .with_style(HistStyle::Points)
                .with_color(Rgb::BLACK),
        ],
        ratio_to: Some(0),
        ratio_label: "Ratio".into(),
        ..Default::default()
    };
    save_formats(&h, out("hist1d"), &formats)?;

    // 2-D histogram, log colour scale.
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..200_000 {
        let x = rng.normal();
        xs.push(x);
        ys.push(0.6 * x + 0.8 * rng.normal() * (1.0 + 0.3 * x.abs()));
    }
    let e = uniform_edges(-4.0, 4.0, 60);
    let hm = Heatmap {
        title: "Shower shape".into(),
        x_label: "log₁₀ width".into(),
        y_label: "log₁₀ length".into(),
        data: Heatmap::histogram2d(&xs, &ys, None, &e, &e)?,
        x_edges: e.clone(),
        y_edges: e,
        log_color: true,
        color_label: "Events".into(),
        ..Default::default()
    };
    save_formats(&hm, out("heatmap"), &formats)?;

    // Loss curves.
    let train: Vec<f64> = (0..60)
        .map(|i| 2.0 * (-(i as f64) / 12.0).exp() + 0.15 + 0.02 * rng.normal())
        .collect();
    let val: Vec<f64> = (0..60)
        .map(|i| 2.1 * (-(i as f64) / 14.0).exp() + 0.2 + 0.002 * i as f64 + 0.03 * rng.normal())
        .collect();
    let curves = Curves {
        title: "Training".into(),
        x_label: "Epoch".into(),
        y_label: "Loss".into(),
        series: vec![
            Series::epochs("train", train),
            Series::epochs("validation", val).with_dash(Dash::Dashed),
        ],
        log_y: true,
        ..Default::default()
    };
    save_formats(&curves, out("curves"), &formats)?;

    // ROC curves.
    let n = 5000;
    let labels: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
    let s1: Vec<f64> = labels
        .iter()
        .map(|&l| if l { 1.2 } else { 0.0 } + rng.normal())
        .collect();
    let s2: Vec<f64> = labels
        .iter()
        .map(|&l| if l { 2.0 } else { 0.0 } + rng.normal())
        .collect();
    let roc = Roc {
        title: "γ/hadron separation".into(),
        curves: vec![
            RocCurve::from_scores("BDT", &s1, &labels)?,
            RocCurve::from_scores("CNN", &s2, &labels)?,
        ],
        ..Default::default()
    };
    save_formats(&roc, out("roc"), &formats)?;

    // Scatter coloured by category.
    let names = ["star", "galaxy", "QSO", "artefact"];
    let (mut sx, mut sy, mut cat) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..800 {
        let c = i % 4;
        let (mx, my) = [(0.0, 0.0), (2.0, 1.0), (0.5, 2.5), (2.5, -1.0)][c];
        sx.push(mx + 0.6 * rng.normal());
        sy.push(my + 0.6 * rng.normal());
        cat.push(c);
    }
    let sc = Scatter {
        title: "Latent space".into(),
        x_label: "z₁".into(),
        y_label: "z₂".into(),
        x: sx,
        y: sy,
        category: cat,
        category_names: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    save_formats(&sc, out("scatter"), &formats)?;

    // Sky image: noise, sources, a NaN patch.
    let (ny, nx) = (96, 128);
    let srcs = [
        (30.0, 40.0, 800.0, 2.0),
        (90.0, 60.0, 300.0, 3.5),
        (70.0, 20.0, 5000.0, 1.5),
        (110.0, 80.0, 150.0, 6.0),
    ];
    let data = ndarray::Array2::from_shape_fn((ny, nx), |(r, c)| {
        let (x, y) = (c as f64 + 1.0, r as f64 + 1.0);
        let mut v = 100.0 + 5.0 * rng.normal();
        for (sx, sy, f, s) in srcs {
            v += f * (-((x - sx).powi(2) + (y - sy).powi(2)) / (2.0 * s * s)).exp();
        }
        if (10..16).contains(&r) && (100..110).contains(&c) {
            v = f64::NAN;
        }
        v as f32
    });
    let img = SkyImage {
        title: "Field 42, r band".into(),
        stretch: Stretch::ASINH,
        interval: Interval::Percentile(99.5),
        color_label: "Counts".into(),
        overlays: vec![
            Overlay::rect(24.5, 34.5, 36.5, 46.5).with_label("star"),
            Overlay::circle(90.0, 60.0, 10.0)
                .with_label("galaxy")
                .with_color(OKABE_ITO[5]),
            Overlay::rect(60.5, 10.5, 80.5, 30.5)
                .with_label("bright")
                .with_color(OKABE_ITO[1]),
            Overlay::text(105.0, 8.0, "NaN above"),
        ],
        ..SkyImage::new(data.clone())
    };
    save_formats(&img, out("skyimage"), &formats)?;
    let z = SkyImage {
        title: "zscale, linear".into(),
        ..SkyImage::new(data.clone())
    };
    save_formats(&z, out("skyimage_zscale"), &formats)?;

    // Gallery of stamps.
    let stamps: Vec<Stamp> = (0..10)
        .map(|k| {
            let s = 1.5 + 0.4 * k as f64;
            let e = 0.05 * k as f64;
            let d = ndarray::Array2::from_shape_fn((32, 32), |(r, c)| {
                let (x, y) = (c as f64 - 15.5, r as f64 - 15.5);
                let rr = (x * x * (1.0 + e) + y * y * (1.0 - e)) / (2.0 * s * s);
                (1000.0 * (-rr).exp() + 10.0 * rng.normal()) as f32
            });
            Stamp::new(d, format!("#{k} σ={s:.1}"))
        })
        .collect();
    let g = Gallery {
        title: "Detections".into(),
        stamps,
        columns: 5,
        stretch: Stretch::ASINH,
        interval: Interval::MinMax,
        ..Default::default()
    };
    save_formats(&g, out("gallery"), &formats)?;
    println!("wrote {dir}");
    Ok(())
}
