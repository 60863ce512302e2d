//! Progress on long work: an indicatif bar with rate and ETA on a terminal; plain log lines
//! (at most one per 10 % or 30 s) when stderr is not a terminal, so CI logs and Slurm output
//! files stay readable; nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silence progress output for this process (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::SeqCst);
}

/// Is `--quiet` in effect?
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::SeqCst)
}

enum Sink {
    Bar(ProgressBar),
    Lines { last: Mutex<(Instant, u64)> },
    Silent,
}

/// Progress of one named piece of work of known length.
pub struct Progress {
    sink: Sink,
    label: String,
    unit: String,
    total: u64,
    done: AtomicU64,
    started: Instant,
}

impl Progress {
    /// Start reporting progress on `total` units of `unit` (e.g. "epochs", "tiles").
    pub fn new(label: &str, total: u64, unit: &str) -> Progress {
        let sink = if is_quiet() {
            Sink::Silent
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>12} [{bar:32}] {pos}/{len} {unit} {per_sec} ETA {eta}",
                )
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("unit", {
                    let unit = unit.to_string();
                    move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&unit);
                    }
                }),
            );
            bar.set_message(label.to_string());
            Sink::Bar(bar)
        } else {
            Sink::Lines {
                last: Mutex::new((Instant::now(), 0)),
            }
        };
        Progress {
            sink,
            label: label.into(),
            unit: unit.into(),
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// `n` more units are done.
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::SeqCst) + n;
        match &self.sink {
            Sink::Bar(bar) => bar.inc(n),
            Sink::Lines { last } => {
                let mut last = last.lock().expect("progress lock");
                let step = (self.total / 10).max(1);
                if done >= last.1 + step
                    || last.0.elapsed() >= Duration::from_secs(30)
                    || done == self.total
                {
                    *last = (Instant::now(), done);
                    let secs = self.started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!(
                        "{}: {done}/{} {} ({:.1} {}/s)",
                        self.label,
                        self.total,
                        self.unit,
                        done as f64 / secs,
                        self.unit
                    );
                }
            }
            Sink::Silent => {}
        }
    }

    /// Show a short status next to the bar (e.g. the current loss); logged at debug level
    /// otherwise.
    pub fn message(&self, text: &str) {
        match &self.sink {
            Sink::Bar(bar) => bar.set_message(format!("{} {text}", self.label)),
            _ => tracing::debug!("{}: {text}", self.label),
        }
    }

    /// Advance to `position` steps done (no-op when already there): for a loop that reports
    /// its step count, e.g. a training run resumed half-way.
    pub fn advance_to(&self, position: u64) {
        let done = self.done();
        if position > done {
            self.inc(position - done);
        }
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Close the bar.
    pub fn finish(&self) {
        if let Sink::Bar(bar) = &self.sink {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Install the tracing subscriber: warnings by default, `-v` info, `-vv` debug; `--quiet`
/// keeps warnings and errors only. `DEEPSKY_LOG` (an env-filter) overrides all of these.
pub fn init_logging(verbose: u8, quiet: bool) {
    set_quiet(quiet);
    let level = match (quiet, verbose) {
        (true, _) | (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEEPSKY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal: in a log file or a CI capture the escape codes are noise, and
    // a warning that quotes file content must not carry escape sequences anywhere.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
}
