//! The optimizer step against closed forms (AdamW's first step, global-norm clipping), and a
//! training run on a tiny random BERT: knowledge distillation from the original model into its
//! ternary fake-quantized copy lowers the loss (straight-through gradients reach every Linear).

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use ember_config::types::LrSchedule;
use ember_models::blocks::Linear;
use ember_train::{Schedule, TrainSettings, Trainer, clip_global_norm, global_norm};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

fn settings(lr: f64, weight_decay: f64, max_grad_norm: Option<f64>) -> TrainSettings {
    TrainSettings {
        schedule: Schedule {
            peak: lr,
            warmup: 0,
            total: 100,
            kind: LrSchedule::Constant,
            deepspeed: None,
        },
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        weight_decay,
        decoupled_weight_decay: true,
        max_grad_norm,
    }
}

/// A Linear on the autodiff device, and `Σ W∘C + Σ b∘d` so that the gradients are C and d.
fn linear_and_loss(device: &Device) -> (Linear, Vec<f32>, Vec<f32>, impl Fn(&Linear) -> Tensor<1>) {
    let layer = Linear::random(3, 2, device).train();
    let c: Vec<f32> = vec![0.5, -2.0, 1.5, 3.0, -0.25, 1.0];
    let d: Vec<f32> = vec![-1.0, 4.0];
    let (cc, dd) = (c.clone(), d.clone());
    let dev = device.clone();
    let loss = move |l: &Linear| {
        let ct = Tensor::<2>::from_data(TensorData::new(cc.clone(), [2, 3]), &dev);
        let dt = Tensor::<1>::from_data(TensorData::new(dd.clone(), [2]), &dev);
        (l.weight.val() * ct).sum() + (l.bias.as_ref().unwrap().val() * dt).sum()
    };
    (layer, c, d, loss)
}

#[test]
fn the_first_adamw_step_is_the_closed_form_and_biases_are_not_decayed() {
    let device = Device::flex().autodiff();
    let (layer, c, d, loss) = linear_and_loss(&device);
    let w0 = values(layer.weight.val().inner());
    let b0 = values(layer.bias.as_ref().unwrap().val().inner());
    let (lr, wd) = (0.01, 0.1);
    let mut trainer = Trainer::new(settings(lr, wd, None));
    let l = loss(&layer);
    let (layer, report) = trainer.step(layer, l);
    assert_eq!((report.step, report.lr), (0, lr));
    // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε); weights decay, biases do not.
    let step = |g: f32| (lr as f32) * g / (g.abs() + 1e-8);
    let w1 = values(layer.weight.val().inner());
    for ((w, w0), g) in w1.iter().zip(&w0).zip(&c) {
        let want = w0 * (1.0 - (lr * wd) as f32) - step(*g);
        assert!((w - want).abs() <= 1e-6 * want.abs().max(1.0), "{w} vs {want}");
    }
    let b1 = values(layer.bias.as_ref().unwrap().val().inner());
    for ((b, b0), g) in b1.iter().zip(&b0).zip(&d) {
        let want = b0 - step(*g);
        assert!((b - want).abs() <= 1e-6 * want.abs().max(1.0), "{b} vs {want}");
    }
    assert_eq!(trainer.steps_done(), 1);
}

#[test]
fn the_first_l2_adam_step_adds_the_decay_to_the_gradient() {
    // DeepSpeed's Adam with `adam_w_mode: false`: g' = g + λ·w, then the first step moves each
    // weight by lr·g'/(|g'| + ε); biases (never decayed) by lr·g/(|g| + ε).
    let device = Device::flex().autodiff();
    let (layer, c, d, loss) = linear_and_loss(&device);
    let w0 = values(layer.weight.val().inner());
    let b0 = values(layer.bias.as_ref().unwrap().val().inner());
    let (lr, wd) = (0.01f32, 5.0f32);
    let mut trainer = Trainer::new(TrainSettings {
        decoupled_weight_decay: false,
        ..settings(f64::from(lr), f64::from(wd), None)
    });
    let l = loss(&layer);
    let (layer, _) = trainer.step(layer, l);
    let step = |g: f32| lr * g / (g.abs() + 1e-8);
    for ((w, w0), g) in values(layer.weight.val().inner()).iter().zip(&w0).zip(&c) {
        let want = w0 - step(g + wd * w0);
        assert!((w - want).abs() <= 1e-6 * want.abs().max(1.0), "{w} vs {want}");
    }
    for ((b, b0), g) in values(layer.bias.as_ref().unwrap().val().inner())
        .iter()
        .zip(&b0)
        .zip(&d)
    {
        let want = b0 - step(*g);
        assert!((b - want).abs() <= 1e-6 * want.abs().max(1.0), "{b} vs {want}");
    }
}

