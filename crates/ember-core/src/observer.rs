//! Range observers for static activation calibration: each records the min/max of the tensors
//! it sees and keeps a deterministic sample of |x| for percentile ranges. Shared behind an `Arc`
//! because forward passes take `&self`.

use std::sync::{Arc, Mutex};

use burn::tensor::Tensor;

/// Samples of |x| kept per observer (strided, deterministic).
const SAMPLE_CAP: usize = 1 << 18;

#[derive(Debug, Default)]
struct Stats {
    min: f32,
    max: f32,
    seen: u64,
    samples: Vec<f32>,
}

/// Records activation ranges during calibration.
#[derive(Debug, Clone, Default)]
pub struct RangeObserver {
    stats: Arc<Mutex<Stats>>,
}

impl RangeObserver {
    pub fn new() -> RangeObserver {
        RangeObserver::default()
    }

    /// Folds a tensor into the statistics (reads it back to the host: calibration only).
    pub fn observe<const D: usize>(&self, x: &Tensor<D>) {
        let values = match x.clone().detach().into_data().convert::<f32>().try_into_vec::<f32>() {
            Ok(v) => v,
            Err(_) => return,
        };
        let Ok(mut s) = self.stats.lock() else { return };
        let (mn, mx) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        if s.seen == 0 {
            (s.min, s.max) = (mn, mx);
        } else {
            s.min = s.min.min(mn);
            s.max = s.max.max(mx);
        }
        s.seen += values.len() as u64;
        let stride = (values.len() / (SAMPLE_CAP / 16).max(1)).max(1);
        s.samples.extend(values.iter().step_by(stride).map(|v| v.abs()));
        if s.samples.len() > SAMPLE_CAP {
            // Keep every other sample: still spread over all batches seen.
            let kept: Vec<f32> = s.samples.iter().step_by(2).copied().collect();
            s.samples = kept;
        }
    }

    /// Number of values observed.
    pub fn seen(&self) -> u64 {
        self.stats.lock().map(|s| s.seen).unwrap_or(0)
    }

    /// The observed `[min, max]`, or `None` before any data.
    pub fn min_max(&self) -> Option<(f32, f32)> {
        let s = self.stats.lock().ok()?;
        (s.seen > 0).then_some((s.min, s.max))
    }

    /// A symmetric range `[-p, p]` with p the `percentile`-th percentile of |x|.
    pub fn percentile_range(&self, percentile: f64) -> Option<(f32, f32)> {
        let s = self.stats.lock().ok()?;
        if s.samples.is_empty() {
            return None;
        }
        let mut v = s.samples.clone();
        v.sort_by(f32::total_cmp);
        let idx = (((percentile / 100.0) * (v.len() - 1) as f64).round() as usize).min(v.len() - 1);
        let p = v[idx];
        Some((-p, p))
    }
}

/// Rows observed and the running `[d, d]` sum of xᵀx (shared, not copied, by the slots that read
/// the same input and by the solve that reads it).
type Gram = Option<(usize, Arc<Vec<f64>>)>;

/// Rows observed and one running `[d, d]` sum per block of output rows.
type BlockGrams = Option<(usize, Vec<Vec<f64>>)>;

/// Accumulates the Gram matrix Σ xᵀx of a Linear's inputs (over every token), the Hessian GPTQ
/// needs. A model whose layer output is read per block of output rows through a mixing of tokens
/// (an attention head reads its rows of the value projection through its attention weights) may
/// also report the mixed inputs per block ([`GramObserver::observe_blocks`]); GPTQ then
/// compensates each block's rows on the inputs they are actually read with.
///
/// Linears that read the same input (attention's query, key and value) share one Gram matrix:
/// [`GramObserver::sharing`] gives an observer that reads the other's matrix and observes nothing
/// itself, so the matrix is computed and stored once.
#[derive(Debug, Clone)]
pub struct GramObserver {
    gram: Arc<Mutex<Gram>>,
    blocks: Arc<Mutex<BlockGrams>>,
    /// Whether [`GramObserver::observe`] accumulates (false for an observer sharing another's).
    observes: bool,
}

impl Default for GramObserver {
    fn default() -> GramObserver {
        GramObserver {
            gram: Arc::default(),
            blocks: Arc::default(),
            observes: true,
        }
    }
}

impl GramObserver {
    pub fn new() -> GramObserver {
        GramObserver::default()
    }

    /// An observer for a Linear that reads the same input as this one's: the same Gram matrix
    /// (accumulated by this observer only), its own block matrices.
    pub fn sharing(&self) -> GramObserver {
        GramObserver {
            gram: self.gram.clone(),
            blocks: Arc::default(),
            observes: false,
        }
    }

