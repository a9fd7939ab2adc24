//! `ember inspect`: the manifest of a `.ember` artifact as a table (per module: format, shape,
//! bytes, bits per weight, activation quantization, kernel family) with the totals. The whole
//! file is validated first, by the same check every loader runs: an artifact inspect accepts is
//! one the engines load.

use std::path::PathBuf;

use crate::Error;

/// Arguments of `ember inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The artifact.
    pub artifact: PathBuf,
    /// Print the manifest as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ember inspect`.
pub fn run(args: &InspectArgs) -> Result<(), Error> {
    ember_runtime::artifact::read(&args.artifact)?;
    let manifest = ember_runtime::artifact::read_manifest(&args.artifact)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&manifest).map_err(|e| Error::Other(e.to_string()))?
        );
    } else {
        let size = std::fs::metadata(&args.artifact)
            .map_err(|e| Error::io(&args.artifact, e))?
            .len();
        println!("{} ({:.2} MB on disk)", args.artifact.display(), size as f64 / 1e6);
        print!("{}", manifest.table());
    }
    Ok(())
}
