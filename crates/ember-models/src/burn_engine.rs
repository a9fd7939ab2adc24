//! The burn engine: a cleaned [`CompressedModel`] as Ember's burn [`Bert`], on any burn device.
//!
//! Packed weights become **burn quantized tensors** (codes packed in `u32` words + one f32 scale
//! per block or per tensor) wherever burn 0.22 holds the scheme exactly and the backend's
//! quantized matmul runs it; on wgpu that matmul reads the packed weight and dequantizes inside
//! the kernel (cubek's quantized input binding, no f32 copy of the weight). Everything else is
//! dequantized once at load with [`QuantTensor::dequantize`] into an f32 parameter, and
//! [`EngineReport`] says why, module by module. Activation quantization ([`ActSpec`]) fills the
//! same [`LinearSlots::act_quant`] slot the composer uses, so the forward quantizes inputs exactly
//! as the composed model did.
//!
//! What burn 0.22.1 can hold (read from `burn-std`, `burn-flex`, `burn-cubecl`, `cubek-quant`, and
//! measured on wgpu with lavapipe by `tests/burn_engine.rs`):
//!
//! | Ember scheme | burn value | wgpu (fused matmul) |
//! |---|---|---|
//! | symmetric 5–8 bits | `Q8S` (`Q8F` for DeepSpeed int8, whose codes reach −128) | yes |
//! | symmetric 3–4 bits | `Q4S` (`Q4F` for DeepSpeed int4), 8 codes per `u32` | yes |
//! | fp4 e2m1 | `E2M1`, 8 codes per `u32` | yes |
//! | ternary, binary | `Q2S` (codes −1/0/+1), 16 per `u32` | no: the kernel asks for 80 KiB of workgroup memory (lavapipe allows 32 KiB) |
//! | fp8 e4m3 / e5m2 | `E4M3` / `E5M2` | no: the WGSL matmul does not compile for scalar fp8 reads |
//! | asymmetric (zero points) | — | burn's quantization is symmetric only (`QuantMode::Symmetric`: value = code · scale, or a per-tensor lookup table) |
//! | fp6 e3m2 | — | no 6-bit value type |
//!
//! Every burn form above dequantizes bit for bit to [`QuantTensor::dequantize`] (integer fields are
//! two's complement, fp fields the formats' bit patterns, value = field · scale in f32).
//!
//! Scales: one per tensor, or one per block of `[1, g]` elements with `g ≤ 255` dividing the
//! columns (a `BlockSize` extent is a `u8`, and burn-flex and the CubeCL kernels require whole
//! blocks). A block must also hold whole packed words (`g` a multiple of the codes per `u32`),
//! because the kernels read one scale per word. Ember's groups map onto such blocks by repeating
//! a group's scale over every block inside it: per-row scales on 384 columns become blocks of 192,
//! DeepSpeed chunks of whole rows become per-row blocks, `group_size` 32 becomes blocks of 32.
//! A layout whose group boundaries fall inside a packed word has no exact burn form.
//!
//! Why burn-flex gets f32 weights: burn-flex has quantized tensors but no quantized matmul — its
//! `q_matmul` dequantizes the whole weight on every call, and transposing a block-quantized tensor
//! (which `Linear::forward` does) dequantizes and *requantizes* it with burn's own scale rule,
//! which is not Ember's for 3-bit or DeepSpeed codes. The same f32 values computed once are exact
//! and faster; the CPU integer path is `ember-runtime`'s engine.

use std::fmt;

use burn::module::Param;
use burn::tensor::quantization::{QuantMode, QuantScheme, QuantStore, QuantValue, ScaleDtype};
use burn::tensor::{Bytes, DType, Device, Tensor, TensorData};
use ember_config::bert_paths;
use ember_config::types::{FloatFormat, Numerics};
use ember_core::numerics::{GroupLayout, Scheme};
use ember_core::slots::{EmbeddingSlots, LinearSlots};
use ember_runtime::{ActRange, ActSpec, CompressedModel, LayerNormParams, QuantTensor, Weight};

