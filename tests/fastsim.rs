//! `deepsky fastsim` end to end: a short training run (checkpoints, resume, loss plots), the
//! bundled generator's showers checked with h5py in both layouts, validation's report
//! (observables with χ² and W1, classifier AUCs and their reference-vs-reference floor, the
//! speed-up), and clear errors.

#[path = "support/mod.rs"]
mod support;

use support::*;

const CFG: &str = "pipelines/configs/fastsim.toml";

/// A tiny network and few epochs: the machinery, not the physics.
const TINY: &[&str] = &[
    "--set",
    "model.generator=[32]",
    "--set",
    "model.critic=[32]",
    "--set",
    "model.latent=8",
    "--set",
    "progress.every=2",
    "--set",
    "progress.showers=200",
    "--set",
    "output.plots=[\"png\"]",
];

fn train(out: &std::path::Path, epochs: usize, extra: &[&str]) -> std::process::Output {
    let e = format!("train.epochs={epochs}");
    let mut args = vec![
        "fastsim",
        "train",
        "-c",
        CFG,
        "-o",
        out.to_str().unwrap(),
        "--set",
        &e,
    ];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    deepsky(&args)
}

/// `deepsky fastsim generate -c CFG -o OUT EXTRA…`
fn generate(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "fastsim",
        "generate",
        "-c",
        CFG,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    deepsky(&args)
}

#[test]
fn training_writes_a_model_loss_plots_and_progress_checks_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("train");
    ok(&train(&out, 2, &[]));
    let r = json(&out.join("report.json"));
    assert_eq!(r["training_showers"], 1000);
    assert_eq!(r["epochs_run"], 2);
    assert_eq!(r["particles"][0], "e-");
    let (lo, hi) = (
        r["energy_range_gev"][0].as_f64().unwrap(),
        r["energy_range_gev"][1].as_f64().unwrap(),
    );
    assert!(
        lo >= 1.0 && lo < 1.5 && hi > 99.0 && hi <= 100.0,
        "{lo} {hi}"
    );
    let h = r["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert!(h[0]["critic_loss"].as_f64().unwrap().is_finite());
    // The periodic check at epoch 2 wrote plots and a χ² per observable.
    let checks = r["progress_checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1);
    assert!(checks[0]["chi2"]["e_total_over_incident"]
        .as_f64()
        .is_some());
    assert!(out.join("plots/progress/epoch-00002/depth.png").exists());
    assert!(out.join("plots/loss.png").exists());
    assert!(out.join("model/model.safetensors").exists());
    let card = json(&out.join("model/model.json"));
    assert_eq!(card["kind"], "deepsky-fastsim-showers");
    assert_eq!(card["layout"], "calogan");
    let prov = json(&out.join("provenance.json"));
    assert_eq!(prov["status"], "success", "{prov}");
    assert_eq!(prov["inputs"][0]["path"], "data/showers_calogan.h5");

    // Resume to 4 epochs: continues after epoch 2.
    ok(&train(&out, 4, &["--resume"]));
    let r = json(&out.join("report.json"));
    assert_eq!(r["resumed_from_epoch"], 2);
    assert_eq!(r["epochs_run"], 4);
    assert_eq!(r["history"].as_array().unwrap().len(), 4);
}

#[test]
fn bundled_generator_writes_physical_showers_in_both_layouts() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("gen");
    ok(&generate(
        &out,
        &["--energy", "50", "-n", "500", "--seed", "4"],
    ));
    // h5py reads the CaloGAN layout; response and longitudinal profile are physical.
    let py = run_python(
        r#"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
l = [f['layer_%d' % i][:] for i in range(3)]
e = f['energy'][:]
assert [x.shape for x in l] == [(500, 3, 96), (500, 12, 12), (500, 12, 6)], [x.shape for x in l]
assert e.shape == (500, 1) and np.all(e == 50.0)
assert min(x.min() for x in l) >= 0.0
assert f.attrs['particle'] == 'e-' and f.attrs['layout'] == 'CaloGAN'
cells = sum(x.reshape(500, -1).sum(1) for x in l)
frac = np.array([x.reshape(500, -1).sum(1) for x in l]) / cells
print(np.mean((cells + f['overflow'][:].sum(1)) / 50000.0), frac[1].mean(), (l[1] > 0).mean())
"#,
        &[out.join("showers.h5").to_str().unwrap()],
    );
    let v: Vec<f64> = py.split_whitespace().map(|s| s.parse().unwrap()).collect();
    // The reference simulator: response ~0.98, the 16 X0 middle layer takes most of the energy.
    assert!((0.9..1.05).contains(&v[0]), "mean response {}", v[0]);
    assert!(v[1] > 0.5, "layer-1 fraction {}", v[1]);
    assert!(v[2] > 0.2 && v[2] < 1.0, "occupied layer-1 cells {}", v[2]);
    let r = json(&out.join("report.json"));
    assert_eq!(r["showers"], 500);

    // CaloChallenge layout: incident energies and showers in MeV.
    let out2 = d.path().join("gen_cc");
    ok(&generate(
        &out2,
        &[
            "--energy-range",
            "10,20",
            "-n",
            "50",
            "--set",
            "generate.layout=\"calochallenge\"",
        ],
    ));
    let py = run_python(
        r#"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
e, s = f['incident_energies'][:], f['showers'][:]
assert s.shape == (50, 504) and e.shape == (50, 1)
assert e.min() >= 10000.0 and e.max() <= 20000.0
print(np.mean(s.sum(1) / e[:, 0]))
"#,
        &[out2.join("showers.h5").to_str().unwrap()],
    );
    let resp: f64 = py.trim().parse().unwrap();
    assert!((0.8..1.05).contains(&resp), "cells/incident {resp}");
}

