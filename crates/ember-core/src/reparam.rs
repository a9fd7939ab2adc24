//! Weight-only techniques on *any* burn module, through burn's parameter reparameterization: the
//! module's code does not change, its 2-D weights return the compressed value from `val()`.
//!
//! ```text
//! let (model, plan) = reparameterize(model, &config, &registry, WeightLayout::InOut)?;
//! ```
//! burn keeps one reparameterization per parameter, so every weight-only technique that applies to
//! a weight is folded into one [`EmberReparam`] (transforms, then quantization — the order of
//! [`crate::slots::LinearSlots::weight`]). Techniques that act on inputs (activation quantization)
//! or need Ember's blocks are refused with "not supported yet".

use std::sync::{Arc, Mutex};

use burn::module::{Module, Param, Reparameterization, Reparameterizer};
use burn::tensor::Tensor;
use ember_config::plan::Params;
use ember_config::{EmberConfig, Inventory, Plan, Site, SiteKind, SiteRole};

use crate::error::CoreError;
use crate::fake_quant::WeightQuant;
use crate::registry::Registry;
use crate::slots::{LinearSlots, WeightTransform};
use crate::technique::{AttachContext, SiteSlots};

/// How a module stores its 2-D weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[out, in]` (PyTorch, Ember's blocks): rows are output channels.
    OutIn,
    /// `[in, out]` (burn's `nn::Linear`): transposed before quantizing, so groups stay per output.
    InOut,
}

/// All weight-only compression of one parameter, applied by burn whenever the parameter is read.
#[derive(Module, Debug)]
pub struct EmberReparam {
    #[module(skip)]
    pub transforms: Vec<Arc<dyn WeightTransform>>,
    #[module(skip)]
    pub weight_quant: Option<WeightQuant>,
    #[module(skip)]
    pub layout: WeightLayout,
}

impl Reparameterization for EmberReparam {
    const NAME: &'static str = "ember";

    fn apply<const D: usize>(&self, base: Tensor<D>) -> Tensor<D> {
        if D != 2 {
            return base;
        }
        let dims = base.dims();
        let w: Tensor<2> = base.reshape([dims[0], dims[1]]);
        let w = if self.layout == WeightLayout::InOut {
            w.transpose()
        } else {
            w
        };
        let slots = LinearSlots {
            transforms: self.transforms.clone(),
            weight_quant: self.weight_quant,
            ..Default::default()
        };
        let w = slots.weight(w);
        let w = if self.layout == WeightLayout::InOut {
            w.transpose()
        } else {
            w
        };
        w.reshape(dims)
    }
}

/// 2-D parameters found by a survey: path and `[out, in]` shape.
type Found = Arc<Mutex<Vec<(String, [usize; 2])>>>;

/// Records the 2-D float parameters of a module without changing it.
struct Survey {
    layout: WeightLayout,
    found: Found,
}

impl Reparameterizer for Survey {
    type Reparam = EmberReparam;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<EmberReparam>) {
        if D == 2 {
            let d = param.dims();
            let shape = if self.layout == WeightLayout::InOut {
                [d[1], d[0]]
            } else {
                [d[0], d[1]]
            };
            if let Ok(mut f) = self.found.lock() {
                f.push((path.to_string(), shape));
            }
        }
        (param, None)
    }
}

/// Attaches the planned reparameterizations.
struct Attach {
    layout: WeightLayout,
    by_path: Vec<(String, LinearSlots)>,
}

impl Reparameterizer for Attach {
    type Reparam = EmberReparam;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<EmberReparam>) {
        match self.by_path.iter().position(|(p, _)| p == path) {
            Some(i) if D == 2 => {
                let (_, slots) = self.by_path.swap_remove(i);
                let reparam = EmberReparam {
                    transforms: slots.transforms,
                    weight_quant: slots.weight_quant,
                    layout: self.layout,
                };
                (param, Some(reparam))
            }
            _ => (param, None),
        }
    }
}

/// The inventory of an arbitrary module: one Linear site per 2-D parameter, named by its burn
/// path (e.g. `fc1.weight`).
pub fn inventory_of<M: Module>(module: M, layout: WeightLayout, name: &str) -> (M, Inventory) {
    let found: Found = Arc::new(Mutex::new(Vec::new()));
    let module = module.apply_reparameterization(Survey {
        layout,
        found: found.clone(),
    });
    let sites = found
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(path, shape)| Site {
            path,
            kind: SiteKind::Linear,
            role: SiteRole::Other,
            shape: shape.to_vec(),
            has_bias: false,
            block: None,
            num_heads: None,
        })
        .collect();
    (
        module,
        Inventory {
            model: name.to_string(),
            sites,
            ..Default::default()
        },
    )
}

/// Plans `config` on an arbitrary module's 2-D weights and attaches its weight-only techniques as
/// burn reparameterizations.
pub fn reparameterize<M: Module>(
    module: M,
    config: &EmberConfig,
    registry: &Registry,
    layout: WeightLayout,
) -> Result<(M, Plan), CoreError> {
    let (module, inventory) = inventory_of(module, layout, "module");
    let plan = ember_config::resolve_plan(config, &inventory, &registry.catalog())?;
    crate::Composer::new(registry.clone()).check_supported(config, &plan)?;
    // Nothing steps a reparameterized module's clock: schedules need Ember's training loop.
    if let Some((pointer, why)) = ember_config::scheduled_reasons(config).into_iter().next() {
        return Err(CoreError::NotSupported(format!(
            "{pointer}: {why}; reparameterization applies post-training weight techniques (compose an Ember model to train on a schedule)"
        )));
    }
    let ctx = AttachContext {
        numerics: config.ember.numerics,
        calibration: config.calibration.clone(),
        clock: crate::lifecycle::StepClock::new(),
    };
    let mut by_path = Vec::new();
    for m in plan.modules.iter().filter(|m| !m.techniques.is_empty()) {
        let mut slots = LinearSlots::default();
        for applied in &m.techniques {
            if matches!(applied.params, Params::ActivationQuant(_)) {
                return Err(CoreError::NotSupported(format!(
                    "activation_quantization on `{}`: reparameterization transforms weights only; quantizing inputs needs Ember's blocks",
                    m.path
                )));
            }
            let technique = registry.get(&applied.technique).ok_or_else(|| {
                CoreError::NotSupported(format!("no technique is registered for `{}`", applied.technique))
            })?;
            technique.attach(m, applied, SiteSlots::Linear(&mut slots), &ctx)?;
        }
        by_path.push((m.path.clone(), slots));
    }
    Ok((module.apply_reparameterization(Attach { layout, by_path }), plan))
}
