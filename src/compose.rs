//! The compose pipeline as a library call (the `compose` example and `ember compose` both use it):
//! config → validated config → plan against the model's inventory → (composer: later issue).

use std::path::{Path, PathBuf};

use ember_config::{Catalog, Inventory, ParsedConfig, Plan};

use crate::Error;
use crate::events::Events;

/// What to compose.
#[derive(Debug, Clone, Default)]
pub struct ComposeOptions {
    pub config: PathBuf,
    /// Overrides the config's `model.source`.
    pub model: Option<String>,
    /// Overrides the config's `export.path`.
    pub out: Option<PathBuf>,
    /// Stop after printing the plan.
    pub dry_run: bool,
    pub quiet: bool,
    /// JSON-lines event log.
    pub events: Option<PathBuf>,
}

/// What a compose run produced.
#[derive(Debug, Clone)]
pub struct ComposeOutcome {
    pub plan: Plan,
    pub warnings: Vec<String>,
}

/// The custom techniques known to this build. User crates extend the registry in code; the CLI
/// knows Ember's built-ins only.
pub fn catalog() -> Catalog {
    Catalog::builtin_only()
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<ParsedConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(ember_config::parse_config(&text, &catalog())?)
}

/// The module inventory of a model given by name or HF directory, without loading weights.
pub fn inventory_for(source: &str) -> Result<Inventory, Error> {
    if let Some(inv) = ember_config::known_model(source) {
        return Ok(inv);
    }
    let dir = Path::new(source);
    let config = dir.join("config.json");
    if !dir.is_dir() {
        return Err(Error::Other(format!(
            "unknown model `{source}`: use a built-in name (minilm-l6, minilm-l3, bert-base) or a directory with an HF config.json"
        )));
    }
    let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| source.to_string());
    ember_config::bert_from_hf_config(&name, &text).map_err(|e| Error::Other(format!("{}: {e}", config.display())))
}

/// Runs the pipeline as far as this version of Ember goes.
pub fn compose(opts: &ComposeOptions) -> Result<ComposeOutcome, Error> {
    let mut events = Events::open(opts.events.as_deref())?;
    let parsed = load(&opts.config)?;
    let source = opts.model.clone().unwrap_or_else(|| parsed.config.model.source.clone());
    let inventory = inventory_for(&source)?;
    let plan = ember_config::resolve_plan(&parsed.config, &inventory, &catalog())?;
    let mut warnings = parsed.warnings.clone();
    warnings.extend(plan.warnings.iter().cloned());
    events.emit("plan", &serde_json::json!({ "model": plan.model, "bytes_before": plan.bytes_before(), "bytes_after": plan.bytes_after(), "techniques": plan.techniques() }))?;
    if !opts.dry_run {
        let missing = plan.techniques();
        let what = if missing.is_empty() { "composing a model (no technique is enabled)".to_string() } else { missing.join(", ") };
        let message = format!("{what}: the composer that attaches techniques to a loaded model is not built yet; `--dry-run` prints the plan");
        events.emit("error", &serde_json::json!({ "not_supported": message }))?;
        return Err(Error::NotSupported(message));
    }
    Ok(ComposeOutcome { plan, warnings })
}
