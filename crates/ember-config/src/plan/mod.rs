//! The resolved plan: a config applied to a model's inventory. For every module it says which
//! techniques apply with which effective params (group params overlaid by shared params, as in
//! DeepSpeed), on what schedule, the shapes and bytes before and after, the effective bits per
//! weight and the kernel that will run it. The composer consumes the plan, never the raw config.

mod bit_schedule;
mod resolve;
mod size;
mod table;

use ember_numerics::{GroupLayout, Scheme, WeightSpec};
use serde::Serialize;
use serde_json::Value;

use crate::inventory::{SiteKind, SiteRole};
use crate::types::{
    Clip, FloatFormat, MatchMode, Numerics, PruningMethod, QuantizationType, RangeCalibration, Rounding,
};

pub use bit_schedule::{BitSchedule, Phase, settled_after};
pub use resolve::resolve_plan;

/// A config resolved against one model.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The model the plan was resolved against.
    pub model: String,
    pub numerics: Numerics,
    pub match_mode: MatchMode,
    /// Layer reduction, when enabled.
    pub layers: Option<LayerPlan>,
    /// Every compressible module of the (student) model, touched or not, in model order.
    pub modules: Vec<ModulePlan>,
    /// Bytes of parameters that are not sites (LayerNorms), kept in f32.
    pub other_param_bytes: u64,
    /// Whether any technique needs the training loop (offset > 0, MoQ, learned masks, KD losses).
    pub needs_training: bool,
    /// Things worth knowing that do not stop work.
    pub warnings: Vec<String>,
}

/// Layer reduction: which teacher layers the student keeps.
#[derive(Debug, Clone, Serialize)]
pub struct LayerPlan {
    pub teacher_layers: usize,
    /// Student layer i is initialised from teacher layer `keep[i]`.
    pub keep: Vec<usize>,
    /// Bytes of the teacher's dropped layers.
    pub dropped_bytes: u64,
}

/// What happens to one module.
#[derive(Debug, Clone, Serialize)]
pub struct ModulePlan {
    pub path: String,
    /// The teacher module it is initialised from, when layer reduction renames it.
    pub teacher_path: Option<String>,
    pub kind: SiteKind,
    pub role: SiteRole,
    pub shape: Vec<usize>,
    pub shape_after: Vec<usize>,
    pub has_bias: bool,
    /// Techniques in forward order: weight quant → sparse → row → head → activation quant → custom.
    pub techniques: Vec<Applied>,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The runtime kernel that will run this module after clean.
    pub kernel: String,
}

impl ModulePlan {
    /// Stored bits per weight after clean (codes + scales, bias excluded).
    pub fn bits_per_weight(&self) -> f64 {
        let n: usize = self.shape_after.iter().product();
        if n == 0 {
            return 0.0;
        }
        let bias = if self.has_bias {
            self.shape_after[0] as u64 * 4
        } else {
            0
        };
        (self.bytes_after - bias) as f64 * 8.0 / n as f64
    }

    /// The weight-quantization entry, if any.
    pub fn weight_quant(&self) -> Option<&WeightQuantPlan> {
        self.techniques.iter().find_map(|a| match &a.params {
            Params::WeightQuant(w) => Some(w),
            _ => None,
        })
    }

    /// The weight's quantization schedule (offset and MoQ bits), if it is quantized.
    pub fn weight_schedule(&self) -> Option<BitSchedule> {
        self.techniques.iter().find_map(|a| match &a.params {
            Params::WeightQuant(w) => Some(w.bit_schedule(a.schedule.start)),
            _ => None,
        })
    }

    /// The step from which the input is quantized, if it is.
    pub fn activation_offset(&self) -> Option<u64> {
        self.techniques.iter().find_map(|a| match &a.params {
            Params::ActivationQuant(_) => Some(a.schedule.start),
            _ => None,
        })
    }

    /// The activation-quantization entry, if any.
    pub fn activation_quant(&self) -> Option<&ActivationQuantPlan> {
        self.techniques.iter().find_map(|a| match &a.params {
            Params::ActivationQuant(q) => Some(q),
            _ => None,
        })
    }
}

