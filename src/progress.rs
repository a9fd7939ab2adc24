//! What users see of long work: progress bars (hidden under `--quiet`), shared by the library
//! pipeline and the CLI.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar over `len` items, hidden when quiet (or when stderr is not a terminal).
pub fn progress_bar(len: u64, message: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed}, ETA {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}
