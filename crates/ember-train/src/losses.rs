//! Distillation loss terms between a student's and a teacher's outputs (any encoder; the
//! teacher's side is a constant of the loss).
//!
//! # Shapes
//! - sentence embeddings: `[batch, d]`
//! - hidden states: `[batch, seq, d]`, with the attention mask `[batch, seq]` (1 = token)

use burn::tensor::{Int, Tensor};

/// `1 − mean cos(s, t)` over the batch.
pub fn embedding_cosine(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let dot = (student.clone() * teacher.clone()).sum_dim(1);
    let norms = student.square().sum_dim(1).sqrt() * teacher.square().sum_dim(1).sqrt();
    (dot / norms.clamp_min(1e-12)).mean().neg().add_scalar(1.0)
}

/// Mean squared error over every element.
pub fn embedding_mse(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    (student - teacher).square().mean()
}

/// Mean squared error over the tokens the mask keeps (padding positions do not count).
pub fn masked_mse(student: Tensor<3>, teacher: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<1> {
    let d = student.dims()[2];
    let keep = mask.float().unsqueeze_dim::<3>(2);
    let tokens = keep.clone().sum();
    let sum = ((student - teacher).square() * keep).sum();
    sum / tokens.clamp_min(1.0).mul_scalar(d as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn terms_are_their_closed_forms() {
        let device = Device::flex();
        let t2 = |v: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, shape), &device);
        // Rows at 0° and 90°: cosines 1 and 0, so 1 − mean = 0.5.
        let s = t2(vec![1.0, 0.0, 0.0, 2.0], [2, 2]);
        let t = t2(vec![3.0, 0.0, 5.0, 0.0], [2, 2]);
        assert!((scalar(embedding_cosine(s.clone(), t.clone())) - 0.5).abs() < 1e-7);
        // (1−3)² + 0 + (0−5)² + (2−0)² over 4 elements.
        assert!((scalar(embedding_mse(s, t)) - 33.0 / 4.0).abs() < 1e-6);
        // Two sequences of two tokens, d = 1; the padded token's error (100²) does not count.
        let s3 = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 100.0], [2, 2, 1]), &device);
        let t3 = Tensor::<3>::from_data(TensorData::new(vec![0.0f32, 0.0, 1.0, 0.0], [2, 2, 1]), &device);
        let mask = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 0], [2, 2]), &device);
        assert!((scalar(masked_mse(s3, t3, mask)) - (1.0 + 4.0 + 4.0) / 3.0).abs() < 1e-6);
    }
}
