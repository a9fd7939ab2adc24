//! Configs are user input with limits: size, module patterns, and how many errors are printed.

use ember_config::{Catalog, MAX_CONFIG_BYTES, known_model, parse_config, resolve_plan};

fn config(patterns: &[String]) -> String {
    let list = serde_json::to_string(patterns).unwrap();
    format!(
        r#"{{"compression_training": {{"weight_quantization": {{
            "shared_parameters": {{"enabled": true, "quantize_weight_in_forward": true}},
            "different_groups": {{"g": {{"params": {{"start_bits": 8, "target_bits": 8}}, "modules": {list}}}}}}}}}}}"#
    )
}

#[test]
fn ten_thousand_patterns_plan_and_one_more_is_refused() {
    let ok: Vec<String> = (0..10_000)
        .map(|i| format!("layer\\.{}\\.intermediate", i % 6))
        .collect();
    let parsed = parse_config(&config(&ok), &Catalog::builtin_only()).unwrap();
    let plan = resolve_plan(
        &parsed.config,
        &known_model("minilm-l6").unwrap(),
        &Catalog::builtin_only(),
    )
    .unwrap();
    assert_eq!(plan.modules.iter().filter(|m| m.weight_quant().is_some()).count(), 6);
    let mut too_many = ok;
    too_many.push("intermediate".into());
    let e = parse_config(&config(&too_many), &Catalog::builtin_only()).unwrap_err();
    assert!(e.to_string().contains("more than 10000 module patterns"), "{e}");
}

#[test]
fn many_errors_print_a_screenful_and_a_count() {
    // 100 patterns that match nothing: 100 errors.
    let bad: Vec<String> = (0..100).map(|i| format!("no_such_module_{i}")).collect();
    let parsed = parse_config(&config(&bad), &Catalog::builtin_only()).unwrap();
    let e = resolve_plan(
        &parsed.config,
        &known_model("minilm-l6").unwrap(),
        &Catalog::builtin_only(),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 100);
    let text = e.to_string();
    assert_eq!(text.lines().filter(|l| l.starts_with("error: ")).count(), 41, "{text}");
    assert!(
        text.ends_with("… and 60 more errors (fix the ones above first)"),
        "{text}"
    );
}

#[test]
fn an_oversized_config_is_refused_before_parsing() {
    let big = format!(r#"{{"description": "{}"}}"#, "x".repeat(MAX_CONFIG_BYTES as usize));
    let e = parse_config(&big, &Catalog::builtin_only()).unwrap_err();
    assert!(e.to_string().contains("configs of at most"), "{e}");
}
