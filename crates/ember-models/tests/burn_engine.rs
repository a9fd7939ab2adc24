//! The burn engine (`ember_models::burn_engine`) on a small random `CompressedModel` with every
//! kind of module a cleaned model can hold: int8 per-row / per-group / DeepSpeed chunks, int4 and
//! int3 groups, ternary, binary, fp8/fp4, asymmetric, fp6, an unpackable group size, f32; dynamic
//! and static activation quantizers; layers with different head counts and FFN widths.
//!
//! Reference: a burn `Bert` assembled here, independently of the engine, from the weights
//! dequantized with `QuantTensor::dequantize()` (the artifact's own definition of the values) as
//! plain f32 parameters, with the composer's `ActQuant` in the slots. Bound: max |Δ| of the
//! normalized embeddings ≤ 1e-4 (measured: 0 on flex, 7.5e-8 on wgpu/lavapipe with 10 of the 21
//! weights as burn quantized tensors).
//!
//! The wgpu tests (`--features wgpu`) run on any Vulkan device, lavapipe included:
//! `cargo test -p ember-models --features wgpu --test burn_engine`.

use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_config::types::{FloatFormat, Numerics};
use ember_core::numerics::{self, GroupLayout, Scheme};
use ember_core::slots::{EmbeddingSlots, LinearSlots};
use ember_models::bert::{
    Attention, AttentionOutput, Embeddings, Encoder, EncoderLayer, Intermediate, LayerOutput, SelfAttention,
};
use ember_models::blocks::{Embedding, LayerNorm, Linear};
use ember_models::burn_engine::{BackendFamily, Repr, burn_quant, plan_engine, quantized_tensor};
use ember_models::{Bert, Error, WeightPolicy, bert_from_compressed, device_from_name, engine_report};
use ember_runtime::{
    ActRange, ActSpec, Architecture, CompressedLinear, CompressedModel, Embeddings as CEmbeddings, Layer, LayerArch,
    LayerNormParams, Meta, Pooling, QuantTensor, Weight,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const D: usize = 64;
const VOCAB: usize = 40;
const MAX_POS: usize = 16;

/// How one Linear is stored: `None` = f32.
type Storage = Option<(Scheme, GroupLayout, Numerics)>;

const fn sym(bits: u32) -> Scheme {
    Scheme::Symmetric { bits }
}

fn dyn_asym(bits: u32) -> Option<ActSpec> {
    Some(ActSpec {
        bits,
        symmetric: false,
        numerics: Numerics::Ember,
        range: ActRange::Dynamic,
    })
}

fn uniform(rng: &mut StdRng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

fn weight(rng: &mut StdRng, rows: usize, cols: usize, storage: Storage) -> Weight {
    let values = uniform(rng, rows * cols, 1.0 / (cols as f32).sqrt());
    match storage {
        None => Weight::F32 { rows, cols, values },
        Some((scheme, layout, num)) => Weight::Quant(
            QuantTensor::from_quantized(&numerics::quantize(&values, rows, cols, layout, scheme, num)).unwrap(),
        ),
    }
}

fn norm(rng: &mut StdRng) -> LayerNormParams {
    LayerNormParams {
        gamma: (0..D).map(|_| 1.0 + rng.random_range(-0.2..0.2)).collect(),
        beta: uniform(rng, D, 0.1),
        eps: 1e-12,
    }
}

/// `(rows, cols, storage, activation quantizer, bias)` of a layer's six Linears.
type LinearSpec = (usize, usize, Storage, Option<ActSpec>, bool);

fn layer(rng: &mut StdRng, index: usize, specs: [LinearSpec; 6]) -> Layer {
    let names = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ];
    let mut linears = specs
        .into_iter()
        .zip(names)
        .map(|((rows, cols, storage, act, bias), name)| CompressedLinear {
            name: format!("encoder.layer.{index}.{name}"),
            weight: weight(rng, rows, cols, storage),
            bias: bias.then(|| uniform(rng, rows, 0.1)),
            act,
        });
    let mut next = || linears.next().unwrap();
    let (query, key, value, attn_out) = (next(), next(), next(), next());
    let (ffn_in, ffn_out) = (next(), next());
    Layer {
        query,
        key,
        value,
        attn_out,
        attn_norm: norm(rng),
        ffn_in,
        ffn_out,
        out_norm: norm(rng),
    }
}

/// Three layers (kept from a 6-layer source) with 4×16, 1×8 and 3×8 heads and FFN widths 128, 32, 48.
fn model() -> CompressedModel {
    let mut rng = StdRng::seed_from_u64(7);
    let (em, ds) = (Numerics::Ember, Numerics::Deepspeed);
    let row = GroupLayout::PerRow;
    let g32 = GroupLayout::RowGroups(32);
    let arch_layers = vec![
        LayerArch {
            n_heads: 4,
            head_dim: 16,
            d_ff: 128,
        },
        LayerArch {
            n_heads: 1,
            head_dim: 8,
            d_ff: 32,
        },
        LayerArch {
            n_heads: 3,
            head_dim: 8,
            d_ff: 48,
        },
    ];
    let static_sym = Some(ActSpec {
        bits: 8,
        symmetric: true,
        numerics: em,
        range: ActRange::Static { min: -3.0, max: 2.5 },
    });
    let static_asym = Some(ActSpec {
        bits: 8,
        symmetric: false,
        numerics: em,
        range: ActRange::Static { min: -0.2, max: 4.0 },
    });
    let dyn_sym_ds = Some(ActSpec {
        bits: 8,
        symmetric: true,
        numerics: ds,
        range: ActRange::Dynamic,
    });
    let layers = vec![
        layer(
            &mut rng,
            0,
            [
                (64, D, Some((sym(8), row, em)), dyn_asym(8), true),
                (64, D, Some((sym(8), g32, em)), dyn_asym(8), true),
                (64, D, Some((sym(4), g32, em)), dyn_asym(8), true),
                (D, 64, Some((Scheme::Asymmetric { bits: 8 }, row, em)), None, true),
                // DeepSpeed's 8 chunks of a [128, 64] weight: blocks of 16 whole rows.
                (128, D, Some((sym(8), GroupLayout::Chunks(8), ds)), dyn_sym_ds, true),
                (D, 128, Some((Scheme::Ternary, row, em)), None, true),
            ],
        ),
        layer(
            &mut rng,
            1,
            [
                (8, D, None, None, false),
                (8, D, Some((Scheme::Binary, row, em)), None, true),
                (8, D, Some((sym(3), g32, em)), None, true),
                (D, 8, Some((sym(8), row, em)), dyn_asym(8), true),
                // Groups of 20 inputs end every 4 columns (gcd(20, 64)): inside int4's packed words.
                (32, D, Some((sym(4), GroupLayout::RowGroups(20), em)), static_sym, true),
                (D, 32, Some((sym(8), GroupLayout::Chunks(1), em)), static_asym, true),
            ],
        ),
        layer(
            &mut rng,
            2,
            [
                (24, D, Some((Scheme::Float(FloatFormat::E4m3), g32, em)), None, true),
                (24, D, Some((Scheme::Float(FloatFormat::E5m2), row, em)), None, true),
                (24, D, Some((Scheme::Float(FloatFormat::E2m1), g32, em)), None, true),
                (D, 24, Some((sym(8), g32, em)), dyn_asym(4), true),
                (48, D, Some((Scheme::Float(FloatFormat::E3m2), row, em)), None, true),
                (D, 48, Some((sym(4), row, ds)), dyn_asym(8), true),
            ],
        ),
    ];
    let word = numerics::quantize(&uniform(&mut rng, VOCAB * D, 0.1), VOCAB, D, row, sym(8), em);
    CompressedModel {
        arch: Architecture {
            family: "bert".into(),
            name: "tiny-mixed".into(),
            vocab_size: VOCAB,
            d_model: D,
            max_positions: MAX_POS,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            max_seq_length: MAX_POS,
            pooling: Pooling::MeanNormalized,
            layers: arch_layers,
            kept_layers: vec![0, 2, 5],
        },
        embeddings: CEmbeddings {
            word: Weight::Quant(QuantTensor::from_quantized(&word).unwrap()),
            position: Weight::F32 {
                rows: MAX_POS,
                cols: D,
                values: uniform(&mut rng, MAX_POS * D, 0.1),
            },
            token_type: Weight::F32 {
                rows: 2,
                cols: D,
                values: uniform(&mut rng, 2 * D, 0.1),
            },
            norm: norm(&mut rng),
        },
        layers,
        tokenizer: None,
        meta: Meta::default(),
    }
}

// ---- the independent reference ---------------------------------------------------------------

fn dequantized(w: &Weight) -> Vec<f32> {
    match w {
        Weight::F32 { values, .. } => values.clone(),
        Weight::Quant(q) => q.dequantize(),
    }
}

fn tensor2(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

fn param1(values: &[f32], device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len()]),
        device,
    ))
}