#[test]
fn accumulated_micro_batches_give_the_mean_gradient() {
    // Two micro batches with losses Σ W∘C₁ and Σ W∘C₂: the accumulated gradient is (C₁ + C₂)/2.
    use ember_train::Accumulation;
    let device = Device::flex().autodiff();
    let (layer, c, _, _) = linear_and_loss(&device);
    let c2: Vec<f32> = vec![1.0, 2.0, -3.0, 0.5, 0.25, -1.0];
    let loss_with = |cv: &[f32]| {
        let ct = Tensor::<2>::from_data(TensorData::new(cv.to_vec(), [2, 3]), &device);
        (layer.weight.val() * ct).sum()
    };
    let mut acc = Accumulation::new(2);
    for cv in [&c, &c2] {
        let scaled = acc.scale(loss_with(cv));
        acc.add(&layer, scaled);
    }
    let grads = acc.finish();
    let got = values(grads.get::<2>(layer.weight.id).unwrap());
    for ((g, a), b) in got.iter().zip(&c).zip(&c2) {
        assert!((g - (a + b) / 2.0).abs() < 1e-6, "{g} vs {}", (a + b) / 2.0);
    }
}

#[test]
fn gradients_pass_through_the_reduction_before_clipping() {
    // A stand-in for an all-reduce that doubles every gradient: the step sees (and reports) the
    // reduced gradients' norm, twice the single-device one.
    struct Double(burn::module::ParamId, burn::module::ParamId);
    impl ember_train::GradientReduction for Double {
        fn reduce(&mut self, mut grads: GradientsParams) -> GradientsParams {
            if let Some(g) = grads.remove::<2>(self.0) {
                grads.register(self.0, g.mul_scalar(2.0));
            }
            if let Some(g) = grads.remove::<1>(self.1) {
                grads.register(self.1, g.mul_scalar(2.0));
            }
            grads
        }
    }
    let device = Device::flex().autodiff();
    let (layer, _, _, loss) = linear_and_loss(&device);
    let single = Trainer::new(settings(0.01, 0.0, None))
        .step(layer.clone(), loss(&layer))
        .1;
    let doubled = Trainer::new(settings(0.01, 0.0, None))
        .with_reduction(Double(layer.weight.id, layer.bias.as_ref().unwrap().id))
        .step(layer.clone(), loss(&layer))
        .1;
    assert!(
        (doubled.grad_norm - 2.0 * single.grad_norm).abs() < 1e-5,
        "{doubled:?} vs {single:?}"
    );
}

#[test]
fn clipping_scales_every_gradient_by_the_global_norm() {
    let device = Device::flex().autodiff();
    let (layer, c, d, loss) = linear_and_loss(&device);
    let mut grads = GradientsParams::from_grads(loss(&layer).backward(), &layer);
    let norm = (c.iter().chain(&d).map(|g| (g * g) as f64).sum::<f64>()).sqrt();
    assert!((global_norm(&layer, &grads) - norm).abs() < 1e-5, "{norm}");
    let before = clip_global_norm(&layer, &mut grads, 1.0);
    assert!((before - norm).abs() < 1e-5);
    let factor = (1.0 / (norm + 1e-6)) as f32;
    let gw = values(grads.get::<2>(layer.weight.id).unwrap());
    let gb = values(grads.get::<1>(layer.bias.as_ref().unwrap().id).unwrap());
    for (got, g) in gw.iter().chain(&gb).zip(c.iter().chain(&d)) {
        assert!((got - g * factor).abs() < 1e-6, "{got} vs {}", g * factor);
    }
    assert!((global_norm(&layer, &grads) - 1.0).abs() < 1e-5);
    // A norm already below the limit is left alone.
    let mut grads = GradientsParams::from_grads(loss(&layer).backward(), &layer);
    clip_global_norm(&layer, &mut grads, 100.0);
    assert_eq!(values(grads.get::<2>(layer.weight.id).unwrap()), c);
}

/// Tokens for a tiny vocabulary, from a fixed LCG.
fn batch(batch: usize, seq: usize, seed: u64) -> ember_models::Batch {
    let mut state = seed;
    let input_ids = (0..batch * seq)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 49 + 1) as i64
        })
        .collect();
    ember_models::Batch {
        input_ids,
        attention_mask: vec![1; batch * seq],
        batch,
        seq,
    }
}

