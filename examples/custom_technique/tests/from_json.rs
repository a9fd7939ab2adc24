//! The user technique end to end without downloads: configured from JSON under its own key,
//! validated against its own schema, planned, and composed onto a (random-weight) BERT through
//! Ember's composer, where it really rewrites the weights the forward pass uses.

use burn::tensor::Device;
use custom_technique::Pow2Rounding;
use ember_core::{Composer, CompressibleModel, Registry};
use ember_models::BertConfig;

fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.register(Pow2Rounding);
    r
}

const CONFIG: &str = r#"{"compression_training": {"pow2_rounding": {
    "shared_parameters": {"enabled": true},
    "different_groups": {"p1": {"params": {"levels": 4}, "modules": ["intermediate.dense"]}}}}}"#;

#[test]
fn the_shipped_example_config_validates_with_the_registered_technique() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pow2.json")).unwrap();
    let parsed = ember_config::parse_config(&text, &registry().catalog()).unwrap();
    let plan = ember_config::resolve_plan(
        &parsed.config,
        &ember_config::known_model("minilm-l6").unwrap(),
        &registry().catalog(),
    )
    .unwrap();
    assert_eq!(
        plan.module("encoder.layer.2.output.dense").unwrap().techniques[0].technique,
        "pow2_rounding"
    );
    // Without the registration the key is an error, as any typo would be.
    assert!(ember_config::parse_config(&text, &Registry::with_builtins().catalog()).is_err());
}

#[test]
fn bad_params_are_reported_against_the_techniques_own_schema() {
    let bad = CONFIG.replace(r#""levels": 4"#, r#""levels": 40"#);
    let err = ember_config::parse_config(&bad, &registry().catalog())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "error: /compression_training/pow2_rounding/different_groups/p1/params/levels: 40 is out of range; allowed: >= 1 and <= 16"
    );
}

#[test]
fn compose_applies_the_rounding_in_the_forward_pass() {
    let device = Device::flex();
    let bert = BertConfig::uniform("tiny", 50, 16, 2, 2, 32, 16).init_random(&device);
    let config = ember_config::parse_config(CONFIG, &registry().catalog())
        .unwrap()
        .config;
    let mut composed = Composer::new(registry()).compose(bert, &config).unwrap();
    let slots = composed
        .model
        .linear_slots("encoder.layer.1.intermediate.dense")
        .unwrap();
    assert_eq!(slots.transforms.len(), 1);
    let layer = composed.model.linear_mut("encoder.layer.1.intermediate.dense").unwrap();
    let used = layer
        .slots
        .weight(layer.weight.val())
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    // Every row holds at most 4 distinct magnitudes (plus zero), each max·2^-k.
    for row in used.chunks(16) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        for v in row.iter().filter(|v| **v != 0.0) {
            let k = (max / v.abs()).log2();
            assert!(
                (k - k.round()).abs() < 1e-5 && k.round() <= 3.0,
                "{v} is not {max}·2^-k"
            );
        }
    }
    // Untouched layers keep their weights.
    assert!(
        composed
            .model
            .linear_slots("encoder.layer.1.output.dense")
            .unwrap()
            .is_empty()
    );
}
