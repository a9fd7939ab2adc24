//! The main job: compose all-MiniLM-L6-v2 with a recipe, calibrate if the recipe needs it, and
//! evaluate the composed model against fp32 (fidelity on 64 reference sentences, Lee, WordSim,
//! SimLex, polarity probe). Fetches the model and the evaluation data on first use.
//!
//! Run: `cargo run --release --example compose` (default recipe: configs/zeroquant-w8a8.json), or
//! `cargo run --release --example compose -- configs/w4-g64-a8.json`.

use std::path::PathBuf;

use ember::compose::{ComposeOptions, compose};

fn main() {
    let config = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/zeroquant-w8a8.json"));
    let plan_only = ComposeOptions {
        config: config.clone(),
        dry_run: true,
        ..Default::default()
    };
    let run = ComposeOptions {
        config,
        eval: true,
        ..Default::default()
    };
    let result = compose(&plan_only).and_then(|planned| {
        print!("{}", planned.plan);
        compose(&run)
    });
    match result {
        Ok(outcome) => {
            for w in &outcome.warnings {
                eprintln!("warning: {w}");
            }
            println!("composed in {:.1} s (attach + calibration)", outcome.compose_seconds);
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
