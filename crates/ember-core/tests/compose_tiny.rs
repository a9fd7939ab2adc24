//! The composer on a small model that is not Ember's BERT: two Linears with slots. Checks that
//! the plan's techniques land in the right slots with the right numerics, that calibration fixes
//! static ranges from what the layer really saw, and that unsupported techniques are refused
//! before the model is touched.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use ember_config::{Catalog, Inventory, Site, SiteKind, SiteRole, parse_config};
use ember_core::fake_quant::ActRange;
use ember_core::numerics::{self, GroupLayout, Scheme};
use ember_core::slots::{EmbeddingSlots, LinearSlots};
use ember_core::{Composer, CompressibleModel, CoreError, Registry};

#[derive(Module, Debug)]
struct TinyLinear {
    weight: Param<Tensor<2>>,
    slots: LinearSlots,
}

impl TinyLinear {
    fn new(out: usize, inp: usize, seed: f32, device: &Device) -> TinyLinear {
        let w: Vec<f32> = (0..out * inp).map(|i| ((i as f32 * 0.37 + seed).sin()) * 0.5).collect();
        TinyLinear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [out, inp]), device)),
            slots: LinearSlots::default(),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.slots.input(x);
        x.matmul(self.slots.weight(self.weight.val()).transpose())
    }
}

#[derive(Module, Debug)]
struct Mlp {
    up: TinyLinear,
    down: TinyLinear,
}

impl Mlp {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.down.forward(burn::tensor::activation::relu(self.up.forward(x)))
    }
}

fn site(path: &str, shape: [usize; 2]) -> Site {
    Site {
        path: path.into(),
        kind: SiteKind::Linear,
        role: SiteRole::Other,
        shape: shape.to_vec(),
        has_bias: false,
        block: None,
        num_heads: None,
    }
}

impl CompressibleModel for Mlp {
    fn inventory(&self) -> Inventory {
        Inventory {
            model: "mlp".into(),
            sites: vec![site("up", [8, 4]), site("down", [4, 8])],
            ..Default::default()
        }
    }
    fn linear_slots(&mut self, path: &str) -> Option<&mut LinearSlots> {
        match path {
            "up" => Some(&mut self.up.slots),
            "down" => Some(&mut self.down.slots),
            _ => None,
        }
    }
    fn embedding_slots(&mut self, _path: &str) -> Option<&mut EmbeddingSlots> {
        None
    }
    fn precompute_weights(&mut self) {
        self.up.slots.precompute(self.up.weight.val());
        self.down.slots.precompute(self.down.weight.val());
    }
}

fn mlp(device: &Device) -> Mlp {
    Mlp {
        up: TinyLinear::new(8, 4, 0.1, device),
        down: TinyLinear::new(4, 8, 0.7, device),
    }
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

const CONFIG: &str = r#"{
  "compression_training": {
    "weight_quantization": {
      "shared_parameters": {"enabled": true, "quantize_weight_in_forward": true, "group_size": 4},
      "different_groups": {"w": {"params": {"start_bits": 4, "target_bits": 4}, "modules": ["^up$"]}}
    },
    "activation_quantization": {
      "shared_parameters": {"enabled": true, "schedule_offset": 0, "range_calibration": "static"},
      "different_groups": {"a": {"params": {"bits": 8}, "modules": ["down"]}}
    }
  }
}"#;

#[test]
fn techniques_attach_to_the_planned_slots_and_calibration_fixes_static_ranges() {
    let device = Device::flex();
    let config = parse_config(CONFIG, &Catalog::builtin_only()).unwrap().config;
    let mut composed = Composer::new(Registry::with_builtins())
        .compose(mlp(&device), &config)
        .unwrap();
    assert!(composed.needs_calibration);
    // W4 with groups of 4 input elements on `up`, nothing on `down`'s weight.
    let up = &composed.model.up;
    let want = numerics::fake_quantize(
        &values(up.weight.val()),
        8,
        4,
        GroupLayout::RowGroups(4),
        Scheme::Symmetric { bits: 4 },
        Default::default(),
    );
    assert_eq!(values(up.slots.weight(up.weight.val())), want);
    assert!(composed.model.down.slots.weight_quant.is_none());

    // Calibrate on three batches and compare the fixed range with what `down` really received.
    let batches: Vec<Tensor<2>> = (0..3)
        .map(|b| {
            Tensor::from_data(
                TensorData::new(
                    (0..8).map(|i| (i + b * 8) as f32 * 0.1 - 1.0).collect::<Vec<f32>>(),
                    [2, 4],
                ),
                &device,
            )
        })
        .collect();
    let mut seen_max = f32::NEG_INFINITY;
    for b in &batches {
        let h = burn::tensor::activation::relu(composed.model.up.forward(b.clone()));
        seen_max = seen_max.max(values(h).into_iter().fold(f32::NEG_INFINITY, f32::max));
    }
    let mut calls = 0;
    composed
        .calibrate(&batches, |m, b| drop(m.forward(b.clone())), |_, _| calls += 1)
        .unwrap();
    assert_eq!(calls, 3);
    let q = composed.model.down.slots.act_quant.expect("static quantizer installed");
    assert_eq!(
        q.range,
        ActRange::Static {
            min: 0.0,
            max: seen_max
        }
    );
    assert!(composed.model.down.slots.observer.is_none());

    // Frozen inference gives the same outputs as the unfrozen composed model.
    let x = batches[1].clone();
    let before = values(composed.model.forward(x.clone()));
    let frozen = composed.into_inference().unwrap();
    assert_eq!(values(frozen.model.forward(x)), before);
}

