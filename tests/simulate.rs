//! `deepsky simulate`: outputs that astropy, h5py and fitsverify accept, the same bytes for the
//! same seed whatever the thread count, and clear errors for bad parameters.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deepsky_io::fits::{FitsReader, HduSelector};

fn deepsky(args: &[&str], threads: usize) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepsky"))
        .args(args)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .expect("deepsky runs")
}

fn python() -> PathBuf {
    std::env::var("DEEPSKY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

fn fitsverify_ok(path: &Path) {
    let out = Command::new("fitsverify")
        .arg("-q")
        .arg(path)
        .output()
        .expect("fitsverify installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("verification OK"),
        "fitsverify on {}: {text}",
        path.display()
    );
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "deepsky failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn sky_field_is_valid_fits_with_wcs_and_truth_and_is_reproducible() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.fits");
    let b = d.path().join("b.fits");
    ok(&deepsky(
        &["simulate", "sky", "--seed", "11", "-o", a.to_str().unwrap()],
        1,
    ));
    ok(&deepsky(
        &["simulate", "sky", "--seed", "11", "-o", b.to_str().unwrap()],
        2,
    ));
    let read = |p: &Path| std::fs::read(p).unwrap();
    // The command line differs only in the output name, which is recorded; compare the data.
    let (mut ra, mut rb) = (FitsReader::open(&a).unwrap(), FitsReader::open(&b).unwrap());
    assert_eq!(
        ra.read_image(&HduSelector::Index(0)).unwrap(),
        rb.read_image(&HduSelector::Index(0)).unwrap(),
        "1 vs 2 threads"
    );
    assert!(read(&a).len() > 256 * 256 * 4);
    for p in [&a, &d.path().join("a_truth.fits")] {
        fitsverify_ok(p);
    }
    let wcs = ra.wcs(&HduSelector::Index(0)).unwrap();
    let truth = FitsReader::open(d.path().join("a_truth.fits"))
        .unwrap()
        .read_table(&"CATALOG".into(), None)
        .unwrap();
    assert!(truth.data.height() > 10);
    assert_eq!(truth.unit("ra"), Some("deg"));
    // The catalogue's ra/dec is the image WCS at the catalogue's x/y.
    let df = &truth.data;
    for i in 0..5 {
        let x = df.column("x").unwrap().f64().unwrap().get(i).unwrap();
        let y = df.column("y").unwrap().f64().unwrap().get(i).unwrap();
        let (ra_w, dec_w) = wcs.pixel_to_world(x, y).unwrap();
        let ra_c = df.column("ra").unwrap().f64().unwrap().get(i).unwrap();
        let dec_c = df.column("dec").unwrap().f64().unwrap().get(i).unwrap();
        assert!(
            (ra_w - ra_c).abs() < 1e-8 && (dec_w - dec_c).abs() < 1e-8,
            "row {i}: WCS ({ra_w}, {dec_w}) vs catalogue ({ra_c}, {dec_c})"
        );
    }
}

#[test]
fn sky_truth_masks_are_a_bitmask_and_segmentation_that_astropy_reads() {
    let d = tempfile::tempdir().unwrap();
    let sky = d.path().join("m.fits");
    let set = [
        "width=96",
        "height=80",
        "n_stars=8",
        "n_galaxies=10",
        "artefacts.cosmic_ray_model=\"physical\"",
        "artefacts.cosmic_rays=12",
        "artefacts.trails=1",
        "artefacts.hot_pixels=4",
    ];
    let mut args = vec![
        "simulate",
        "sky",
        "--seed",
        "4",
        "-o",
        sky.to_str().unwrap(),
    ];
    for s in &set {
        args.extend(["--set", s]);
    }
    ok(&deepsky(&args, 1));
    let masks = d.path().join("m_masks.fits");
    fitsverify_ok(&masks);
    let mask = deepsky_io::mask::read_mask(&masks, "MASK").unwrap();
    assert_eq!(mask.bits.dim(), (80, 96));
    use deepsky_core::mask::MaskPlane;
    for plane in MaskPlane::ALL {
        assert_eq!(mask.bit_of(plane), Some(plane.bit_number()), "{plane}");
    }
    for plane in [
        MaskPlane::CosmicRay,
        MaskPlane::Saturated,
        MaskPlane::BadColumn,
        MaskPlane::Trail,
        MaskPlane::Detected,
    ] {
        let n = mask.plane(plane).unwrap().iter().filter(|&&b| b).count();
        assert!(n > 0, "no {plane} pixels");
    }
    assert!(mask.plane(MaskPlane::NoData).unwrap().iter().all(|&b| !b));
    let code = r#"
import sys
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
with fits.open(sys.argv[1]) as h, fits.open(sys.argv[2]) as img, fits.open(sys.argv[3]) as t:
    m, s = h['MASK'], h['SEGMENTATION']
    assert m.data.dtype.kind == 'i' and s.data.dtype.kind == 'i'
    assert m.data.shape == s.data.shape == img[0].data.shape
    cr = 1 << m.header['MP_COSMIC_RAY']
    det = 1 << m.header['MP_DETECTED']
    assert np.all((s.data > 0) == ((m.data & det) > 0))
    ids = t['CATALOG'].data['id']
    assert s.data.max() <= ids.max()
    assert WCS(m.header).wcs.ctype[0] == 'RA---TAN'
    print(int(np.sum((m.data & cr) > 0)), int(s.data.max()))
"#;
    let out = Command::new(python())
        .args(["-c", code])
        .args([&masks, &sky, &d.path().join("m_truth.fits")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(
        v[0] >= 12 && v[1] > 0,
        "cosmic-ray pixels, largest segment: {v:?}"
    );
}

#[test]
fn event_list_is_ogip_and_astropy_reads_it() {
    let d = tempfile::tempdir().unwrap();
    let ev = d.path().join("ev.fits");
    ok(&deepsky(
        &[
            "simulate",
            "events",
            "--seed",
            "5",
            "-o",
            ev.to_str().unwrap(),
        ],
        2,
    ));
    fitsverify_ok(&ev);
    fitsverify_ok(&d.path().join("ev_truth.fits"));
    let code = r#"
import sys
from astropy.io import fits
import numpy as np
with fits.open(sys.argv[1]) as h:
    e = h['EVENTS']; g = h['GTI'].data
    t = e.data['TIME']
    assert all(e.columns[c].unit for c in ['TIME', 'X', 'Y', 'ENERGY', 'PI']), [e.columns[c].unit for c in e.columns.names]
    inside = np.zeros(len(t), bool)
    for s, p in zip(g['START'], g['STOP']): inside |= (t >= s) & (t <= p)
    for k in ['TELESCOP', 'INSTRUME', 'TSTART', 'TSTOP', 'EXPOSURE', 'MJDREFI', 'TIMESYS']: assert k in e.header, k
    print(len(t), int(inside.all()), int(np.all(np.diff(t) >= 0)), e.header['TLMIN5'], e.header['TLMAX5'], round(float(e.header['EXPOSURE']) - float(np.sum(g['STOP'] - g['START'])), 6))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .arg(&ev)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(v[0].parse::<usize>().unwrap() > 1000, "events: {}", v[0]);
    assert_eq!(
        &v[1..],
        &["1", "1", "1", "1024", "0.0"],
        "in GTIs, sorted, PI range, EXPOSURE = sum of GTIs"
    );
}

#[test]
fn showers_in_both_layouts_and_thread_count_independent() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.h5");
    let b = d.path().join("b.h5");
    let c = d.path().join("c.h5");
    // The same 40 photon showers at 20 GeV, seed 9: only layout, output and threads vary.
    let run = |layout: &str, out: &Path, threads: usize| {
        let args = [
            "simulate",
            "showers",
            "--particle",
            "gamma",
            "--energy",
            "20",
            "-n",
            "40",
            "--seed",
            "9",
        ];
        let mut args: Vec<&str> = args.to_vec();
        args.extend(["--layout", layout, "-o", out.to_str().unwrap()]);
        ok(&deepsky(&args, threads));
    };
    run("calogan", &a, 1);
    run("calogan", &b, 2);
    run("calochallenge", &c, 2);
    let sa = deepsky_io::calo::CaloGanShowers::read(&a).unwrap();
    let sb = deepsky_io::calo::CaloGanShowers::read(&b).unwrap();
    assert_eq!(sa, sb, "1 vs 2 threads");
    assert_eq!(sa.len(), 40);
    let total: f32 = sa.layer_0.sum() + sa.layer_1.sum() + sa.layer_2.sum() + sa.overflow.sum();
    // Calibrated cells add up to the incident energy minus longitudinal leakage (a few %).
    let frac = total / (40.0 * 20_000.0);
    assert!((0.9..1.01).contains(&frac), "deposited fraction {frac}");
    let cc = deepsky_io::calo::CaloChallengeShowers::read(&c).unwrap();
    assert_eq!(cc.showers.shape(), &[40, 504]);
    assert!(
        (cc.showers.sum() - (sa.layer_0.sum() + sa.layer_1.sum() + sa.layer_2.sum())).abs() < 1.0
    );
}

#[test]
fn bad_parameters_are_clear_errors_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x.h5");
    for (args, needle) in [
        (
            vec!["simulate", "showers", "--energy", "-5", "-n", "3"],
            "energy",
        ),
        (
            vec!["simulate", "showers", "--particle", "muon", "-n", "3"],
            "muon",
        ),
        (
            vec!["simulate", "showers", "--energy", "10", "-n", "0"],
            "`showers`",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["-o", out.to_str().unwrap()]);
        let o = deepsky(&a, 1);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle) && err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
        assert!(!out.exists());
    }
    // A bad config file: exit 2, one line naming the file and the offending key or value.
    let cfg = d.path().join("bad.toml");
    let bad_config = |simulator: &str, text: &str, needle: &str| {
        std::fs::write(&cfg, text).unwrap();
        let out = d.path().join(format!("{simulator}.fits"));
        let o = deepsky(
            &[
                "simulate",
                simulator,
                "-c",
                cfg.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            1,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text}: {err}");
        assert!(
            err.contains("bad.toml") && err.contains(needle) && err.trim_end().lines().count() == 1,
            "{text}: {err}"
        );
        assert!(!out.exists(), "{text}: an output was written");
    };
    bad_config("sky", "width = -3\n", "`-3`");
    bad_config("events", "n_sourcez = 3\n", "n_sourcez");
    bad_config(
        "sky",
        "[psf]\nprofile = \"lorentz\"\nfwhm = 1.0\n",
        "lorentz",
    );
}

#[test]
fn showers_settings_layer_like_every_config_and_options_win() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("showers.toml");
    std::fs::write(
        &cfg,
        "particle = \"gamma\"\nenergy_gev = 30.0\nshowers = 7\nseed = 3\nlayout = \"calochallenge\"\n",
    )
    .unwrap();
    let dump = |extra: &[&str]| {
        let mut args = vec!["simulate", "showers", "-c", cfg.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push("--dump-config");
        let o = deepsky(&args, 1);
        ok(&o);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(text.contains("# Number of showers.\nshowers = "), "{text}");
        text.parse::<toml::Table>().unwrap()
    };
    let t = dump(&[]);
    assert_eq!(t["particle"].as_str(), Some("gamma"));
    assert_eq!(t["energy_gev"].as_float(), Some(30.0));
    assert_eq!(t["layout"].as_str(), Some("calochallenge"));
    // --set wins over the file; options win over both, and a range replaces a fixed energy.
    let t = dump(&[
        "--set",
        "showers=9",
        "--set",
        "seed=5",
        "--seed",
        "6",
        "--energy-range",
        "2,4",
        "--layout",
        "CaloGAN",
    ]);
    assert_eq!(t["showers"].as_integer(), Some(9));
    assert_eq!(t["seed"].as_integer(), Some(6));
    assert!(t.get("energy_gev").is_none(), "{t:?}");
    assert_eq!(
        t["energy_range_gev"].as_array().unwrap(),
        &vec![toml::Value::Float(2.0), toml::Value::Float(4.0)]
    );
    assert_eq!(t["layout"].as_str(), Some("calogan"));
    // A bad value set in a file is named with its file.
    std::fs::write(&cfg, "showers = 0\n").unwrap();
    let o = deepsky(
        &[
            "simulate",
            "showers",
            "-c",
            cfg.to_str().unwrap(),
            "-o",
            "/nonexistent/x.h5",
        ],
        1,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("showers.toml: `showers`: must be at least 1"),
        "{err}"
    );
}

#[test]
fn outputs_carry_the_runs_provenance() {
    let d = tempfile::tempdir().unwrap();
    let sky = d.path().join("s.fits");
    let showers = d.path().join("s.h5");
    ok(&deepsky(
        &[
            "simulate",
            "sky",
            "--seed",
            "3",
            "--set",
            "n_stars=5",
            "--set",
            "n_galaxies=5",
            "--set",
            "width=64",
            "--set",
            "height=64",
            "-o",
            sky.to_str().unwrap(),
        ],
        1,
    ));
    ok(&deepsky(
        &[
            "simulate",
            "showers",
            "-n",
            "3",
            "--energy",
            "10",
            "--seed",
            "2",
            "-o",
            showers.to_str().unwrap(),
        ],
        1,
    ));
    let sky_files = [
        sky.clone(),
        d.path().join("s_truth.fits"),
        d.path().join("s_masks.fits"),
    ];
    for path in sky_files {
        fitsverify_ok(&path);
        let mut f = FitsReader::open(&path).unwrap();
        let h = f.header(&HduSelector::Index(0)).unwrap();
        let card = |k: &str| {
            h.cards()
                .iter()
                .find(|c| c.key == k)
                .and_then(|c| c.value.clone())
                .unwrap_or_else(|| panic!("{k} in {}", path.display()))
        };
        use deepsky_io::fits::CardValue;
        assert_eq!(card("DSPIPE"), CardValue::Str("simulate sky".into()));
        assert_eq!(card("SIMSEED"), CardValue::Int(3));
        assert_eq!(card("DSSEED0"), CardValue::Int(3));
        assert!(matches!(card("CREATOR"), CardValue::Str(s) if s.starts_with("deepsky ")));
        let history: String = h
            .cards()
            .iter()
            .filter(|c| c.key == "HISTORY")
            .map(|c| c.comment.clone())
            .collect();
        assert!(history.contains("\"n_stars\":5"), "{history}");
        assert!(history.contains("config sha256: "), "{history}");
    }
    let attrs: std::collections::BTreeMap<String, deepsky_io::h5::AttrValue> =
        deepsky_io::h5::H5Reader::open(&showers)
            .unwrap()
            .root_attrs()
            .unwrap()
            .into_iter()
            .collect();
    let text = |k: &str| match &attrs[k] {
        deepsky_io::h5::AttrValue::Str(s) => s.clone(),
        v => panic!("{k}: {v:?}"),
    };
    let p: serde_json::Value = serde_json::from_str(&text("provenance")).unwrap();
    assert_eq!(p["pipeline"], "simulate showers");
    assert_eq!(p["seeds"]["simulation"], 2);
    assert_eq!(p["config"]["showers"], 3);
    assert_eq!(p["config"]["layout"], "calogan");
    assert_eq!(text("config_sha256"), p["config_hash"].as_str().unwrap());
    assert_eq!(
        text("config"),
        "{\"particle\":\"e-\",\"energy_gev\":Fixed(10.0),\"n_showers\":3,\"seed\":2,\"layout\":\"calogan\"}"
    );
    assert_eq!(text("deepsky_pipeline"), "simulate showers");
}

/// Ctrl-C in the middle of a long shower simulation: exit 130 within seconds, and no output
/// file (not even a temporary one) — before, the default handler killed the process.
#[test]
fn ctrl_c_stops_a_shower_simulation_with_exit_130_and_writes_nothing() {
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("showers.h5");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_deepsky"))
        .args([
            "simulate",
            "showers",
            "-n",
            "5000000",
            "-o",
            out.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    while child.try_wait().unwrap().is_none() && sent.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let waited = sent.elapsed();
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        waited < Duration::from_secs(10),
        "exit {waited:?} after Ctrl-C"
    );
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