#[test]
fn validate_reports_observables_aucs_with_their_noise_floor_and_the_speedup() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("val");
    ok(&deepsky(&[
        "fastsim",
        "validate",
        "-c",
        CFG,
        "-o",
        out.to_str().unwrap(),
        "--set",
        "validate.reference_showers=300",
        "--set",
        "validate.classifier.epochs=10",
        "--set",
        "speed.energies_gev=[100.0]",
        "--set",
        "speed.batches=[1, 1000]",
        "--set",
        "speed.generated_showers=1000",
        "--set",
        "speed.simulator_seconds=0.5",
        "--set",
        "output.plots=[\"png\", \"svg\"]",
    ]));
    let r = json(&out.join("report.json"));
    let get = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    for k in [
        "auc_high_level",
        "auc_all_cells",
        "reference_auc_high_level",
        "reference_auc_all_cells",
    ] {
        let a = get(k);
        assert!((0.0..=1.0).contains(&a), "{k} = {a}");
    }
    // Two samples of the same simulator are close to indistinguishable.
    assert!(
        (get("reference_auc_high_level") - 0.5).abs() < 0.15,
        "{}",
        r["reference_auc_high_level"]
    );
    assert_eq!(r["n_reference"], 300);
    let obs = r["observables"].as_object().unwrap();
    assert_eq!(obs.len(), 16);
    for (name, o) in obs {
        let (c, w) = (o["chi2"].as_f64().unwrap(), o["w1"].as_f64().unwrap());
        assert!(
            (0.0..=1.0).contains(&c) && w >= 0.0,
            "{name}: chi2 {c} w1 {w}"
        );
        assert!(o["reference_chi2"].as_f64().unwrap() < 0.2, "{name}: {o}");
        assert!(out.join(format!("plots/{name}.png")).exists(), "{name}");
        assert!(out.join(format!("plots/{name}.svg")).exists(), "{name}");
    }
    assert!(out.join("plots/classifier_roc.png").exists());
    // The bundled generator against the simulator at 100 GeV, measured in this run.
    let s = get("speedup_100gev");
    assert!(s > 10.0, "speed-up {s}");
    let points = r["speed"]["points"].as_array().unwrap();
    assert_eq!(points[0]["generator"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x");
    let o = out.to_str().unwrap();
    assert_fails(
        &deepsky(&[
            "fastsim",
            "train",
            "-c",
            CFG,
            "-o",
            o,
            "--set",
            "data.samples=[{path=\"data/missing.h5\"}]",
        ]),
        2,
        &["data/missing.h5"],
    );
    // A FITS file is not a shower file.
    assert_fails(
        &deepsky(&[
            "fastsim",
            "train",
            "-c",
            CFG,
            "-o",
            o,
            "--set",
            "data.samples=[{path=\"data/sky_field.fits\", particle=\"e-\"}]",
        ]),
        2,
        &["data/sky_field.fits"],
    );
    assert_fails(
        &generate(std::path::Path::new(o), &["--model", "data"]),
        2,
        &["model.json"],
    );
    assert_fails(
        &generate(std::path::Path::new(o), &["--particle", "gamma"]),
        2,
        &["gamma"],
    );
    assert_fails(
        &deepsky(&[
            "fastsim",
            "train",
            "-c",
            CFG,
            "-o",
            o,
            "--set",
            "train.ema_decay=1.5",
        ]),
        2,
        &["train.ema_decay"],
    );
}

#[test]
fn image_gan_trains_on_the_cutouts_and_writes_stamps_h5py_reads() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("img");
    ok(&deepsky(&[
        "fastsim",
        "images",
        "-c",
        CFG,
        "-o",
        out.to_str().unwrap(),
        "--set",
        "images.train.epochs=2",
        "--set",
        "images.model.channels=8",
        "--set",
        "images.model.latent=16",
        "--set",
        "images.generate=50",
        "--set",
        "output.plots=[\"png\"]",
    ]));
    let r = json(&out.join("report.json"));
    // Label 0 (normal galaxies) of the 1000 bundled stamps: all but the 3 % rare ones.
    assert_eq!(r["training_stamps"], 970);
    assert_eq!(r["epochs_run"], 2);
    for k in ["flux", "peak", "concentration"] {
        let c = r["comparison"][k]["chi2"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c), "{k}: {c}");
        assert!(r["comparison"][k]["data_mean"]
            .as_f64()
            .unwrap()
            .is_finite());
    }
    let py = run_python(
        r#"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
x = f['/images'][:]
assert x.shape == (50, 32, 32) and np.isfinite(x).all(), x.shape
print(x.mean())
"#,
        &[out.join("generated.h5").to_str().unwrap()],
    );
    assert!(py.trim().parse::<f64>().unwrap().is_finite());
    for p in ["gallery.png", "flux.png", "loss.png"] {
        assert!(out.join("plots").join(p).exists(), "{p}");
    }
    assert!(out.join("model/model.json").exists());
}

