//! Ember's quantizers against golden outputs computed independently with numpy float32
//! (tests/data/golden/numerics.json, made by scripts/golden_numerics.py): DeepSpeed numerics
//! transcribed from DeepSpeed's own code must match bit for bit, and so must Ember numerics.
//! The weight includes an all-zero row and a constant row.
//! Run `cargo test -p ember-numerics` after changing a quantizer; regenerate only when the
//! definition itself changes (DESIGN §5), and say so.

use ember_numerics::{GroupLayout, Numerics, Scheme, fake_quantize};

#[test]
fn quantizers_match_the_numpy_golden_outputs_bit_for_bit() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/golden/numerics.json");
    let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rows = golden["rows"].as_u64().unwrap() as usize;
    let cols = golden["cols"].as_u64().unwrap() as usize;
    let w: Vec<f32> = golden["weight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let cases = golden["cases"].as_array().unwrap();
    // DeepSpeed sym/asym, Ember sym/asym at 8 and 4 bits over three groupings, ternary, binary.
    assert_eq!(cases.len(), 20);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let bits = case["bits"].as_u64().unwrap() as u32;
        let numerics = if case["numerics"] == "ember" {
            Numerics::Ember
        } else {
            Numerics::Deepspeed
        };
        let scheme = match case["scheme"].as_str().unwrap() {
            "symmetric" => Scheme::Symmetric { bits },
            "asymmetric" => Scheme::Asymmetric { bits },
            "ternary" => Scheme::Ternary,
            _ => Scheme::Binary,
        };
        let layout = GroupLayout::Chunks(case["groups"].as_u64().unwrap() as usize);
        let want: Vec<f32> = case["out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = fake_quantize(&w, rows, cols, layout, scheme, numerics);
        let mismatches: Vec<usize> = (0..want.len())
            .filter(|&i| got[i].to_bits() != want[i].to_bits() && !(got[i] == 0.0 && want[i] == 0.0))
            .collect();
        assert!(
            mismatches.is_empty(),
            "{name}: {} of {} differ, first at {}: got {} want {}",
            mismatches.len(),
            want.len(),
            mismatches[0],
            got[mismatches[0]],
            want[mismatches[0]]
        );
        assert!(got.iter().all(|v| v.is_finite()), "{name}: non-finite output");
    }
}
