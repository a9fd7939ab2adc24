//! `ember compose` / `ember plan`: the main job. Today it parses, validates and resolves the plan
//! (printing it); the composer that attaches and runs techniques lands in a later issue, so a real
//! (non-dry) run stops with "not supported yet" naming every technique it cannot apply yet.

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
    /// Also write progress events as JSON lines to this file.
    #[arg(long)]
    pub events: Option<PathBuf>,
}

pub fn run(args: &ComposeArgs, quiet: bool) -> Result<(), Error> {
    let opts = ComposeOptions {
        config: args.config.clone(),
        model: args.model.clone(),
        out: args.out.clone(),
        dry_run: args.dry_run,
        quiet,
        events: args.events.clone(),
    };
    let outcome = compose(&opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.plan).map_err(|e| Error::Other(e.to_string()))?);
    } else if !quiet || args.dry_run {
        print!("{}", outcome.plan);
    }
    Ok(())
}