use crate::blocks::{Embedding, LayerNorm, Linear};
use crate::{Bert, BertConfig, Error, Result};

/// The largest block extent burn stores (`BlockSize` holds `u8` extents).
const MAX_BLOCK: usize = 255;

/// The burn backends the engine tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendFamily {
    /// burn-flex (CPU): quantized tensors, but no quantized matmul.
    Flex,
    /// burn-wgpu (CubeCL): the matmul dequantizes packed weights inside the kernel. The only
    /// CubeCL backend Ember builds (burn-cuda would need its own row in the module table, after
    /// checking which value types its kernels accept).
    Wgpu,
}

impl BackendFamily {
    /// The family of `device` (every non-flex backend Ember builds with is wgpu).
    pub fn of(device: &Device) -> BackendFamily {
        // `Device` equality is hardware identity (autodiff ignored): flex is one unit device.
        if *device == Device::flex() {
            BackendFamily::Flex
        } else {
            BackendFamily::Wgpu
        }
    }
}

/// Which weights the engine keeps quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightPolicy {
    /// Burn quantized tensors where the scheme is exact and the backend's quantized matmul runs
    /// it (wgpu); f32 elsewhere.
    #[default]
    Auto,
    /// Every weight dequantized to f32 (the same values; a baseline for timings and checks).
    Dequantize,
}

/// The burn quantization that holds a [`QuantTensor`] exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnQuant {
    /// Value type, `PackedU32(0)` store (codes packed along the input dimension), symmetric mode,
    /// f32 scales per tensor or per `[1, block]` block.
    pub scheme: QuantScheme,
    /// Columns sharing one scale; `None`: one scale for the whole tensor.
    pub block: Option<usize>,
}

impl fmt::Display for BurnQuant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.scheme.value;
        let per_word = self.scheme.num_quants();
        match self.block {
            Some(g) => write!(f, "{value:?} ({per_word}/u32), f32 scale per [1, {g}] block"),
            None => write!(f, "{value:?} ({per_word}/u32), one f32 scale"),
        }
    }
}

/// How the engine holds one weight.
#[derive(Debug, Clone, PartialEq)]
pub enum Repr {
    /// A burn quantized tensor (packed codes + scales).
    Quantized(BurnQuant),
    /// An f32 parameter: the stored f32 values (`reason: None`) or the packed weight dequantized
    /// once at load, and why.
    F32 { reason: Option<String> },
}

/// One weight in the [`EngineReport`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleReport {
    /// HF module path (`encoder.layer.0.attention.self.query`, `embeddings.word_embeddings`).
    pub name: String,
    /// `[rows, cols]` (`[out, in]` for Linear layers).
    pub shape: [usize; 2],
    /// The artifact's storage format (`int8`, `uint8`, `ternary`, `f32`…).
    pub stored: String,
    pub repr: Repr,
    /// Input activation quantization, as the forward applies it.
    pub act: Option<String>,
}

/// What the engine does with every weight of a model on one backend.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineReport {
    pub backend: BackendFamily,
    pub policy: WeightPolicy,
    /// Embedding tables first, then every layer's six Linear layers in order.
    pub modules: Vec<ModuleReport>,
}

impl EngineReport {
    /// Modules held as burn quantized tensors.
    pub fn quantized(&self) -> usize {
        self.modules
            .iter()
            .filter(|m| matches!(m.repr, Repr::Quantized(_)))
            .count()
    }

    /// The report entry of a module path.
    pub fn module(&self, name: &str) -> Option<&ModuleReport> {
        self.modules.iter().find(|m| m.name == name)
    }
}

