//! Post-training composition of the real all-MiniLM-L6-v2 (fetched on first use): the quality
//! bar of the composer issue, measured as cosine vs the independent fp32 reference on the 64
//! reference sentences (onnxruntime fp32, tests/data/reference). The bars come from the issue:
//! onnxruntime's int8 reaches 0.990 mean / 0.958 min per-channel; Ember must beat it clearly.

use std::path::PathBuf;

use ember::compose::{EncoderRun, Finish, compose_encoder, registry};
use ember::eval::{ReferenceEmbeddings, load_model};
use ember::events::Events;
use ember_core::Composer;
use ember_models::assets::Assets;

fn cosines(config: &str) -> (f64, f64) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs").join(config);
    let parsed = ember::compose::load(&path).unwrap();
    let assets = Assets::from_env().unwrap().quiet(true);
    let loaded = load_model("minilm-l6", &assets).unwrap();
    let reference = ReferenceEmbeddings::minilm_l6().unwrap();
    let encoder = compose_encoder(
        &Composer::new(registry()),
        &parsed.config,
        loaded,
        &assets,
        EncoderRun::new(true, &mut Events::open(None, &[]).unwrap(), Finish::Inference),
    )
    .unwrap();
    let got = encoder.embed(&reference.texts, 16).unwrap();
    let cos: Vec<f64> = got
        .iter()
        .zip(&reference.embeddings)
        .map(|(a, b)| ember::eval::metrics::cosine(a, b))
        .collect();
    (
        cos.iter().sum::<f64>() / cos.len() as f64,
        cos.iter().copied().fold(f64::INFINITY, f64::min),
    )
}

#[test]
fn w8a8_per_token_beats_onnxruntime_int8_clearly() {
    let (mean, min) = cosines("zeroquant-w8a8.json");
    assert!(mean >= 0.995 && min >= 0.98, "W8A8: cos mean {mean:.4}, min {min:.4}");
}

#[test]
fn w8_weight_only_is_nearly_lossless() {
    let (mean, _) = cosines("w8-weight-only.json");
    assert!(mean >= 0.999, "W8 weight-only: cos mean {mean:.5}");
}

#[test]
fn w4_group64_weight_only_round_to_nearest_stays_where_it_was_measured() {
    // Round-to-nearest int4 (g64) measured 0.944 mean (BENCHMARKS.md); the bar of 0.98
    // needs error-compensating rounding (next test). This guards against regressions.
    let (mean, _) = cosines("w4-g64-weight-only.json");
    assert!(mean >= 0.93, "W4 g64: cos mean {mean:.4}");
}

#[test]
fn w4_group64_weight_only_with_gptq_meets_the_bar() {
    // The W4 g64 weight-only bar (cos mean ≥ 0.98), reached with GPTQ: asymmetric, value
    // projections compensated per head on attention-mixed inputs, calibrated on sentences.
    let (mean, min) = cosines("w4-g64-gptq.json");
    assert!(mean >= 0.98, "W4 g64 GPTQ: cos mean {mean:.4}, min {min:.4}");
}

#[test]
fn static_ranges_from_calibration_give_a_working_model() {
    // DeepSpeed's static ranges were [0, 0] after post-training use (all-zero output, bug B8).
    let (mean, min) = cosines("w8a8-static.json");
    assert!(
        mean >= 0.98 && min > 0.9,
        "W8A8 static: cos mean {mean:.4}, min {min:.4}"
    );
}

#[test]
fn the_loaded_models_inventory_is_the_one_plans_use_without_weights() {
    // `ember plan` plans MiniLM from its dimensions alone; the loaded model must list the same sites.
    let assets = Assets::from_env().unwrap().quiet(true);
    let loaded = load_model("minilm-l6", &assets).unwrap();
    let mut from_model = loaded.encoder.model.inventory();
    let known = ember_config::known_model("minilm-l6").unwrap();
    from_model.model = known.model.clone();
    assert_eq!(from_model, known);
}
