//! The CPU engine against an independent reference: a naive forward pass written here with plain
//! loops in f64 (HF BERT semantics: post-LayerNorm, exact-erf GELU, −∞ on padding keys, masked mean
//! pooling, L2 normalization), on small random models whose layers all differ in heads, head width
//! and FFN width. Quantized models are compared with the same reference fed the dequantized
//! weights (`QuantTensor::dequantize`) and activations fake-quantized with the composer's formulas
//! (written out again below, in f32): the integer kernels sum exactly, so only float summation
//! order separates the two.

use ember_kernels::Isa;
use ember_numerics::{FloatFormat, Numerics};
use ember_numerics::{GroupLayout, Scheme, quantize};
use ember_runtime::{
    ActRange, ActSpec, Architecture, CompressedLinear, CompressedModel, Embeddings, Engine, EngineOptions, Layer,
    LayerArch, LayerNormParams, Meta, Output, Pooling, QuantTensor, RuntimeError, Weight,
};

// ---------------------------------------------------------------------------------------------
// A small random model
// ---------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [−1, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}

const VOCAB: usize = 50;
const D: usize = 64;
const MAX_POS: usize = 24;

fn arch_layers() -> Vec<LayerArch> {
    vec![
        LayerArch {
            n_heads: 4,
            head_dim: 16,
            d_ff: 96,
        },
        LayerArch {
            n_heads: 2,
            head_dim: 24,
            d_ff: 128,
        },
        LayerArch {
            n_heads: 8,
            head_dim: 4,
            d_ff: 64,
        },
    ]
}

fn f32_weight(rng: &mut Rng, rows: usize, cols: usize) -> Weight {
    // ±√(3/cols)·1.6: outputs of order one, so GELU and softmax see their nonlinear range
    let scale = 1.6 * (3.0 / cols as f32).sqrt();
    Weight::F32 {
        rows,
        cols,
        values: rng.vec(rows * cols, scale),
    }
}

fn norm(rng: &mut Rng) -> LayerNormParams {
    LayerNormParams {
        gamma: (0..D).map(|_| 1.0 + 0.2 * rng.uniform()).collect(),
        beta: rng.vec(D, 0.1),
        eps: 1e-12,
    }
}

fn random_model(seed: u64) -> CompressedModel {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let layers_arch = arch_layers();
    let layers = layers_arch
        .iter()
        .enumerate()
        .map(|(i, la)| {
            let a = la.attn_width();
            let lin = |suffix: &str, rows: usize, cols: usize, rng: &mut Rng| CompressedLinear {
                name: format!("encoder.layer.{i}.{suffix}"),
                weight: f32_weight(rng, rows, cols),
                bias: Some(rng.vec(rows, 0.2)),
                act: None,
            };
            let query = lin("attention.self.query", a, D, &mut rng);
            let key = lin("attention.self.key", a, D, &mut rng);
            let value = lin("attention.self.value", a, D, &mut rng);
            let attn_out = lin("attention.output.dense", D, a, &mut rng);
            let ffn_in = lin("intermediate.dense", la.d_ff, D, &mut rng);
            let mut ffn_out = lin("output.dense", D, la.d_ff, &mut rng);
            if i == 1 {
                ffn_out.bias = None; // one Linear without bias
            }
            Layer {
                query,
                key,
                value,
                attn_out,
                attn_norm: norm(&mut rng),
                ffn_in,
                ffn_out,
                out_norm: norm(&mut rng),
            }
        })
        .collect();
    let table = |rng: &mut Rng, rows| Weight::F32 {
        rows,
        cols: D,
        values: rng.vec(rows * D, 1.0),
    };
    CompressedModel {
        arch: Architecture {
            family: "bert".into(),
            name: "test".into(),
            vocab_size: VOCAB,
            d_model: D,
            max_positions: MAX_POS,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            max_seq_length: MAX_POS,
            pooling: Pooling::MeanNormalized,
            layers: layers_arch,
            kept_layers: vec![0, 1, 2],
        },
        embeddings: Embeddings {
            word: table(&mut rng, VOCAB),
            position: table(&mut rng, MAX_POS),
            token_type: table(&mut rng, 2),
            norm: norm(&mut rng),
        },
        layers,
        tokenizer: None,
        meta: Meta::default(),
    }
}