impl fmt::Display for EngineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "burn engine on {:?} ({:?}): {} of {} weights as burn quantized tensors",
            self.backend,
            self.policy,
            self.quantized(),
            self.modules.len()
        )?;
        let shape = |m: &ModuleReport| format!("[{}, {}]", m.shape[0], m.shape[1]);
        let name_w = self.modules.iter().map(|m| m.name.len()).max().unwrap_or(0);
        let shape_w = self.modules.iter().map(|m| shape(m).len()).max().unwrap_or(0);
        let stored_w = self.modules.iter().map(|m| m.stored.len()).max().unwrap_or(0);
        for m in &self.modules {
            let repr = match &m.repr {
                Repr::Quantized(q) => format!("quantized {q}"),
                Repr::F32 { reason: None } => "f32".to_string(),
                Repr::F32 { reason: Some(r) } => format!("f32, dequantized once: {r}"),
            };
            let act = m.act.as_ref().map(|a| format!("; input {a}")).unwrap_or_default();
            writeln!(
                f,
                "  {:name_w$}  {:shape_w$}  {:stored_w$} → {repr}{act}",
                m.name,
                shape(m),
                m.stored
            )?;
        }
        Ok(())
    }
}

/// The burn quantization that represents `q` exactly, or why there is none.
///
/// # Errors
/// The reason, in words, when burn 0.22 has no exact form for the scheme or the group layout.
pub fn burn_quant(q: &QuantTensor) -> std::result::Result<BurnQuant, String> {
    if q.rows == 0 || q.cols == 0 {
        return Err(format!("an empty [{}, {}] tensor", q.rows, q.cols));
    }
    let value = match q.scheme {
        Scheme::Symmetric { bits } if bits <= 4 => match (q.numerics, bits) {
            (Numerics::Deepspeed, 4) => QuantValue::Q4F,
            _ => QuantValue::Q4S,
        },
        Scheme::Symmetric { bits } => match (q.numerics, bits) {
            (Numerics::Deepspeed, 8) => QuantValue::Q8F,
            _ => QuantValue::Q8S,
        },
        Scheme::Ternary | Scheme::Binary => QuantValue::Q2S,
        Scheme::Float(FloatFormat::E4m3) => QuantValue::E4M3,
        Scheme::Float(FloatFormat::E5m2) => QuantValue::E5M2,
        Scheme::Float(FloatFormat::E2m1) => QuantValue::E2M1,
        Scheme::Float(FloatFormat::E3m2) => {
            return Err("fp6 e3m2 has no burn value type (burn 0.22: Q8/Q4/Q2 integers, e4m3/e5m2/e2m1)".into());
        }
        Scheme::Asymmetric { bits } => {
            return Err(format!(
                "asymmetric {bits}-bit codes need zero points; burn 0.22 quantization is symmetric only (value = code · scale)"
            ));
        }
    };
    let bits = value.size_bits();
    let per_word = 32 / bits;
    if !q.cols.is_multiple_of(per_word) {
        return Err(format!(
            "{} columns are not whole u32 words of {per_word} {bits}-bit codes",
            q.cols
        ));
    }
    // Every Ember group boundary inside a row falls on a multiple of `unit` columns.
    let unit = match q.layout {
        GroupLayout::Chunks(1) => None,
        GroupLayout::Chunks(n) => {
            let len = (q.rows * q.cols) / n.max(1);
            Some(if len.is_multiple_of(q.cols) {
                q.cols
            } else {
                gcd(len, q.cols)
            })
        }
        GroupLayout::RowGroups(g) if g >= q.cols => Some(q.cols),
        GroupLayout::RowGroups(g) => Some(gcd(g, q.cols)),
        GroupLayout::PerRow => Some(q.cols),
    };
    let block = match unit {
        None => None,
        Some(unit) => {
            let block = (1..=unit.min(MAX_BLOCK))
                .rev()
                .find(|&g| unit.is_multiple_of(g) && g.is_multiple_of(per_word));
            match block {
                Some(g) => Some(g),
                None => {
                    return Err(format!(
                        "scale groups change every {unit} columns, inside the u32 words of {per_word} codes burn packs (a burn block holds whole words)"
                    ));
                }
            }
        }
    };
    let scheme = QuantScheme::default()
        .with_value(value)
        .with_store(QuantStore::PackedU32(0))
        .with_mode(QuantMode::Symmetric);
    let scheme = match block {
        // `u8` extents: `block ≤ MAX_BLOCK` by construction.
        Some(g) => scheme.per_block([1, g as u8], ScaleDtype::F32),
        None => scheme.per_tensor(ScaleDtype::F32),
    };
    Ok(BurnQuant { scheme, block })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `q` as a burn quantized tensor `[rows, cols]` on `device`: the codes repacked into `u32` words
/// (two's complement integer fields, or the minifloat bit patterns), the scales repeated per block.
/// Its dequantized values are bit for bit `q.dequantize()` on every backend that decodes the value
/// type (burn-flex decodes the integer types only).
///
/// # Errors
/// An invalid `q` ([`QuantTensor::validate`]), or no exact burn form ([`burn_quant`]).
pub fn quantized_tensor(q: &QuantTensor, device: &Device) -> std::result::Result<(Tensor<2>, BurnQuant), String> {
    q.validate().map_err(|e| e.to_string())?;
    let bq = burn_quant(q)?;
    let bits = bq.scheme.value.size_bits();
    let per_word = 32 / bits;
    let mask = (1u32 << bits) - 1;
    let codes = q.to_quantized().codes;
    let blocks = bq.block.map_or(1, |g| q.rows * (q.cols / g));
    // Words, then the f32 scales' bit patterns: burn's layout, kept 4-byte aligned as a `u32` buffer.
    let mut words = Vec::with_capacity(q.rows * q.cols / per_word + blocks);
    for row in codes.chunks_exact(q.cols) {
        for word_codes in row.chunks_exact(per_word) {
            // Integer codes as two's complement fields; minifloat codes are already bit patterns.
            words.push(
                word_codes
                    .iter()
                    .enumerate()
                    .fold(0u32, |w, (i, &c)| w | ((c as u32 & mask) << (i * bits))),
            );
        }
    }
    match bq.block {
        None => words.push(q.scales[0].to_bits()),
        Some(g) => {
            for r in 0..q.rows {
                for b in 0..q.cols / g {
                    words.push(q.scales[q.group_of(r, b * g)].to_bits());
                }
            }
        }
    }
    let data = TensorData::from_bytes(Bytes::from_elems(words), [q.rows, q.cols], DType::QFloat(bq.scheme));
    Ok((Tensor::from_data(data, device), bq))
}

fn describe_act(spec: &ActSpec) -> String {
    let kind = if spec.symmetric { "sym" } else { "asym" };
    let range = match spec.range {
        ActRange::Dynamic => "dynamic per token".to_string(),
        ActRange::Static { min, max } => format!("static [{min}, {max}]"),
    };
    format!("{}-bit {kind} {range}", spec.bits)
}

const FLEX_REASON: &str = "burn-flex has no quantized matmul (it dequantizes the whole weight on every call and requantizes block-quantized weights on transpose); the CPU integer path is ember-runtime";
const EMBEDDING_REASON: &str = "embedding lookup: burn's embedding op takes a float table";
const POLICY_REASON: &str = "WeightPolicy::Dequantize";

/// Why burn 0.22.1's quantized matmul on wgpu cannot run a value type (measured on lavapipe by
/// `tests/burn_engine.rs`, which also checks that these tensors still dequantize exactly).
fn wgpu_matmul_refuses(value: QuantValue) -> Option<&'static str> {
    match value {
        QuantValue::Q2S | QuantValue::Q2F => Some(
            "burn 0.22.1's fused matmul stages 16 two-bit codes per word in 80 KiB of workgroup memory (lavapipe allows 32 KiB)",
        ),
        QuantValue::E4M3 | QuantValue::E5M2 => {
            Some("burn 0.22.1's wgpu matmul does not compile for fp8 codes (WGSL has no scalar fp8)")
        }
        _ => None,
    }
}

