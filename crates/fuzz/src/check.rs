//! Run a reader over one file and judge the outcome against the criteria every deepsky reader
//! must meet: exit 0 with everything the undamaged original had, or exit 2 with one line that
//! names the file — never a signal, a panic, a hang or an unbounded allocation.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How a reader treated one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Exit 0, and every HDU/dataset of the original was listed with its size.
    Complete,
    /// Exit 0 with every HDU/dataset of the original, but one has a different size: a
    /// damaged size card that still describes a consistent file (no reader can tell).
    ReadAsWritten,
    /// Exit 0 with fewer HDUs/datasets than the original, and a warning naming the file that
    /// it may have been cut short (what astropy does for a file that ends inside padding).
    WarnedPartialRead,
    /// Exit 2 with one line `deepsky: error: FILE: …`.
    Refused,
    /// Exit 0 but HDUs/datasets of the original are missing: silent data loss.
    SilentPartialRead,
    /// Exit 2, but the error does not name the file or is not one line.
    UnclearError,
    /// A Rust panic (exit 101 or `panicked at` on stderr).
    Panic,
    /// Killed by a signal (SIGSEGV, SIGFPE, SIGABRT on allocation failure under the limit, …).
    Signal,
    /// Still running at the timeout.
    Hang,
    /// Any other exit status.
    OtherExit,
}

impl Verdict {
    /// Every verdict, in report order.
    pub const ALL: [Verdict; 10] = [
        Verdict::Complete,
        Verdict::ReadAsWritten,
        Verdict::WarnedPartialRead,
        Verdict::Refused,
        Verdict::SilentPartialRead,
        Verdict::UnclearError,
        Verdict::Panic,
        Verdict::Signal,
        Verdict::Hang,
        Verdict::OtherExit,
    ];

    /// Whether this outcome meets the criteria.
    pub fn is_acceptable(self) -> bool {
        matches!(
            self,
            Verdict::Complete
                | Verdict::ReadAsWritten
                | Verdict::WarnedPartialRead
                | Verdict::Refused
        )
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Complete => "complete",
            Verdict::ReadAsWritten => "read as written",
            Verdict::WarnedPartialRead => "partial, with a warning",
            Verdict::Refused => "refused, one line naming the file",
            Verdict::SilentPartialRead => "silent partial read",
            Verdict::UnclearError => "unclear error",
            Verdict::Panic => "panic",
            Verdict::Signal => "signal",
            Verdict::Hang => "hang",
            Verdict::OtherExit => "other exit status",
        }
    }
}

/// What one HDU or dataset looked like to the reader: its kind and number of elements.
pub type Item = (String, u64);

/// The outcome of one reader run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Exit code, if the process exited.
    pub code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Whether it was killed at the timeout.
    pub timed_out: bool,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Its standard error.
    pub stderr: String,
    /// The items of `inspect --json` output (empty when it did not exit 0 or is not JSON).
    #[serde(skip)]
    pub items: Option<Vec<Item>>,
}

/// Limits for one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Kill the reader after this long: a hang.
    pub timeout: Duration,
    /// Address-space limit (RLIMIT_AS) in bytes: allocating what a damaged header claims
    /// fails instead of swapping the machine.
    pub memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            memory_bytes: 4 << 30,
        }
    }
}

/// Run `program args…` with every `{}` in `args` replaced by `file`.
pub fn run_reader(
    program: &Path,
    args: &[String],
    file: &Path,
    limits: Limits,
) -> std::io::Result<Run> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{}", &file.to_string_lossy()))
        .collect();
    let mut cmd = Command::new(program);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // One worker: a corpus run is many small processes.
        .env("DEEPSKY_THREADS", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("RUST_BACKTRACE");
    let limit = limits.memory_bytes as libc::rlim_t;
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limits.timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let seconds = started.elapsed().as_secs_f64();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let items = if status.code() == Some(0) {
        inspect_items(&stdout)
    } else {
        None
    };
    Ok(Run {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        seconds,
        stderr,
        items,
    })
}

/// The items of an `inspect --json` document: per HDU/dataset its kind and element count
/// (shape product, or rows × columns for tables).
pub fn inspect_items(stdout: &[u8]) -> Option<Vec<Item>> {
    let doc: serde_json::Value = serde_json::from_slice(stdout).ok()?;
    let items = doc.get("items")?.as_array()?;
    Some(
        items
            .iter()
            .map(|it| {
                let kind = it
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or("?")
                    .to_string();
                let size = if let Some(shape) = it.get("shape").and_then(|s| s.as_array()) {
                    shape.iter().map(|d| d.as_u64().unwrap_or(0)).product()
                } else if let Some(rows) = it.get("rows").and_then(|r| r.as_u64()) {
                    let cols = it
                        .get("columns")
                        .and_then(|c| c.as_array())
                        .map_or(1, |c| c.len());
                    rows * cols.max(1) as u64
                } else {
                    0
                };
                (kind, size)
            })
            .collect(),
    )
}

