//! `ember check`: validation only. Parses the config, checks it against the schema and the
//! language's rules, and resolves its module patterns against the model's inventory (no weights
//! are loaded). Prints every problem with its JSON pointer.

use std::path::PathBuf;

use crate::Error;
use crate::compose::{inventory_for, load};

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The config file.
    #[arg(long)]
    pub config: PathBuf,
    /// Model whose modules the patterns are checked against (default: the config's `model.source`).
    #[arg(long)]
    pub model: Option<String>,
}

pub fn run(args: &CheckArgs, quiet: bool) -> Result<(), Error> {
    let parsed = load(&args.config)?;
    let source = args.model.clone().unwrap_or_else(|| parsed.config.model.source.clone());
    let inventory = inventory_for(&source)?;
    let plan = ember_config::resolve_plan(&parsed.config, &inventory, &crate::compose::catalog())?;
    if !quiet {
        for n in &parsed.notes {
            eprintln!("note: {}", ember_config::error::escape_controls(n));
        }
        for w in parsed.warnings.iter().chain(&plan.warnings) {
            eprintln!("warning: {}", ember_config::error::escape_controls(w));
        }
        println!(
            "{}: ok ({} of {} modules of {} compressed)",
            args.config.display(),
            plan.modules.iter().filter(|m| !m.techniques.is_empty()).count(),
            plan.modules.len(),
            inventory.model
        );
    }
    Ok(())
}