#[test]
fn two_particle_types_make_the_generator_conditional_on_the_particle() {
    let d = tempfile::tempdir().unwrap();
    let gamma = d.path().join("gamma.h5");
    ok(&deepsky(&[
        "simulate",
        "showers",
        "--particle",
        "gamma",
        "--energy-range",
        "5,50",
        "-n",
        "150",
        "--seed",
        "9",
        "-o",
        gamma.to_str().unwrap(),
    ]));
    let out = d.path().join("train2");
    let samples = format!(
        "data.samples=[{{path=\"data/showers_calogan.h5\"}}, {{path=\"{}\"}}]",
        gamma.display()
    );
    ok(&train(&out, 1, &["--set", &samples]));
    let card = json(&out.join("model/model.json"));
    assert_eq!(card["conditioning"]["particles"][0], "e-");
    assert_eq!(card["conditioning"]["particles"][1], "gamma");
    let r = json(&out.join("report.json"));
    assert_eq!(r["training_showers"], 1150);
    // Photons from the two-particle model, written with their particle.
    let gen = d.path().join("gen");
    ok(&generate(
        &gen,
        &[
            "--model",
            out.join("model").to_str().unwrap(),
            "--particle",
            "gamma",
            "--energy",
            "20",
            "-n",
            "20",
        ],
    ));
    let py = run_python(
        "import sys, h5py; f = h5py.File(sys.argv[1], 'r'); print(f.attrs['particle'], f.attrs['particle_pdg_id'], f['layer_1'].shape[0])",
        &[gen.join("showers.h5").to_str().unwrap()],
    );
    assert_eq!(py.trim(), "gamma 22 20");
    // The same file twice is refused: one file per particle type.
    let dup =
        "data.samples=[{path=\"data/showers_calogan.h5\"}, {path=\"data/showers_calogan.h5\"}]";
    assert_fails(
        &train(&d.path().join("dup"), 1, &["--set", dup]),
        2,
        &["one file per particle"],
    );
}

/// Ctrl-C (SIGINT) during the reference simulation and SIGTERM during the classifier training
/// both end `fastsim validate` within seconds with exit 130, status `interrupted` and no report
/// — not half a minute later with status `success`.
#[test]
fn validate_honours_ctrl_c_and_sigterm_within_seconds() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    for (signal, phase, settings) in [
        // A reference sample that takes minutes to simulate.
        (
            libc::SIGINT,
            "reference simulation",
            [
                "validate.reference_showers=2000000",
                "validate.classifier.epochs=10",
            ],
        ),
        // Quick references, then a classifier that would train for hours.
        (
            libc::SIGTERM,
            "classifier training",
            [
                "validate.reference_showers=300",
                "validate.classifier.epochs=1000000",
            ],
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("val");
        let mut args = vec![
            "fastsim",
            "validate",
            "-c",
            CFG,
            "-o",
            out.to_str().unwrap(),
            "--no-speed",
        ];
        for s in settings {
            args.extend(["--set", s]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_deepsky"))
            .args(&args)
            .current_dir(root())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(4));
        let sent = Instant::now();
        unsafe { libc::kill(child.id() as i32, signal) };
        // A run that ignores the signal would go on for hours: stop waiting after a minute.
        while child.try_wait().unwrap().is_none() && sent.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let waited = sent.elapsed();
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(130), "{phase}: {}", stderr(&o));
        // Seconds, not the rest of the step (minutes); generous for a loaded CI machine.
        assert!(
            waited < Duration::from_secs(10),
            "{phase}: exit {waited:?} after the signal"
        );
        assert!(
            !out.join("report.json").exists(),
            "{phase}: a report from an interrupted run"
        );
        assert_eq!(
            json(&out.join("provenance.json"))["status"],
            "interrupted",
            "{phase}"
        );
    }
}