#[test]
fn distillation_into_a_ternary_student_lowers_the_loss() {
    use ember_config::{Catalog, parse_config};
    use ember_core::{Composer, Registry};

    let plain = Device::flex();
    let device = Device::flex().autodiff();
    // A fixed seed: the same random teacher every run.
    plain.seed(42);
    let teacher = ember_models::BertConfig::uniform("tiny", 50, 32, 2, 4, 64, 16).init_random(&plain);
    let config = parse_config(
        r#"{"compression_training": {"weight_quantization": {
            "shared_parameters": {"enabled": true, "quantize_weight_in_forward": true, "group_size": 16},
            "different_groups": {"w2": {"params": {"start_bits": 2, "target_bits": 2},
                                        "modules": ["attention", "intermediate", "layer.\\d+.output.dense"]}}}}}"#,
        &Catalog::builtin_only(),
    )
    .unwrap()
    .config;
    let composed = Composer::new(Registry::with_builtins())
        .compose(teacher.clone(), &config)
        .unwrap();
    let mut student = composed.model.fork(&device).train();

    let batches: Vec<_> = (0..4).map(|i| batch(4, 8, 7 + i)).collect();
    // The teacher's outputs, computed once without autodiff, are constants of the loss.
    let targets: Vec<_> = batches
        .iter()
        .map(|b| {
            let out = teacher.encode(b, &plain).unwrap();
            (out.embedding.into_data(), out.last_hidden_state.into_data())
        })
        .collect();
    let loss_of = |student: &ember_models::Bert, i: usize| {
        let out = student.encode(&batches[i], &device).unwrap();
        let emb = Tensor::<2>::from_data(targets[i].0.clone(), &device);
        let hidden = Tensor::<3>::from_data(targets[i].1.clone(), &device);
        let cosine = (out.embedding * emb).sum_dim(1).mean();
        let mse = (out.last_hidden_state - hidden).square().mean();
        cosine.neg().add_scalar(1.0) + mse
    };
    let mut trainer = Trainer::new(TrainSettings {
        schedule: Schedule {
            peak: 3e-3,
            warmup: 2,
            total: 40,
            kind: LrSchedule::Linear,
            deepspeed: None,
        },
        ..settings(0.0, 0.01, Some(1.0))
    });
    let total = |s: &ember_models::Bert| {
        (0..4)
            .map(|i| f64::from(loss_of(s, i).into_scalar::<f32>()))
            .sum::<f64>()
    };
    let before = total(&student);
    assert!(before > 0.0, "the ternary student differs from the teacher");
    let w0 = values(student.encoder.layer[0].intermediate.dense.weight.val().inner());
    for step in 0..40 {
        let loss = loss_of(&student, step % 4);
        let (next, report) = trainer.step(student, loss);
        student = next;
        assert!(
            report.grad_norm.is_finite() && report.grad_norm > 0.0,
            "step {step}: {report:?}"
        );
    }
    let after = total(&student);
    eprintln!("KD loss over the 4 batches: {before:.5} → {after:.5}");
    assert!(after < 0.5 * before, "KD did not lower the loss: {before} → {after}");
    // The quantized Linears were trained through the straight-through estimator.
    let w1 = values(student.encoder.layer[0].intermediate.dense.weight.val().inner());
    assert_ne!(w0, w1);
    // QAT trains the quantized model, not a float one quantized at the end: the training
    // forward equals the exact forward with the ternary weights of `ember-numerics` (what clean
    // packs), and differs clearly from the float forward of the same weights.
    let during = values(student.encode(&batches[0], &device).unwrap().embedding.inner());
    let trained = student.valid();
    let exact = values(trained.encode(&batches[0], &plain).unwrap().embedding);
    let mut float = trained.clone();
    for l in float.linears_mut() {
        l.slots.weight_quant = None;
    }
    let unquantized = values(float.encode(&batches[0], &plain).unwrap().embedding);
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max_diff(&during, &exact) < 1e-5, "{}", max_diff(&during, &exact));
    assert!(
        max_diff(&exact, &unquantized) > 1e-3,
        "{}",
        max_diff(&exact, &unquantized)
    );
}