fn quant(w: &Weight, scheme: Scheme, layout: GroupLayout, numerics: Numerics) -> Weight {
    let (rows, cols) = (w.rows(), w.cols());
    let q = quantize(&w.to_f32(), rows, cols, layout, scheme, numerics);
    Weight::Quant(QuantTensor::from_quantized(&q).unwrap())
}

/// Every Linear quantized with `scheme`/`layout`, inputs quantized with `act`.
fn quantized(mut m: CompressedModel, scheme: Scheme, layout: GroupLayout, act: Option<ActSpec>) -> CompressedModel {
    for l in &mut m.layers {
        for lin in l.linears_mut() {
            lin.weight = quant(&lin.weight, scheme, layout, Numerics::Ember);
            lin.act = act;
        }
    }
    m
}

// ---------------------------------------------------------------------------------------------
// The f64 reference
// ---------------------------------------------------------------------------------------------

/// erf in f64: Taylor series below 3, Laplace's continued fraction for erfc above (≈1e-15).
fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let v = if a < 3.0 {
        let (mut term, mut s, x2) = (a, a, a * a);
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            s += add;
            if add.abs() < 1e-18 * s.abs() {
                break;
            }
        }
        s * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut f = a;
        for k in (1..80).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
    };
    v.copysign(x)
}

/// Whether `t` (a value about to be rounded) is so close to a rounding tie that a float difference
/// of relative size 1e-5 could round it the other way.
fn near_tie(t: f32) -> bool {
    let dist = ((t - t.floor()) - 0.5).abs();
    dist < 1e-5 * t.abs().max(1.0)
}

/// The composer's activation fake quantization of one row, in f32 (module docs of
/// `ember_core::fake_quant`): round half to even, per-row or static range. Also says whether any
/// rounding of the row was within a hair of a tie (there the engine's float inputs, which differ
/// from this f64 reference's in the last bits, may legitimately round the other way).
fn fake_quant_row(spec: &ActSpec, row: &[f32]) -> (Vec<f32>, bool) {
    let (mn, mx) = match spec.range {
        ActRange::Dynamic => (
            row.iter().copied().fold(f32::INFINITY, f32::min),
            row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        ),
        ActRange::Static { min, max } => (min, max),
    };
    let b = spec.bits;
    if spec.symmetric {
        let m = mn.abs().max(mx.abs());
        let (s, lo, hi) = match spec.numerics {
            Numerics::Ember => {
                let q = ((1 << (b - 1)) - 1) as f32;
                (m / q, -q, q)
            }
            Numerics::Deepspeed => {
                let r = (1u64 << b) as f32;
                (m * 2.0 / r, -r / 2.0, r / 2.0 - 1.0)
            }
        };
        let safe = if s == 0.0 { 1.0 } else { s };
        let tie = s != 0.0 && row.iter().any(|&x| near_tie(x / safe));
        let v = row
            .iter()
            .map(|&x| (x / safe).round_ties_even().clamp(lo, hi) * s)
            .collect();
        return (v, tie);
    }
    match spec.numerics {
        Numerics::Ember => {
            let top = ((1u64 << b) - 1) as f32;
            let s = (mx - mn) / top;
            if s == 0.0 {
                return (vec![mn; row.len()], false);
            }
            let z = (-mn / s).round_ties_even();
            let tie = near_tie(-mn / s) || row.iter().any(|&x| near_tie(x / s));
            let v = row
                .iter()
                .map(|&x| (((x / s).round_ties_even() + z).clamp(0.0, top) - z) * s)
                .collect();
            (v, tie)
        }
        Numerics::Deepspeed => {
            let r = (1u64 << b) as f32;
            let s = (mx - mn) / r;
            if s == 0.0 {
                return (vec![mn; row.len()], false);
            }
            let z = (mn / s).round_ties_even() * s;
            let tie = near_tie(mn / s) || row.iter().any(|&x| near_tie((x - z) / s));
            let v = row
                .iter()
                .map(|&x| ((x - z) / s).round_ties_even().clamp(0.0, r - 1.0) * s + z)
                .collect();
            (v, tie)
        }
    }
}