fn ref_linear(l: &CompressedLinear, device: &Device) -> Linear {
    let slots = LinearSlots {
        act_quant: l.act,
        ..LinearSlots::default()
    };
    Linear {
        weight: Param::from_tensor(tensor2(
            dequantized(&l.weight),
            l.weight.rows(),
            l.weight.cols(),
            device,
        )),
        bias: l.bias.as_deref().map(|b| param1(b, device)),
        slots,
    }
}

fn ref_norm(p: &LayerNormParams, device: &Device) -> LayerNorm {
    LayerNorm {
        weight: param1(&p.gamma, device),
        bias: param1(&p.beta, device),
        eps: 1e-12,
    }
}

fn ref_embedding(w: &Weight, device: &Device) -> Embedding {
    Embedding {
        weight: Param::from_tensor(tensor2(dequantized(w), w.rows(), w.cols(), device)),
        slots: EmbeddingSlots::default(),
    }
}

/// The model as plain f32 burn parameters (weights dequantized by the artifact's own reader).
fn reference(m: &CompressedModel, device: &Device) -> Bert {
    let layer = m
        .layers
        .iter()
        .zip(&m.arch.layers)
        .map(|(l, a)| EncoderLayer {
            attention: Attention {
                self_attn: SelfAttention {
                    query: ref_linear(&l.query, device),
                    key: ref_linear(&l.key, device),
                    value: ref_linear(&l.value, device),
                    n_heads: a.n_heads,
                    head_dim: a.head_dim,
                },
                output: AttentionOutput {
                    dense: ref_linear(&l.attn_out, device),
                    layer_norm: ref_norm(&l.attn_norm, device),
                },
            },
            intermediate: Intermediate {
                dense: ref_linear(&l.ffn_in, device),
            },
            output: LayerOutput {
                dense: ref_linear(&l.ffn_out, device),
                layer_norm: ref_norm(&l.out_norm, device),
            },
        })
        .collect();
    Bert {
        name: "reference".into(),
        embeddings: Embeddings {
            word_embeddings: ref_embedding(&m.embeddings.word, device),
            position_embeddings: ref_embedding(&m.embeddings.position, device),
            token_type_embeddings: ref_embedding(&m.embeddings.token_type, device),
            layer_norm: ref_norm(&m.embeddings.norm, device),
        },
        encoder: Encoder { layer },
    }
}

