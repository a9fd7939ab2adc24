//! A lookup table `[vocab, dim]`: row `i` is the vector of token (or position, or type) `i`.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Int, Tensor};
use ember_core::slots::EmbeddingSlots;

/// An embedding table.
#[derive(Module, Debug)]
pub struct Embedding {
    /// Table, shape `[rows, dim]`.
    pub weight: Param<Tensor<2>>,
    /// Compression state attached by the composer (empty: plain lookup).
    pub slots: EmbeddingSlots,
}

impl Embedding {
    /// A table with entries drawn from N(0, 0.02²) (BERT's initializer range).
    pub fn random(rows: usize, dim: usize, device: &Device) -> Embedding {
        let dist = Distribution::Normal(0.0, 0.02);
        Embedding {
            weight: Param::from_tensor(Tensor::random([rows, dim], dist, device)),
            slots: EmbeddingSlots::default(),
        }
    }

    /// An all-zero table, the placeholder a checkpoint is loaded into.
    pub fn zeros(rows: usize, dim: usize, device: &Device) -> Embedding {
        Embedding {
            weight: super::placeholder([rows, dim], device),
            slots: EmbeddingSlots::default(),
        }
    }

    /// Number of rows (vocabulary size, positions, token types).
    pub fn rows(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Width of each row.
    pub fn dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Looks rows up. Indices must be `< rows()`; callers validate user ids before this.
    ///
    /// # Shapes
    /// - `indices`: `[batch, seq]`
    /// - output: `[batch, seq, dim]`
    pub fn forward(&self, indices: Tensor<2, Int>) -> Tensor<3> {
        burn::tensor::module::embedding(self.slots.weight(self.weight.val()), indices)
    }
}