/// `x · Wᵀ + b` in f64 (rows of `seq` tokens per sentence; `ties[sentence]` is set where a
/// quantized input of that sentence was near a rounding tie).
fn ref_linear(x: &[f64], m: usize, lin: &CompressedLinear, seq: usize, ties: &mut [bool]) -> Vec<f64> {
    let (n, k) = (lin.out_features(), lin.in_features());
    let w = lin.weight.to_f32(); // QuantTensor::dequantize for packed weights
    let mut y = vec![0f64; m * n];
    for r in 0..m {
        let row: Vec<f64> = match &lin.act {
            None => x[r * k..(r + 1) * k].to_vec(),
            Some(spec) => {
                let xf: Vec<f32> = x[r * k..(r + 1) * k].iter().map(|&v| v as f32).collect();
                let (v, tie) = fake_quant_row(spec, &xf);
                ties[r / seq] |= tie;
                v.into_iter().map(f64::from).collect()
            }
        };
        for c in 0..n {
            let mut s = lin.bias.as_ref().map_or(0.0, |b| b[c] as f64);
            for i in 0..k {
                s += row[i] * w[c * k + i] as f64;
            }
            y[r * n + c] = s;
        }
    }
    y
}

fn ref_layer_norm(x: &mut [f64], p: &LayerNormParams) {
    let d = p.gamma.len();
    for row in x.chunks_mut(d) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let den = (var + p.eps as f64).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            *v = (*v - mean) / den * p.gamma[i] as f64 + p.beta[i] as f64;
        }
    }
}

/// The reference forward pass.
struct Reference {
    /// `[batch·seq·d]`
    hidden: Vec<f64>,
    /// `[batch·d]`
    emb: Vec<f64>,
    /// Per sentence: an activation quantizer met a near-tie (see [`fake_quant_row`]).
    near_tie: Vec<bool>,
}

fn reference(model: &CompressedModel, ids: &[u32], mask: &[u32], batch: usize, seq: usize) -> Reference {
    let mut ties = vec![false; batch];
    let m = batch * seq;
    let e = &model.embeddings;
    let (word, pos, tt) = (e.word.to_f32(), e.position.to_f32(), e.token_type.to_f32());
    let mut x = vec![0f64; m * D];
    for i in 0..m {
        let (id, t) = (ids[i] as usize, i % seq);
        for j in 0..D {
            x[i * D + j] = word[id * D + j] as f64 + pos[t * D + j] as f64 + tt[j] as f64;
        }
    }
    ref_layer_norm(&mut x, &e.norm);
    for (la, l) in model.arch.layers.iter().zip(&model.layers) {
        let (heads, hd) = (la.n_heads, la.head_dim);
        let a = heads * hd;
        let q = ref_linear(&x, m, &l.query, seq, &mut ties);
        let k = ref_linear(&x, m, &l.key, seq, &mut ties);
        let v = ref_linear(&x, m, &l.value, seq, &mut ties);
        let mut ctx = vec![0f64; m * a];
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..seq {
                    let qi = &q[(b * seq + i) * a + h * hd..][..hd];
                    let scores: Vec<f64> = (0..seq)
                        .map(|j| {
                            if mask[b * seq + j] == 0 {
                                f64::NEG_INFINITY
                            } else {
                                let kj = &k[(b * seq + j) * a + h * hd..][..hd];
                                qi.iter().zip(kj).map(|(p, q)| p * q).sum::<f64>() / (hd as f64).sqrt()
                            }
                        })
                        .collect();
                    let mx = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let ex: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                    let z: f64 = ex.iter().sum();
                    for c in 0..hd {
                        ctx[(b * seq + i) * a + h * hd + c] =
                            (0..seq).map(|j| ex[j] / z * v[(b * seq + j) * a + h * hd + c]).sum();
                    }
                }
            }
        }
        let mut h = ref_linear(&ctx, m, &l.attn_out, seq, &mut ties);
        h.iter_mut().zip(&x).for_each(|(a, b)| *a += b);
        ref_layer_norm(&mut h, &l.attn_norm);
        x = h;
        let mut f = ref_linear(&x, m, &l.ffn_in, seq, &mut ties);
        f.iter_mut()
            .for_each(|v| *v = 0.5 * *v * (1.0 + erf64(*v / std::f64::consts::SQRT_2)));
        let mut h = ref_linear(&f, m, &l.ffn_out, seq, &mut ties);
        h.iter_mut().zip(&x).for_each(|(a, b)| *a += b);
        ref_layer_norm(&mut h, &l.out_norm);
        x = h;
    }
    let mut emb = vec![0f64; batch * D];
    for b in 0..batch {
        let count = (0..seq).map(|t| mask[b * seq + t] as f64).sum::<f64>().max(1e-9);
        for j in 0..D {
            emb[b * D + j] = (0..seq)
                .map(|t| mask[b * seq + t] as f64 * x[(b * seq + t) * D + j])
                .sum::<f64>()
                / count;
        }
        let norm = emb[b * D..(b + 1) * D]
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        emb[b * D..(b + 1) * D].iter_mut().for_each(|v| *v /= norm);
    }
    Reference {
        hidden: x,
        emb,
        near_tie: ties,
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs and comparisons
// ---------------------------------------------------------------------------------------------

/// Sentences of different lengths, right-padded to the longest (plus one sentence with a hole
/// in its mask, which the engine must treat as a masked key like any other).
fn batch(rng_seed: u64, lens: &[usize]) -> (Vec<u32>, Vec<u32>, usize, usize) {
    let mut rng = Rng(rng_seed | 1);
    let seq = *lens.iter().max().unwrap();
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for &len in lens {
        for t in 0..seq {
            ids.push(if t < len { (rng.next() % VOCAB as u64) as u32 } else { 0 });
            mask.push(u32::from(t < len));
        }
    }
    (ids, mask, lens.len(), seq)
}

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).abs()).fold(0.0, f64::max)
}

