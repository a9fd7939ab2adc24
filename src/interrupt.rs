//! Ctrl-C during training: the first one asks the loop to finish its step, write a checkpoint and
//! stop (the run then continues with `--resume`); a second one ends the process at once. Writes
//! are atomic, so even then no half-written checkpoint or artifact is left.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Installs the handler (once per process). Without a terminal's signal support the run simply
/// cannot be interrupted gracefully; training goes on.
pub fn watch() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if REQUESTED.swap(true, Ordering::SeqCst) {
                eprintln!("\ninterrupted again: stopping now (the last checkpoint is kept)");
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again stops at once)");
        });
    });
}

/// Whether an interrupt was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
