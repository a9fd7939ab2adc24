//! The CPU inference engine: runs a [`CompressedModel`] (BERT-style encoder, post-LayerNorm, exact
//! GELU, mean pooling + L2 normalization) with `ember-kernels`' integer GEMMs for quantized layers
//! and an f32 path ("Ember fp32") for everything else, on all cores.
//!
//! All preparation happens once in [`Engine::new`]: weights are packed into the kernels' panel
//! formats, Q/K/V with identical formats and input quantization are fused into one product, and
//! asymmetric-activation weight sums are precomputed. [`Engine::forward`] then runs
//!
//! ```text
//! ids ─► word + position + type(0) ─► LayerNorm ─► per layer:
//!        x ─► [Q|K|V] ─► attention per (sentence, head) ─► attn_out ─► LayerNorm(· + x) ─► x
//!        x ─► ffn_in ─► GELU ─► ffn_out ─► LayerNorm(· + x) ─► x
//! ─► masked mean ─► L2 normalize
//! ```
//!
//! How each Linear runs (and why a module has no integer kernel) is in [`linear`]'s table and is
//! reported per module by [`Engine::kernels`]. Semantics follow `ember-models`' burn `Bert`
//! (`crates/ember-models/src/bert.rs`); `tests/engine.rs` checks them against an f64 reference.

mod act_quant;
mod attention;
mod linear;
mod ops;

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ember_kernels::{Isa, KernelConfig, Threads};
use rayon::prelude::*;

use crate::error::{Result, RuntimeError};
use crate::model::{CompressedLinear, CompressedModel, LayerNormParams, Weight};
use crate::quant_tensor::{QuantTensor, Zeros};
use attention::{Dims, View};
use linear::{InputKind, LinearOp, Prepared};

/// How the engine runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// Worker threads; `None` (or `Some(0)`) = all cores.
    pub threads: Option<usize>,
    /// Instruction set; `None` = the best this CPU has ([`Isa::detect`]). [`Isa::Scalar`] runs the
    /// portable reference kernels and element-wise code, [`Isa::Avx2`] the AVX2 kernels and
    /// element-wise code, [`Isa::Avx512Vnni`] the VNNI kernels and, where the CPU has AVX-512F,
    /// 16-lane element-wise code. Every level computes the same element-wise results bit for bit.
    pub isa: Option<Isa>,
}

/// The kernel one Linear module runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleKernel {
    /// The module's path (`encoder.layer.0.attention.self.query`).
    pub name: String,
    /// The kernel family (`gemm_i8i8`, `gemm_f32_i4`, `gemm_f32 (fp8-e4m3 dequantized)`, …): the
    /// name `ember plan` predicts ([`ember_numerics::LinearKernel::name`]).
    pub kernel: String,
    /// The instruction set it runs on (`vnni`, `avx2`, `scalar`; `gemm crate` for f32).
    pub isa: String,
    /// Whether Q, K and V run as one fused product.
    pub fused_qkv: bool,
    /// Why no integer kernel runs (set when a quantized weight falls back to f32).
    pub note: Option<String>,
}

/// What [`Engine::forward`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Sentences.
    pub batch: usize,
    /// Tokens per sentence (padding included).
    pub seq: usize,
    /// Hidden width.
    pub d_model: usize,
    /// `[batch, seq, d_model]`, padding positions included.
    pub last_hidden: Vec<f32>,
    /// `[batch, d_model]`: mean over the positions with mask 1, then L2-normalized.
    pub embeddings: Vec<f32>,
}

/// Threads, instruction set and the kernels' configuration, shared by every operation.
pub(crate) struct Exec {
    pool: rayon::ThreadPool,
    pub threads: usize,
    /// Which copy of the element-wise code runs (see `ops::simd_fn!`).
    pub simd: ops::Simd,
    pub kcfg: KernelConfig,
}

impl Exec {
    pub(crate) fn parallel(&self) -> bool {
        self.threads > 1
    }

    /// The kernels' configuration on the calling thread only (inside a parallel task).
    pub(crate) fn single(&self) -> KernelConfig {
        KernelConfig {
            threads: Threads::Single,
            ..self.kcfg
        }
    }

    pub(crate) fn gemm_parallelism(&self) -> gemm::Parallelism {
        if self.parallel() {
            gemm::Parallelism::Rayon(self.threads)
        } else {
            gemm::Parallelism::None
        }
    }

