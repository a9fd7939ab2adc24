//! One Linear layer as the engine runs it: the weight prepared once at load in the form its kernel
//! reads, and the per-call work (`prepare` the input, `run` the product).
//!
//! | weight | input quantization | what runs |
//! |---|---|---|
//! | f32 | none | f32 GEMM (`gemm` crate, bias pre-filled into the output) |
//! | f32 | `ActSpec` | fake-quantized input, f32 GEMM |
//! | packed, exact kernel | `ActSpec` (2–8 bits) | i8 codes → integer kernel (exact i32 sums) + offset · Σw for asymmetric |
//! | int8 / int4, exact kernel | none | weight-only kernel: f32 activations × packed weights converted a register at a time (`benches/engine.rs`: faster than the f32 GEMM at 1×128 and 32×128 once rows are split per thread) |
//! | anything else (fp8, DeepSpeed int8, asymmetric int8, ternary/binary weight-only, …) | either | dequantized once at load, f32 GEMM (reported in the module's note) |
//!
//! Which row applies is [`ember_numerics::linear_kernel`]'s decision from the scheme and shape, the
//! same call `ember plan` makes.

use ember_kernels::{Isa, PackedWeights, QuantizedActivations};
use ember_numerics::{LinearKernel, linear_kernel};
use rayon::prelude::*;

use super::Exec;
use super::act_quant;
use crate::error::{Result, RuntimeError};
use crate::model::{ActSpec, CompressedLinear, Weight};
use crate::packed::pack;
use crate::quant_tensor::QuantTensor;

/// What a layer's input must be turned into before its product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum InputKind {
    /// The f32 activations as they are.
    Raw,
    /// Fake-quantized f32 activations (for an f32 GEMM).
    Fake(ActSpec),
    /// i8 codes + per-row scale (+ per-row offset) for an integer kernel.
    Codes(ActSpec),
}

/// An input prepared for one [`InputKind`]; shared by layers with the same kind and input (Q, K, V).
pub(crate) enum Prepared {
    Raw,
    Fake(Vec<f32>),
    /// Quantized activations in row chunks: one chunk for a product the kernel parallelizes
    /// itself, or many, each quantized and multiplied by one thread (large M: quantization,
    /// packing and the product all run in parallel, and each chunk's output stays in cache for
    /// its offset correction).
    Codes(Vec<CodeChunk>),
}

/// Rows `rows` of a quantized input.
pub(crate) struct CodeChunk {
    rows: std::ops::Range<usize>,
    acts: QuantizedActivations,
    /// Asymmetric specs: per-row offsets (see `act_quant`).
    offsets: Option<Vec<f32>>,
}

/// Rows per chunk of a large product: at least this many (below, the kernel's own parallel tiles
/// are used on one chunk), at most [`MAX_ROWS_PER_CHUNK`] (a chunk's activations and output stay
/// in L2 while the weights stream past; measured faster than one call on all rows even on one
/// thread).
const MIN_ROWS_PER_CHUNK: usize = 64;
const MAX_ROWS_PER_CHUNK: usize = 256;

/// Row chunks for `m` rows on `threads` threads: about four per thread (for load balance) within
/// the bounds above; a single chunk when there are too few rows.
fn row_chunks(m: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    if m <= MAX_ROWS_PER_CHUNK && m < 2 * MIN_ROWS_PER_CHUNK * threads.max(2) {
        return std::iter::once(0..m).collect();
    }
    let per = m
        .div_ceil(4 * threads.max(1))
        .next_multiple_of(16)
        .clamp(MIN_ROWS_PER_CHUNK, MAX_ROWS_PER_CHUNK);
    (0..m.div_ceil(per)).map(|i| i * per..((i + 1) * per).min(m)).collect()
}

enum Compute {
    /// f32 weight `[n, k]` row-major (the PyTorch layout).
    F32 { w: Vec<f32> },
    /// Integer kernel; `wsum[n] = Σ_k w[n,k]` (dequantized, summed in f64) for asymmetric inputs.
    Int { w: PackedWeights, wsum: Option<Vec<f32>> },
    /// int8 / int4 weights on f32 activations.
    WeightOnly { w: PackedWeights },
}

/// A Linear layer ready to run.
pub(crate) struct LinearOp {
    pub n: usize,
    pub k: usize,
    bias: Option<Vec<f32>>,
    pub input: InputKind,
    compute: Compute,
    /// The kernel family, for [`super::ModuleKernel`].
    pub kernel: String,
    /// The instruction set it runs on.
    pub isa: &'static str,
    /// Why no integer kernel runs, where one was expected.
    pub note: Option<String>,
}

fn isa_name(isa: Isa) -> &'static str {
    match isa {
        Isa::Scalar => "scalar",
        Isa::Avx2 => "avx2",
        Isa::Avx512Vnni => "vnni",
    }
}

