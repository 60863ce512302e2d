//! Ctrl-C and SIGTERM: set a flag that long loops poll, so that a run stops between two units
//! of work, keeps what it has committed and exits with code 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crate::error::{Result, RunError};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Install the handler (once per process; later calls do nothing). A second Ctrl-C while the
/// first is being honoured exits at once with 130.
pub fn install_handler() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "deepsky: interrupted, stopping after the current step (Ctrl-C again to abort)"
            );
        });
    });
}

/// Has the user asked the run to stop?
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(RunError::Interrupted)` once the user has asked the run to stop.
pub fn check() -> Result<()> {
    if interrupted() {
        Err(RunError::Interrupted)
    } else {
        Ok(())
    }
}

/// Simulate a Ctrl-C (for tests, and for `DEEPSKY_STOP_AFTER`-style fault injection).
pub fn request_stop() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}
