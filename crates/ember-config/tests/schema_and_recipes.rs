//! The checked-in schema is current, and every recipe in `configs/` carries `"$schema"`, has a
//! description, validates, and plans on MiniLM.

mod common;

use common::repo_root;
use ember_config::{Catalog, config_schema_text, known_model, parse_config, resolve_plan};

#[test]
fn checked_in_schema_is_current() {
    let path = repo_root().join("schemas/ember.schema.json");
    let generated = config_schema_text();
    if std::env::var_os("EMBER_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schemas/ember.schema.json is stale; regenerate it with `cargo run -- schema --output schemas/ember.schema.json`"
    );
}

#[test]
fn every_recipe_carries_schema_validates_and_plans_on_minilm() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo_root().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        n += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["$schema"], "../schemas/ember.schema.json", "{}", path.display());
        assert!(
            value["description"].as_str().is_some_and(|d| d.len() > 20),
            "{} has no one-line description",
            path.display()
        );
        let parsed =
            parse_config(&text, &Catalog::builtin_only()).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        let inventory = known_model(&parsed.config.model.source).unwrap();
        let plan = resolve_plan(&parsed.config, &inventory, &Catalog::builtin_only())
            .unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        assert!(
            plan.modules.iter().any(|m| !m.techniques.is_empty()) || plan.layers.is_some(),
            "{} compresses nothing",
            path.display()
        );
    }
    assert!(n >= 11, "the issue lists at least 11 recipes, found {n}");
}

#[test]
fn schema_rejects_what_validation_rejects_for_editors() {
    // The schema editors see carries the range the walker enforces: read target_bits' bounds from
    // the schema, then every value just inside is accepted and every value just outside is
    // rejected with the pointer of the key.
    let schema: serde_json::Value = serde_json::from_str(&config_schema_text()).unwrap();
    let bits = &schema["$defs"]["WeightQuantParams"]["properties"]["target_bits"];
    let (lo, hi) = (bits["minimum"].as_u64().unwrap(), bits["maximum"].as_u64().unwrap());
    assert_eq!((lo, hi), (1, 8), "{bits}");
    let config = |target_bits: u64| {
        format!(
            r#"{{"compression_training": {{"weight_quantization": {{
                "shared_parameters": {{"enabled": true, "quantize_weight_in_forward": true}},
                "different_groups": {{"g": {{"params": {{"start_bits": 8, "target_bits": {target_bits}}},
                                             "modules": ["intermediate"]}}}}}}}}}}"#
        )
    };
    let pointer = "/compression_training/weight_quantization/different_groups/g/params/target_bits";
    for ok in lo..=hi {
        if let Err(e) = parse_config(&config(ok), &Catalog::builtin_only()) {
            assert!(!e.to_string().contains(pointer), "target_bits {ok}: {e}");
        }
    }
    for bad in [lo - 1, hi + 1] {
        let e = parse_config(&config(bad), &Catalog::builtin_only()).unwrap_err();
        assert!(
            e.to_string().contains(&format!("{pointer}: {bad} is out of range")),
            "{e}"
        );
    }
}