#[test]
fn unsupported_techniques_are_refused_before_the_model_is_touched() {
    let device = Device::flex();
    let text = r#"{"compression_training": {"row_pruning": {"shared_parameters": {"enabled": true, "schedule_offset": 0},
        "different_groups": {"r": {"params": {"dense_ratio": 0.5}, "modules": ["up"]}}}}}"#;
    let config = parse_config(text, &Catalog::builtin_only()).unwrap().config;
    let err = Composer::new(Registry::with_builtins())
        .compose(mlp(&device), &config)
        .unwrap_err();
    assert!(matches!(err, CoreError::NotSupported(_)));
    assert!(err.to_string().starts_with("not supported yet: row_pruning"), "{err}");
}

#[test]
fn calibration_without_batches_is_an_error() {
    let device = Device::flex();
    let config = parse_config(CONFIG, &Catalog::builtin_only()).unwrap().config;
    let mut composed = Composer::new(Registry::with_builtins())
        .compose(mlp(&device), &config)
        .unwrap();
    let err = composed.calibrate::<Tensor<2>>(&[], |_, _| {}, |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("no calibration batches"), "{err}");
}

mod reparameterization {
    //! Weight-only techniques on a plain burn module (burn's own `nn::Linear`, `[in, out]` weights)
    //! through burn's reparameterization: the module's code is untouched.
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;
    use ember_config::types::Numerics;
    use ember_config::{Catalog, parse_config};
    use ember_core::Registry;
    use ember_core::numerics::{GroupLayout, Scheme, fake_quantize};
    use ember_core::reparam::{WeightLayout, reparameterize};

    #[derive(burn::module::Module, Debug)]
    struct TwoLayer {
        fc1: Linear,
        fc2: Linear,
    }

    #[test]
    fn burn_linear_weights_read_back_quantized_per_output_row() {
        let device = Device::flex();
        let model = TwoLayer {
            fc1: LinearConfig::new(6, 4).init(&device),
            fc2: LinearConfig::new(4, 3).init(&device),
        };
        let original: Vec<f32> = model
            .fc1
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let text = r#"{"compression_training": {"weight_quantization": {
            "shared_parameters": {"enabled": true, "quantize_weight_in_forward": true, "group_size": 64},
            "different_groups": {"w": {"params": {"start_bits": 3, "target_bits": 3}, "modules": ["fc1\\.weight"]}}}}}"#;
        let config = parse_config(text, &Catalog::builtin_only()).unwrap().config;
        let (model, plan) = reparameterize(model, &config, &Registry::with_builtins(), WeightLayout::InOut).unwrap();
        assert_eq!(plan.module("fc1.weight").unwrap().shape, vec![4, 6]);
        // burn stores fc1's weight as [in 6, out 4]; Ember quantizes its transpose [4, 6] per row.
        let transposed: Vec<f32> = (0..4)
            .flat_map(|o| (0..6).map(move |i| (o, i)))
            .map(|(o, i)| original[i * 4 + o])
            .collect();
        let q = fake_quantize(
            &transposed,
            4,
            6,
            GroupLayout::RowGroups(64),
            Scheme::Symmetric { bits: 3 },
            Numerics::Ember,
        );
        let want: Vec<f32> = (0..6)
            .flat_map(|i| (0..4).map(move |o| (i, o)))
            .map(|(i, o)| q[o * 6 + i])
            .collect();
        let got: Vec<f32> = model
            .fc1
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(got, want);
        // fc2 is untouched; the forward runs on the reparameterized weights.
        assert!(plan.module("fc2.weight").unwrap().techniques.is_empty());
        let y = model.fc2.forward(model.fc1.forward(Tensor::<2>::ones([2, 6], &device)));
        assert_eq!(y.dims(), [2, 3]);
    }

    use burn::tensor::Tensor;
}