/// How `weight` is held on `backend`.
fn plan_weight(weight: &Weight, backend: BackendFamily, policy: WeightPolicy, lookup: bool) -> Repr {
    let Weight::Quant(q) = weight else {
        return Repr::F32 { reason: None };
    };
    let reason = if lookup {
        EMBEDDING_REASON.to_string()
    } else if policy == WeightPolicy::Dequantize {
        POLICY_REASON.to_string()
    } else if backend == BackendFamily::Flex {
        FLEX_REASON.to_string()
    } else {
        match burn_quant(q) {
            Ok(bq) => match wgpu_matmul_refuses(bq.scheme.value) {
                None => return Repr::Quantized(bq),
                Some(why) => why.to_string(),
            },
            Err(why) => why,
        }
    };
    Repr::F32 { reason: Some(reason) }
}

/// What [`bert_from_compressed`] does with every weight of `model` on `backend` (no tensors built).
pub fn plan_engine(model: &CompressedModel, backend: BackendFamily, policy: WeightPolicy) -> EngineReport {
    let e = &model.embeddings;
    let mut modules: Vec<ModuleReport> = bert_paths::EMBEDDING_TABLES
        .iter()
        .map(|(_, name)| *name)
        .zip([&e.word, &e.position, &e.token_type])
        .map(|(name, w)| ModuleReport {
            name: name.to_string(),
            shape: [w.rows(), w.cols()],
            stored: w.format_name(),
            repr: plan_weight(w, backend, policy, true),
            act: None,
        })
        .collect();
    for layer in &model.layers {
        for l in layer.linears() {
            modules.push(ModuleReport {
                name: l.name.clone(),
                shape: [l.out_features(), l.in_features()],
                stored: l.weight.format_name(),
                repr: plan_weight(&l.weight, backend, policy, false),
                act: l.act.as_ref().map(describe_act),
            });
        }
    }
    EngineReport {
        backend,
        policy,
        modules,
    }
}