/// One technique applied to one module.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The config key (`weight_quantization`, or a custom technique's key).
    pub technique: String,
    /// The group that matched.
    pub group: String,
    /// JSON pointer of the group, for messages.
    pub pointer: String,
    /// `Main` for a module matched by `modules`, `Related` for one that shrinks with it.
    pub link: Link,
    pub schedule: Schedule,
    pub params: Params,
}

/// How a module came to be in a technique.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Link {
    /// Matched by `modules`; `with_related` when related modules shrink with it (then its own
    /// pruned rows/heads are sliced out at clean, otherwise only zeroed).
    Main { with_related: bool },
    /// Slices follow the mask of this main module (same block).
    Related { main: String },
}

/// When a technique is active, in optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Schedule {
    pub start: u64,
    /// Last step of mask updates (sparse pruning).
    pub end: Option<u64>,
}

/// The effective (validated, merged) params of a technique on a module.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Params {
    WeightQuant(WeightQuantPlan),
    ActivationQuant(ActivationQuantPlan),
    Sparse(PrunePlan),
    Row(PrunePlan),
    Head(HeadPrunePlan),
    Channel(PrunePlan),
    /// A user-registered technique: group params overlaid by shared params.
    Custom(Value),
}

/// Forward fake-quant (QAT/PTQ) or MoQ (in place after optimizer steps, bits annealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum QuantMode {
    Forward,
    Moq,
}

/// Effective weight-quantization params.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightQuantPlan {
    pub mode: QuantMode,
    /// Final bits (1 = binary, 2 = ternary).
    pub bits: u32,
    /// MoQ start bits (= bits in forward mode).
    pub start_bits: u32,
    /// MoQ period before the first drop (doubles after each).
    pub period: u32,
    pub quantization_type: QuantizationType,
    /// How the scales are grouped: DeepSpeed's `quantize_groups` chunks of the row-major weight,
    /// Ember's `group_size` input elements of each row, or one per row (embeddings, as DeepSpeed
    /// forces; and any `group_size` at least as wide as the row).
    pub layout: GroupLayout,
    pub format: Option<FloatFormat>,
    pub rounding: Rounding,
    /// How each group's range is chosen (integer codes).
    pub clip: Clip,
    /// MoQ fp16 mixed blending: the per-step change ratio when enabled.
    pub mixed_change_ratio: Option<f64>,
}

impl WeightQuantPlan {
    /// The quantization scheme the params describe (bits 1 = binary, 2 = ternary).
    pub fn scheme(&self) -> Scheme {
        Scheme::from_plan(
            self.bits,
            self.quantization_type == QuantizationType::Asymmetric,
            self.format,
        )
    }

    /// What clean stores for these params under `numerics`: the one description the planner's
    /// bytes and kernel, the quantizer and the runtime all start from.
    pub fn spec(&self, numerics: Numerics) -> WeightSpec {
        WeightSpec {
            scheme: self.scheme(),
            numerics,
            layout: self.layout,
        }
    }

    /// Whether MoQ lowers this weight's bits during training (what the eigenvalue scales).
    pub fn lowers_bits(&self) -> bool {
        self.mode == QuantMode::Moq && self.start_bits != self.bits
    }

    /// When the weight is quantized to how many bits, from the technique's `schedule_offset`:
    /// MoQ anneals start → target; forward mode quantizes to the target bits from the offset on.
    pub fn bit_schedule(&self, offset: u64) -> BitSchedule {
        match self.mode {
            QuantMode::Forward => BitSchedule::fixed(offset, self.bits),
            QuantMode::Moq => BitSchedule {
                offset,
                start_bits: self.start_bits,
                target_bits: self.bits,
                period: u64::from(self.period),
                factor: 1,
                mixed_change_ratio: self.mixed_change_ratio,
            },
        }
    }

