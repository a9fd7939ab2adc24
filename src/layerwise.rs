//! ZeroQuant's layer-by-layer distillation (LKD): each student layer, fed the teacher's input to
//! that layer, is trained to reproduce the teacher layer's output; only that layer is on the
//! autodiff device at a time, so memory is one layer's activations and optimizer state, and the
//! layers train in order (layer `l` sees the teacher's hidden states, not the student's).
//!
//! The batches' hidden states at the current layer's input are kept (the teacher's stage outputs,
//! [`Bert::run_stage`]); the teacher's output of the layer is computed from them per step.

use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor};
use ember_config::types::{Layerwise, LrSchedule};
use ember_models::{Batch, Bert, StagedBatch};
use ember_train::losses::masked_mse;
use ember_train::{Schedule, TrainSettings, Trainer};

use crate::Error;
use crate::events::Events;

/// What LKD did to one layer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerReport {
    pub layer: usize,
    /// Mean layer-output MSE over the first and the last tenth of its steps.
    pub first_loss: f64,
    pub last_loss: f64,
}

/// Trains every layer of `student` (composed, plain device) on `batches` against `teacher`,
/// `lkd.steps` Adam steps per layer at the constant rate `lkd.lr` (ZeroQuant's recipe: no weight
/// decay); returns the student and one report per layer.
pub fn layerwise(
    mut student: Bert,
    teacher: &Bert,
    lkd: &Layerwise,
    batches: &[Batch],
    quiet: bool,
    events: &mut Events,
) -> Result<(Bert, Vec<LayerReport>), Error> {
    let plain = Device::flex();
    let device = Device::flex().autodiff();
    // The batches one step each visits, in order (at most one per step).
    let used = &batches[..batches.len().min(lkd.steps as usize).max(1)];
    let masks: Vec<Tensor<2, Int>> = used.iter().map(|b| b.to_tensors(&device).1).collect();
    let mut carries: Vec<StagedBatch> = Vec::with_capacity(used.len());
    for b in used {
        carries.push(teacher.run_stage(0, StagedBatch::Tokens(b.clone()), &plain)?);
    }
    let layers = student.encoder.layer.len();
    let bar = crate::progress::progress_bar(layers as u64 * lkd.steps, "layer-by-layer distillation", quiet);
    let mut reports = Vec::with_capacity(layers);
    for l in 0..layers {
        // The teacher's output of this layer for every kept batch: the targets, and the next
        // layer's inputs.
        let mut outputs = Vec::with_capacity(carries.len());
        for c in &carries {
            outputs.push(teacher.run_stage(l + 1, c.clone(), &plain)?);
        }
        let schedule = Schedule {
            peak: lkd.lr,
            warmup: 0,
            total: lkd.steps,
            kind: LrSchedule::Constant,
            deepspeed: None,
        };
        let settings = TrainSettings::adamw(schedule, 0.0);
        let mut trainer = Trainer::new(settings);
        let mut layer = student.encoder.layer[l].clone().fork(&device).train();
        let mut losses = Vec::with_capacity(lkd.steps as usize);
        for step in 0..lkd.steps {
            let j = step as usize % carries.len();
            let (StagedBatch::Hidden { x, mask }, StagedBatch::Hidden { x: y, .. }) = (&carries[j], &outputs[j]) else {
                return Err(Error::Other(
                    "layer-by-layer distillation lost its hidden states".into(),
                ));
            };
            let x = Tensor::<3>::from_data(x.clone().into_data(), &device);
            let y = Tensor::<3>::from_data(y.clone().into_data(), &device);
            let mask_ad = Tensor::<4, Bool>::from_data(mask.clone().into_data(), &device);
            let loss = masked_mse(layer.forward(x, mask_ad), y, masks[j].clone());
            let value = f64::from(loss.clone().inner().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(Error::Other(format!(
                    "layer-by-layer distillation: the loss of layer {l} is not finite at step {step}; lower distillation.layerwise.lr"
                )));
            }
            losses.push(value);
            layer = trainer.step(layer, loss).0;
            bar.inc(1);
            bar.set_message(format!("layer-by-layer distillation: layer {l}, loss {value:.6}"));
        }
        student.encoder.layer[l] = layer.valid();
        let (first_loss, last_loss) = ember_train::first_and_last_tenth(&losses);
        let report = LayerReport {
            layer: l,
            first_loss,
            last_loss,
        };
        events.emit("lkd_layer", &serde_json::to_value(&report).unwrap_or_default())?;
        reports.push(report);
        carries = outputs;
    }
    bar.finish_and_clear();
    Ok((student, reports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_config::{Catalog, parse_config};
    use ember_core::{Composer, Registry};

    fn batch(seed: u64) -> Batch {
        let mut state = seed;
        let input_ids = (0..4 * 8)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % 49 + 1) as i64
            })
            .collect();
        Batch {
            input_ids,
            attention_mask: vec![1; 32],
            batch: 4,
            seq: 8,
        }
    }

    #[test]
    fn every_layer_learns_to_reproduce_its_teacher_layer() {
        let plain = Device::flex();
        plain.seed(11);
        let teacher = ember_models::BertConfig::uniform("tiny", 50, 32, 3, 4, 64, 16).init_random(&plain);
        let config = parse_config(
            r#"{"compression_training": {"weight_quantization": {
                "shared_parameters": {"enabled": true, "quantize_weight_in_forward": true, "group_size": 16},
                "different_groups": {"w2": {"params": {"start_bits": 2, "target_bits": 2},
                                            "modules": ["attention", "intermediate", "layer.\\d+.output.dense"]}}}}}"#,
            &Catalog::builtin_only(),
        )
        .unwrap()
        .config;
        let student = Composer::new(Registry::with_builtins())
            .compose(teacher.clone(), &config)
            .unwrap()
            .model;
        let before = student.encoder.layer[2].output.dense.weight.val().into_data();
        let lkd = Layerwise {
            enabled: true,
            steps: 30,
            lr: 3e-3,
        };
        let batches: Vec<Batch> = (0..3).map(batch).collect();
        let mut events = Events::open(None, &[]).unwrap();
        let (student, reports) = layerwise(student, &teacher, &lkd, &batches, true, &mut events).unwrap();
        assert_eq!(reports.len(), 3);
        for r in &reports {
            assert!(r.first_loss > 0.0, "{r:?}");
            assert!(
                r.last_loss < 0.7 * r.first_loss,
                "layer {} did not learn: {r:?}",
                r.layer
            );
        }
        // The trained layers are the student's, back on the plain device.
        assert_ne!(student.encoder.layer[2].output.dense.weight.val().into_data(), before);
        assert!(!student.encoder.layer[2].output.dense.weight.val().is_autodiff());
    }
}
