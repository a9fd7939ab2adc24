//! DeepSpeed's own recipe configs (tests/data/deepspeed/, copied from DeepSpeedExamples'
//! compression/bert/config, `compression_training` blocks unchanged) planned on BERT-base's
//! inventory in HF naming. Expected figures are derived by hand next to each assertion.

mod common;

use common::repo_root;
use ember_config::plan::{Link, Params, QuantMode};
use ember_config::{Catalog, Plan, known_model, parse_config, resolve_plan};
use ember_numerics::GroupLayout;

fn plan(file: &str) -> Plan {
    let text = std::fs::read_to_string(repo_root().join("tests/data/deepspeed").join(file)).unwrap();
    let parsed = parse_config(&text, &Catalog::builtin_only()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let inventory = known_model("bert-base").unwrap();
    resolve_plan(&parsed.config, &inventory, &Catalog::builtin_only()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn zeroquant_w8a8_quantizes_every_linear_and_the_word_embeddings() {
    let p = plan("zeroquant_w8a8_qgroup48.json");
    let linears: Vec<_> = p
        .modules
        .iter()
        .filter(|m| m.kind == ember_config::SiteKind::Linear)
        .collect();
    assert_eq!(linears.len(), 72);
    // `output.dense` matches both the attention output and the FFN output (re.search semantics).
    for m in &linears {
        let w = m.weight_quant().unwrap_or_else(|| panic!("{} not quantized", m.path));
        assert_eq!(
            (w.bits, w.layout, w.mode),
            (8, GroupLayout::Chunks(48), QuantMode::Forward),
            "{}",
            m.path
        );
        assert_eq!(m.activation_quant().unwrap().bits, 8);
        assert_eq!(m.kernel, "gemm_i8i8");
    }
    // 768×768 int8 codes + 48 f32 scales + 768 f32 bias = 589,824 + 192 + 3,072.
    let q = p.module("encoder.layer.3.attention.self.query").unwrap();
    assert_eq!(q.bytes_after, 589_824 + 192 + 3_072);
    assert!((q.bits_per_weight() - (8.0 + 48.0 * 32.0 / 589_824.0)).abs() < 1e-12);
    // Embeddings: one scale per token row, whatever quantize_groups says (DeepSpeed forces it).
    let e = p.module("embeddings.word_embeddings").unwrap();
    assert_eq!(e.weight_quant().unwrap().layout, GroupLayout::PerRow);
    assert_eq!(e.bytes_after, 30_522 * 768 + 30_522 * 4);
    assert_eq!(e.kernel, "lookup_int8");
    assert!(
        p.module("embeddings.position_embeddings")
            .unwrap()
            .techniques
            .is_empty()
    );
    assert!(!p.needs_training);
    // fp32 BERT-base without pooler: 108,891,648 parameters × 4 bytes.
    assert_eq!(p.bytes_before(), 108_891_648 * 4);
}

#[test]
fn zeroquant_lkd_mixes_w8_attention_and_w4_ffn() {
    let p = plan("zeroquant_w48a8_lkd.json");
    let o = p.module("encoder.layer.0.attention.output.dense").unwrap();
    assert_eq!(o.weight_quant().unwrap().bits, 8);
    assert_eq!(o.kernel, "gemm_i8i8");
    // `layer.\w+.output.dense` reaches only the FFN output: `\w+` cannot span `3.attention`.
    let down = p.module("encoder.layer.0.output.dense").unwrap();
    assert_eq!(down.weight_quant().unwrap().bits, 4);
    assert!(down.activation_quant().is_none());
    assert_eq!(down.kernel, "gemm_f32_i4");
    // 768×3072 int4: two codes per byte + 48 f32 scales + bias.
    assert_eq!(down.bytes_after, 768 * 3072 / 2 + 48 * 4 + 768 * 4);
    assert_eq!(
        p.module("encoder.layer.0.intermediate.dense")
            .unwrap()
            .weight_quant()
            .unwrap()
            .bits,
        4
    );
}

#[test]
fn xtc_w1a8_is_binary_with_one_scale_per_tensor() {
    let p = plan("xtc_w1a8_qgroup1.json");
    let q = p.module("encoder.layer.11.attention.self.value").unwrap();
    assert_eq!(q.weight_quant().unwrap().label(), "W1 binary per-tensor");
    assert_eq!(q.kernel, "gemm_i8_binary");
    assert_eq!(q.bytes_after, 768 * 768 / 8 + 4 + 768 * 4);
    let e = p.module("embeddings.word_embeddings").unwrap();
    assert_eq!(e.bytes_after, 30_522 * 96 + 30_522 * 4);
    // Binary BERT-base encoder + embeddings: ≈ 25× smaller than fp32 (biases and LayerNorms stay f32).
    let ratio = p.bytes_before() as f64 / p.bytes_after() as f64;
    assert!(ratio > 20.0 && ratio < 30.0, "{ratio}");
}

#[test]
fn head_pruning_slices_o_columns_and_qkv_rows_in_the_same_block() {
    let p = plan("head_pruning.json");
    // keep ceil(0.6 · 12) = 8 heads of 64 dims.
    let o = p.module("encoder.layer.5.attention.output.dense").unwrap();
    assert_eq!(o.shape_after, vec![768, 512]);
    for name in ["query", "key", "value"] {
        let m = p.module(&format!("encoder.layer.5.attention.self.{name}")).unwrap();
        assert_eq!(m.shape_after, vec![512, 768]);
        assert_eq!(
            m.techniques[0].link,
            Link::Related {
                main: "encoder.layer.5.attention.output.dense".into()
            }
        );
        match &m.techniques[0].params {
            Params::Head(h) => assert_eq!((h.kept_heads, h.num_heads), (8, 12)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(o.techniques[0].schedule.start, 2000);
    assert!(p.needs_training);
}

#[test]
fn row_pruning_slices_ffn_rows_and_the_next_layers_columns() {
    let p = plan("row_pruning.json");
    // keep ceil(0.6 · 3072) = 1844 rows.
    assert_eq!(
        p.module("encoder.layer.2.intermediate.dense").unwrap().shape_after,
        vec![1844, 768]
    );
    assert_eq!(
        p.module("encoder.layer.2.output.dense").unwrap().shape_after,
        vec![768, 1844]
    );
    assert!(
        p.module("encoder.layer.2.attention.output.dense")
            .unwrap()
            .techniques
            .is_empty()
    );
}

#[test]
fn layer_reduction_keeps_odd_teacher_layers_renamed_in_student_order() {
    let p = plan("layer_reduction_12to6.json");
    let layers = p.layers.as_ref().unwrap();
    assert_eq!(layers.keep, vec![1, 3, 5, 7, 9, 11]);
    let m = p.module("encoder.layer.2.attention.self.query").unwrap();
    assert_eq!(m.teacher_path.as_deref(), Some("encoder.layer.5.attention.self.query"));
    assert!(p.module("encoder.layer.6.attention.self.query").is_none());
    assert_eq!(p.modules.len(), 3 + 6 * 6);
    // Six dropped layers of 7,087,872 parameters each (4·(768²+768) + 2·768·3072 + 3072 + 768).
    assert_eq!(layers.dropped_bytes, 6 * 7_087_872 * 4);
    // `bert.pooler` and `classifier` are not part of a BertModel: warned, not fatal.
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
}

#[test]
fn shared_parameters_override_group_params_for_custom_keys_and_plans_print() {
    let p = plan("zeroquant_w8a8_qgroup48.json");
    let text = p.to_string();
    assert!(text.contains("encoder.layer.0.attention.self.query"));
    assert!(text.contains("W8 sym rows/48 + A8 sym per-token"), "{text}");
    assert!(text.contains("total: 435.57 MB → "), "{text}");
}

#[test]
fn a_group_wider_than_the_row_is_one_scale_per_row() {
    let text = r#"{"compression_training": {"weight_quantization": {
        "shared_parameters": {"enabled": true, "quantize_weight_in_forward": true, "group_size": 1024},
        "different_groups": {"w": {"params": {"start_bits": 4, "target_bits": 4}, "modules": ["intermediate.dense", "layer.\\d+.output.dense"]}}}}}"#;
    let parsed = parse_config(text, &Catalog::builtin_only()).unwrap();
    let p = resolve_plan(
        &parsed.config,
        &known_model("minilm-l6").unwrap(),
        &Catalog::builtin_only(),
    )
    .unwrap();
    // intermediate.dense is 1536×384: 1024 ≥ 384 → per row; output.dense is 384×1536: 2 groups per row.
    let up = p.module("encoder.layer.0.intermediate.dense").unwrap();
    assert_eq!(up.weight_quant().unwrap().layout, GroupLayout::PerRow);
    assert_eq!(up.bytes_after, 1536 * 384 / 2 + 1536 * 4 + 1536 * 4);
    let down = p.module("encoder.layer.0.output.dense").unwrap();
    assert_eq!(down.weight_quant().unwrap().layout, GroupLayout::RowGroups(1024));
    assert_eq!(down.bytes_after, 384 * 1536 / 2 + 384 * 2 * 4 + 384 * 4);
}
