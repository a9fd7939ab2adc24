//! Runs Ember's compose pipeline with a technique this crate registers itself.
//!
//! Run: `cargo run --release -p custom_technique` (fetches MiniLM on first use), or pass another
//! config: `cargo run --release -p custom_technique -- my.json`.

use std::path::PathBuf;

use custom_technique::Pow2Rounding;
use ember::compose::{ComposeOptions, compose_with, registry};

fn main() {
    let config = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pow2.json"));
    // Ember's built-ins plus ours: explicit registration, no link-time magic.
    let mut registry = registry();
    registry.register(Pow2Rounding);
    let opts = ComposeOptions {
        config,
        eval: true,
        ..Default::default()
    };
    match compose_with(&registry, &opts) {
        Ok(outcome) => {
            print!("{}", outcome.plan);
            if let Some(report) = outcome.eval {
                print!("{}", report.table());
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    }
}