/// A composed ternary student of `teacher` on the autodiff device.
fn ternary_student(teacher: &ember_models::Bert, device: &Device) -> ember_models::Bert {
    use ember_config::{Catalog, parse_config};
    use ember_core::{Composer, Registry};
    let config = parse_config(
        r#"{"compression_training": {"weight_quantization": {
            "shared_parameters": {"enabled": true, "quantize_weight_in_forward": true, "group_size": 16},
            "different_groups": {"w2": {"params": {"start_bits": 2, "target_bits": 2},
                                        "modules": ["attention", "intermediate", "layer.\\d+.output.dense"]}}}}}"#,
        &Catalog::builtin_only(),
    )
    .unwrap()
    .config;
    Composer::new(Registry::with_builtins())
        .compose(teacher.clone(), &config)
        .unwrap()
        .model
        .fork(device)
        .train()
}

/// `steps` KD steps (embedding cosine) on fixed batches, starting at the trainer's step.
fn kd_steps(
    mut student: ember_models::Bert,
    trainer: &mut Trainer,
    teacher: &ember_models::Bert,
    steps: u64,
    device: &Device,
) -> (ember_models::Bert, Vec<f32>) {
    let plain = Device::flex();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let b = batch(4, 8, 100 + trainer.steps_done() % 3);
        let target = teacher.encode(&b, &plain).unwrap().embedding.into_data();
        let out = student.encode(&b, device).unwrap();
        let loss = ember_train::losses::embedding_cosine(out.embedding, Tensor::<2>::from_data(target, device));
        losses.push(loss.clone().inner().into_scalar::<f32>());
        student = trainer.step(student, loss).0;
    }
    (student, losses)
}

#[test]
fn a_resumed_run_ends_where_the_uninterrupted_run_ends() {
    let plain = Device::flex();
    let device = Device::flex().autodiff();
    plain.seed(7);
    let teacher = ember_models::BertConfig::uniform("tiny", 50, 32, 2, 4, 64, 16).init_random(&plain);
    let run = || TrainSettings {
        schedule: Schedule {
            peak: 2e-3,
            warmup: 2,
            total: 10,
            kind: LrSchedule::Cosine,
            deepspeed: None,
        },
        ..settings(0.0, 0.01, Some(1.0))
    };
    // Uninterrupted: 10 steps.
    let mut trainer = Trainer::new(run());
    let (straight, straight_losses) = kd_steps(ternary_student(&teacher, &device), &mut trainer, &teacher, 10, &device);
    // Interrupted after 4: a checkpoint, then a new process's model (other random weights and
    // parameter ids) and optimizer continue from it.
    let mut first = Trainer::new(run());
    let (half, first_losses) = kd_steps(ternary_student(&teacher, &device), &mut first, &teacher, 4, &device);
    let bytes = first.checkpoint(&half, "run-a", &serde_json::Value::Null).unwrap();
    drop((half, first));
    let other = ember_models::BertConfig::uniform("tiny", 50, 32, 2, 4, 64, 16).init_random(&plain);
    let checkpoint = ember_train::Checkpoint::decode(&bytes).unwrap();
    assert_eq!(checkpoint.step, 4);
    let (mut resumed_trainer, resumed) =
        Trainer::resume(run(), ternary_student(&other, &device), &checkpoint, "run-a").unwrap();
    let (resumed, rest_losses) = kd_steps(resumed, &mut resumed_trainer, &teacher, 6, &device);
    assert_eq!(resumed_trainer.steps_done(), 10);
    assert_eq!(first_losses, straight_losses[..4]);
    for (a, b) in rest_losses.iter().zip(&straight_losses[4..]) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1e-6),
            "{rest_losses:?} vs {straight_losses:?}"
        );
    }
    let (a, b) = (
        values(straight.encoder.layer[1].output.dense.weight.val().inner()),
        values(resumed.encoder.layer[1].output.dense.weight.val().inner()),
    );
    let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max <= 1e-6, "weights differ by {max}");

    // A checkpoint of another run, or a damaged one, is refused with its reason.
    let e = Trainer::resume(run(), ternary_student(&other, &device), &checkpoint, "run-b").unwrap_err();
    assert!(e.contains("belongs to another run"), "{e}");
    for (what, damaged, phrase) in [
        ("truncated", bytes[..bytes.len() - 10].to_vec(), "truncated or corrupt"),
        (
            "not a checkpoint",
            b"{\"model\": 1}".to_vec(),
            "not an Ember checkpoint",
        ),
        (
            "flipped bit",
            {
                let mut b = bytes.clone();
                let n = b.len() - 100;
                b[n] ^= 1;
                b
            },
            "does not match its sha256",
        ),
        ("empty", Vec::new(), "not an Ember checkpoint"),
    ] {
        let e = ember_train::Checkpoint::decode(&damaged).unwrap_err();
        assert!(e.contains(phrase), "{what}: {e}");
    }
}