/// Largest difference over the non-padding positions of the last hidden state.
fn hidden_diff(got: &[f32], want: &[f64], mask: &[u32]) -> f64 {
    let mut worst = 0f64;
    for (t, &m) in mask.iter().enumerate() {
        if m == 1 {
            worst = worst.max(max_abs_diff(&got[t * D..(t + 1) * D], &want[t * D..(t + 1) * D]));
        }
    }
    worst
}

/// Compares the embeddings sentence by sentence: each within `tol` of the reference, except a
/// sentence where the reference met a near-tie in an activation quantizer (one code may then round
/// the other way in the engine), which must still be within 1e-2. Returns how many were excused.
fn compare(out: &Output, r: &Reference, tol: f64, what: &str) -> usize {
    let mut excused = 0;
    for b in 0..out.batch {
        let d = max_abs_diff(&out.embeddings[b * D..(b + 1) * D], &r.emb[b * D..(b + 1) * D]);
        if d > tol {
            assert!(
                r.near_tie[b] && d <= 1e-2,
                "{what}: sentence {b} differs by {d:e} (near a rounding tie: {})",
                r.near_tie[b]
            );
            excused += 1;
        }
    }
    excused
}

fn engine(model: &CompressedModel, threads: Option<usize>, isa: Option<Isa>) -> Engine {
    Engine::new(model, EngineOptions { threads, isa }).unwrap()
}

