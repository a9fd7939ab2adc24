//! A compression technique defined outside Ember: **power-of-two rounding** (every weight becomes
//! ±scale·2^(−k), k ∈ 0..levels, so a multiply is a shift), registered under the config key
//! `pow2_rounding`:
//!
//! ```json
//! "compression_training": {
//!   "pow2_rounding": {
//!     "shared_parameters": { "enabled": true },
//!     "different_groups": { "p1": { "params": { "levels": 8 }, "modules": ["intermediate.dense"] } }
//!   }
//! }
//! ```
//!
//! Three steps make a technique: serde + schemars types for its params (Ember validates the JSON
//! against their schema, with the same pointer-precise errors as its own keys), a
//! [`WeightTransform`] that does the work in the forward pass (with straight-through gradients),
//! and a [`Technique`] that attaches it. Then `registry.register(Pow2Rounding)`.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData};
use ember_config::plan::{Applied, ModulePlan, Params};
use ember_config::{CustomTechniqueSpec, SiteKind};
use ember_core::fake_quant::straight_through;
use ember_core::slots::WeightTransform;
use ember_core::{AttachContext, CoreError, SiteSlots, Technique};
use schemars::JsonSchema;
use serde::Deserialize;

/// `shared_parameters` of `pow2_rounding`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pow2Shared {
    /// Master switch.
    #[serde(default)]
    pub enabled: bool,
    /// Step from which the rounding applies (post-training: 0).
    #[serde(default)]
    pub schedule_offset: u64,
}

/// Group `params` of `pow2_rounding`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pow2Params {
    /// Number of magnitudes per row: scale·2^0 … scale·2^(1−levels); smaller weights become 0.
    #[schemars(range(min = 1, max = 16))]
    pub levels: u32,
}

/// Rounds each row to signed powers of two of its largest magnitude.
#[derive(Debug, Clone)]
pub struct Pow2Transform {
    pub levels: u32,
}

impl Pow2Transform {
    /// The rounding of one row (exposed for tests and for a packer).
    pub fn round_row(&self, row: &mut [f32]) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        if max == 0.0 {
            return;
        }
        let floor = max * 2f32.powi(1 - self.levels as i32);
        for v in row.iter_mut() {
            let a = v.abs();
            *v = if a < floor / 2.0 {
                0.0
            } else {
                // Nearest power of two in the log domain, clamped to [floor, max].
                let k = (max / a.max(floor)).log2().round().clamp(0.0, (self.levels - 1) as f32);
                v.signum() * max * 2f32.powi(-(k as i32))
            };
        }
    }
}

impl WeightTransform for Pow2Transform {
    fn apply(&self, weight: Tensor<2>) -> Tensor<2> {
        let [rows, cols] = weight.dims();
        let mut v = weight
            .clone()
            .detach()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 weights");
        for row in v.chunks_mut(cols) {
            self.round_row(row);
        }
        let q = Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), &weight.device());
        straight_through(weight, q)
    }
}

/// The technique: claims `pow2_rounding`, accepts Linear sites, attaches [`Pow2Transform`].
#[derive(Debug, Default)]
pub struct Pow2Rounding;

impl Technique for Pow2Rounding {
    fn key(&self) -> &str {
        "pow2_rounding"
    }

    fn accepts(&self) -> &[SiteKind] {
        &[SiteKind::Linear]
    }

    fn config_spec(&self) -> Option<CustomTechniqueSpec> {
        Some(CustomTechniqueSpec::new::<Pow2Shared, Pow2Params>(
            self.key(),
            self.accepts(),
        ))
    }

    fn supports(&self, _module: &ModulePlan, applied: &Applied) -> Result<(), String> {
        if applied.schedule.start > 0 {
            Err("pow2_rounding after step 0 needs the training loop".into())
        } else {
            Ok(())
        }
    }

    fn attach(
        &self,
        module: &ModulePlan,
        applied: &Applied,
        slots: SiteSlots<'_>,
        _ctx: &AttachContext,
    ) -> Result<(), CoreError> {
        let attach_err = |message: String| CoreError::Attach {
            path: module.path.clone(),
            message,
        };
        let Params::Custom(params) = &applied.params else {
            return Err(attach_err("expected custom params".into()));
        };
        // The config crate validated `params` against Pow2Params' schema, so this cannot fail on
        // user input; the merged value also carries the shared keys.
        let levels = params
            .get("levels")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| attach_err("missing `levels`".into()))? as u32;
        let SiteSlots::Linear(s) = slots else {
            return Err(attach_err("pow2_rounding attaches to Linear sites".into()));
        };
        s.transforms.push(Arc::new(Pow2Transform { levels }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_to_signed_powers_of_two_of_their_max() {
        let t = Pow2Transform { levels: 3 };
        // max 4 → magnitudes {4, 2, 1}; 3 → log2(4/3)=0.415 → 4; 0.7 → log2(4/1)... clamps to 1; 0.3 < 0.5 → 0.
        let mut row = [4.0f32, -3.0, 1.4, 0.7, 0.3, -1.5];
        t.round_row(&mut row);
        assert_eq!(row, [4.0, -4.0, 1.0, 1.0, 0.0, -2.0]);
    }
}