    /// `f(row)` for every `len`-long row of `data`, in parallel when worth it.
    fn rows(&self, data: &mut [f32], len: usize, f: impl Fn(&mut [f32]) + Sync + Send) {
        if self.parallel() && data.len() >= 1 << 14 {
            data.par_chunks_mut(len)
                .with_min_len((4096 / len.max(1)).max(1))
                .for_each(f);
        } else {
            data.chunks_mut(len).for_each(f);
        }
    }

    /// `f(a_row, b_row)` for every pair of `len`-long rows.
    fn rows2(&self, a: &mut [f32], b: &mut [f32], len: usize, f: impl Fn(&mut [f32], &mut [f32]) + Sync + Send) {
        if self.parallel() && a.len() >= 1 << 14 {
            a.par_chunks_mut(len)
                .zip(b.par_chunks_mut(len))
                .with_min_len((4096 / len.max(1)).max(1))
                .for_each(|(x, y)| f(x, y));
        } else {
            a.chunks_mut(len).zip(b.chunks_mut(len)).for_each(|(x, y)| f(x, y));
        }
    }
}

/// Q, K and V: one fused product (`[M, 3·A]`) or three.
enum Qkv {
    Fused(Box<LinearOp>),
    Separate(Box<[LinearOp; 3]>),
}

struct LayerOps {
    n_heads: usize,
    head_dim: usize,
    d_ff: usize,
    qkv: Qkv,
    attn_out: LinearOp,
    attn_norm: LayerNormParams,
    ffn_in: LinearOp,
    ffn_out: LinearOp,
    out_norm: LayerNormParams,
}

/// Per-forward buffers, kept between calls (sized for the largest batch seen).
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    h: Vec<f32>,
    f: Vec<f32>,
}

