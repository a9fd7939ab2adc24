//! `ember eval`: the quality figures of a model (fidelity vs fp32, Lee, WordSim, SimLex, polarity).

use ember_models::assets::Assets;

use crate::Error;
use crate::eval::{EvalData, evaluate};
use crate::runner::{DeviceKind, Runner};

/// Arguments of `ember eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Model: a known name (`minilm-l6`, fetched on first use), an HF model directory, or a
    /// `.ember` artifact.
    #[arg(long)]
    pub model: String,
    /// Where to run: `cpu` (Ember's engine for artifacts, burn-flex otherwise), `flex`, `wgpu`, `cuda`.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Print one JSON object (`cos_mean, cos_min, lee_pearson, lee_spearman, wordsim_spearman,
    /// simlex_spearman, polarity_probe_acc`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ember eval`.
pub fn run(args: &EvalArgs, quiet: bool) -> Result<(), Error> {
    let assets = Assets::from_env()?.quiet(quiet);
    let model = Runner::open(&args.model, args.device, None, &assets)?;
    let data = EvalData::load(&assets)?;
    let (teacher, independent) = model.teacher(&assets)?;
    if !independent && !quiet {
        eprintln!(
            "note: no independent fp32 reference for `{}`; cosine is measured against its own embeddings",
            model.name
        );
    }
    let bar = crate::progress::progress_bar(0, "evaluating", quiet);
    let report = evaluate(&model, &teacher, &data, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Error::Other(e.to_string()))?
        );
    } else {
        println!("{} ({})", model.name, model.engine_name);
        print!("{}", report.table());
    }
    Ok(())
}
