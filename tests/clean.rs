//! Clean on the real all-MiniLM-L6-v2 (fetched on first use): the cleaned model's dequantized
//! weights equal the composed model's fake-quantized weights bit for bit (DESIGN §7), clean is
//! deterministic and idempotent, and the activation specs carry over.

use std::path::PathBuf;

use burn::tensor::Tensor;
use ember::compose::{EncoderRun, Finish, compose_encoder, registry};
use ember::eval::load_model;
use ember::events::Events;
use ember_core::Composer;
use ember_models::assets::Assets;
use ember_models::blocks::Linear;
use ember_models::{Bert, CleanOptions, clean};
use ember_runtime::{ActRange, CompressedModel, Weight};

fn composed(config: &str) -> Bert {
    composed_for(config, Finish::Inference)
}

fn composed_for(config: &str, finish: Finish) -> Bert {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs").join(config);
    let mut parsed = ember::compose::load(&path).unwrap();
    // Bit-exactness does not depend on how much calibration text GPTQ saw: keep debug builds quick.
    let c = &mut parsed.config.calibration;
    c.samples = c.samples.min(64);
    let assets = Assets::from_env().unwrap().quiet(true);
    let loaded = load_model("minilm-l6", &assets).unwrap();
    compose_encoder(
        &Composer::new(registry()),
        &parsed.config,
        loaded,
        &assets,
        EncoderRun::new(true, &mut Events::open(None, &[]).unwrap(), finish),
    )
    .unwrap()
    .model
}

fn bits(t: Tensor<2>) -> Vec<u32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn composed_linears(model: &Bert) -> Vec<&Linear> {
    model
        .encoder
        .layer
        .iter()
        .flat_map(|l| {
            [
                &l.attention.self_attn.query,
                &l.attention.self_attn.key,
                &l.attention.self_attn.value,
                &l.attention.output.dense,
                &l.intermediate.dense,
                &l.output.dense,
            ]
        })
        .collect()
}

/// Every quantized Linear of the cleaned model dequantizes to exactly the weight the composed
/// model multiplies with; returns how many were checked.
fn assert_bit_exact(model: &Bert, cleaned: &CompressedModel) -> usize {
    let mut checked = 0;
    let cleaned_linears = cleaned.layers.iter().flat_map(|l| l.linears());
    for (c, r) in composed_linears(model).into_iter().zip(cleaned_linears) {
        let used = c.slots.weight(c.weight.val());
        match &r.weight {
            Weight::Quant(q) => {
                let [rows, cols] = used.dims();
                let deq = q.dequantize();
                assert_eq!((q.rows, q.cols), (rows, cols), "{}", r.name);
                let want = bits(used);
                let got: Vec<u32> = deq.iter().map(|v| v.to_bits()).collect();
                let diff = want.iter().zip(&got).filter(|(a, b)| a != b).count();
                assert_eq!(diff, 0, "{}: {diff} weights differ from the composed model's", r.name);
                checked += 1;
            }
            Weight::F32 { values, .. } => {
                let want = bits(used);
                assert_eq!(
                    want,
                    values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{}",
                    r.name
                );
            }
        }
        assert_eq!(c.slots.act_quant.is_some(), r.act.is_some(), "{}", r.name);
    }
    checked
}

#[test]
fn w8a8_cleans_to_int8_codes_that_dequantize_bit_for_bit() {
    let model = composed("zeroquant-w8a8.json");
    let cleaned = clean(&model, &CleanOptions::default()).unwrap();
    assert_eq!(assert_bit_exact(&model, &cleaned), 36);
    for l in cleaned.layers.iter().flat_map(|l| l.linears()) {
        assert_eq!(l.weight.format_name(), "int8", "{}", l.name);
        let act = l.act.expect("W8A8 quantizes every Linear's input");
        assert_eq!((act.bits, act.range), (8, ActRange::Dynamic), "{}", l.name);
    }
    // Word embeddings are quantized per row too (ZeroQuant's recipe).
    assert_eq!(cleaned.embeddings.word.format_name(), "int8");
    // Deterministic and idempotent: cleaning again gives an equal model.
    assert_eq!(clean(&model, &CleanOptions::default()).unwrap(), cleaned);
    // Finished for clean only (no frozen copies, what `compose --out` does): the same model.
    let lean = composed_for("zeroquant-w8a8.json", Finish::Clean);
    assert_eq!(clean(&lean, &CleanOptions::default()).unwrap(), cleaned);
}

#[test]
fn w4_group64_and_gptq_clean_bit_for_bit() {
    for config in ["w4-g64-weight-only.json", "w4-g64-gptq.json"] {
        let model = composed(config);
        let cleaned = clean(&model, &CleanOptions::default()).unwrap();
        assert_eq!(assert_bit_exact(&model, &cleaned), 36, "{config}");
        // Finished for clean only, GPTQ solves the same codes and clean packs the same model.
        let lean = composed_for(config, Finish::Clean);
        assert_eq!(clean(&lean, &CleanOptions::default()).unwrap(), cleaned, "{config}");
        for l in cleaned.layers.iter().flat_map(|l| l.linears()) {
            assert!(l.weight.format_name().ends_with('4'), "{config} {}", l.name);
            assert!(l.act.is_none(), "{config}: weight-only");
        }
    }
}
