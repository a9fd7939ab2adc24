//! The main entry: compose MiniLM with a recipe and print the plan (and, as Ember grows, calibrate,
//! clean, write the artifact and evaluate it).
//!
//! Run: `cargo run --release --example compose` (default recipe: configs/zeroquant-w8a8.json), or
//! `cargo run --release --example compose -- configs/w4-g64-a8.json`.

use std::path::PathBuf;

fn main() {
    let config = std::env::args().nth(1).unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/configs/zeroquant-w8a8.json").to_string());
    let opts = ember::compose::ComposeOptions { config: PathBuf::from(config), dry_run: true, ..Default::default() };
    match ember::compose::compose(&opts) {
        Ok(outcome) => {
            print!("{}", outcome.plan);
            for w in &outcome.warnings {
                eprintln!("warning: {w}");
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    }
}
