//! No input may make config handling panic: arbitrary JSON values, and real recipes with one
//! value mutated at a random place, all go through parse, validate and plan.

use ember_config::{Catalog, known_model, parse_config, resolve_plan};
use proptest::prelude::*;
use serde_json::Value;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "[a-z_.*()\\\\]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "enabled",
            "symmetric",
            "8",
            "attention.self",
            "(",
            "modules",
            "builtin:x"
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop::sample::select(vec![
            "compression_training",
            "weight_quantization",
            "activation_quantization",
            "sparse_pruning",
            "row_pruning",
            "head_pruning",
            "layer_reduction",
            "shared_parameters",
            "different_groups",
            "params",
            "modules",
            "related_modules",
            "target_bits",
            "start_bits",
            "bits",
            "dense_ratio",
            "enabled",
            "teacher_layer",
            "calibration",
            "training",
            "ember",
            "numerics",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn run(text: &str) {
    let catalog = Catalog::builtin_only();
    if let Ok(parsed) = parse_config(text, &catalog) {
        let _ = resolve_plan(&parsed.config, &known_model("minilm-l6").unwrap(), &catalog).map(|p| p.to_string());
    }
}

/// Replaces the value at the `k`-th node (pre-order) of `v` by `new`.
fn mutate(v: &mut Value, k: &mut usize, new: &Value) -> bool {
    if *k == 0 {
        *v = new.clone();
        return true;
    }
    *k -= 1;
    match v {
        Value::Array(items) => items.iter_mut().any(|i| mutate(i, k, new)),
        Value::Object(map) => map.values_mut().any(|i| mutate(i, k, new)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        run(&v.to_string());
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,64}") {
        run(&s);
    }

    #[test]
    fn mutated_recipes_never_panic(which in any::<prop::sample::Index>(), at in 0usize..200, new in arb_json()) {
        // Every recipe in the directory can be drawn, however many there are.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let text = std::fs::read_to_string(which.get(&files)).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let mut k = at;
        mutate(&mut v, &mut k, &new);
        run(&v.to_string());
    }
}
