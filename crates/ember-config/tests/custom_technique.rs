//! A technique registered by a user crate claims its own key inside `compression_training`;
//! its params are validated against its own schema, and it appears in the plan with DeepSpeed's
//! merge (shared params win).

use ember_config::plan::Params;
use ember_config::{Catalog, CustomTechniqueSpec, SiteKind, known_model, parse_config, resolve_plan};
use schemars::JsonSchema;

#[allow(dead_code)] // the fields exist for their schema
#[derive(JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct LowRankShared {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    schedule_offset: u64,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct LowRankParams {
    /// Rank of the factorization.
    #[schemars(range(min = 1, max = 4096))]
    rank: u32,
}

fn catalog() -> Catalog {
    let mut c = Catalog::builtin_only();
    c.add(CustomTechniqueSpec::new::<LowRankShared, LowRankParams>(
        "low_rank",
        &[SiteKind::Linear],
    ));
    c
}

const CONFIG: &str = r#"{"compression_training": {"low_rank": {
    "shared_parameters": {"enabled": true},
    "different_groups": {"lr1": {"params": {"rank": 64}, "modules": ["intermediate.dense"]}}}}}"#;

#[test]
fn unregistered_key_is_an_unknown_key() {
    let err = parse_config(CONFIG, &Catalog::builtin_only()).unwrap_err().to_string();
    assert!(err.contains("/compression_training: unknown key `low_rank`"), "{err}");
}

#[test]
fn registered_technique_validates_and_plans() {
    let parsed = parse_config(CONFIG, &catalog()).unwrap();
    let plan = resolve_plan(&parsed.config, &known_model("minilm-l6").unwrap(), &catalog()).unwrap();
    let m = plan.module("encoder.layer.4.intermediate.dense").unwrap();
    assert_eq!(m.techniques[0].technique, "low_rank");
    match &m.techniques[0].params {
        Params::Custom(v) => assert_eq!(v["rank"], 64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn registered_technique_params_are_checked_against_its_schema() {
    let bad = CONFIG.replace(r#""rank": 64"#, r#""rank": 0, "rnak": 3"#);
    let err = parse_config(&bad, &catalog()).unwrap_err().to_string();
    assert!(err.contains("/compression_training/low_rank/different_groups/lr1/params/rank: 0 is out of range; allowed: >= 1 and <= 4096"), "{err}");
    assert!(err.contains("unknown key `rnak`; did you mean `rank`?"), "{err}");
}

#[test]
fn registered_technique_site_kinds_are_enforced() {
    let bad = CONFIG.replace("intermediate.dense", "word_embeddings");
    let parsed = parse_config(&bad, &catalog()).unwrap();
    let err = resolve_plan(&parsed.config, &known_model("minilm-l6").unwrap(), &catalog())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("low_rank cannot apply to Embedding `embeddings.word_embeddings`"),
        "{err}"
    );
}
