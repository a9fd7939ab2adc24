//! Shared helpers of the config tests: the repository root, and `diagnose`, which runs a config
//! through everything `ember check` does (parse, validate, resolve against the model's inventory)
//! and returns the error text, or `ok`.

use std::path::PathBuf;

use ember_config::{Catalog, known_model, parse_config, resolve_plan};

#[allow(dead_code)]
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[allow(dead_code)] // not every test file uses every helper
pub fn diagnose(text: &str) -> String {
    let catalog = Catalog::builtin_only();
    let parsed = match parse_config(text, &catalog) {
        Ok(p) => p,
        Err(e) => return e.to_string(),
    };
    let inventory = known_model(&parsed.config.model.source).expect("bad-config cases use a known model");
    match resolve_plan(&parsed.config, &inventory, &catalog) {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}
