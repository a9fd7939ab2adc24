//! Bad model files give typed errors, never panics: a tiny random checkpoint is written to a temp
//! directory, loaded once intact, then broken one way per test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ember_models::loader::{expected_tensors, load_bert};
use ember_models::{BertConfig, Error};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

const CONFIG: &str = r#"{
  "model_type": "bert", "vocab_size": 40, "hidden_size": 8, "num_hidden_layers": 2,
  "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
  "max_position_embeddings": 12, "type_vocab_size": 2, "layer_norm_eps": 1e-12
}"#;

fn tiny_config() -> BertConfig {
    BertConfig::uniform("tiny", 40, 8, 2, 2, 16, 12)
}

/// A fresh directory holding config.json and a model.safetensors built from `tensors`.
fn checkpoint(tag: &str, tensors: &BTreeMap<String, (Dtype, Vec<usize>)>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-load-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, (dtype, shape))| {
            let n: usize = shape.iter().product();
            let bytes: Vec<u8> = (0..n).flat_map(|i| ((i % 7) as f32 * 0.01).to_le_bytes()).collect();
            let bytes = if *dtype == Dtype::F32 {
                bytes
            } else {
                bytes[..n * 2].to_vec()
            };
            (name.clone(), *dtype, shape.clone(), bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| (name.clone(), TensorView::new(*dtype, shape.clone(), bytes).unwrap()))
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    dir
}

fn good_tensors() -> BTreeMap<String, (Dtype, Vec<usize>)> {
    expected_tensors(&tiny_config())
        .into_iter()
        .map(|(n, s)| (n, (Dtype::F32, s)))
        .collect()
}

fn load(dir: &Path) -> Result<ember_models::Bert, Error> {
    load_bert(dir, "tiny", &ember_models::default_device())
}

#[test]
fn an_intact_checkpoint_loads_with_its_values() {
    let mut tensors = good_tensors();
    // Tensors Ember knowingly ignores.
    tensors.insert("pooler.dense.weight".into(), (Dtype::F32, vec![8, 8]));
    tensors.insert("embeddings.position_ids".into(), (Dtype::F32, vec![1, 12]));
    let dir = checkpoint("ok", &tensors);
    let model = load(&dir).unwrap();
    assert_eq!(model.config(), tiny_config());
    // A square [out, in] weight must load untransposed: element [0, 1] is flat index 1.
    let w = model.encoder.layer[0]
        .attention
        .self_attn
        .query
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(&w[..3], &[0.0, 0.01, 0.02]);
    let ln = model
        .embeddings
        .layer_norm
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(ln[1], 0.01);
}

#[test]
fn a_bert_prefix_is_accepted() {
    let tensors = good_tensors()
        .into_iter()
        .map(|(n, v)| (format!("bert.{n}"), v))
        .collect();
    load(&checkpoint("prefix", &tensors)).unwrap();
}

#[test]
fn missing_weights_file() {
    let dir = checkpoint("nofile", &good_tensors());
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(matches!(
        load(&dir),
        Err(Error::MissingFile {
            what: "model.safetensors",
            ..
        })
    ));
}

#[test]
fn missing_config_file() {
    let dir = checkpoint("noconfig", &good_tensors());
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert!(matches!(
        load(&dir),
        Err(Error::MissingFile {
            what: "config.json",
            ..
        })
    ));
}

#[test]
fn wrong_shape_names_the_tensor_and_both_shapes() {
    let mut tensors = good_tensors();
    tensors.insert(
        "encoder.layer.1.intermediate.dense.weight".into(),
        (Dtype::F32, vec![16, 9]),
    );
    let err = load(&checkpoint("shape", &tensors)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{msg}");
    assert!(
        msg.contains("encoder.layer.1.intermediate.dense.weight") && msg.contains("[16, 9]") && msg.contains("[16, 8]"),
        "{msg}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let mut tensors = good_tensors();
    tensors.remove("encoder.layer.0.attention.self.key.bias");
    let err = load(&checkpoint("missing", &tensors)).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { tensor, .. } if tensor == "encoder.layer.0.attention.self.key.bias"),
        "{err}"
    );
}

#[test]
fn unexpected_tensor_is_named() {
    let mut tensors = good_tensors();
    tensors.insert("encoder.layer.2.output.dense.weight".into(), (Dtype::F32, vec![8, 16]));
    let err = load(&checkpoint("unexpected", &tensors)).unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedTensor { tensor, .. } if tensor == "encoder.layer.2.output.dense.weight"),
        "{err}"
    );
}

#[test]
fn wrong_dtype_is_an_error() {
    let mut tensors = good_tensors();
    tensors.insert("embeddings.LayerNorm.bias".into(), (Dtype::F16, vec![8]));
    let err = load(&checkpoint("dtype", &tensors)).unwrap_err();
    assert!(matches!(err, Error::BadTensor { .. }), "{err}");
}

#[test]
fn truncated_file_is_corrupt() {
    let dir = checkpoint("truncated", &good_tensors());
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert!(matches!(load(&dir), Err(Error::CorruptWeights { .. })));
    std::fs::write(&path, &bytes[..5]).unwrap();
    assert!(matches!(load(&dir), Err(Error::CorruptWeights { .. })));
}

#[test]
fn garbage_header_is_corrupt() {
    let dir = checkpoint("garbage", &good_tensors());
    let path = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..20].copy_from_slice(b"not json!!!!");
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(load(&dir), Err(Error::CorruptWeights { .. })));
    std::fs::write(&path, u64::MAX.to_le_bytes()).unwrap();
    assert!(matches!(load(&dir), Err(Error::CorruptWeights { .. })));
}

#[test]
fn bad_config_json() {
    let dir = checkpoint("config", &good_tensors());
    let cases = [
        ("{ not json", "line 1"),
        (r#"{"vocab_size": 40}"#, "missing field"),
        (&CONFIG.replace("\"gelu\"", "\"gelu_new\""), "hidden_act"),
        (
            &CONFIG.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3"),
            "multiple",
        ),
        (&CONFIG.replace("\"hidden_size\": 8", "\"hidden_size\": 0"), "positive"),
        (&CONFIG.replace("\"bert\"", "\"roberta\""), "model_type"),
    ];
    for (text, needle) in cases {
        std::fs::write(dir.join("config.json"), text).unwrap();
        let err = load(&dir).unwrap_err();
        assert!(matches!(err, Error::BadConfig { .. }), "{text}: {err}");
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
}