fn at_least(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// Wall time per phase of the forward pass, accumulated while enabled (benchmarks only).
#[derive(Default)]
struct Phases {
    on: AtomicBool,
    times: Mutex<Vec<(&'static str, f64)>>,
}

impl Phases {
    fn time<R>(&self, name: &'static str, f: impl FnOnce() -> R) -> R {
        if !self.on.load(Ordering::Relaxed) {
            return f();
        }
        let t0 = Instant::now();
        let r = f();
        let dt = t0.elapsed().as_secs_f64();
        let mut times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        match times.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += dt,
            None => times.push((name, dt)),
        }
        r
    }
}

/// A compressed model prepared for the CPU.
pub struct Engine {
    vocab: usize,
    d_model: usize,
    max_positions: usize,
    word: Weight,
    position: Weight,
    token_type0: Vec<f32>,
    emb_norm: LayerNormParams,
    layers: Vec<LayerOps>,
    kernels: Vec<ModuleKernel>,
    ex: Exec,
    scratch: Mutex<Option<Scratch>>,
    phases: Phases,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("d_model", &self.d_model)
            .field("layers", &self.layers.len())
            .field("threads", &self.ex.threads)
            .field("isa", &self.ex.kcfg.isa)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Checks the model, packs every weight for its kernel and starts the worker threads.
    ///
    /// # Errors
    /// An inconsistent model (shapes that do not match the architecture, corrupt packed tensors),
    /// activation quantization outside 2–8 bits, an instruction set this CPU lacks, or a thread
    /// pool that cannot start.
    pub fn new(model: &CompressedModel, opts: EngineOptions) -> Result<Engine> {
        let isa = opts.isa.unwrap_or_else(Isa::detect);
        if !isa.is_supported() {
            return Err(RuntimeError::Invalid(format!(
                "instruction set {isa:?} is not supported by this CPU; leave `isa` unset to detect it"
            )));
        }
        let threads = match opts.threads {
            Some(t) if t > 0 => t,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ember-engine-{i}"))
            .start_handler(|_| flush_denormals())
            .build()
            .map_err(|e| RuntimeError::Invalid(format!("cannot start {threads} engine threads: {e}")))?;
        let ex = Exec {
            pool,
            threads,
            simd: ops::Simd::for_isa(isa),
            kcfg: KernelConfig {
                isa,
                threads: if threads > 1 { Threads::All } else { Threads::Single },
            },
        };
        // Every shape the engine relies on, so a bad model is an error here and never a panic later.
        model.validate()?;
        let built: Vec<Result<(LayerOps, Vec<ModuleKernel>)>> = ex.pool.install(|| {
            model
                .layers
                .par_iter()
                .enumerate()
                .map(|(i, l)| build_layer(model, i, l, isa))
                .collect()
        });
        let mut layers = Vec::with_capacity(built.len());
        let mut kernels = Vec::new();
        for b in built {
            let (ops, ks) = b?;
            layers.push(ops);
            kernels.extend(ks);
        }
        let e = &model.embeddings;
        Ok(Engine {
            vocab: e.word.rows(),
            d_model: model.arch.d_model,
            max_positions: e.position.rows(),
            word: e.word.clone(),
            position: e.position.clone(),
            token_type0: e.token_type.row(0),
            emb_norm: e.norm.clone(),
            layers,
            kernels,
            ex,
            scratch: Mutex::new(None),
            phases: Phases::default(),
        })
    }

    /// The kernel of every Linear module, in model order (query, key, value, attention output,
    /// intermediate, output per layer).
    pub fn kernels(&self) -> &[ModuleKernel] {
        &self.kernels
    }

    /// Hidden width (the embedding size).
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// Worker threads the engine runs on.
    pub fn threads(&self) -> usize {
        self.ex.threads
    }

    /// Starts (or stops) accumulating the wall time of each phase of [`Engine::forward`]
    /// (benchmarks; phases are timed on the calling thread, so a phase includes its parallel work).
    #[doc(hidden)]
    pub fn profile_phases(&self, on: bool) {
        self.phases.on.store(on, Ordering::Relaxed);
    }

    /// The accumulated phase times in seconds, in first-seen order, and resets them.
    #[doc(hidden)]
    pub fn take_phase_times(&self) -> Vec<(&'static str, f64)> {
        std::mem::take(&mut *self.phases.times.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs the encoder on a `[batch, seq]` batch of token ids (row-major) with its attention mask
    /// (1 = token, 0 = padding). Token types are all 0, positions `0..seq`.
    ///
    /// # Errors
    /// [`RuntimeError::Input`] for an empty batch, slices that are not `batch·seq` long, a
    /// sequence longer than the model's positions, a token id outside the vocabulary or a mask
    /// value other than 0 and 1.
    pub fn forward(&self, input_ids: &[u32], attention_mask: &[u32], batch: usize, seq: usize) -> Result<Output> {
        self.check_input(input_ids, attention_mask, batch, seq)?;
        let mut scratch = self
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        let out = self
            .ex
            .pool
            .install(|| self.forward_inner(input_ids, attention_mask, batch, seq, &mut scratch));
        *self.scratch.lock().unwrap_or_else(|e| e.into_inner()) = Some(scratch);
        out
    }

    fn check_input(&self, ids: &[u32], mask: &[u32], batch: usize, seq: usize) -> Result<()> {
        let bad = |m: String| Err(RuntimeError::Input(m));
        if batch == 0 || seq == 0 {
            return bad(format!("an empty batch ({batch}×{seq}); pass at least one token"));
        }
        let cells = batch.saturating_mul(seq);
        if ids.len() != cells || mask.len() != cells {
            return bad(format!(
                "a batch of {batch}×{seq} needs {cells} token ids and mask entries, got {} and {}",
                ids.len(),
                mask.len()
            ));
        }
        if seq > self.max_positions {
            return bad(format!(
                "sequence of {seq} tokens is longer than the model's {} positions; truncate the input",
                self.max_positions
            ));
        }
        if let Some(i) = ids.iter().position(|&id| id as usize >= self.vocab) {
            return bad(format!(
                "token id {} at [{}, {}] is outside the vocabulary (0..{})",
                ids[i],
                i / seq,
                i % seq,
                self.vocab
            ));
        }
        if let Some(i) = mask.iter().position(|&m| m > 1) {
            return bad(format!(
                "attention mask value {} at [{}, {}]; use 1 for tokens and 0 for padding",
                mask[i],
                i / seq,
                i % seq
            ));
        }
        Ok(())
    }

    fn forward_inner(&self, ids: &[u32], mask: &[u32], batch: usize, seq: usize, sc: &mut Scratch) -> Result<Output> {
        let (m, d) = (batch * seq, self.d_model);
        let mut x = self.phases.time("embeddings", || self.embed(ids, seq));
        finite(&x, "embeddings")?;
        for (i, lo) in self.layers.iter().enumerate() {
            self.layer(lo, &mut x, mask, batch, seq, sc)?;
            // One pass over [m, d] per layer (the layer's GEMMs read it d times over): a NaN or
            // inf is reported where it first appears instead of leaving the engine as output.
            finite(&x, &format!("encoder.layer.{i}"))?;
        }
        let embeddings = self
            .phases
            .time("pooling", || pool_and_normalize(&x, mask, batch, seq, d));
        debug_assert_eq!(x.len(), m * d);
        Ok(Output {
            batch,
            seq,
            d_model: d,
            last_hidden: x,
            embeddings,
        })
    }

    /// `LayerNorm(word[id] + position[t] + token_type[0])` for every token.
    fn embed(&self, ids: &[u32], seq: usize) -> Vec<f32> {
        let d = self.d_model;
        let mut x = vec![0f32; ids.len() * d];
        let positions: Vec<Cow<'_, [f32]>> = (0..seq).map(|t| table_row(&self.position, t)).collect();
        let (tt, norm, simd) = (&self.token_type0, &self.emb_norm, self.ex.simd);
        let token = |(i, row): (usize, &mut [f32])| {
            let w = table_row(&self.word, ids[i] as usize);
            let p = &positions[i % seq];
            for (((o, &a), &b), &c) in row.iter_mut().zip(w.iter()).zip(p.iter()).zip(tt) {
                *o = (a + b) + c;
            }
            ops::layer_norm(simd, row, &norm.gamma, &norm.beta, norm.eps);
        };
        if self.ex.parallel() && ids.len() >= 64 {
            x.par_chunks_mut(d).enumerate().with_min_len(16).for_each(token);
        } else {
            x.chunks_mut(d).enumerate().for_each(token);
        }
        x
    }

    fn layer(
        &self,
        lo: &LayerOps,
        x: &mut [f32],
        mask: &[u32],
        batch: usize,
        seq: usize,
        sc: &mut Scratch,
    ) -> Result<()> {
        let ex = &self.ex;
        let (m, d, a) = (batch * seq, self.d_model, lo.n_heads * lo.head_dim);
        let Scratch { qkv, ctx, h, f } = sc;
        let qkv = at_least(qkv, 3 * m * a);
        let ctx = at_least(ctx, m * a);
        let h = at_least(h, m * d);
        let f = at_least(f, m * lo.d_ff);

        let ph = &self.phases;
        let (qv, kv, vv) = match &lo.qkv {
            Qkv::Fused(op) => {
                let p = ph.time("quantize inputs", || op.prepare(ex, x, m))?;
                ph.time("linear q/k/v", || op.run(ex, x, &p, m, qkv));
                let view = |off| View {
                    data: &*qkv,
                    ld: 3 * a,
                    off,
                };
                (view(0), view(a), view(2 * a))
            }
            Qkv::Separate(ops) => {
                let mut prepared: Vec<(InputKind, Prepared)> = Vec::new();
                for (op, out) in ops.iter().zip(qkv.chunks_mut(m * a)) {
                    let i = match prepared.iter().position(|(kind, _)| *kind == op.input) {
                        Some(i) => i,
                        None => {
                            prepared.push((op.input, ph.time("quantize inputs", || op.prepare(ex, x, m))?));
                            prepared.len() - 1
                        }
                    };
                    ph.time("linear q/k/v", || op.run(ex, x, &prepared[i].1, m, out));
                }
                let view = |i: usize| View {
                    data: &qkv[i * m * a..(i + 1) * m * a],
                    ld: a,
                    off: 0,
                };
                (view(0), view(1), view(2))
            }
        };
        let dims = Dims {
            batch,
            seq,
            heads: lo.n_heads,
            head_dim: lo.head_dim,
        };
        ph.time("attention", || attention::attention(ex, qv, kv, vv, mask, dims, ctx));

        let (simd, norm) = (ex.simd, &lo.attn_norm);
        let p = ph.time("quantize inputs", || lo.attn_out.prepare(ex, ctx, m))?;
        ph.time("linear attn_out", || lo.attn_out.run(ex, ctx, &p, m, h));
        ph.time("residual+layernorm", || {
            ex.rows2(h, x, d, |hr, xr| {
                ops::add_layer_norm(simd, hr, xr, &norm.gamma, &norm.beta, norm.eps)
            })
        });

        let p = ph.time("quantize inputs", || lo.ffn_in.prepare(ex, x, m))?;
        ph.time("linear ffn_in", || lo.ffn_in.run(ex, x, &p, m, f));
        ph.time("gelu", || ex.rows(f, lo.d_ff, |r| ops::gelu(simd, r)));

        let p = ph.time("quantize inputs", || lo.ffn_out.prepare(ex, f, m))?;
        ph.time("linear ffn_out", || lo.ffn_out.run(ex, f, &p, m, h));
        let norm = &lo.out_norm;
        ph.time("residual+layernorm", || {
            ex.rows2(h, x, d, |hr, xr| {
                ops::add_layer_norm(simd, hr, xr, &norm.gamma, &norm.beta, norm.eps)
            })
        });
        Ok(())
    }
}

/// Row `r` of an embedding table: borrowed for f32 tables, dequantized (that row only) otherwise.
fn table_row(w: &Weight, r: usize) -> Cow<'_, [f32]> {
    match w {
        Weight::F32 { cols, values, .. } => Cow::Borrowed(&values[r * cols..(r + 1) * cols]),
        Weight::Quant(q) => Cow::Owned(q.dequantize_row(r)),
    }
}

/// Masked mean over the sequence (count clamped to ≥ 1e-9), then L2 normalization (norm clamped
/// to ≥ 1e-12); accumulated in f64.
fn pool_and_normalize(x: &[f32], mask: &[u32], batch: usize, seq: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; batch * d];
    for (b, emb) in out.chunks_mut(d).enumerate() {
        let mut sum = vec![0f64; d];
        let mut count = 0f64;
        for t in 0..seq {
            let w = mask[b * seq + t] as f64;
            if w == 0.0 {
                continue;
            }
            count += w;
            for (s, &v) in sum.iter_mut().zip(&x[(b * seq + t) * d..(b * seq + t + 1) * d]) {
                *s += w * v as f64;
            }
        }
        let count = count.max(1e-9);
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        for (e, v) in emb.iter_mut().zip(&mean) {
            *e = (v / norm) as f32;
        }
    }
    out
}

/// An error naming `at` when `x` holds a NaN or an infinity.
fn finite(x: &[f32], at: &str) -> Result<()> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(RuntimeError::Invalid(format!(
            "the model's output is not finite from {at} on (value {} at element {i}): its weights overflow \
             f32 there for this input; check that module's weights, scales and LayerNorm parameters",
            x[i]
        ))),
    }
}