/// [`plan_engine`] for `device` with [`WeightPolicy::Auto`].
pub fn engine_report(model: &CompressedModel, device: &Device) -> EngineReport {
    plan_engine(model, BackendFamily::of(device), WeightPolicy::Auto)
}

/// Ember's burn [`Bert`] running `model` on `device`: its architecture (per-layer heads, widths,
/// the kept layers), its weights as burn quantized tensors where exact (see the module docs), its
/// activation quantizers in the Linear slots.
///
/// # Errors
/// [`Error::Input`] listing every inconsistency of the model (shapes against the architecture,
/// invalid packed tensors, activation bits); [`Error::NotSupported`] for a non-BERT family.
pub fn bert_from_compressed(model: &CompressedModel, device: &Device) -> Result<Bert> {
    build_bert(model, device, WeightPolicy::Auto).map(|(bert, _)| bert)
}

/// [`bert_from_compressed`] with a [`WeightPolicy`], returning the [`EngineReport`] as well.
///
/// # Errors
/// As [`bert_from_compressed`].
pub fn build_bert(model: &CompressedModel, device: &Device, policy: WeightPolicy) -> Result<(Bert, EngineReport)> {
    validate(model)?;
    let report = plan_engine(model, BackendFamily::of(device), policy);
    let mut reprs = report.modules.iter().map(|m| &m.repr);
    let mut next = || reprs.next().expect("the report has one entry per weight");

    // The tree comes from `BertConfig::build` (placeholders that allocate nothing); every
    // parameter is then replaced by the artifact's.
    let arch = &model.arch;
    let mut bert = BertConfig {
        name: arch.name.clone(),
        vocab_size: arch.vocab_size,
        d_model: arch.d_model,
        max_positions: arch.max_positions,
        type_vocab_size: arch.type_vocab_size,
        layer_norm_eps: arch.layer_norm_eps,
        layers: arch.layers.clone(),
    }
    .init_zeros(device);
    let e = &model.embeddings;
    let be = &mut bert.embeddings;
    be.word_embeddings = embedding(&e.word, device, next());
    be.position_embeddings = embedding(&e.position, device, next());
    be.token_type_embeddings = embedding(&e.token_type, device, next());
    be.layer_norm = layer_norm(&e.norm, device);
    for (layer, target) in model.layers.iter().zip(&mut bert.encoder.layer) {
        for ((role, _), l) in bert_paths::LAYER_LINEARS.iter().zip(layer.linears()) {
            *target.linear_mut(*role).expect("a layer Linear's role") = linear(l, device, next());
        }
        target.attention.output.layer_norm = layer_norm(&layer.attn_norm, device);
        target.output.layer_norm = layer_norm(&layer.out_norm, device);
    }
    Ok((bert, report))
}

