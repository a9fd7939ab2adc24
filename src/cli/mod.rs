//! The `ember` command line: flags parsed raw by clap, then handed to one handler per subcommand.
//! Handlers return [`crate::Error`]; `main.rs` prints it once and owns the exit codes.

pub mod bench;
pub mod check;
pub mod compose;
pub mod embed;
pub mod eval;
pub mod inspect;
pub mod schema;

use clap::{Parser, Subcommand};

use crate::Error;

/// Ember: compress BERT-style burn models from a JSON config, into really smaller, faster models.
#[derive(Debug, Parser)]
#[command(name = "ember", version, about, long_about = None)]
pub struct Cli {
    /// Hide progress bars and informational output.
    #[arg(long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config (and its module patterns against the model's inventory). Exit 0 or errors.
    Check(check::CheckArgs),
    /// Print the resolved plan: per module, techniques, params, bytes, bits/weight, kernel (= compose --dry-run).
    Plan(compose::ComposeArgs),
    /// Compose: plan, attach techniques, calibrate or train, clean, and write the artifact.
    Compose(compose::ComposeArgs),
    /// Print the JSON Schema of the config language (the checked-in schemas/ember.schema.json).
    Schema(schema::SchemaArgs),
    /// Embed sentences (one per line) into L2-normalized vectors, as JSON lines.
    Embed(embed::EmbedArgs),
    /// Evaluate a model: fidelity vs fp32 and the quality metrics.
    Eval(eval::EvalArgs),
    /// Benchmark latency, throughput and memory of a model (not a test).
    Bench(bench::BenchArgs),
    /// Print a `.ember` artifact's manifest: per module format, shape, bytes, bits/weight; totals.
    Inspect(inspect::InspectArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Check(args) => check::run(&args, quiet),
        Command::Plan(mut args) => {
            args.dry_run = true;
            compose::run(&args, quiet)
        }
        Command::Compose(args) => compose::run(&args, quiet),
        Command::Schema(args) => schema::run(&args),
        Command::Embed(args) => embed::run(&args, quiet),
        Command::Eval(args) => eval::run(&args, quiet),
        Command::Bench(args) => bench::run(&args, quiet),
        Command::Inspect(args) => inspect::run(&args),
    }
}