fn build_layer(
    model: &CompressedModel,
    i: usize,
    l: &crate::model::Layer,
    isa: Isa,
) -> Result<(LayerOps, Vec<ModuleKernel>)> {
    let la = model.arch.layers[i];
    let mut kernels = Vec::new();
    let mut report = |lin: &CompressedLinear, op: &LinearOp, fused_qkv: bool| {
        kernels.push(ModuleKernel {
            name: lin.name.clone(),
            kernel: op.kernel.clone(),
            isa: op.isa.to_string(),
            fused_qkv,
            note: op.note.clone(),
        });
    };
    let fused = fuse_qkv(l)
        .map(|lin| LinearOp::new(&lin, isa))
        .transpose()?
        // Fused only where every part runs the same integer kernel family on its own.
        .filter(|op| {
            op.note.is_none()
                && [&l.query, &l.key, &l.value]
                    .iter()
                    .all(|p| linear::kernel_of(p).name() == op.kernel)
        });
    let qkv = match fused {
        Some(op) => {
            for lin in [&l.query, &l.key, &l.value] {
                report(lin, &op, true);
            }
            Qkv::Fused(Box::new(op))
        }
        None => {
            let ops = [
                LinearOp::new(&l.query, isa)?,
                LinearOp::new(&l.key, isa)?,
                LinearOp::new(&l.value, isa)?,
            ];
            for (lin, op) in [&l.query, &l.key, &l.value].into_iter().zip(&ops) {
                report(lin, op, false);
            }
            Qkv::Separate(Box::new(ops))
        }
    };
    let attn_out = LinearOp::new(&l.attn_out, isa)?;
    let ffn_in = LinearOp::new(&l.ffn_in, isa)?;
    let ffn_out = LinearOp::new(&l.ffn_out, isa)?;
    report(&l.attn_out, &attn_out, false);
    report(&l.ffn_in, &ffn_in, false);
    report(&l.ffn_out, &ffn_out, false);
    Ok((
        LayerOps {
            n_heads: la.n_heads,
            head_dim: la.head_dim,
            d_ff: la.d_ff,
            qkv,
            attn_out,
            attn_norm: l.attn_norm.clone(),
            ffn_in,
            ffn_out,
            out_norm: l.out_norm.clone(),
        },
        kernels,
    ))
}