/// Thread counts and instruction sets to run every comparison on: the defaults (all cores, the
/// best ISA: VNNI kernels and AVX-512 element-wise code on this project's machines), one thread
/// with AVX2, two threads with the portable scalar code.
fn configs() -> Vec<(Option<usize>, Option<Isa>)> {
    let avx2 = Isa::Avx2.is_supported().then_some(Isa::Avx2).or(Some(Isa::Scalar));
    vec![(None, None), (Some(1), avx2), (Some(2), Some(Isa::Scalar))]
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn f32_model_matches_the_f64_reference() {
    let model = random_model(1);
    let (ids, mask, b, s) = batch(7, &[11, 4, 9, 1]);
    let r = reference(&model, &ids, &mask, b, s);
    let (hidden, emb) = (&r.hidden, &r.emb);
    for (threads, isa) in configs() {
        let e = engine(&model, threads, isa);
        let out = e.forward(&ids, &mask, b, s).unwrap();
        assert_eq!((out.batch, out.seq, out.d_model), (b, s, D));
        assert_eq!(out.last_hidden.len(), b * s * D);
        let de = max_abs_diff(&out.embeddings, emb);
        let dh = hidden_diff(&out.last_hidden, hidden, &mask);
        assert!(de <= 1e-5, "{threads:?} {isa:?}: embeddings differ by {de:e}");
        assert!(dh <= 1e-4, "{threads:?} {isa:?}: hidden states differ by {dh:e}");
        assert!(e.kernels().iter().all(|k| k.kernel == "gemm_f32" && k.note.is_none()));
        assert_eq!(e.kernels().len(), 6 * 3);
        assert_eq!(e.d_model(), D);
    }
}

#[test]
fn padded_rows_equal_the_same_sentence_unpadded() {
    for model in [
        random_model(2),
        quantized(
            random_model(2),
            Scheme::Symmetric { bits: 8 },
            GroupLayout::PerRow,
            Some(ActSpec {
                bits: 8,
                symmetric: false,
                numerics: Numerics::Ember,
                range: ActRange::Dynamic,
            }),
        ),
    ] {
        let e = engine(&model, None, None);
        let (ids, mask, b, s) = batch(11, &[5, 13, 8]);
        let padded = e.forward(&ids, &mask, b, s).unwrap();
        for (row, len) in [5usize, 13, 8].into_iter().enumerate() {
            let alone = e.forward(&ids[row * s..row * s + len], &vec![1; len], 1, len).unwrap();
            let de = max_abs_diff(
                &padded.embeddings[row * D..(row + 1) * D],
                &alone.embeddings.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            );
            assert!(de <= 1e-6, "sentence {row}: embeddings differ by {de:e}");
            let dh = max_abs_diff(
                &padded.last_hidden[row * s * D..(row * s + len) * D],
                &alone.last_hidden.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            );
            assert!(dh <= 1e-5, "sentence {row}: hidden states differ by {dh:e}");
        }
    }
}

#[test]
fn a_hole_in_the_mask_is_a_masked_key() {
    let model = random_model(3);
    let (ids, mut mask, b, s) = batch(5, &[10, 7]);
    mask[3] = 0; // sentence 0, position 3
    let r = reference(&model, &ids, &mask, b, s);
    let out = engine(&model, None, None).forward(&ids, &mask, b, s).unwrap();
    assert!(max_abs_diff(&out.embeddings, &r.emb) <= 1e-5);
    assert!(hidden_diff(&out.last_hidden, &r.hidden, &mask) <= 1e-4);
}

fn act(bits: u32, symmetric: bool, numerics: Numerics, range: ActRange) -> ActSpec {
    ActSpec {
        bits,
        symmetric,
        numerics,
        range,
    }
}

/// Quantized weights × quantized activations against the fake-quant reference.
#[test]
fn quantized_models_match_the_fake_quant_reference() {
    let weights = [
        ("int8 per-row", Scheme::Symmetric { bits: 8 }, GroupLayout::PerRow),
        ("int8 g32", Scheme::Symmetric { bits: 8 }, GroupLayout::RowGroups(32)),
        (
            "int4 g32 asym",
            Scheme::Asymmetric { bits: 4 },
            GroupLayout::RowGroups(32),
        ),
        ("ternary", Scheme::Ternary, GroupLayout::PerRow),
        ("binary", Scheme::Binary, GroupLayout::PerRow),
    ];
    let acts = [
        ("dyn sym ember a8", act(8, true, Numerics::Ember, ActRange::Dynamic)),
        ("dyn asym ember a8", act(8, false, Numerics::Ember, ActRange::Dynamic)),
        (
            "dyn asym deepspeed a8",
            act(8, false, Numerics::Deepspeed, ActRange::Dynamic),
        ),
        (
            "static sym a8",
            act(8, true, Numerics::Ember, ActRange::Static { min: -3.0, max: 2.5 }),
        ),
        ("dyn asym ember a4", act(4, false, Numerics::Ember, ActRange::Dynamic)),
        (
            "dyn sym deepspeed a4",
            act(4, true, Numerics::Deepspeed, ActRange::Dynamic),
        ),
    ];
    let (ids, mask, b, s) = batch(13, &[12, 6, 9]);
    let (mut excused, mut total) = (0, 0);
    for (wname, scheme, layout) in weights {
        for (aname, spec) in acts {
            let model = quantized(random_model(4), scheme, layout, Some(spec));
            let r = reference(&model, &ids, &mask, b, s);
            let e = engine(&model, None, None);
            for k in e.kernels() {
                assert!(
                    k.kernel.starts_with("gemm_i8"),
                    "{wname} {aname}: {} runs {}",
                    k.name,
                    k.kernel
                );
                assert!(k.note.is_none());
            }
            let out = e.forward(&ids, &mask, b, s).unwrap();
            excused += compare(&out, &r, 1e-4, &format!("{wname} × {aname}"));
            total += b;
        }
    }
    // a near-tie that the engine rounds the other way is rare (about one sentence in 40 here)
    assert!(excused * 10 <= total, "{excused} of {total} sentences differ");
}

#[test]
fn integer_kernels_agree_across_threads_and_instruction_sets() {
    let spec = act(8, false, Numerics::Deepspeed, ActRange::Dynamic);
    let model = quantized(
        random_model(5),
        Scheme::Asymmetric { bits: 4 },
        GroupLayout::RowGroups(32),
        Some(spec),
    );
    let (ids, mask, b, s) = batch(17, &[9, 3]);
    let outs: Vec<_> = configs()
        .into_iter()
        .map(|(t, i)| engine(&model, t, i).forward(&ids, &mask, b, s).unwrap())
        .collect();
    for o in &outs[1..] {
        let d = max_abs_diff(
            &o.embeddings,
            &outs[0].embeddings.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        );
        assert!(d <= 1e-5, "{d:e}");
    }
}

/// Q, K, V with different input quantization run as three products (K and V share one quantized
/// input); a layer with an f32 weight next to packed ones; static asymmetric ranges.
#[test]
fn mixed_layers_match_the_reference() {
    let mut model = random_model(6);
    let int8 = |w: &Weight| quant(w, Scheme::Symmetric { bits: 8 }, GroupLayout::PerRow, Numerics::Ember);
    let l0 = &mut model.layers[0];
    l0.query.weight = int8(&l0.query.weight);
    l0.query.act = Some(act(8, true, Numerics::Ember, ActRange::Dynamic));
    for lin in [&mut l0.key, &mut l0.value] {
        lin.weight = quant(
            &lin.weight,
            Scheme::Symmetric { bits: 4 },
            GroupLayout::RowGroups(32),
            Numerics::Ember,
        );
        lin.act = Some(act(8, false, Numerics::Ember, ActRange::Static { min: -2.0, max: 3.0 }));
    }
    l0.ffn_in.act = Some(act(8, false, Numerics::Ember, ActRange::Dynamic)); // f32 weight, fake-quant input
    let l1 = &mut model.layers[1];
    l1.ffn_out.weight = int8(&l1.ffn_out.weight);
    l1.ffn_out.act = Some(act(
        6,
        false,
        Numerics::Deepspeed,
        ActRange::Static { min: -0.2, max: 4.0 },
    ));
    let (ids, mask, b, s) = batch(19, &[7, 12]);
    let r = reference(&model, &ids, &mask, b, s);
    let e = engine(&model, None, None);
    let k = e.kernels();
    assert_eq!((k[0].kernel.as_str(), k[0].fused_qkv), ("gemm_i8i8", false));
    assert_eq!(k[1].kernel, "gemm_i8i4");
    assert_eq!(k[4].kernel, "gemm_f32 (A8 fake-quant)");
    assert!(k[6].fused_qkv, "{:?}", k[6]);
    let out = e.forward(&ids, &mask, b, s).unwrap();
    assert!(compare(&out, &r, 1e-4, "mixed") <= 1);
}

/// Weight-only quantization: int8/int4 kernels on f32 activations (one call, or rows split per
/// thread for larger batches), and the load-time fallback for formats without such a kernel.
#[test]
fn weight_only_models_match_the_reference() {
    let cases = [
        (Scheme::Symmetric { bits: 8 }, GroupLayout::PerRow, None),
        (Scheme::Asymmetric { bits: 4 }, GroupLayout::RowGroups(32), None),
        (Scheme::Ternary, GroupLayout::PerRow, Some("ternary")),
        (Scheme::Float(FloatFormat::E4m3), GroupLayout::PerRow, Some("fp8")),
    ];
    for (scheme, layout, fallback) in cases {
        let model = quantized(random_model(8), scheme, layout, None);
        let e = engine(&model, None, None);
        for k in e.kernels() {
            match fallback {
                None => assert!(k.kernel.starts_with("gemm_f32_i") && k.note.is_none(), "{}", k.kernel),
                Some(word) => {
                    assert!(k.kernel.contains("dequantized"), "{}", k.kernel);
                    assert!(k.note.as_deref().unwrap().contains(word), "{:?}", k.note);
                }
            }
        }
        // 2 sentences = 24 rows (one kernel call); 24 sentences = 288 rows (rows split per thread
        // when there are several).
        for sentences in [2usize, 24] {
            let lens: Vec<usize> = (0..sentences).map(|i| 4 + (i * 5) % 9).collect();
            let (ids, mask, b, s) = batch(23 + sentences as u64, &lens);
            let r = reference(&model, &ids, &mask, b, s);
            let out = e.forward(&ids, &mask, b, s).unwrap();
            let de = max_abs_diff(&out.embeddings, &r.emb);
            assert!(
                de <= 2e-5,
                "{scheme:?} {sentences} sentences: embeddings differ by {de:e}"
            );
        }
    }
}

#[test]
fn quantized_embedding_tables_dequantize_the_rows_they_read() {
    let mut model = random_model(9);
    let e = &mut model.embeddings;
    e.word = quant(
        &e.word,
        Scheme::Symmetric { bits: 8 },
        GroupLayout::PerRow,
        Numerics::Ember,
    );
    e.position = quant(
        &e.position,
        Scheme::Asymmetric { bits: 4 },
        GroupLayout::PerRow,
        Numerics::Ember,
    );
    let (ids, mask, b, s) = batch(29, &[8, 5]);
    let r = reference(&model, &ids, &mask, b, s);
    let out = engine(&model, None, None).forward(&ids, &mask, b, s).unwrap();
    assert!(max_abs_diff(&out.embeddings, &r.emb) <= 1e-5);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let e = engine(&random_model(10), None, None);
    let ok_ids = vec![1u32; 6];
    let ok_mask = vec![1u32; 6];
    let input_err = |r: ember_runtime::Result<ember_runtime::Output>| match r {
        Err(RuntimeError::Input(m)) => m,
        other => panic!("expected an input error, got {other:?}"),
    };
    assert!(input_err(e.forward(&ok_ids, &ok_mask, 0, 6)).contains("empty"));
    assert!(input_err(e.forward(&[], &[], 1, 0)).contains("empty"));
    assert!(input_err(e.forward(&ok_ids, &ok_mask, 2, 4)).contains("needs 8"));
    assert!(input_err(e.forward(&ok_ids[..5], &ok_mask, 1, 6)).contains("needs 6"));
    let long = vec![1u32; MAX_POS + 1];
    assert!(input_err(e.forward(&long, &long, 1, MAX_POS + 1)).contains("positions"));
    let mut bad_id = ok_ids.clone();
    bad_id[4] = VOCAB as u32;
    assert!(input_err(e.forward(&bad_id, &ok_mask, 2, 3)).contains("[1, 1]"));
    let mut bad_mask = ok_mask.clone();
    bad_mask[0] = 2;
    assert!(input_err(e.forward(&ok_ids, &bad_mask, 1, 6)).contains("mask"));
    assert!(input_err(e.forward(&ok_ids, &ok_mask, usize::MAX, 2)).contains("needs"));
    // a sentence that is all padding pools to zeros instead of NaN
    let out = e.forward(&ok_ids, &[1, 1, 1, 0, 0, 0], 2, 3).unwrap();
    assert!(out.embeddings[D..].iter().all(|&v| v == 0.0));
    assert!(out.last_hidden.iter().all(|v| v.is_finite()));
    // the maximum length is fine
    assert!(e.forward(&long[1..], &long[1..], 1, MAX_POS).is_ok());
}

#[test]
fn inconsistent_models_are_refused() {
    let invalid = |m: &CompressedModel| match Engine::new(m, EngineOptions::default()) {
        Err(RuntimeError::Invalid(msg)) => msg,
        Err(other) => panic!("expected an invalid-model error, got {other}"),
        Ok(_) => panic!("an inconsistent model was accepted"),
    };
    let mut m = random_model(12);
    m.layers[1].ffn_in.bias = Some(vec![0.0; 3]);
    assert!(invalid(&m).contains("encoder.layer.1.intermediate.dense: bias"));
    let mut m = random_model(12);
    m.arch.layers[2].d_ff = 65;
    let msg = invalid(&m);
    assert!(
        msg.contains("encoder.layer.2.output.dense: weight is [64, 64] but the architecture needs [64, 65]"),
        "{msg}"
    );
    let mut m = random_model(12);
    m.layers[0].attn_norm.beta.pop();
    assert!(invalid(&m).contains("LayerNorm"));
    let mut m = random_model(12);
    m.layers.pop();
    assert!(invalid(&m).contains("layers"));
    let mut m = random_model(12);
    m.layers[0].query.act = Some(act(12, true, Numerics::Ember, ActRange::Dynamic));
    assert!(invalid(&m).contains("12 bits"));
    let mut m = random_model(12);
    m.layers[2].ffn_out.act = Some(act(8, false, Numerics::Ember, ActRange::Static { min: 1.0, max: -1.0 }));
    assert!(invalid(&m).contains("encoder.layer.2.output.dense: static activation range"));
    let mut m = quantized(
        random_model(12),
        Scheme::Symmetric { bits: 8 },
        GroupLayout::PerRow,
        None,
    );
    if let Weight::Quant(q) = &mut m.layers[0].value.weight {
        q.scales.pop();
    }
    assert!(invalid(&m).contains("encoder.layer.0.attention.self.value"));
}

#[test]
fn an_engine_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine>();
    let model = random_model(13);
    let e = engine(&model, Some(2), None);
    let (ids, mask, b, s) = batch(31, &[6, 9]);
    let alone = e.forward(&ids, &mask, b, s).unwrap();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| e.forward(&ids, &mask, b, s).unwrap()))
            .collect();
        for r in runs {
            assert_eq!(r.join().unwrap(), alone);
        }
    });
}