fn f32_tensor(weight: &Weight, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(weight.to_f32(), [weight.rows(), weight.cols()]), device)
}

fn vector(values: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

fn weight_tensor(weight: &Weight, device: &Device, repr: &Repr) -> Tensor<2> {
    match (weight, repr) {
        (Weight::Quant(q), Repr::Quantized(_)) => {
            quantized_tensor(q, device)
                .expect("planned as quantized, so burn_quant accepts it")
                .0
        }
        _ => f32_tensor(weight, device),
    }
}

fn embedding(weight: &Weight, device: &Device, repr: &Repr) -> Embedding {
    Embedding {
        weight: Param::from_tensor(weight_tensor(weight, device, repr)),
        slots: EmbeddingSlots::default(),
    }
}

fn linear(l: &ember_runtime::CompressedLinear, device: &Device, repr: &Repr) -> Linear {
    Linear {
        weight: Param::from_tensor(weight_tensor(&l.weight, device, repr)),
        bias: l.bias.as_ref().map(|b| Param::from_tensor(vector(b, device))),
        slots: LinearSlots {
            act_quant: l.act,
            ..LinearSlots::default()
        },
    }
}

fn layer_norm(p: &LayerNormParams, device: &Device) -> LayerNorm {
    LayerNorm {
        weight: Param::from_tensor(vector(&p.gamma, device)),
        bias: Param::from_tensor(vector(&p.beta, device)),
        eps: f64::from(p.eps),
    }
}

/// Every inconsistency of `model`, reported together.
fn validate(model: &CompressedModel) -> Result<()> {
    let arch = &model.arch;
    if arch.family != "bert" {
        return Err(Error::NotSupported(format!(
            "model family `{}` in the burn engine (only `bert`)",
            arch.family
        )));
    }
    model.validate().map_err(|e| {
        Error::Input(format!(
            "compressed model `{}` is inconsistent: {}",
            arch.name,
            e.to_string().trim_start_matches("invalid compressed model: ")
        ))
    })
}

/// A burn device by name: `cpu` (or `flex`) is burn-flex; `wgpu` needs the `wgpu` feature; `cuda`
/// is not offered by this build (burn-cuda downloads LLVM at build time).
///
/// # Errors
/// [`Error::NotSupported`] for a backend this build lacks (with the rebuild to do), [`Error::Input`]
/// for an unknown name.
pub fn device_from_name(name: &str) -> Result<Device> {
    match name.trim().to_ascii_lowercase().as_str() {
        "cpu" | "flex" => Ok(Device::flex()),
        "wgpu" => wgpu_device(),
        "cuda" => Err(Error::NotSupported(
            "device `cuda`: ember-models has no `cuda` feature (burn-cuda downloads LLVM at build time); use `wgpu` (rebuild with `--features wgpu`), which runs on NVIDIA GPUs through Vulkan".into(),
        )),
        other => Err(Error::Input(format!(
            "unknown device `{other}`; expected `cpu` (alias `flex`), `wgpu` or `cuda`"
        ))),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device> {
    Err(Error::NotSupported(
        "device `wgpu`: this build has no wgpu backend; rebuild with `--features wgpu` (e.g. `cargo build --release --features wgpu`)".into(),
    ))
}