/// Three sentences of 12, 9 and 5 tokens, padded to 12.
fn inputs(device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let mut rng = StdRng::seed_from_u64(11);
    let (batch, seq) = (3usize, 12usize);
    let lens = [12usize, 9, 5];
    let mut ids = vec![0i64; batch * seq];
    let mut mask = vec![0i64; batch * seq];
    for (b, &len) in lens.iter().enumerate() {
        for t in 0..len {
            ids[b * seq + t] = rng.random_range(1..VOCAB as i64);
            mask[b * seq + t] = 1;
        }
    }
    (
        Tensor::from_data(TensorData::new(ids, [batch, seq]), device),
        Tensor::from_data(TensorData::new(mask, [batch, seq]), device),
    )
}

fn embed(bert: &Bert, device: &Device) -> Vec<f32> {
    let (ids, mask) = inputs(device);
    bert.forward(ids, mask)
        .embedding
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn packed_linears(m: &CompressedModel) -> impl Iterator<Item = (&str, &QuantTensor)> {
    m.layers
        .iter()
        .flat_map(|l| l.linears())
        .filter_map(|l| match &l.weight {
            Weight::Quant(q) => Some((l.name.as_str(), q)),
            Weight::F32 { .. } => None,
        })
}

fn is_float_value(q: &QuantTensor) -> bool {
    matches!(q.scheme, Scheme::Float(_))
}

// ---- tests on burn-flex ----------------------------------------------------------------------

#[test]
fn flex_engine_matches_the_dequantized_reference() {
    let device = Device::flex();
    let m = model();
    let engine = bert_from_compressed(&m, &device).unwrap();
    assert_eq!(engine.config().layers.len(), 3);
    assert_eq!(engine.encoder.layer[1].attention.self_attn.n_heads, 1);
    assert_eq!(engine.encoder.layer[2].intermediate.dense.d_out(), 48);
    assert!(engine.encoder.layer[1].attention.self_attn.query.bias.is_none());
    assert!(
        engine.encoder.layer[0]
            .attention
            .self_attn
            .query
            .slots
            .act_quant
            .is_some()
    );
    assert!(engine.encoder.layer[0].output.dense.slots.act_quant.is_none());

    let got = embed(&engine, &device);
    let want = embed(&reference(&m, &device), &device);
    let d = max_abs_diff(&got, &want);
    eprintln!("flex: max |Δ| of the normalized embeddings {d:.2e}");
    assert!(d <= 1e-4, "flex engine vs reference max |Δ| {d}");
}

#[test]
fn activation_quantizers_change_the_output() {
    // Without its ActSpecs the model computes something else: the slots are live.
    let device = Device::flex();
    let m = model();
    let mut plain = m.clone();
    for l in plain.layers.iter_mut().flat_map(|l| l.linears_mut()) {
        l.act = None;
    }
    let d = max_abs_diff(
        &embed(&bert_from_compressed(&m, &device).unwrap(), &device),
        &embed(&bert_from_compressed(&plain, &device).unwrap(), &device),
    );
    assert!(d > 1e-4, "activation quantization made no difference ({d})");
}

#[test]
fn burn_quantized_tensors_hold_the_packed_values_bit_for_bit() {
    // burn-flex decodes the integer value types; fp8/fp4 are checked on wgpu.
    let device = Device::flex();
    let m = model();
    let mut checked = 0;
    for (name, q) in packed_linears(&m).filter(|(_, q)| !is_float_value(q)) {
        let Ok((t, bq)) = quantized_tensor(q, &device) else {
            continue;
        };
        let got = t.dequantize().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(bits(&got), bits(&q.dequantize()), "{name} as {bq}");
        checked += 1;
    }
    assert_eq!(checked, 11);

    // MiniLM shapes: per-row scales on 384 and 1536 columns (blocks of 192), group size 64.
    let mut rng = StdRng::seed_from_u64(3);
    for (rows, cols, scheme, layout, block) in [
        (384, 384, sym(8), GroupLayout::PerRow, Some(192)),
        (384, 1536, sym(8), GroupLayout::PerRow, Some(192)),
        (1536, 384, sym(4), GroupLayout::RowGroups(64), Some(64)),
        (384, 384, Scheme::Ternary, GroupLayout::Chunks(48), Some(192)),
        (384, 384, sym(8), GroupLayout::Chunks(1), None),
    ] {
        let w = weight(&mut rng, rows, cols, Some((scheme, layout, Numerics::Ember)));
        let Weight::Quant(q) = &w else { unreachable!() };
        let (t, bq) = quantized_tensor(q, &device).unwrap();
        assert_eq!(bq.block, block, "{scheme:?} {layout:?}");
        let got = t.dequantize().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(
            bits(&got),
            bits(&q.dequantize()),
            "[{rows}, {cols}] {scheme:?} {layout:?}"
        );
    }
}

#[test]
fn flex_linear_forward_takes_quantized_weights_but_requantizes_blocks_on_transpose() {
    // What burn 0.22.1 does with a quantized weight in `Linear::forward` on flex (and so why the
    // engine gives flex f32 weights): it runs, but the transpose of a block-quantized tensor
    // dequantizes and requantizes it with burn's own scale (2·max/(b−a)), which is not Ember's
    // for 3-bit codes.
    let device = Device::flex();
    let mut rng = StdRng::seed_from_u64(5);
    let x = tensor2(uniform(&mut rng, 4 * 64, 1.0), 4, 64, &device);
    let mut delta = |scheme: Scheme, layout: GroupLayout| {
        let w = weight(&mut rng, 32, 64, Some((scheme, layout, Numerics::Ember)));
        let Weight::Quant(q) = &w else { unreachable!() };
        let lin = |weight: Tensor<2>| Linear {
            weight: Param::from_tensor(weight),
            bias: None,
            slots: LinearSlots::default(),
        };
        let quantized = lin(quantized_tensor(q, &device).unwrap().0).forward(x.clone());
        let plain = lin(tensor2(q.dequantize(), 32, 64, &device)).forward(x.clone());
        max_abs_diff(
            &quantized.into_data().try_to_vec::<f32>().unwrap(),
            &plain.into_data().try_to_vec::<f32>().unwrap(),
        )
    };
    let per_tensor = delta(sym(8), GroupLayout::Chunks(1));
    let int8_blocks = delta(sym(8), GroupLayout::RowGroups(32));
    let int3_blocks = delta(sym(3), GroupLayout::RowGroups(32));
    eprintln!(
        "flex Linear with quantized weight vs f32: per-tensor {per_tensor:.1e}, int8 blocks {int8_blocks:.1e}, int3 blocks {int3_blocks:.1e}"
    );
    assert!(per_tensor <= 1e-5 && int8_blocks <= 1e-4);
    assert!(
        int3_blocks > 1e-3,
        "burn-flex no longer requantizes on transpose ({int3_blocks}); revisit FLEX_REASON"
    );
}

// ---- plans (no device needed) ------------------------------------------------------------------

fn describe(repr: &Repr) -> String {
    match repr {
        Repr::Quantized(q) => format!("{:?}/{:?}", q.scheme.value, q.block),
        Repr::F32 { reason: None } => "f32".into(),
        Repr::F32 { reason: Some(r) } => format!("f32: {r}"),
    }
}

#[test]
fn wgpu_plan_quantizes_what_burn_runs_exactly_and_says_why_not_the_rest() {
    let m = model();
    let report = plan_engine(&m, BackendFamily::Wgpu, WeightPolicy::Auto);
    let got: Vec<(String, String)> = report
        .modules
        .iter()
        .map(|r| (r.name.clone(), describe(&r.repr)))
        .collect();
    let expect = |name: &str, want: &str| {
        let (_, repr) = got
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(repr.starts_with(want), "{name}: {repr}, expected {want}…");
    };
    expect("embeddings.word_embeddings", "f32: embedding lookup");
    expect("embeddings.position_embeddings", "f32");
    let l = |i: usize, m: &str| format!("encoder.layer.{i}.{m}");
    expect(&l(0, "attention.self.query"), "Q8S/Some(64)");
    expect(&l(0, "attention.self.key"), "Q8S/Some(32)");
    expect(&l(0, "attention.self.value"), "Q4S/Some(32)");
    expect(&l(0, "attention.output.dense"), "f32: asymmetric 8-bit");
    expect(&l(0, "intermediate.dense"), "Q8F/Some(64)");
    expect(
        &l(0, "output.dense"),
        "f32: burn 0.22.1's fused matmul stages 16 two-bit codes",
    );
    expect(&l(1, "attention.self.query"), "f32");
    expect(
        &l(1, "attention.self.key"),
        "f32: burn 0.22.1's fused matmul stages 16 two-bit codes",
    );
    expect(&l(1, "attention.self.value"), "Q4S/Some(32)");
    expect(&l(1, "attention.output.dense"), "Q8S/Some(8)");
    expect(&l(1, "intermediate.dense"), "f32: scale groups change every 4 columns");
    expect(&l(1, "output.dense"), "Q8S/None");
    expect(
        &l(2, "attention.self.query"),
        "f32: burn 0.22.1's wgpu matmul does not compile for fp8",
    );
    expect(
        &l(2, "attention.self.key"),
        "f32: burn 0.22.1's wgpu matmul does not compile for fp8",
    );
    expect(&l(2, "attention.self.value"), "E2M1/Some(32)");
    expect(&l(2, "attention.output.dense"), "Q8S/Some(24)");
    expect(&l(2, "intermediate.dense"), "f32: fp6 e3m2");
    expect(&l(2, "output.dense"), "Q4F/Some(48)");
    assert_eq!(report.quantized(), 10);
    assert_eq!(report.modules.len(), 3 + 3 * 6);
    assert_eq!(
        report.module(&l(0, "attention.self.query")).unwrap().act.as_deref(),
        Some("8-bit asym dynamic per token")
    );
    let table = report.to_string();
    assert!(table.contains("10 of 21 weights as burn quantized tensors"), "{table}");

    // flex and the Dequantize policy hold every weight in f32, and say why.
    for (backend, policy, why) in [
        (
            BackendFamily::Flex,
            WeightPolicy::Auto,
            "burn-flex has no quantized matmul",
        ),
        (
            BackendFamily::Wgpu,
            WeightPolicy::Dequantize,
            "WeightPolicy::Dequantize",
        ),
    ] {
        let report = plan_engine(&m, backend, policy);
        assert_eq!(report.quantized(), 0);
        let r = report.module(&l(0, "attention.self.query")).unwrap();
        assert!(describe(&r.repr).contains(why), "{r:?}");
    }
    assert_eq!(engine_report(&m, &Device::flex()).backend, BackendFamily::Flex);
}

#[test]
fn burn_quant_refuses_what_burn_cannot_hold_exactly() {
    let q = |rows, cols, scheme, layout| {
        let w = vec![0.5f32; rows * cols];
        QuantTensor::from_quantized(&numerics::quantize(&w, rows, cols, layout, scheme, Numerics::Ember)).unwrap()
    };
    let err = |t: QuantTensor| burn_quant(&t).unwrap_err();
    assert!(err(q(4, 30, sym(8), GroupLayout::PerRow)).contains("30 columns are not whole u32 words"));
    assert!(err(q(4, 32, sym(4), GroupLayout::RowGroups(12))).contains("every 4 columns"));
    assert!(err(q(4, 32, Scheme::Asymmetric { bits: 4 }, GroupLayout::PerRow)).contains("zero points"));
    // Per-row scales on 1000 columns: the largest block ≤ 255 that divides 1000 and holds whole
    // int4 words (8 codes) is 200.
    assert_eq!(
        burn_quant(&q(2, 1000, sym(4), GroupLayout::PerRow)).unwrap().block,
        Some(200)
    );
}

// ---- errors ------------------------------------------------------------------------------------

#[test]
fn inconsistent_models_are_refused_with_every_problem_named() {
    let device = Device::flex();
    let mut m = model();
    m.layers[1].attn_out.weight = Weight::F32 {
        rows: D,
        cols: 9,
        values: vec![0.0; D * 9],
    };
    m.layers[2].ffn_in.bias = Some(vec![0.0; 3]);
    m.layers[0].key.act = dyn_asym(12);
    let msg = match bert_from_compressed(&m, &device) {
        Err(Error::Input(msg)) => msg,
        other => panic!("expected an input error, got {:?}", other.map(|_| ())),
    };
    for part in [
        "encoder.layer.1.attention.output.dense: weight is [64, 9] but the architecture needs [64, 8]",
        "encoder.layer.2.intermediate.dense: bias has 3 values for 48 outputs",
        "encoder.layer.0.attention.self.key: 12 bits of activation quantization",
    ] {
        assert!(msg.contains(part), "missing `{part}` in:\n{msg}");
    }

    let mut m = model();
    m.arch.family = "gpt2".into();
    assert!(matches!(bert_from_compressed(&m, &device), Err(Error::NotSupported(_))));
}

#[test]
fn devices_by_name() {
    assert_eq!(device_from_name("cpu").unwrap(), Device::flex());
    assert_eq!(device_from_name(" Flex ").unwrap(), Device::flex());
    let unknown = device_from_name("tpu").unwrap_err().to_string();
    assert!(unknown.contains("unknown device `tpu`"), "{unknown}");
    let cuda = device_from_name("cuda").unwrap_err().to_string();
    assert!(cuda.contains("wgpu"), "{cuda}");
    #[cfg(not(feature = "wgpu"))]
    {
        let wgpu = device_from_name("wgpu").unwrap_err().to_string();
        assert!(wgpu.contains("--features wgpu"), "{wgpu}");
    }
    #[cfg(feature = "wgpu")]
    assert!(device_from_name("wgpu").is_ok());
}

// ---- wgpu (CubeCL): quantized weights, fused dequantization in the matmul -----------------------

/// `--features wgpu`; any Vulkan/Metal device, e.g. lavapipe on a CPU-only machine
/// (`apt-get install mesa-vulkan-drivers`).
#[cfg(feature = "wgpu")]
mod wgpu {
    use super::*;
    use ember_models::burn_engine::build_bert;

    fn device() -> Device {
        Device::wgpu(Default::default())
    }

    fn lin(weight: Tensor<2>) -> Linear {
        Linear {
            weight: Param::from_tensor(weight),
            bias: None,
            slots: LinearSlots::default(),
        }
    }

    /// `x·Wᵀ` with `q` as a burn quantized weight and as its dequantized f32 values; `None` when
    /// burn's quantized matmul panics or fails to compile.
    fn both_matmuls(q: &QuantTensor, x: Tensor<3>, device: &Device) -> Option<(Vec<f32>, Vec<f32>)> {
        let (t, _) = quantized_tensor(q, device).unwrap();
        let fused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lin(t).forward(x.clone()).into_data().try_to_vec::<f32>()
        }));
        let plain = lin(tensor2(q.dequantize(), q.rows, q.cols, device))
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        match fused {
            Ok(Ok(fused)) => Some((fused, plain)),
            _ => None,
        }
    }

    fn input(rng: &mut StdRng, batch: usize, seq: usize, cols: usize, device: &Device) -> Tensor<3> {
        Tensor::from_data(
            TensorData::new(uniform(rng, batch * seq * cols, 1.0), [batch, seq, cols]),
            device,
        )
    }

    #[test]
    fn wgpu_quantized_weights_dequantize_bit_for_bit_and_multiply() {
        let device = device();
        let m = model();
        let plan = plan_engine(&m, BackendFamily::Wgpu, WeightPolicy::Auto);
        let mut rng = StdRng::seed_from_u64(9);
        let (mut exact, mut fused) = (0, 0);
        for (name, q) in packed_linears(&m) {
            let Ok((t, bq)) = quantized_tensor(q, &device) else {
                continue;
            };
            // Every burn form, fp8 and 2-bit included, holds the artifact's values exactly.
            let got = t.dequantize().into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(bits(&got), bits(&q.dequantize()), "{name} as {bq}");
            exact += 1;
            // Linear::forward with the quantized weight (transposed, then burn's quantized matmul).
            if !matches!(plan.module(name).unwrap().repr, Repr::Quantized(_)) {
                continue;
            }
            let (quantized, plain) = both_matmuls(q, input(&mut rng, 2, 5, q.cols, &device), &device)
                .unwrap_or_else(|| panic!("{name} ({bq}): burn's quantized matmul failed"));
            let d = max_abs_diff(&quantized, &plain);
            eprintln!("{name} ({bq}): quantized vs f32 matmul max |Δ| {d:.1e}");
            assert!(d <= 1e-5, "{name} ({bq}): quantized matmul max |Δ| {d}");
            fused += 1;
        }
        assert_eq!((exact, fused), (14, 10));

        // MiniLM's FFN shapes, 2 × 64 tokens.
        for (rows, cols, scheme, layout) in [
            (1536, 384, sym(8), GroupLayout::PerRow),
            (384, 1536, sym(4), GroupLayout::RowGroups(64)),
        ] {
            let w = weight(&mut rng, rows, cols, Some((scheme, layout, Numerics::Ember)));
            let Weight::Quant(q) = &w else { unreachable!() };
            let (quantized, plain) = both_matmuls(q, input(&mut rng, 2, 64, cols, &device), &device)
                .unwrap_or_else(|| panic!("[{rows}, {cols}] {scheme:?}: burn's quantized matmul failed"));
            let d = max_abs_diff(&quantized, &plain);
            eprintln!("[{rows}, {cols}] {scheme:?} {layout:?}: quantized vs f32 matmul max |Δ| {d:.1e}");
            assert!(d <= 1e-5, "[{rows}, {cols}] {scheme:?}: max |Δ| {d}");
        }
    }

    #[test]
    fn wgpu_matmul_still_refuses_fp8_and_reports_2_bit() {
        // The facts behind `wgpu_matmul_refuses`: if burn's matmul starts running these, move
        // them to the quantized path. (2-bit fails for lack of workgroup memory, which depends on
        // the device, so it is only reported.)
        let device = device();
        let mut rng = StdRng::seed_from_u64(13);
        for (scheme, must_fail) in [
            (Scheme::Float(FloatFormat::E4m3), true),
            (Scheme::Float(FloatFormat::E5m2), true),
            (Scheme::Ternary, false),
        ] {
            let w = weight(
                &mut rng,
                32,
                64,
                Some((scheme, GroupLayout::RowGroups(32), Numerics::Ember)),
            );
            let Weight::Quant(q) = &w else { unreachable!() };
            let ran = both_matmuls(q, input(&mut rng, 1, 4, 64, &device), &device).is_some();
            eprintln!(
                "{scheme:?}: burn's quantized matmul on this wgpu device {}",
                if ran { "runs" } else { "fails" }
            );
            assert!(
                !(must_fail && ran),
                "burn's wgpu matmul now runs {scheme:?}: revisit wgpu_matmul_refuses"
            );
        }
    }

    #[test]
    fn wgpu_engine_matches_the_dequantized_reference() {
        let device = device();
        let m = model();
        let (engine, report) = build_bert(&m, &device, WeightPolicy::Auto).unwrap();
        eprintln!("{report}");
        assert_eq!(report.quantized(), 10);
        let got = embed(&engine, &device);
        let flex = Device::flex();
        let want = embed(&reference(&m, &flex), &flex);
        let d = max_abs_diff(&got, &want);
        eprintln!("wgpu engine (quantized weights) vs flex f32 reference: max |Δ| {d:.2e}");
        assert!(d <= 1e-4, "wgpu engine vs reference max |Δ| {d}");
    }
}
