//! The main job: compose all-MiniLM-L6-v2 with a recipe, calibrate if the recipe needs it, train
//! it if the recipe has a `training` section (QAT + distillation, e.g. configs/w4-g64-a8-kd.json), clean
//! it into packed low-bit storage, write the `.ember` artifact, and evaluate the artifact on
//! Ember's CPU engine against fp32 (fidelity on 64 reference sentences, Lee, WordSim, SimLex,
//! polarity probe). Fetches the model and the evaluation data on first use.
//!
//! Run: `cargo run --release --example compose` (default recipe: configs/zeroquant-w8a8.json,
//! artifact: target/ember/<recipe>.ember), or
//! `cargo run --release --example compose -- configs/w4-g64-a8.json [out.ember]`.

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
    let out = std::env::args().nth(2).map(PathBuf::from).unwrap_or_else(|| {
        let stem = config
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/ember/{stem}.ember"))
    });
    if let Some(dir) = out.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("{}: {e}", dir.display());
        std::process::exit(4);
    }
    let run = ComposeOptions {
        config,
        eval: true,
        out: Some(out),
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
            if let Some(a) = &outcome.artifact {
                println!(
                    "wrote {} ({:.2} MB, fp32 safetensors: 90.9 MB); run by Ember's CPU engine below",
                    a.path.display(),
                    a.bytes as f64 / 1e6
                );
                println!(
                    "next: ember inspect {0} / ember bench --model {0} --peer ort",
                    a.path.display()
                );
            }
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