    /// A short label: `W8 sym rows/48`, `W4 sym gs64`, `W2 ternary`, `W8→4 MoQ`.
    pub fn label(&self) -> String {
        let bits = if self.mode == QuantMode::Moq && self.start_bits != self.bits {
            format!("W{}→{} MoQ", self.start_bits, self.bits)
        } else {
            format!("W{}", self.bits)
        };
        let kind = match (self.format, self.bits) {
            (Some(f), _) => f.name().to_string(),
            (None, 1) => "binary".into(),
            (None, 2) => "ternary".into(),
            (None, _) if self.quantization_type == QuantizationType::Asymmetric => "asym".into(),
            _ => "sym".into(),
        };
        let grouping = match self.layout {
            GroupLayout::Chunks(1) => "per-tensor".to_string(),
            GroupLayout::Chunks(g) => format!("rows/{g}"),
            GroupLayout::RowGroups(g) => format!("gs{g}"),
            GroupLayout::PerRow => "per-row".into(),
        };
        let rounding = if self.rounding == Rounding::Gptq { " gptq" } else { "" };
        let clip = if self.clip == Clip::Mse { " mse-clip" } else { "" };
        format!("{bits} {kind} {grouping}{rounding}{clip}")
    }
}

/// Effective activation-quantization params (input of the Linear).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ActivationQuantPlan {
    pub bits: u32,
    pub quantization_type: QuantizationType,
    pub range: RangeCalibration,
}

/// Effective params of sparse, row and channel pruning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrunePlan {
    pub method: PruningMethod,
    /// Fraction kept.
    pub dense_ratio: f64,
}

/// Effective head-pruning params.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadPrunePlan {
    pub method: PruningMethod,
    pub dense_ratio: f64,
    pub num_heads: u32,
    /// Heads kept: ceil(dense_ratio · num_heads).
    pub kept_heads: u32,
}

impl Plan {
    /// The weight-quantization schedules that change during training (an offset, MoQ's
    /// annealing), one per config group: `(group pointer, schedule)`.
    pub fn weight_schedules(&self) -> Vec<(String, BitSchedule)> {
        let mut out: Vec<(String, BitSchedule)> = Vec::new();
        for a in self.modules.iter().flat_map(|m| &m.techniques) {
            if let Params::WeightQuant(w) = &a.params {
                let s = w.bit_schedule(a.schedule.start);
                if (s.offset > 0 || s.anneals()) && !out.iter().any(|(p, _)| p == &a.pointer) {
                    out.push((a.pointer.clone(), s));
                }
            }
        }
        out
    }

    /// The first step from which nothing scheduled changes any more: every weight schedule
    /// settled and every activation offset passed (0 without schedules). Training states from
    /// then on are what clean would store.
    pub fn settled_at(&self) -> u64 {
        let weights = settled_after(self.weight_schedules().iter().map(|(_, s)| s));
        let activations = self.modules.iter().filter_map(ModulePlan::activation_offset);
        activations.fold(weights, u64::max)
    }

    /// The plan of one module, by exact path.
    pub fn module(&self, path: &str) -> Option<&ModulePlan> {
        self.modules.iter().find(|m| m.path == path)
    }

    /// Total parameter bytes before compression (including dropped layers and LayerNorms).
    pub fn bytes_before(&self) -> u64 {
        self.modules.iter().map(|m| m.bytes_before).sum::<u64>()
            + self.other_param_bytes
            + self.layers.as_ref().map_or(0, |l| l.dropped_bytes)
    }

    /// Total parameter bytes after clean.
    pub fn bytes_after(&self) -> u64 {
        self.modules.iter().map(|m| m.bytes_after).sum::<u64>() + self.other_param_bytes
    }

    /// Distinct technique keys that apply somewhere, in forward order.
    pub fn techniques(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &self.modules {
            for a in &m.techniques {
                if !out.contains(&a.technique) {
                    out.push(a.technique.clone());
                }
            }
        }
        out
    }
}

/// `k = ceil(ratio · n)`, at least 1: DeepSpeed's TopK count of kept elements.
pub fn kept(ratio: f64, n: usize) -> usize {
    ((ratio * n as f64).ceil() as usize).clamp(1, n.max(1))
}
