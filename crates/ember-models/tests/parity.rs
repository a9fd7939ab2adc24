//! Parity of Ember's BERT with the onnxruntime fp32 reference on the real all-MiniLM-L6-v2:
//! tokenizer ids, pooled embeddings of 64 sentences, last hidden states, padding invariance.
//!
//! Bounds (issue 3): pooled max |Δ| ≤ 1e-4 and cosine ≥ 0.99999 per sentence; last hidden state
//! max |Δ| ≤ 1e-3. The reference's own float64 cross-check agrees with it to 4e-6.

mod common;

use common::{cosine, max_abs_diff, minilm_dir, reference};
use ember_models::{Batch, SentenceEncoder, Tokenizer};

#[test]
fn tokenizer_matches_reference_ids_for_all_64_sentences() {
    let tokenizer = Tokenizer::from_file(&minilm_dir().join("tokenizer.json")).unwrap();
    let reference = reference();
    assert_eq!(reference.items.len(), 64);
    for item in &reference.items {
        let enc = tokenizer.encode(&item.text).unwrap();
        assert_eq!(enc.input_ids, item.input_ids, "ids of #{} {:?}", item.index, item.text);
        assert_eq!(enc.token_type_ids, item.token_type_ids, "type ids of #{}", item.index);
        assert_eq!(enc.attention_mask, item.attention_mask, "mask of #{}", item.index);
    }
}

#[test]
fn truncates_at_256_tokens() {
    let tokenizer = Tokenizer::from_file(&minilm_dir().join("tokenizer.json")).unwrap();
    let long = "word ".repeat(400);
    assert_eq!(tokenizer.encode(&long).unwrap().input_ids.len(), 256);
}

#[test]
fn pooled_embeddings_and_hidden_states_match_the_reference() {
    let encoder = SentenceEncoder::from_dir(&minilm_dir(), "minilm-l6", &ember_models::default_device()).unwrap();
    let reference = reference();
    let mut worst = (0.0f32, 0.0f32, 1.0f64);
    for item in &reference.items {
        let batch = encoder.tokenizer.batch(&[&item.text]).unwrap();
        let out = encoder.model.encode(&batch, &encoder.device).unwrap();
        let mean = out.mean_pooled.into_data().try_to_vec::<f32>().unwrap();
        let normalized = out.embedding.into_data().try_to_vec::<f32>().unwrap();
        let d_mean = max_abs_diff(&mean, &item.embedding_mean_pooled);
        let d_norm = max_abs_diff(&normalized, &item.embedding_normalized);
        let cos = cosine(&normalized, &item.embedding_normalized);
        assert!(d_mean <= 1e-4, "#{} mean-pooled max |Δ| {d_mean}", item.index);
        assert!(d_norm <= 1e-4, "#{} normalized max |Δ| {d_norm}", item.index);
        assert!(cos >= 0.99999, "#{} cosine {cos}", item.index);
        worst = (worst.0.max(d_mean), worst.1.max(d_norm), worst.2.min(cos));
    }
    eprintln!(
        "64 sentences: max |Δ| mean-pooled {:.2e}, normalized {:.2e}, min cosine {:.8}",
        worst.0, worst.1, worst.2
    );

    for hidden in &reference.last_hidden_state {
        let batch = encoder.tokenizer.batch(&[&hidden.text]).unwrap();
        let out = encoder.model.encode(&batch, &encoder.device).unwrap();
        assert_eq!(out.last_hidden_state.dims(), [1, hidden.shape[0], hidden.shape[1]]);
        let ours = out.last_hidden_state.into_data().try_to_vec::<f32>().unwrap();
        let theirs: Vec<f32> = hidden.values.iter().flatten().copied().collect();
        let d = max_abs_diff(&ours, &theirs);
        eprintln!("last hidden state #{}: max |Δ| {d:.2e}", hidden.index);
        assert!(d <= 1e-3, "last hidden state #{} max |Δ| {d}", hidden.index);
    }
}

#[test]
fn padded_batches_equal_single_sentences() {
    let encoder = SentenceEncoder::from_dir(&minilm_dir(), "minilm-l6", &ember_models::default_device()).unwrap();
    let reference = reference();
    let texts: Vec<&str> = reference.items.iter().map(|i| i.text.as_str()).collect();
    // All 64 sentences in batches of 16 (padded to each batch's longest), against the reference.
    let batched = encoder.embed(&texts, 16).unwrap();
    // One padded batch of 8 mixed-length sentences, against each sentence alone.
    let mixed = &texts[..8];
    let padded: Batch = encoder.tokenizer.batch(mixed).unwrap();
    assert!(padded.attention_mask.contains(&0), "the batch must contain padding");
    let rows = encoder.embed_batch(&padded).unwrap();
    for (i, text) in mixed.iter().enumerate() {
        let single = encoder.embed(&[*text], 1).unwrap();
        let d = max_abs_diff(&rows[i], &single[0]);
        assert!(d <= 1e-5, "sentence {i}: padded vs single max |Δ| {d}");
    }
    for (item, row) in reference.items.iter().zip(&batched) {
        let d = max_abs_diff(row, &item.embedding_normalized);
        assert!(d <= 1e-4, "#{} batched max |Δ| {d}", item.index);
    }
}

/// The same parity on burn's wgpu backend (`--features wgpu`; any Vulkan/Metal device, e.g.
/// lavapipe on a CPU-only machine: `apt-get install mesa-vulkan-drivers`).
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_pooled_embeddings_match_the_reference() {
    let device = burn::tensor::Device::wgpu(Default::default());
    let encoder = SentenceEncoder::from_dir(&minilm_dir(), "minilm-l6", &device).unwrap();
    let reference = reference();
    let texts: Vec<&str> = reference.items.iter().map(|i| i.text.as_str()).collect();
    let embeddings = encoder.embed(&texts, 16).unwrap();
    let mut worst = (0.0f32, 1.0f64);
    for (item, row) in reference.items.iter().zip(&embeddings) {
        let d = max_abs_diff(row, &item.embedding_normalized);
        let cos = cosine(row, &item.embedding_normalized);
        assert!(
            d <= 1e-4 && cos >= 0.99999,
            "#{} on wgpu: max |Δ| {d}, cosine {cos}",
            item.index
        );
        worst = (worst.0.max(d), worst.1.min(cos));
    }
    eprintln!("wgpu, 64 sentences: max |Δ| {:.2e}, min cosine {:.8}", worst.0, worst.1);
}