/// The kernel family of `lin`: the rule `ember plan` applies, from the scheme and shape alone.
pub(crate) fn kernel_of(lin: &CompressedLinear) -> LinearKernel {
    let spec = match &lin.weight {
        Weight::F32 { .. } => None,
        Weight::Quant(q) => Some(q.spec()),
    };
    linear_kernel(spec, lin.out_features(), lin.in_features(), lin.act.map(|a| a.bits))
}

impl LinearOp {
    /// Prepares `lin` for the engine: packing, weight sums, or the f32 fallback with its reason.
    pub(crate) fn new(lin: &CompressedLinear, isa: Isa) -> Result<LinearOp> {
        let (n, k) = (lin.out_features(), lin.in_features());
        if let Some(problem) = lin.act.as_ref().and_then(act_quant::unsupported) {
            return Err(RuntimeError::Invalid(format!("{}: {problem}", lin.name)));
        }
        let fake_or_raw = |act: Option<ActSpec>| act.map_or(InputKind::Raw, InputKind::Fake);
        let choice = kernel_of(lin);
        let kernel = choice.name();
        let op = |input, compute, isa: &'static str, note| LinearOp {
            n,
            k,
            bias: lin.bias.clone(),
            input,
            compute,
            kernel: kernel.clone(),
            isa,
            note,
        };
        let packed = |q: &QuantTensor, format, groups| {
            pack(q, format, groups).map_err(|e| RuntimeError::Invalid(format!("{}: {e}", lin.name)))
        };
        match (&lin.weight, &choice) {
            (Weight::F32 { values, .. }, _) => Ok(op(
                fake_or_raw(lin.act),
                Compute::F32 { w: values.clone() },
                "gemm crate",
                None,
            )),
            (Weight::Quant(q), LinearKernel::Integer { format, groups }) => {
                let spec = lin.act.expect("an integer kernel has quantized inputs");
                let wsum = (!spec.symmetric).then(|| weight_sums(q));
                Ok(op(
                    InputKind::Codes(spec),
                    Compute::Int {
                        w: packed(q, *format, *groups)?,
                        wsum,
                    },
                    isa_name(isa),
                    None,
                ))
            }
            // the weight-only kernels are AVX2 code on both x86 levels (no integer dot product)
            (Weight::Quant(q), LinearKernel::WeightOnly { format, groups }) => Ok(op(
                InputKind::Raw,
                Compute::WeightOnly {
                    w: packed(q, *format, *groups)?,
                },
                if isa == Isa::Scalar { "scalar" } else { "avx2" },
                None,
            )),
            (Weight::Quant(q), other) => Ok(op(
                fake_or_raw(lin.act),
                Compute::F32 { w: q.dequantize() },
                "gemm crate",
                other.reason().map(str::to_string),
            )),
        }
    }

    /// Turns the input `x` `[m, k]` into what this layer's product reads.
    pub(crate) fn prepare(&self, ex: &Exec, x: &[f32], m: usize) -> Result<Prepared> {
        Ok(match self.input {
            InputKind::Raw => Prepared::Raw,
            InputKind::Fake(spec) => Prepared::Fake(act_quant::fake_quantize(ex.simd, ex.parallel(), &spec, x, self.k)),
            InputKind::Codes(spec) => {
                let chunks = row_chunks(m, ex.threads);
                // one chunk: the whole input, quantized with all threads; else one chunk per task
                let parallel = chunks.len() == 1 && ex.parallel();
                let k = self.k;
                let quantize = |rows: std::ops::Range<usize>| -> Result<CodeChunk> {
                    let x = &x[rows.start * k..rows.end * k];
                    let r = rows.len();
                    if spec.symmetric
                        && spec.bits == 8
                        && spec.numerics == ember_numerics::Numerics::Ember
                        && spec.range == crate::model::ActRange::Dynamic
                    {
                        // The kernels' own fused quantizer computes exactly this spec
                        // (s = max|x|/127, q = clamp(round_half_even(x/s), ±127)).
                        let cfg = if parallel { ex.kcfg } else { ex.single() };
                        let acts = QuantizedActivations::quantize(x, r, k, &cfg);
                        return Ok(CodeChunk {
                            rows,
                            acts,
                            offsets: None,
                        });
                    }
                    // Other specs (asymmetric, static, DeepSpeed numerics): Ember's row quantizer
                    // writes the codes straight into the kernels' layout.
                    let cfg = if parallel { ex.kcfg } else { ex.single() };
                    let (acts, offsets) = QuantizedActivations::from_rows(r, k, &cfg, |m, codes| {
                        let rq = act_quant::quantize_row_codes(ex.simd, &spec, &x[m * k..(m + 1) * k], codes);
                        (rq.scale, rq.offset)
                    });
                    let offsets = (!spec.symmetric).then_some(offsets);
                    Ok(CodeChunk { rows, acts, offsets })
                };
                let done: Result<Vec<CodeChunk>> = if chunks.len() == 1 {
                    chunks.into_iter().map(quantize).collect()
                } else {
                    chunks.into_par_iter().map(quantize).collect()
                };
                Prepared::Codes(done?)
            }
        })
    }

    /// `y[m, n] = input · wᵀ + bias` with the input prepared by [`Self::prepare`] (for `Raw`, `x`).
    pub(crate) fn run(&self, ex: &Exec, x: &[f32], prepared: &Prepared, m: usize, y: &mut [f32]) {
        debug_assert_eq!(y.len(), m * self.n);
        let input = match prepared {
            Prepared::Fake(v) => v.as_slice(),
            _ => x,
        };
        match (&self.compute, prepared) {
            (Compute::F32 { w }, _) => gemm_f32(ex, (m, self.k, self.n), input, w, self.bias.as_deref(), y),
            (Compute::Int { w, wsum }, Prepared::Codes(chunks)) => {
                let bias = self.bias.as_deref();
                if let [c] = chunks.as_slice() {
                    w.linear_quantized(&c.acts, bias, y, &ex.kcfg);
                    if let (Some(off), Some(ws)) = (&c.offsets, wsum) {
                        add_offsets(ex.parallel(), y, off, ws);
                    }
                    return;
                }
                let ranges: Vec<_> = chunks.iter().map(|c| c.rows.clone()).collect();
                let outs = split_rows(y, &ranges, self.n);
                let single = ex.single();
                chunks.par_iter().zip(outs).for_each(|(c, yc)| {
                    w.linear_quantized(&c.acts, bias, yc, &single);
                    if let (Some(off), Some(ws)) = (&c.offsets, wsum) {
                        add_offsets(false, yc, off, ws);
                    }
                });
            }
            (Compute::WeightOnly { w }, _) => {
                let bias = self.bias.as_deref();
                let chunks = row_chunks(m, ex.threads);
                if let [rows] = chunks.as_slice() {
                    let ran = w.linear_weight_only(input, rows.len(), bias, y, &ex.kcfg);
                    debug_assert!(ran, "weight-only ops hold int8 or int4 weights");
                    return;
                }
                // one chunk of rows per task, each on one thread (the kernel's activation padding
                // then runs in parallel too)
                let single = ex.single();
                let k = self.k;
                let outs = split_rows(y, &chunks, self.n);
                chunks.par_iter().zip(outs).for_each(|(rows, yc)| {
                    let xc = &input[rows.start * k..rows.end * k];
                    w.linear_weight_only(xc, rows.len(), bias, yc, &single);
                });
            }
            (Compute::Int { .. }, _) => unreachable!("an integer layer is always prepared with codes"),
        }
    }
}