/// Enough rows (25 sentences, 300 tokens) that every product is split into row chunks, each
/// quantized and multiplied on its own (one thread or several).
#[test]
fn large_batches_split_into_row_chunks_match_the_reference() {
    let lens: Vec<usize> = (0..25).map(|i| 12 - i % 5).collect();
    let (ids, mask, b, s) = batch(37, &lens);
    let cases = [
        (
            Scheme::Symmetric { bits: 8 },
            GroupLayout::PerRow,
            Some(act(8, false, Numerics::Ember, ActRange::Dynamic)),
        ),
        (
            Scheme::Symmetric { bits: 8 },
            GroupLayout::RowGroups(32),
            Some(act(8, true, Numerics::Ember, ActRange::Dynamic)),
        ),
        (
            Scheme::Asymmetric { bits: 4 },
            GroupLayout::RowGroups(32),
            Some(act(8, false, Numerics::Deepspeed, ActRange::Dynamic)),
        ),
    ];
    let (mut excused, mut total) = (0, 0);
    for (scheme, layout, spec) in cases {
        let model = quantized(random_model(14), scheme, layout, spec);
        let r = reference(&model, &ids, &mask, b, s);
        for (threads, isa) in configs() {
            let out = engine(&model, threads, isa).forward(&ids, &mask, b, s).unwrap();
            excused += compare(&out, &r, 1e-4, &format!("{scheme:?} {threads:?} {isa:?}"));
            total += b;
        }
    }
    assert!(excused * 10 <= total, "{excused} of {total} sentences differ");
}

/// A finite but huge LayerNorm weight overflows f32 downstream: the engine refuses to return the
/// NaNs and names the layer where the values first stop being finite.
#[test]
fn non_finite_activations_are_an_error_naming_the_layer() {
    let mut model = random_model(12);
    model.layers[1].out_norm.gamma.iter_mut().for_each(|g| *g = f32::MAX);
    let (ids, mask, b, s) = batch(5, &[6, 9]);
    let err = engine(&model, None, None)
        .forward(&ids, &mask, b, s)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not finite from encoder.layer.1 on"), "{err}");
    // The same model with a sane weight runs.
    model.layers[1].out_norm.gamma.iter_mut().for_each(|g| *g = 1.0);
    let out = engine(&model, None, None).forward(&ids, &mask, b, s).unwrap();
    assert!(out.embeddings.iter().all(|v| v.is_finite()));
}
