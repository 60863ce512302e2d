//! `deepsky anomaly` end to end on the bundled cutouts: the autoencoder beats the PCA baseline,
//! every product is written and readable by astropy/h5py/fitsverify, and a saved model applied
//! to the data repeats the scores exactly.

#[path = "support/mod.rs"]
mod support;

use support::*;

#[test]
fn cutouts_autoencoder_beats_pca_and_products_are_readable() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let o = out.to_str().unwrap();
    // The bundled config with a shorter schedule: the test checks the machinery and the
    // ordering of the two methods, the demo run gives the headline numbers.
    ok(&deepsky(&[
        "anomaly",
        "-c",
        "pipelines/configs/anomaly.toml",
        "--set",
        "train.epochs=8",
        "--set",
        "model.widths=[8,16,32]",
        "--set",
        "output.plots=[\"png\",\"pdf\",\"svg\"]",
        "-o",
        o,
    ]));
    let report = json(&out.join("report.json"));
    let auc = report["auc"].as_f64().unwrap();
    let base = report["baseline_auc"].as_f64().unwrap();
    assert!(auc > 0.75, "autoencoder AUC {auc}");
    assert!(
        auc > base,
        "autoencoder AUC {auc} must beat the PCA baseline {base}"
    );
    assert_eq!(report["n_objects"], 1000);
    assert_eq!(report["n_rare"], 30);
    assert!(report["per_class"]["artefact"]["auc"].as_f64().unwrap() > 0.5);
    assert_eq!(report["training"]["epochs"], 8);
    let h = report["training"]["history"].as_array().unwrap();
    assert!(
        h.last().unwrap()["train_loss"].as_f64() < h[0]["train_loss"].as_f64(),
        "loss falls"
    );
    assert_eq!(
        report["cluster_sizes"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        1000
    );

    for f in [
        "latent.h5",
        "latent.parquet",
        "anomalies.fits",
        "anomalies.csv",
        "model/model.safetensors",
        "model/model.json",
        "provenance.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    for p in [
        "loss",
        "latent_clusters",
        "latent_labels",
        "roc",
        "score_hist",
        "gallery",
    ] {
        for ext in ["png", "pdf", "svg"] {
            let f = out.join(format!("plots/{p}.{ext}"));
            assert!(
                std::fs::metadata(&f)
                    .map(|m| m.len() > 1000)
                    .unwrap_or(false),
                "{}",
                f.display()
            );
        }
    }
    let prov = json(&out.join("provenance.json"));
    assert_eq!(prov["status"], "success");
    assert_eq!(prov["inputs"][0]["role"], "objects");
    assert_eq!(prov["inputs"][0]["sha256"].as_str().unwrap().len(), 64);
    assert!(prov["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["path"] == "anomalies.fits"));

    // The catalogue: fitsverify-clean, astropy reads the ranking, CSV matches FITS.
    fitsverify_ok(&out.join("anomalies.fits"));
    let py = run_python(
        r#"
import sys, json, h5py, numpy as np
from astropy.io import fits
from astropy.table import Table
cat = Table.read(sys.argv[1], hdu="ANOMALIES")
csv = Table.read(sys.argv[2], format="ascii.csv")
with h5py.File(sys.argv[3]) as f:
    prov = json.loads(f.attrs["provenance"])
    score = f["score"][:]; ids = f["ids"][:]; lat = f["latent"].shape
hdr = fits.getheader(sys.argv[1], 0)
top = ids[np.argsort(-score, kind="stable")][:len(cat)]
print(json.dumps({"n": len(cat), "rank": list(map(int, cat["RANK"][:3])), "same_ids": bool((np.asarray(cat["ID"]) == np.asarray(csv["ID"])).all()),
  "top_matches_h5": bool((np.asarray(cat["ID"]) == top).all()), "latent": list(lat), "pipeline": prov["pipeline"], "dspipe": hdr["DSPIPE"],
  "descending": bool((np.diff(cat["SCORE"]) <= 0).all())}))
"#,
        &[
            out.join("anomalies.fits").to_str().unwrap(),
            out.join("anomalies.csv").to_str().unwrap(),
            out.join("latent.h5").to_str().unwrap(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(py.trim()).unwrap();
    assert_eq!(v["n"], 50);
    assert_eq!(v["rank"], serde_json::json!([1, 2, 3]));
    assert_eq!(v["same_ids"], true);
    assert_eq!(v["top_matches_h5"], true);
    assert_eq!(v["descending"], true);
    assert_eq!(v["latent"], serde_json::json!([1000, 8]));
    assert_eq!(v["pipeline"], "anomaly");
    assert_eq!(v["dspipe"], "anomaly");

    // Applying the saved model repeats normalisation and scores exactly.
    let again = d.path().join("apply");
    ok(&deepsky(&[
        "anomaly",
        "-c",
        "pipelines/configs/anomaly.toml",
        "--model",
        out.join("model").to_str().unwrap(),
        "--set",
        "output.plots=[\"png\"]",
        "-o",
        again.to_str().unwrap(),
    ]));
    let r2 = json(&again.join("report.json"));
    assert_eq!(r2["auc"], report["auc"]);
    // The model directory holds the PCA baseline too, so the whole catalogue repeats.
    let a = std::fs::read_to_string(out.join("anomalies.csv")).unwrap();
    let b = std::fs::read_to_string(again.join("anomalies.csv")).unwrap();
    assert_eq!(
        a, b,
        "the applied model's catalogue differs from the training run's"
    );

    // Scoring in three shards and merging gives the single run's result.
    let mut shard_dirs = vec![];
    for k in 0..3 {
        let dir = d.path().join(format!("shard{k}"));
        ok(&deepsky(&[
            "anomaly",
            "-c",
            "pipelines/configs/anomaly.toml",
            "--model",
            out.join("model").to_str().unwrap(),
            "--shard",
            &format!("{k}/3"),
            "--set",
            "output.plots=[\"png\"]",
            "-o",
            dir.to_str().unwrap(),
        ]));
        assert_eq!(
            json(&dir.join("report.json"))["n_objects"],
            [333, 333, 334][k]
        );
        shard_dirs.push(dir);
    }
    let merged = d.path().join("merged");
    let mut args = vec![
        "anomaly",
        "-c",
        "pipelines/configs/anomaly.toml",
        "--set",
        "output.plots=[\"png\"]",
        "-o",
        merged.to_str().unwrap(),
        "--merge",
    ];
    // Given out of order on purpose: shards are put back in order by their index.
    args.extend([
        shard_dirs[2].to_str().unwrap(),
        shard_dirs[0].to_str().unwrap(),
        shard_dirs[1].to_str().unwrap(),
    ]);
    ok(&deepsky(&args));
    let m = std::fs::read_to_string(merged.join("anomalies.csv")).unwrap();
    assert_eq!(m, b, "merged shards differ from one run");
    let mr = json(&merged.join("report.json"));
    assert_eq!(mr["auc"], r2["auc"]);
    assert_eq!(mr["cluster_sizes"], r2["cluster_sizes"]);
    assert_eq!(mr["merged_shards"], 3);
    assert_eq!(
        json(&merged.join("provenance.json"))["shards"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // A missing shard is a clear error.
    let o = deepsky(&[
        "anomaly",
        "-o",
        d.path().join("bad").to_str().unwrap(),
        "--merge",
        shard_dirs[0].to_str().unwrap(),
        shard_dirs[2].to_str().unwrap(),
    ]);
    assert_fails(&o, 2, &["1/3", "missing"]);
}

#[test]
fn light_curve_features_flag_flares() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("lc");
    ok(&deepsky(&[
        "anomaly",
        "-c",
        "pipelines/configs/anomaly_lightcurves.toml",
        "-o",
        out.to_str().unwrap(),
    ]));
    let r = json(&out.join("report.json"));
    assert_eq!(r["n_objects"], 40);
    assert_eq!(r["n_rare"], 6, "the six flaring sources are the anomalies");
    let (auc, base) = (
        r["auc"].as_f64().unwrap(),
        r["baseline_auc"].as_f64().unwrap(),
    );
    assert!(auc > 0.7 && auc > base, "flare AUC {auc} vs PCA {base}");
    // Table inputs carry their features into the catalogue.
    let csv = std::fs::read_to_string(out.join("anomalies.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for col in ["RANK", "ID", "SCORE", "LABEL_NAME", "CHI2_DOF", "FRAC_VAR"] {
        assert!(header.split(',').any(|h| h == col), "{col} in {header}");
    }
    assert_eq!(csv.lines().count(), 11);
    fitsverify_ok(&out.join("anomalies.fits"));
}

#[test]
fn stamps_cut_from_a_fits_image_around_a_catalogue() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fits");
    ok(&deepsky(&[
        "anomaly",
        "--set",
        "input.kind=fits_stamps",
        "--set",
        "input.path=\"data/sky_field.fits\"",
        "--set",
        "input.catalog=\"data/sky_field_truth.fits\"",
        "--set",
        "input.catalog_hdu=CATALOG",
        "--set",
        "input.x_column=x",
        "--set",
        "input.y_column=y",
        "--set",
        "input.id_column=id",
        "--set",
        "input.labels=class_id",
        "--set",
        "input.stamp_size=16",
        "--set",
        "input.label_names=[]",
        "--set",
        "model.kind=dense",
        "--set",
        "model.widths=[32]",
        "--set",
        "model.latent=4",
        "--set",
        "train.epochs=3",
        "--set",
        "output.plots=[\"png\"]",
        "-o",
        out.to_str().unwrap(),
    ]));
    let r = json(&out.join("report.json"));
    assert_eq!(r["n_objects"], 187, "one stamp per catalogue row");
    assert_eq!(r["input_shape"], serde_json::json!([1, 16, 16]));
    let ids = run_python(
        "import sys, h5py; f = h5py.File(sys.argv[1]); print(int(f['ids'][0]), int(f['ids'][-1]), f['latent'].shape[1])",
        &[out.join("latent.h5").to_str().unwrap()],
    );
    let truth = run_python(
        "import sys; from astropy.table import Table; t = Table.read(sys.argv[1], hdu='CATALOG'); print(int(t['id'][0]), int(t['id'][-1]), 4)",
        &["data/sky_field_truth.fits".replace("data/", &format!("{}/data/", root().display())).as_str()],
    );
    assert_eq!(ids, truth);
    assert!(out.join("plots/gallery.png").exists());
}

#[test]
fn parquet_tables_are_an_input_too() {
    let d = tempfile::tempdir().unwrap();
    let pq = d.path().join("features.parquet");
    // The test venv has no Parquet writer (no pyarrow); a light-curve run writes
    // latent.parquet, whose numeric columns are a table like any other.
    let first = d.path().join("first");
    ok(&deepsky(&[
        "anomaly",
        "-c",
        "pipelines/configs/anomaly_lightcurves.toml",
        "-o",
        first.to_str().unwrap(),
    ]));
    std::fs::copy(first.join("latent.parquet"), &pq).unwrap();
    let out = d.path().join("pq");
    ok(&deepsky(&[
        "anomaly",
        "--set",
        "input.kind=table",
        "--set",
        &format!("input.path=\"{}\"", pq.display()),
        "--set",
        "input.id_column=id",
        "--set",
        "input.labels=label",
        "--set",
        "input.columns=[\"z0\",\"z1\",\"score\"]",
        "--set",
        "input.normalise=standardise",
        "--set",
        "model.kind=dense",
        "--set",
        "model.widths=[8]",
        "--set",
        "model.latent=2",
        "--set",
        "train.epochs=5",
        "--set",
        "train.val_fraction=0.0",
        "--set",
        "output.top_k=5",
        "--set",
        "output.plots=[\"png\"]",
        "-o",
        out.to_str().unwrap(),
    ]));
    let r = json(&out.join("report.json"));
    assert_eq!(r["n_objects"], 40);
    assert_eq!(r["input_shape"], serde_json::json!([3]));
    let header = std::fs::read_to_string(out.join("anomalies.csv")).unwrap();
    assert!(
        header
            .lines()
            .next()
            .unwrap()
            .ends_with("Z0,Z1,INPUT_SCORE"),
        "{header}"
    );
}
