//! Shared helpers for the integration tests: the reference outputs and the real MiniLM model.

#![allow(dead_code)]

use std::path::PathBuf;

use ember_models::assets::{Assets, ModelSource, resolve_model};
use serde::Deserialize;

/// `tests/data/reference/minilm_l6_reference.json` at the workspace root: onnxruntime fp32
/// outputs of all-MiniLM-L6-v2, cross-checked by an independent float64 implementation.
pub fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/reference/minilm_l6_reference.json")
}

#[derive(Deserialize)]
pub struct Reference {
    pub items: Vec<Item>,
    pub last_hidden_state: Vec<Hidden>,
}

#[derive(Deserialize)]
pub struct Item {
    pub index: usize,
    pub text: String,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    pub embedding_mean_pooled: Vec<f32>,
    pub embedding_normalized: Vec<f32>,
}

#[derive(Deserialize)]
pub struct Hidden {
    pub index: usize,
    pub text: String,
    pub shape: Vec<usize>,
    pub values: Vec<Vec<f32>>,
}

pub fn reference() -> Reference {
    let text = std::fs::read_to_string(reference_path()).expect("reference file");
    serde_json::from_str(&text).expect("reference json")
}

/// The MiniLM model directory, fetched into the cache on first use.
pub fn minilm_dir() -> PathBuf {
    let assets = Assets::from_env().expect("cache dir").quiet(true);
    match resolve_model("minilm-l6", &assets) {
        Ok(ModelSource::HfDir { dir, .. }) => dir,
        Err(e) => panic!("fetching minilm-l6 failed:\n{e}"),
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
