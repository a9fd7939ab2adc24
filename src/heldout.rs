//! Held-out fidelity during training: every `training.eval_every` steps the student embeds
//! sentences that are neither trained on nor part of the evaluation reference (the end of the
//! training text, set aside), compared with the frozen teacher's embeddings by cosine. The
//! events carry the curve; the run keeps the best state among those taken once every schedule
//! has settled (a state before the last bit drop is not what clean would store).

use burn::tensor::Device;
use ember_models::{Batch, Bert};

use crate::Error;
use crate::eval::metrics::cosine;

/// The held-out sentences as batches, and the teacher's embedding of each.
#[derive(Debug)]
pub struct HeldOut {
    batches: Vec<Batch>,
    /// Per batch, per sentence: the teacher's L2-normalized embedding.
    teacher: Vec<Vec<Vec<f32>>>,
    sentences: usize,
}

/// Cosine fidelity of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Fidelity {
    pub cos_mean: f64,
    pub cos_min: f64,
}

impl HeldOut {
    /// `batches` of held-out sentences, embedded once by `teacher` on `device`.
    pub fn new(batches: Vec<Batch>, teacher: &Bert, device: &Device) -> Result<HeldOut, Error> {
        let teacher = batches
            .iter()
            .map(|b| embeddings(teacher, b, device))
            .collect::<Result<Vec<_>, _>>()?;
        let sentences = batches.iter().map(|b| b.batch).sum();
        Ok(HeldOut {
            batches,
            teacher,
            sentences,
        })
    }

    pub fn sentences(&self) -> usize {
        self.sentences
    }

    /// The cosine of `student`'s embeddings (a model on a plain device) to the teacher's.
    pub fn measure(&self, student: &Bert, device: &Device) -> Result<Fidelity, Error> {
        let (mut sum, mut min, mut n) = (0.0f64, f64::INFINITY, 0usize);
        for (batch, teacher) in self.batches.iter().zip(&self.teacher) {
            for (s, t) in embeddings(student, batch, device)?.iter().zip(teacher) {
                let cos = cosine(s, t);
                sum += cos;
                min = min.min(cos);
                n += 1;
            }
        }
        Ok(Fidelity {
            cos_mean: sum / n.max(1) as f64,
            cos_min: if n == 0 { f64::NAN } else { min },
        })
    }
}

fn embeddings(model: &Bert, batch: &Batch, device: &Device) -> Result<Vec<Vec<f32>>, Error> {
    let out = model.encode(batch, device)?;
    let [rows, dim] = out.embedding.dims();
    let values = out
        .embedding
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Other(format!("embedding readback: {e:?}")))?;
    Ok((0..rows).map(|r| values[r * dim..(r + 1) * dim].to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_student_equal_to_its_teacher_measures_one() {
        let device = Device::flex();
        device.seed(5);
        let model = ember_models::BertConfig::uniform("tiny", 40, 16, 2, 2, 32, 12).init_random(&device);
        let batch = Batch {
            input_ids: vec![1, 5, 7, 2, 1, 9, 3, 2],
            attention_mask: vec![1; 8],
            batch: 2,
            seq: 4,
        };
        let held = HeldOut::new(vec![batch], &model, &device).unwrap();
        assert_eq!(held.sentences(), 2);
        let f = held.measure(&model, &device).unwrap();
        assert!(
            (f.cos_mean - 1.0).abs() < 1e-6 && (f.cos_min - 1.0).abs() < 1e-6,
            "{f:?}"
        );
    }
}
