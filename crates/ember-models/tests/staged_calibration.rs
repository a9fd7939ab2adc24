//! Calibrating a layer at a time (`calibrate_in_stages`, what `compose` does) gives the same
//! model as one pass over the whole forward: the same GPTQ codes and scales, the same static
//! activation ranges, the same outputs. Random weights: this checks the mechanics (each stage
//! sees the inputs the one-pass calibration gives it), not quality.

use burn::tensor::Device;
use ember_config::{Catalog, parse_config};
use ember_core::{Composer, Registry};
use ember_models::{Batch, Bert, BertConfig, StagedBatch};

const CONFIG: &str = r#"{
  "compression_training": {
    "weight_quantization": {
      "shared_parameters": {"enabled": true, "quantize_weight_in_forward": true, "group_size": 16,
                            "rounding": "gptq", "quantization_type": "asymmetric"},
      "different_groups": {"w4": {"params": {"start_bits": 4, "target_bits": 4},
                                  "modules": ["attention", "intermediate", "layer.\\d+.output.dense"]}}
    },
    "activation_quantization": {
      "shared_parameters": {"enabled": true, "quantization_type": "asymmetric", "range_calibration": "static",
                            "schedule_offset": 0},
      "different_groups": {"a8": {"params": {"bits": 8}, "modules": ["intermediate", "layer.\\d+.output.dense"]}}
    }
  }
}"#;

fn batches() -> Vec<Batch> {
    // Three batches of different lengths, one with padding; ids from a fixed LCG.
    let mut state = 12345u64;
    let mut id = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 49 + 1) as i64
    };
    [(2, 5), (3, 7), (1, 9)]
        .into_iter()
        .map(|(batch, seq)| {
            let input_ids: Vec<i64> = (0..batch * seq).map(|_| id()).collect();
            let mut attention_mask = vec![1; batch * seq];
            if batch > 1 {
                attention_mask[seq - 1] = 0;
            }
            Batch {
                input_ids,
                attention_mask,
                batch,
                seq,
            }
        })
        .collect()
}

#[test]
fn a_layer_at_a_time_gives_the_one_pass_model_bit_for_bit() {
    let device = Device::flex();
    let model: Bert = BertConfig::uniform("tiny", 50, 32, 3, 4, 64, 16).init_random(&device);
    let config = parse_config(CONFIG, &Catalog::builtin_only()).unwrap().config;
    let composer = Composer::new(Registry::with_builtins());

    let mut one_pass = composer.compose(model.clone(), &config).unwrap();
    assert!(one_pass.needs_calibration);
    one_pass
        .calibrate(&batches(), |m, b| drop(m.encode(b, &device).unwrap()), |_, _| {})
        .unwrap();
    let one_pass = one_pass.into_inference().unwrap().model;

    let mut staged = composer.compose(model, &config).unwrap();
    let stages = staged.model.stages();
    assert_eq!(stages.len(), 4);
    let carries = batches().into_iter().map(StagedBatch::Tokens).collect();
    let out = staged
        .calibrate_in_stages(
            &stages,
            carries,
            |m, s, b| m.run_stage(s, b, &device).unwrap(),
            |_, _| {},
        )
        .unwrap();
    assert_eq!(out.len(), 3);
    let staged = staged.into_inference().unwrap().model;

    let mut solved = 0;
    for (a, b) in one_pass.encoder.layer.iter().zip(&staged.encoder.layer) {
        for (role, path) in ember_config::bert_paths::LAYER_LINEARS {
            let (la, lb) = (a.linear(role).unwrap(), b.linear(role).unwrap());
            assert_eq!(la.slots.quantized, lb.slots.quantized, "{path}: GPTQ codes differ");
            assert_eq!(
                la.slots.act_quant, lb.slots.act_quant,
                "{path}: activation ranges differ"
            );
            solved += usize::from(la.slots.quantized.is_some());
        }
    }
    assert_eq!(solved, 18, "every Linear is GPTQ-solved");
    // Static ranges were calibrated (not left dynamic).
    let ffn = &staged.encoder.layer[2].intermediate.dense.slots;
    assert!(matches!(
        ffn.act_quant.unwrap().range,
        ember_core::numerics::ActRange::Static { .. }
    ));
    for b in batches() {
        let (x, y) = (
            one_pass.encode(&b, &device).unwrap().last_hidden_state,
            staged.encode(&b, &device).unwrap().last_hidden_state,
        );
        assert_eq!(x.into_data(), y.into_data());
    }
}

#[test]
fn staged_forward_is_the_forward() {
    let device = Device::flex();
    let model = BertConfig::uniform("tiny", 50, 32, 2, 4, 64, 16).init_random(&device);
    for b in batches() {
        let mut carry = StagedBatch::Tokens(b.clone());
        for s in 0..model.stages().len() {
            carry = model.run_stage(s, carry, &device).unwrap();
        }
        let StagedBatch::Hidden { x, .. } = carry else {
            panic!("no hidden states")
        };
        assert_eq!(
            x.into_data(),
            model.encode(&b, &device).unwrap().last_hidden_state.into_data()
        );
    }
    // A stage given the wrong kind of batch is an error, not a panic.
    let e = model
        .run_stage(1, StagedBatch::Tokens(batches().remove(0)), &device)
        .unwrap_err();
    assert!(e.to_string().contains("stage 1"), "{e}");
}
