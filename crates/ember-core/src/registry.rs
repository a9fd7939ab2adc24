//! The registry: config keys → techniques. `Registry::with_builtins()` holds Ember's; a user crate
//! calls [`Registry::register`] with its own (explicit registration, no link-time magic).

use std::sync::Arc;

use ember_config::Catalog;
use ember_config::techniques::{CHANNEL_PRUNING, HEAD_PRUNING, ROW_PRUNING, SPARSE_PRUNING};

use crate::builtin::{ActivationQuantization, NotYet, WeightQuantization};
use crate::technique::Technique;

/// Techniques by config key.
#[derive(Clone, Default)]
pub struct Registry {
    techniques: Vec<Arc<dyn Technique>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.techniques.iter().map(|t| t.key())).finish()
    }
}

const PRUNING: &str = "pruning masks (and slicing what they remove) are not built yet";

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Ember's built-in techniques.
    pub fn with_builtins() -> Registry {
        let mut r = Registry::new();
        r.register(WeightQuantization);
        r.register(ActivationQuantization);
        for facts in [SPARSE_PRUNING, ROW_PRUNING, HEAD_PRUNING] {
            r.register(NotYet { facts, why: PRUNING });
        }
        r.register(NotYet {
            facts: CHANNEL_PRUNING,
            why: "Ember's models have no Conv2d sites yet",
        });
        r
    }

    /// Adds (or replaces) the technique under its key.
    pub fn register<T: Technique + 'static>(&mut self, technique: T) -> &mut Registry {
        self.techniques.retain(|t| t.key() != technique.key());
        self.techniques.push(Arc::new(technique));
        self
    }

    /// The technique registered under `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<dyn Technique>> {
        self.techniques.iter().find(|t| t.key() == key)
    }

    /// The config-side catalog of user techniques (their keys and schemas).
    pub fn catalog(&self) -> Catalog {
        let mut c = Catalog::builtin_only();
        for spec in self.techniques.iter().filter_map(|t| t.config_spec()) {
            c.add(spec);
        }
        c
    }
}
