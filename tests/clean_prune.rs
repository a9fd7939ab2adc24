//! Structural slicing in clean (DESIGN §7), on the real all-MiniLM-L6-v2: a hand-masked model
//! (pruned heads' output-projection columns and pruned FFN rows zeroed, one layer removed) and the
//! cleaned model with those heads, rows and the layer sliced out compute the same embeddings
//! (max |Δ| ≤ 1e-5), while the cleaned model really is smaller, with per-layer head counts and
//! FFN widths.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use ember::eval::{ReferenceEmbeddings, load_model};
use ember::runner::{DeviceKind, Runner};
use ember_models::assets::Assets;
use ember_models::blocks::Linear;
use ember_models::{CleanOptions, StructuralPrune, clean};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// Zeroes the listed input columns of a Linear (`[out, in]` weight).
fn zero_cols(l: &mut Linear, cols: &[usize]) {
    let [r, c] = l.weight.dims();
    let device = l.weight.device();
    let mut w = values(l.weight.val());
    for row in 0..r {
        for &j in cols {
            w[row * c + j] = 0.0;
        }
    }
    l.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [r, c]), &device));
}

/// Zeroes the listed output rows (weight rows and bias entries) of a Linear.
fn zero_rows(l: &mut Linear, rows: &[usize]) {
    let [r, c] = l.weight.dims();
    let device = l.weight.device();
    let mut w = values(l.weight.val());
    for &i in rows {
        w[i * c..(i + 1) * c].fill(0.0);
    }
    l.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [r, c]), &device));
    if let Some(b) = &l.bias {
        let mut v = values(b.val());
        for &i in rows {
            v[i] = 0.0;
        }
        l.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(v, [r]), &device)));
    }
}

#[test]
fn masked_and_sliced_models_agree() {
    let assets = Assets::from_env().unwrap().quiet(true);
    let loaded = load_model("minilm-l6", &assets).unwrap();
    let tokenizer = std::fs::read_to_string(loaded.dir.join("tokenizer.json")).unwrap();
    let mut masked = loaded.encoder.model.clone();
    let head_dim = masked.encoder.layer[0].attention.self_attn.head_dim;

    // Layer 1 keeps heads 0, 3, 7, 11; layer 4 keeps every even FFN row; layer 2 is dropped.
    let kept_heads = vec![0usize, 3, 7, 11];
    let kept_ffn: Vec<usize> = (0..1536).step_by(2).collect();
    let pruned_heads: Vec<usize> = (0..12).filter(|h| !kept_heads.contains(h)).collect();
    let pruned_cols: Vec<usize> = pruned_heads
        .iter()
        .flat_map(|&h| h * head_dim..(h + 1) * head_dim)
        .collect();
    zero_cols(&mut masked.encoder.layer[1].attention.output.dense, &pruned_cols);
    let pruned_rows: Vec<usize> = (1..1536).step_by(2).collect();
    zero_rows(&mut masked.encoder.layer[4].intermediate.dense, &pruned_rows);

    let prune = StructuralPrune {
        keep_layers: Some(vec![0, 1, 3, 4, 5]),
        keep_heads: BTreeMap::from([(1, kept_heads.clone())]),
        keep_ffn: BTreeMap::from([(4, kept_ffn.clone())]),
    };
    let sliced = clean(
        &masked,
        &CleanOptions {
            tokenizer: Some(tokenizer.clone()),
            prune,
            ..Default::default()
        },
    )
    .unwrap();
    masked.encoder.layer.remove(2);

    assert_eq!(sliced.layers.len(), 5);
    assert_eq!(sliced.arch.kept_layers, vec![0, 1, 3, 4, 5]);
    assert_eq!(sliced.arch.layers[1].n_heads, 4);
    assert_eq!(sliced.layers[1].query.weight.rows(), 4 * head_dim);
    assert_eq!(sliced.layers[1].attn_out.weight.cols(), 4 * head_dim);
    assert_eq!(sliced.arch.layers[3].d_ff, 768);
    assert_eq!(sliced.layers[3].ffn_out.weight.cols(), 768);
    assert_eq!(sliced.arch.layers[0].n_heads, 12);

    let texts = ReferenceEmbeddings::minilm_l6().unwrap().texts;
    let masked_runner = Runner {
        name: "masked".into(),
        source: "minilm-l6".into(),
        engine_name: "burn-flex".into(),
        backend: ember::runner::Backend::Burn(ember_models::SentenceEncoder {
            model: masked,
            tokenizer: loaded.encoder.tokenizer.clone(),
            device: loaded.encoder.device.clone(),
        }),
        artifact: None,
        loaded_dir: None,
        load_seconds: 0.0,
    };
    let sliced_runner = Runner::from_compressed(&sliced, "sliced", DeviceKind::Cpu, None).unwrap();
    let a = masked_runner.embed_with_progress(&texts, 16, |_| {}).unwrap();
    let b = sliced_runner.embed_with_progress(&texts, 16, |_| {}).unwrap();
    let max = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max <= 1e-5, "masked vs sliced: max |Δ| {max:e}");

    // Bad pruning specs are errors, not panics.
    for bad in [
        StructuralPrune {
            keep_heads: BTreeMap::from([(0, vec![12])]),
            ..Default::default()
        },
        StructuralPrune {
            keep_ffn: BTreeMap::from([(0, vec![])]),
            ..Default::default()
        },
        StructuralPrune {
            keep_layers: Some(vec![3, 1]),
            ..Default::default()
        },
    ] {
        let opts = CleanOptions {
            prune: bad,
            ..Default::default()
        };
        assert!(clean(&loaded.encoder.model, &opts).is_err());
    }
}