    /// Adds xᵀx of a `[..., d]` input (computed on the tensor's device, accumulated in f64).
    pub fn observe<const D: usize>(&self, x: &Tensor<D>) {
        if !self.observes {
            return;
        }
        let dims = x.dims();
        let d = dims[D - 1];
        let n = dims.iter().product::<usize>() / d.max(1);
        let flat: Tensor<2> = x.clone().detach().reshape([n, d]);
        let g = flat.clone().transpose().matmul(flat);
        let Ok(values) = g.into_data().convert::<f32>().try_into_vec::<f32>() else {
            return;
        };
        let Ok(mut acc) = self.gram.lock() else { return };
        let (count, sum) = acc.get_or_insert_with(|| (0, Arc::new(vec![0f64; d * d])));
        if sum.len() != d * d {
            return;
        }
        *count += n;
        for (s, v) in Arc::make_mut(sum).iter_mut().zip(values) {
            *s += v as f64;
        }
    }

    /// Rows observed so far.
    pub fn rows(&self) -> usize {
        self.gram
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|(n, _)| *n))
            .unwrap_or(0)
    }

    /// Rows observed so far and the accumulated `[d, d]` Gram matrix (shared, not copied).
    pub fn gram(&self) -> Option<(usize, Arc<Vec<f64>>)> {
        self.gram.lock().ok()?.clone()
    }

    /// Adds one Gram matrix per block of a `[batch, blocks, tokens, d]` tensor: block `h`'s inputs
    /// as its output rows see them (for attention, `A_h · x` with `A_h` head `h`'s weights).
    pub fn observe_blocks(&self, x: &Tensor<4>) {
        let [batch, blocks, tokens, d] = x.dims();
        let per_block: Tensor<3> = x.clone().detach().swap_dims(0, 1).reshape([blocks, batch * tokens, d]);
        let g = per_block.clone().swap_dims(1, 2).matmul(per_block);
        let Ok(values) = g.into_data().convert::<f32>().try_into_vec::<f32>() else {
            return;
        };
        let Ok(mut acc) = self.blocks.lock() else { return };
        let (count, sums) = acc.get_or_insert_with(|| (0, vec![vec![0f64; d * d]; blocks]));
        if sums.len() != blocks || sums.iter().any(|s| s.len() != d * d) {
            return;
        }
        *count += batch * tokens;
        for (sum, block) in sums.iter_mut().zip(values.chunks_exact(d * d)) {
            for (s, &v) in sum.iter_mut().zip(block) {
                *s += v as f64;
            }
        }
    }

    /// Rows observed per block and the `[d, d]` Gram matrix of every block, if the model reported
    /// block inputs.
    pub fn block_grams(&self) -> Option<(usize, Vec<Vec<f64>>)> {
        self.blocks.lock().ok()?.clone()
    }

    /// Moves the block matrices out (the solve that consumes them is their last reader).
    pub fn take_block_grams(&self) -> Option<(usize, Vec<Vec<f64>>)> {
        self.blocks.lock().ok()?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn min_max_and_percentile_follow_the_data() {
        let device = Device::flex();
        let o = RangeObserver::new();
        assert_eq!(o.min_max(), None);
        let v: Vec<f32> = (0..1000).map(|i| i as f32 / 100.0 - 2.0).collect();
        o.observe(&Tensor::<2>::from_data(TensorData::new(v, [10, 100]), &device));
        o.observe(&Tensor::<1>::from_data(
            TensorData::new(vec![-50.0f32, 3.0], [2]),
            &device,
        ));
        assert_eq!(o.min_max(), Some((-50.0, 7.99)));
        assert_eq!(o.seen(), 1002);
        // Sorted |x|: 500 values below 3 (0..2 twice, 2..2.99 once), then 3.0 from the data and
        // 3.0 from the second tensor; the median index round(0.5·1001) = 501 is a 3.0.
        assert_eq!(o.percentile_range(50.0), Some((-3.0, 3.0)));
        assert_eq!(o.percentile_range(100.0), Some((-50.0, 50.0)));
    }

    #[test]
    fn gram_accumulates_x_transpose_x_over_all_tokens() {
        let device = Device::flex();
        let g = GramObserver::new();
        // Two tokens [1, 2] and [3, 4] → xᵀx = [[10, 14], [14, 20]], then once more.
        let x = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 2, 2]), &device);
        g.observe(&x);
        g.observe(&x);
        assert_eq!(g.gram(), Some((4, Arc::new(vec![20.0, 28.0, 28.0, 40.0]))));
        assert_eq!(g.block_grams(), None);
        // An observer sharing the input reads the same matrix and adds nothing of its own.
        let shared = g.sharing();
        shared.observe(&x);
        assert_eq!(shared.gram(), g.gram());
        assert_eq!(g.rows(), 4);
        g.observe(&x);
        assert_eq!(shared.gram(), Some((6, Arc::new(vec![30.0, 42.0, 42.0, 60.0]))));
    }

    #[test]
    fn block_grams_are_one_gram_per_block_over_batch_and_tokens() {
        let device = Device::flex();
        let g = GramObserver::new();
        // [batch 2, blocks 2, tokens 1, d 2]: block 0 sees [1, 0] and [0, 2], block 1 sees [1, 1] twice.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 1.0, 0.0, 2.0, 1.0, 1.0], [2, 2, 1, 2]),
            &device,
        );
        g.observe_blocks(&x);
        assert_eq!(
            g.block_grams(),
            Some((2, vec![vec![1.0, 0.0, 0.0, 4.0], vec![2.0, 2.0, 2.0, 2.0]]))
        );
    }
}
