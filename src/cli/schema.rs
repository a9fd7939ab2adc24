//! `ember schema`: prints (or writes) the JSON Schema generated from the config types. The
//! checked-in `schemas/ember.schema.json` is this output; a test fails when it is stale.

use std::path::PathBuf;

use crate::Error;

#[derive(Debug, Clone, clap::Args)]
pub struct SchemaArgs {
    /// Write to this file (atomically) instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub fn run(args: &SchemaArgs) -> Result<(), Error> {
    let text = ember_config::config_schema_text();
    match &args.output {
        None => {
            print!("{text}");
            Ok(())
        }
        Some(path) => crate::fsutil::write_atomic(path, text.as_bytes()),
    }
}