/// The row blocks `ranges` (consecutive, from row 0) of a row-major `[rows, n]` output.
fn split_rows<'a>(y: &'a mut [f32], ranges: &[std::ops::Range<usize>], n: usize) -> Vec<&'a mut [f32]> {
    let mut outs = Vec::with_capacity(ranges.len());
    let mut rest = y;
    for r in ranges {
        let (head, tail) = rest.split_at_mut(r.len() * n);
        outs.push(head);
        rest = tail;
    }
    outs
}

/// `y[m, :] += offset[m] · wsum` (the asymmetric activation correction).
fn add_offsets(parallel: bool, y: &mut [f32], offsets: &[f32], wsum: &[f32]) {
    let n = wsum.len();
    let row = |(yr, &o): (&mut [f32], &f32)| {
        for (v, &s) in yr.iter_mut().zip(wsum) {
            *v += o * s;
        }
    };
    if parallel && y.len() >= 1 << 15 {
        y.par_chunks_mut(n)
            .zip(offsets.par_iter())
            .with_min_len(16)
            .for_each(row);
    } else {
        y.chunks_mut(n).zip(offsets).for_each(row);
    }
}

/// `Σ_k w[n,k]` of the dequantized weight, summed in f64.
fn weight_sums(q: &QuantTensor) -> Vec<f32> {
    q.dequantize()
        .chunks(q.cols.max(1))
        .map(|r| r.iter().map(|&v| v as f64).sum::<f64>() as f32)
        .take(q.rows)
        .collect()
}

/// Fills every row of `y` (`[rows, n]`) with the bias.
fn fill_bias(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

/// `y[m, n] = x[m, k] · wᵀ (+ bias)`, `w` `[n, k]` row-major; on the engine's threads.
pub(crate) fn gemm_f32(
    ex: &Exec,
    (m, k, n): (usize, usize, usize),
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    assert!(x.len() >= m * k && w.len() >= n * k && y.len() >= m * n);
    if let Some(b) = bias {
        if ex.parallel() && m * n >= 1 << 16 {
            y[..m * n]
                .par_chunks_mut(n)
                .with_min_len(64)
                .for_each(|r| r.copy_from_slice(b));
        } else {
            fill_bias(&mut y[..m * n], b);
        }
    }
    // SAFETY: x is [m × k] row-major (row stride k), w is [n × k] row-major read as wᵀ [k × n]
    // (row stride 1, column stride k), y is [m × n] row-major; the asserts above bound all three.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            bias.is_some(),
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            ex.gemm_parallelism(),
        );
    }
}
