//! `deepsky submit` on a real Slurm: each test starts a private single-node cluster on
//! loopback (Debian's slurmctld and slurmd, auth/none, every file in a temporary folder, ports
//! of its own), submits a 4-shard `deepsky detect predict` over simulated fields as a job array
//! with a dependent merge job, and checks the merged result against one single-process run.
//! The cluster is shut down by a guard whatever happens; only its own daemons are stopped.
//! Without Slurm installed these tests fail, saying to run `make setup` (CI installs it).

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A single-node Slurm cluster owned by one test.
struct Cluster {
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn installed(prog: &str) -> bool {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ]
    .iter()
    .any(|d| Path::new(d).join(prog).exists())
}

impl Cluster {
    fn start() -> Cluster {
        for prog in [
            "slurmctld",
            "slurmd",
            "sbatch",
            "squeue",
            "sinfo",
            "scontrol",
        ] {
            assert!(
                installed(prog),
                "`{prog}` is not installed: run `make setup` (it installs Debian's slurmctld, slurmd and slurm-client for this test)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .to_string();
        let (ctld_port, slurmd_port) = (free_port(), free_port());
        let p = |s: &str| d.join(s).display().to_string();
        let conf = format!(
            "ClusterName=deepskytest\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             SlurmUser=root\nSlurmdUser=root\n\
             AuthType=auth/none\nCredType=cred/none\n\
             StateSaveLocation={}\nSlurmdSpoolDir={}\n\
             SlurmctldPidFile={}\nSlurmdPidFile={}\n\
             SlurmctldLogFile={}\nSlurmdLogFile={}\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             MpiDefault=none\nSwitchType=switch/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n\
             SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n\
             MailProg=/bin/true\nReturnToService=2\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1024 State=UNKNOWN\n\
             PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            p("state"),
            p("spool"),
            p("slurmctld.pid"),
            p("slurmd.pid"),
            p("log/slurmctld.log"),
            p("log/slurmd.log"),
        );
        std::fs::write(d.join("slurm.conf"), conf).unwrap();
        let cluster = Cluster { dir };
        // From here on the guard shuts down whatever started.
        for (prog, args) in [("slurmctld", vec!["-c", "-i"]), ("slurmd", vec![])] {
            let o = cluster.cmd(prog).args(&args).output().unwrap();
            assert!(
                o.status.success(),
                "{prog} did not start: {}{}",
                stderr(&o),
                cluster.logs()
            );
        }
        let t0 = Instant::now();
        loop {
            let o = cluster
                .cmd("sinfo")
                .args(["-h", "-o", "%T"])
                .output()
                .unwrap();
            if stdout(&o).trim() == "idle" {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the node did not become idle: {} {}{}",
                stdout(&o),
                stderr(&o),
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("SLURM_CONF", self.conf());
        c
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["log/slurmctld.log", "log/slurmd.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            s.push_str(&format!("\n--- {f}:\n"));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// `deepsky ARGS` against this cluster, from the repository root, killed after `limit`.
    fn deepsky(&self, args: &[&str], limit: Duration) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_deepsky"))
            .args(args)
            .current_dir(root())
            .env("SLURM_CONF", self.conf())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t0.elapsed() > limit {
                let _ = child.kill();
                let o = child.wait_with_output().unwrap();
                panic!(
                    "deepsky {args:?} did not end within {limit:?}: {}{}",
                    stdout(&o),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.cmd("scontrol").arg("shutdown").output();
        let pids = ["slurmctld.pid", "slurmd.pid"].map(|f| self.dir.path().join(f));
        let t0 = Instant::now();
        while pids.iter().any(|p| p.exists()) && t0.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(100));
        }
        // Whatever did not stop: only the daemons this cluster started, by their pid files.
        for p in pids {
            if let Some(pid) = std::fs::read_to_string(&p)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// Six simulated 256² fields, `s11.fits` … `s16.fits` (truth catalogues and masks removed).
fn fields(dir: &Path) -> Vec<PathBuf> {
    let f = dir.join("fields");
    std::fs::create_dir_all(&f).unwrap();
    (11..=16)
        .map(|seed| {
            let out = f.join(format!("s{seed}.fits"));
            ok(&deepsky(&[
                "-q",
                "simulate",
                "sky",
                "-c",
                "pipelines/configs/sky.toml",
                "--seed",
                &seed.to_string(),
                "-o",
                out.to_str().unwrap(),
            ]));
            for companion in ["truth", "masks"] {
                std::fs::remove_file(f.join(format!("s{seed}_{companion}.fits"))).unwrap();
            }
            out
        })
        .collect()
}

fn single_run(inputs: &[&str], out: &Path) {
    let mut args = vec![
        "detect",
        "predict",
        "-c",
        "pipelines/configs/detect.toml",
        "-o",
        out.to_str().unwrap(),
        "--input",
    ];
    args.extend_from_slice(inputs);
    ok(&deepsky(&args));
}

/// The merged catalogue has exactly the single run's rows and values (astropy), and the CSV
/// and per-image products are byte for byte the same. Returns the number of rows.
fn assert_same_result(merged: &Path, single: &Path) -> usize {
    fitsverify_ok(&merged.join("catalog.fits"));
    let py = run_python(
        r#"
import sys, numpy as np
from astropy.io import fits
a = fits.open(sys.argv[1]); b = fits.open(sys.argv[2])
ta, tb = a['CATALOG'].data, b['CATALOG'].data
assert ta.columns.names == tb.columns.names, (ta.columns.names, tb.columns.names)
assert len(ta) == len(tb), (len(ta), len(tb))
for c in ta.columns.names:
    x, y = ta[c], tb[c]
    if x.dtype.kind == 'f':
        assert np.array_equal(x, y, equal_nan=True), c
    else:
        assert (np.char.strip(x.astype(str)) == np.char.strip(y.astype(str))).all() if x.dtype.kind in 'SU' else np.array_equal(x, y), c
assert list(ta['id']) == list(range(1, len(ta) + 1))
for k in ['NIMAGES', 'MODEL', 'APERRAD']:
    assert a[0].header[k] == b[0].header[k], k
imgs = [str(s).strip() for s in ta['image']]
print(len(ta), len(set(imgs)), int(imgs == sorted(imgs)), int(np.all(ta['score'] > 0)))
"#,
        &[
            merged.join("catalog.fits").to_str().unwrap(),
            single.join("catalog.fits").to_str().unwrap(),
        ],
    );
    let v: Vec<usize> = py.split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert_eq!(v[1], 6, "detections from every image");
    assert_eq!(v[2], 1, "rows in sorted image order");
    assert_eq!(v[3], 1, "scores are positive");
    assert_eq!(
        std::fs::read(merged.join("catalog.csv")).unwrap(),
        std::fs::read(single.join("catalog.csv")).unwrap(),
        "catalog.csv"
    );
    for seed in 11..=16 {
        for f in ["detections.reg", "overlay.png"] {
            let rel = format!("images/s{seed}/{f}");
            assert_eq!(
                std::fs::read(merged.join(&rel)).unwrap(),
                std::fs::read(single.join(&rel)).unwrap(),
                "{rel}"
            );
        }
    }
    let (rm, rs) = (
        json(&merged.join("report.json")),
        json(&single.join("report.json")),
    );
    for k in [
        "n_detections",
        "per_class_counts",
        "n_images",
        "inputs_total",
    ] {
        assert_eq!(rm[k], rs[k], "{k}");
    }
    assert_eq!(rm["n_detections"].as_u64().unwrap() as usize, v[0]);
    for (a, b) in rm["images"]
        .as_array()
        .unwrap()
        .iter()
        .zip(rs["images"].as_array().unwrap())
    {
        for k in ["image", "n_detections", "shape", "background", "outputs"] {
            assert_eq!(a[k], b[k], "{k}");
        }
    }
    v[0]
}

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn four_shard_job_array_merges_to_the_single_process_result() {
    let cluster = Cluster::start();
    let d = tempfile::tempdir().unwrap();
    let fields = fields(d.path());
    let glob = d.path().join("fields/s*.fits");
    let glob = glob.to_str().unwrap();
    let out = d.path().join("run");
    let submit = |extra: &[&str]| {
        let mut args = vec![
            "submit",
            "-n",
            "4",
            "-o",
            out.to_str().unwrap(),
            "--input",
            glob,
            "--partition",
            "debug",
            "--time",
            "10:00",
            "--cpus-per-task",
            "1",
            "--sbatch-line=--nice=0",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--",
            "detect",
            "predict",
            "-c",
            "pipelines/configs/detect.toml",
        ]);
        cluster.deepsky(&args, LIMIT)
    };

    // --dry-run shows both scripts and submits and writes nothing.
    let o = submit(&["--dry-run"]);
    ok(&o);
    let text = stdout(&o);
    for needle in [
        "#SBATCH --array=0-3",
        "#SBATCH --partition=debug",
        "#SBATCH --time=10:00",
        "#SBATCH --nice=0",
        "--shard \"$K/4\"",
        "detect merge -c pipelines/configs/detect.toml",
        "#SBATCH --kill-on-invalid-dep=yes",
        "--dependency=afterok:<array job id>",
    ] {
        assert!(text.contains(needle), "`{needle}` in:\n{text}");
    }
    assert!(!out.exists(), "--dry-run wrote {}", out.display());

    let o = submit(&["--wait"]);
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains("submitted shards 0-3 of 4"), "{text}");
    assert!(text.contains("merge: done"), "{text}");

    // The single-process run over the same images, named through a list file in another
    // order: the run sorts its inputs, so the result is the same.
    let list = d.path().join("list.txt");
    let lines: Vec<String> = fields
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    std::fs::write(&list, lines.join("\n") + "\n").unwrap();
    let single = d.path().join("single");
    single_run(&[&format!("@{}", list.display())], &single);
    let n = assert_same_result(&out, &single);
    assert!(n > 300, "{n} detections in six fields");

    // Provenance records every shard, with its own images (contiguous blocks: 1, 2, 1, 2).
    let prov = json(&out.join("provenance.json"));
    assert_eq!(prov["status"], "success");
    assert_eq!(prov["pipeline"], "detect merge");
    let shards = prov["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 4);
    let mut seen = Vec::new();
    for (k, s) in shards.iter().enumerate() {
        assert_eq!(s["shard"], format!("{k}/4"));
        assert_eq!(s["status"], "success");
        let imgs: Vec<String> = s["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["role"] == "image")
            .map(|i| i["path"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(imgs.len(), [1, 2, 1, 2][k], "shard {k}: {imgs:?}");
        seen.extend(imgs);
    }
    let all: Vec<String> = fields.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(seen, all);
    assert_eq!(json(&out.join("report.json"))["merged_shards"], 4);
}

#[test]
fn a_failed_shard_is_reported_with_its_log_and_resubmission_runs_only_it() {
    let cluster = Cluster::start();
    let d = tempfile::tempdir().unwrap();
    let fields = fields(d.path());
    let dir = d.path().join("fields");
    let out = d.path().join("run");
    let args = [
        "submit",
        "-n",
        "4",
        "-o",
        out.to_str().unwrap(),
        "--input",
        dir.to_str().unwrap(),
        "--wait",
        "--",
        "detect",
        "predict",
        "-c",
        "pipelines/configs/detect.toml",
    ];
    // s13.fits, the second image of shard 1, is corrupt.
    let good = std::fs::read(&fields[2]).unwrap();
    std::fs::write(&fields[2], b"SIMPLE  = this is not a FITS file").unwrap();
    let o = cluster.deepsky(&args, LIMIT);
    let log = out.join("logs/shard-1.log");
    assert_fails(
        &o,
        1,
        &["shard 1/4 failed", log.to_str().unwrap(), "s13.fits"],
    );
    let text = stdout(&o);
    assert!(
        text.contains("shard 1/4: FAILED: status bad-input"),
        "{text}"
    );
    assert!(text.contains("merge: not run"), "{text}");
    assert_eq!(text.matches(": done:").count(), 3, "{text}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("s13.fits"));
    assert!(!out.join("catalog.fits").exists());
    // --status says the same afterwards.
    let o = cluster.deepsky(&["submit", "--status", out.to_str().unwrap()], LIMIT);
    assert_fails(&o, 1, &["shard 1/4 failed", log.to_str().unwrap()]);

    // Fixed and submitted again: only shard 1 runs; the others' outputs are kept.
    let started =
        |k: usize| json(&out.join(format!("shards/{k}/provenance.json")))["started"].clone();
    let before: Vec<_> = [0, 2, 3].iter().map(|&k| started(k)).collect();
    std::fs::write(&fields[2], good).unwrap();
    let o = cluster.deepsky(&args, LIMIT);
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains("submitted shards 1 of 4"), "{text}");
    assert!(text.contains("merge: done"), "{text}");
    let after: Vec<_> = [0, 2, 3].iter().map(|&k| started(k)).collect();
    assert_eq!(before, after, "finished shards were run again");
    let m = json(&out.join("submit.json"));
    assert_eq!(m["submissions"][1]["tasks"], serde_json::json!([1]));

    let single = d.path().join("single");
    single_run(&[dir.to_str().unwrap()], &single);
    assert_same_result(&out, &single);

    // Nothing left to do.
    let o = cluster.deepsky(&args, LIMIT);
    ok(&o);
    assert!(stdout(&o).contains("nothing to submit"), "{}", stdout(&o));
}

#[test]
fn anomaly_scoring_with_a_model_runs_in_shards_and_merges_to_the_single_run() {
    let cluster = Cluster::start();
    let d = tempfile::tempdir().unwrap();
    // The bundled conv autoencoder on the bundled cutouts, trained briefly.
    let cfg = "pipelines/configs/anomaly.toml";
    let png = "output.plots=[\"png\"]";
    let train = d.path().join("train");
    ok(&deepsky(&[
        "anomaly",
        "-c",
        cfg,
        "--set",
        "train.epochs=1",
        "--set",
        png,
        "-o",
        train.to_str().unwrap(),
    ]));
    let model = train.join("model");
    let model = model.to_str().unwrap();
    let step = ["anomaly", "-c", cfg, "--set", png, "--model", model];
    let out = d.path().join("run");
    let mut args = vec![
        "submit",
        "-n",
        "3",
        "-o",
        out.to_str().unwrap(),
        "--wait",
        "--",
    ];
    args.extend(step);
    let o = cluster.deepsky(&args, LIMIT);
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains("submitted shards 0-2 of 3"), "{text}");
    assert_eq!(text.matches(": done: ").count(), 4, "{text}");
    assert!(text.contains("merge: done: 1000 objects in "), "{text}");

    let single = d.path().join("single");
    let mut args = step.to_vec();
    args.extend(["-o", single.to_str().unwrap()]);
    ok(&deepsky(&args));
    assert_eq!(
        std::fs::read(out.join("anomalies.csv")).unwrap(),
        std::fs::read(single.join("anomalies.csv")).unwrap(),
        "anomalies.csv"
    );
    let (rm, rs) = (
        json(&out.join("report.json")),
        json(&single.join("report.json")),
    );
    for k in ["n_objects", "auc", "baseline_auc", "cluster_sizes", "score"] {
        assert_eq!(rm[k], rs[k], "{k}");
    }
    assert_eq!(rm["merged_shards"], 3);
    let prov = json(&out.join("provenance.json"));
    assert_eq!(prov["status"], "success");
    let shards = prov["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    for (k, s) in shards.iter().enumerate() {
        assert_eq!(s["shard"], format!("{k}/3"));
        assert_eq!(s["status"], "success");
    }
}