/// Q, K and V as one Linear (`[3·A, d]`) when they take the same input quantization and their
/// weights concatenate row-wise: all f32, or packed with one scheme, numerics and a row-local
/// group layout.
fn fuse_qkv(l: &crate::model::Layer) -> Option<CompressedLinear> {
    let parts = [&l.query, &l.key, &l.value];
    if parts.iter().any(|p| p.act != l.query.act) {
        return None;
    }
    let weight = match parts.map(|p| &p.weight) {
        [Weight::F32 { cols, .. }, Weight::F32 { .. }, Weight::F32 { .. }] => Weight::F32 {
            rows: parts.iter().map(|p| p.out_features()).sum(),
            cols: *cols,
            values: parts.iter().flat_map(|p| p.weight.to_f32()).collect(),
        },
        [Weight::Quant(a), Weight::Quant(b), Weight::Quant(c)] => Weight::Quant(concat_rows([a, b, c])?),
        _ => return None,
    };
    let bias = parts.iter().any(|p| p.bias.is_some()).then(|| {
        parts
            .iter()
            .flat_map(|p| p.bias.clone().unwrap_or_else(|| vec![0.0; p.out_features()]))
            .collect()
    });
    let name = l.query.name.strip_suffix(".query").unwrap_or(&l.query.name);
    Some(CompressedLinear {
        name: format!("{name}.{{query,key,value}}"),
        weight,
        bias,
        act: l.query.act,
    })
}

