//! The dominant eigenvalue of a loss's Hessian restricted to some of a model's parameters (MoQ's
//! eigenvalue-scaled periods, compat-notes §1.9): DeepSpeed's power iteration
//! (runtime/eigenvalue.py) with its start, normalization and stopping rule, on Hessian-vector
//! products taken by central finite differences of gradients, because burn has no double
//! backward: `Hv ≈ (∇L(θ + εv) − ∇L(θ − εv)) / 2ε` with ε = 1e-3·max(‖θ‖, 1) along the unit `v`.
//! For a quadratic loss the difference is exact (tested against a closed form).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

/// DeepSpeed's `eigenvalue` settings that shape the iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerIteration {
    pub max_iter: u32,
    /// Stop when the relative change of the estimate falls below this.
    pub tol: f64,
    /// Added to the norm when normalizing.
    pub stability: f64,
    /// Seeds the random start vector.
    pub seed: u64,
}

/// The selected parameters of a model, flattened in visiting order.
#[derive(Debug, Clone, Default)]
struct Selection {
    /// (id, numel) in order.
    params: Vec<(ParamId, usize)>,
}

impl Selection {
    fn len(&self) -> usize {
        self.params.iter().map(|(_, n)| n).sum()
    }
}

/// Collects the float parameters whose module path satisfies `select`, with their values.
struct Collect<'a, F: Fn(&str) -> bool> {
    select: &'a F,
    path: Vec<String>,
    selection: Selection,
    values: Vec<f32>,
}

impl<F: Fn(&str) -> bool> ModuleVisitor for Collect<'_, F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if (self.select)(&self.path.join(".")) {
            let values = param
                .val()
                .inner()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap_or_default();
            self.selection.params.push((param.id, values.len()));
            self.values.extend(values);
        }
    }
}

/// Adds `scale · v` to the selected parameters.
struct Shift<'a> {
    offsets: &'a HashMap<ParamId, (usize, usize)>,
    v: &'a [f64],
    scale: f64,
}

impl ModuleMapper for Shift<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(&(start, len)) = self.offsets.get(&param.id) else {
            return param;
        };
        let delta: Vec<f32> = self.v[start..start + len]
            .iter()
            .map(|x| (x * self.scale) as f32)
            .collect();
        param.map(|t| {
            let shape = t.shape();
            let d = Tensor::<D>::from_data(TensorData::new(delta, shape), &t.device());
            t + d
        })
    }
}

/// The gradients of the selected parameters, flattened in selection order.
struct Gather<'a> {
    grads: &'a GradientsParams,
    offsets: &'a HashMap<ParamId, (usize, usize)>,
    out: Vec<f64>,
}

impl ModuleVisitor for Gather<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(&(start, len)) = self.offsets.get(&param.id) else {
            return;
        };
        let g = self
            .grads
            .get::<D>(param.id)
            .and_then(|g| g.into_data().convert::<f32>().try_into_vec::<f32>().ok())
            .unwrap_or_else(|| vec![0.0; len]);
        for (o, x) in self.out[start..start + len].iter_mut().zip(g) {
            // DeepSpeed's nan_to_num: a non-finite product counts as 0.
            *o = if x.is_finite() { f64::from(x) } else { 0.0 };
        }
    }
}

/// `v / (‖v‖ + stability)`.
fn normalize(v: &mut [f64], stability: f64) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm + stability);
}

/// The dominant eigenvalue of the Hessian of `loss` with respect to the parameters of `model`
/// (a model on a plain device) whose module path satisfies `select`; `device` is the autodiff
/// device the gradients are taken on. `None` when nothing is selected. The other parameters stay
/// as they are.
pub fn dominant_eigenvalue<M, E>(
    model: &M,
    select: impl Fn(&str) -> bool,
    device: &Device,
    loss: impl Fn(&M) -> Result<Tensor<1>, E>,
    opts: PowerIteration,
) -> Result<Option<f64>, E>
where
    M: Module + Clone,
{
    let mut collect = Collect {
        select: &select,
        path: Vec::new(),
        selection: Selection::default(),
        values: Vec::new(),
    };
    model.visit(&mut collect);
    let (selection, theta) = (collect.selection, collect.values);
    let n = selection.len();
    if n == 0 {
        return Ok(None);
    }
    let mut offsets = HashMap::new();
    let mut at = 0;
    for (id, len) in &selection.params {
        offsets.insert(*id, (at, *len));
        at += len;
    }
    let theta_norm = theta.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let eps = 1e-3 * theta_norm.max(1.0);
    let gradient = |v: &[f64], scale: f64| -> Result<Vec<f64>, E> {
        let shifted = model.clone().map(&mut Shift {
            offsets: &offsets,
            v,
            scale,
        });
        let trainable = shifted.fork(device).train();
        let l = loss(&trainable)?;
        let grads = GradientsParams::from_grads(l.backward(), &trainable);
        let mut gather = Gather {
            grads: &grads,
            offsets: &offsets,
            out: vec![0.0; n],
        };
        trainable.visit(&mut gather);
        Ok(gather.out)
    };
    // A normal start vector from a seeded generator (Box–Muller on xorshift64*).
    let mut state = opts.seed ^ 0x2545_f491_4f6c_dd1d;
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        ((state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut v: Vec<f64> = (0..n)
        .map(|_| (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos())
        .collect();
    normalize(&mut v, opts.stability);
    let (mut current, mut previous) = (1.0f64, 0.0f64);
    let mut i = 0;
    while i < opts.max_iter && current.abs() > 0.0 && ((current - previous) / current).abs() >= opts.tol {
        previous = current;
        let plus = gradient(&v, eps)?;
        let minus = gradient(&v, -eps)?;
        let hv: Vec<f64> = plus
            .iter()
            .zip(&minus)
            .map(|(p, m)| {
                let x = (p - m) / (2.0 * eps);
                if x.is_finite() { x } else { 0.0 }
            })
            .collect();
        current = hv.iter().zip(&v).map(|(h, x)| h * x).sum();
        v = hv;
        normalize(&mut v, opts.stability);
        i += 1;
    }
    Ok(Some(current))
}

/// DeepSpeed's post-processing of the per-block estimates: `|λ_b| / max_b |λ_b|` (a block
/// whose estimate is 0 gets 1), and the period factor `1 + ⌊4·that⌋` (1…5) of each.
pub fn period_factors(eigenvalues: &[f64]) -> Vec<(f64, u64)> {
    let max = eigenvalues.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    eigenvalues
        .iter()
        .map(|&e| {
            let r = if e == 0.0 || max == 0.0 { 1.0 } else { e.abs() / max };
            (r, 1 + (r * 4.0).floor() as u64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_follow_deepspeeds_normalization() {
        let f = period_factors(&[2.0, -8.0, 0.0, 5.9]);
        assert_eq!(f.iter().map(|x| x.1).collect::<Vec<_>>(), [2, 5, 5, 3]);
        assert_eq!(f[0].0, 0.25);
        assert_eq!(f[2].0, 1.0, "a zero estimate counts as the largest");
    }
}