/// Judge a run of a damaged file against the run of its undamaged original (`None` when the
/// original has none, e.g. random gzip streams). `valid_shorter_file`: the damage left a valid
/// file with fewer HDUs, so reading fewer is reading what is there.
pub fn judge(
    run: &Run,
    file: &Path,
    original: Option<&[Item]>,
    valid_shorter_file: bool,
) -> Verdict {
    if run.timed_out {
        return Verdict::Hang;
    }
    if run.stderr.contains("panicked at") || run.code == Some(101) {
        return Verdict::Panic;
    }
    if run.signal.is_some() {
        return Verdict::Signal;
    }
    match run.code {
        Some(0) => {
            let (Some(orig), Some(items)) = (original, run.items.as_deref()) else {
                return Verdict::Complete;
            };
            if items.len() < orig.len() {
                if valid_shorter_file {
                    Verdict::ReadAsWritten
                } else if warns_about(&run.stderr, file) {
                    Verdict::WarnedPartialRead
                } else {
                    Verdict::SilentPartialRead
                }
            } else if items.iter().zip(orig).any(|(a, b)| a != b) {
                Verdict::ReadAsWritten
            } else {
                Verdict::Complete
            }
        }
        Some(2) => {
            if is_one_line_naming(&run.stderr, file) {
                Verdict::Refused
            } else {
                Verdict::UnclearError
            }
        }
        _ => Verdict::OtherExit,
    }
}

/// The error is one `PROGRAM: error:` line, and it names the file. Warnings before it
/// are allowed (astropy warns too).
fn is_one_line_naming(stderr: &str, file: &Path) -> bool {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_warning(l))
        .collect();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    errors.len() == 1 && errors[0].contains("error:") && errors[0].contains(&name)
}

fn warns_about(stderr: &str, file: &Path) -> bool {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    stderr.lines().any(|l| is_warning(l) && l.contains(&name))
}

fn is_warning(line: &str) -> bool {
    line.contains("WARN") || line.contains(": warning:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: Option<i32>, stderr: &str, items: Option<Vec<Item>>) -> Run {
        Run {
            code,
            signal: None,
            timed_out: false,
            seconds: 0.0,
            stderr: stderr.into(),
            items,
        }
    }

    #[test]
    fn verdicts_follow_the_criteria() {
        let f = Path::new("/tmp/x.fits");
        let orig = vec![("image".to_string(), 100), ("table".to_string(), 30)];
        assert_eq!(
            judge(&run(Some(0), "", Some(orig.clone())), f, Some(&orig), false),
            Verdict::Complete
        );
        assert_eq!(
            judge(
                &run(Some(0), "", Some(orig[..1].to_vec())),
                f,
                Some(&orig),
                false
            ),
            Verdict::SilentPartialRead
        );
        let other = vec![("image".to_string(), 100), ("table".to_string(), 10)];
        assert_eq!(
            judge(&run(Some(0), "", Some(other)), f, Some(&orig), false),
            Verdict::ReadAsWritten
        );
        let fewer = Some(orig[..1].to_vec());
        assert_eq!(
            judge(&run(Some(0), "", fewer.clone()), f, Some(&orig), true),
            Verdict::ReadAsWritten
        );
        let warned = "WARN deepsky_io: x.fits: the file ends 1 bytes short\n";
        assert_eq!(
            judge(&run(Some(0), warned, fewer), f, Some(&orig), false),
            Verdict::WarnedPartialRead
        );
        assert_eq!(
            judge(
                &run(Some(2), "deepsky: error: x.fits: truncated\n", None),
                f,
                Some(&orig),
                false
            ),
            Verdict::Refused
        );
        assert_eq!(
            judge(
                &run(Some(2), "deepsky: error: truncated\n", None),
                f,
                Some(&orig),
                false
            ),
            Verdict::UnclearError
        );
        assert_eq!(
            judge(
                &run(Some(2), "deepsky: x.fits is bad\n", None),
                f,
                Some(&orig),
                false
            ),
            Verdict::UnclearError
        );
        assert_eq!(
            judge(
                &run(Some(2), "deepsky: error: x.fits: a\nsecond line\n", None),
                f,
                Some(&orig),
                false
            ),
            Verdict::UnclearError
        );
        assert_eq!(
            judge(
                &run(Some(101), "thread 'main' panicked at", None),
                f,
                None,
                false
            ),
            Verdict::Panic
        );
        assert_eq!(
            judge(&run(Some(1), "", None), f, None, false),
            Verdict::OtherExit
        );
    }

    #[test]
    fn a_signal_and_a_hang_are_seen() {
        let sh = Path::new("/bin/sh");
        let killed = run_reader(
            sh,
            &["-c".into(), "kill -FPE $$".into()],
            Path::new("x"),
            Limits::default(),
        )
        .unwrap();
        assert_eq!(killed.signal, Some(libc::SIGFPE));
        assert_eq!(judge(&killed, Path::new("x"), None, false), Verdict::Signal);
        let limits = Limits {
            timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let slow = run_reader(
            sh,
            &["-c".into(), "exec sleep 5".into()],
            Path::new("x"),
            limits,
        )
        .unwrap();
        assert_eq!(judge(&slow, Path::new("x"), None, false), Verdict::Hang);
        assert!(slow.seconds < 4.0);
    }
}