/// Row-wise concatenation of packed tensors whose groups never span rows.
fn concat_rows(ts: [&QuantTensor; 3]) -> Option<QuantTensor> {
    use ember_numerics::GroupLayout;
    let a = ts[0];
    let row_local = matches!(a.layout, GroupLayout::PerRow | GroupLayout::RowGroups(_));
    let same = ts.iter().all(|t| {
        t.scheme == a.scheme
            && t.numerics == a.numerics
            && t.layout == a.layout
            && t.cols == a.cols
            && std::mem::discriminant(&t.zeros) == std::mem::discriminant(&a.zeros)
    });
    if !row_local || !same {
        return None;
    }
    let zeros = match &a.zeros {
        Zeros::None => Zeros::None,
        Zeros::U8(_) => Zeros::U8(
            ts.iter()
                .flat_map(|t| match &t.zeros {
                    Zeros::U8(z) => z.clone(),
                    _ => Vec::new(),
                })
                .collect(),
        ),
        Zeros::F32(_) => Zeros::F32(
            ts.iter()
                .flat_map(|t| match &t.zeros {
                    Zeros::F32(z) => z.clone(),
                    _ => Vec::new(),
                })
                .collect(),
        ),
    };
    Some(QuantTensor {
        rows: ts.iter().map(|t| t.rows).sum(),
        cols: a.cols,
        scheme: a.scheme,
        numerics: a.numerics,
        layout: a.layout,
        codes: ts.iter().flat_map(|t| t.codes.iter().copied()).collect(),
        scales: ts.iter().flat_map(|t| t.scales.iter().copied()).collect(),
        zeros,
    })
}

/// Sets flush-to-zero and denormals-are-zero on this thread (as onnxruntime does): a badly
/// quantized model (e.g. binary weights without training) drives softmax and GELU into subnormal
/// floats, which x86 handles two orders of magnitude slower; values below 1.2e−38 are immaterial
/// to an embedding.
fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only sets the FTZ (bit 15) and DAZ (bit 6) bits of this thread's MXCSR, which SSE2
    // (baseline on x86-64) defines; no memory is touched.
    unsafe {
        let mut csr: u32 = 0;
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
        csr |= (1 << 15) | (1 << 6);
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
    }
}
