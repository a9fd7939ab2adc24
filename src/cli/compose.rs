//! `ember compose` / `ember plan`: the main job. Prints the plan, loads the model, attaches the
//! techniques, calibrates, cleans and writes the `.ember` artifact (`--out`), and with `--eval`
//! reports the quality. Whatever cannot run yet (training-time techniques) stops with "not
//! supported yet" before any work.

use std::path::PathBuf;

use crate::Error;
use crate::compose::{ComposeOptions, compose};

#[derive(Debug, Clone, clap::Args)]
pub struct ComposeArgs {
    /// The config file.
    #[arg(long)]
    pub config: PathBuf,
    /// Model: a built-in name (`minilm-l6`, `bert-base` for planning) or an HF model directory
    /// (default: the config's `model.source`).
    #[arg(long)]
    pub model: Option<String>,
    /// Output artifact (default: the config's `export.path`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan as JSON (with --dry-run).
    #[arg(long)]
    pub json: bool,
    /// Evaluate the composed model: fidelity vs fp32 and the quality metrics of `ember eval`.
    #[arg(long)]
    pub eval: bool,
    /// Also write progress events as JSON lines to this file.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Training checkpoint, written every `training.checkpoint_every` steps (default: the
    /// artifact's path with `.ckpt` appended).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue the training run saved in the checkpoint (same config and model).
    #[arg(long)]
    pub resume: bool,
    /// Optimizer steps, for a config that gives none itself (`training.steps` and a DeepSpeed
    /// scheduler's `total_num_steps` come first).
    #[arg(long)]
    pub steps: Option<u64>,
}

pub fn run(args: &ComposeArgs, quiet: bool) -> Result<(), Error> {
    let opts = ComposeOptions {
        config: args.config.clone(),
        model: args.model.clone(),
        out: args.out.clone(),
        dry_run: args.dry_run,
        eval: args.eval,
        quiet,
        events: args.events.clone(),
        checkpoint: args.checkpoint.clone(),
        resume: args.resume,
        steps: args.steps,
    };
    if !quiet && !args.dry_run && !args.json {
        // The plan first, so the user sees what will happen before the work starts.
        let planned = compose(&ComposeOptions {
            dry_run: true,
            events: None,
            ..opts.clone()
        })?;
        print!("{}", planned.plan);
    }
    let outcome = compose(&opts)?;
    if args.json {
        let value = serde_json::json!({ "plan": outcome.plan, "eval": outcome.eval, "compose_seconds": outcome.compose_seconds, "artifact": outcome.artifact });
        println!(
            "{}",
            serde_json::to_string_pretty(if args.dry_run { &value["plan"] } else { &value })
                .map_err(|e| Error::Other(e.to_string()))?
        );
    } else if args.dry_run {
        print!("{}", outcome.plan);
    }
    if !quiet {
        for n in &outcome.notes {
            eprintln!("note: {}", ember_config::error::escape_controls(n));
        }
    }
    for w in &outcome.warnings {
        eprintln!("warning: {}", ember_config::error::escape_controls(w));
    }
    if !args.dry_run && !args.json {
        println!("composed in {:.1} s (attach + calibration)", outcome.compose_seconds);
        if let Some(a) = &outcome.artifact {
            println!(
                "wrote {} ({:.2} MB); on Ember's CPU engine: cos vs fp32 mean {:.4}, min {:.4}; peak memory {:.0} MB",
                a.path.display(),
                a.bytes as f64 / 1e6,
                a.cos_mean,
                a.cos_min,
                a.peak_rss_mb
            );
        }
        if let Some(report) = &outcome.eval {
            print!("{}", report.table());
        }
    }
    Ok(())
}
