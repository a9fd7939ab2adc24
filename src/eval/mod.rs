//! The evaluation harness every model (fp32 or compressed) is judged with.
//!
//! A model plugs in through [`Embedder`] (texts in, L2-normalized embeddings out). [`evaluate`]
//! scores it on:
//! - fidelity: cosine vs the fp32 teacher's embeddings of the 64 reference sentences (mean, min);
//! - Lee document similarity: Pearson and Spearman of pairwise cosines vs human ratings (1,225 pairs);
//! - WordSim-353 and SimLex-999: Spearman of word cosines (each word embedded as a sentence);
//! - Pang & Lee polarity: accuracy of a logistic-regression probe, 10-fold stratified CV.
//!
//! The teacher embeddings are [`ReferenceEmbeddings`]: for `minilm-l6` the independent onnxruntime
//! reference compiled into the binary (so the fp32 model's own fidelity is checked, not assumed);
//! for any other model, whatever the caller computed with its fp32 original.

pub mod data;
pub mod metrics;
mod model;
pub mod probe;

use serde::Serialize;

pub use data::{EvalData, ReferenceEmbeddings, WordPair};
pub use model::{LoadedModel, load_model, teacher_for};

use crate::Error;

/// Something that turns sentences into L2-normalized embeddings: the fp32 model today, the
/// compressed runtime later.
pub trait Embedder {
    /// One embedding per text, in order.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Error>;
}

impl Embedder for ember_models::SentenceEncoder {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Error> {
        Ok(ember_models::SentenceEncoder::embed(self, texts, 32)?)
    }
}

/// The quality figures of one model (keys as `ember eval --json` prints them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Mean cosine vs the teacher over the 64 reference sentences.
    pub cos_mean: f64,
    /// Minimum of those cosines.
    pub cos_min: f64,
    /// Lee: Pearson of document cosines vs human ratings.
    pub lee_pearson: f64,
    /// Lee: Spearman of the same.
    pub lee_spearman: f64,
    /// WordSim-353 Spearman.
    pub wordsim_spearman: f64,
    /// SimLex-999 Spearman.
    pub simlex_spearman: f64,
    /// Pang & Lee polarity: logistic-regression probe accuracy, 10-fold stratified CV.
    pub polarity_probe_acc: f64,
}

/// Folds of the polarity probe's cross-validation.
pub const PROBE_FOLDS: usize = 10;
/// Inverse regularization of the probe (scikit-learn's default).
pub const PROBE_C: f64 = 1.0;
/// Texts per call to the embedder.
const CHUNK: usize = 64;

/// Scores `model` on every set; `progress(done, total)` is called as texts are embedded.
pub fn evaluate(
    model: &dyn Embedder,
    teacher: &ReferenceEmbeddings,
    data: &EvalData,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, Error> {
    let words = |pairs: &[WordPair]| -> Vec<String> {
        let mut w: Vec<String> = pairs.iter().flat_map(|p| [p.a.clone(), p.b.clone()]).collect();
        w.sort();
        w.dedup();
        w
    };
    let wordsim_words = words(&data.wordsim);
    let simlex_words = words(&data.simlex);
    let polarity_texts: Vec<String> = data.polarity.iter().map(|(t, _)| t.clone()).collect();
    let groups: [&[String]; 5] = [
        &teacher.texts,
        &data.lee_docs,
        &polarity_texts,
        &wordsim_words,
        &simlex_words,
    ];
    let total: usize = groups.iter().map(|g| g.len()).sum();
    let mut done = 0;
    let mut embed = |texts: &[String]| -> Result<Vec<Vec<f32>>, Error> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(CHUNK) {
            out.extend(model.embed(chunk)?);
            done += chunk.len();
            progress(done, total);
        }
        Ok(out)
    };

    let student = embed(&teacher.texts)?;
    let cosines: Vec<f64> = student
        .iter()
        .zip(&teacher.embeddings)
        .map(|(s, t)| metrics::cosine(s, t))
        .collect();
    let cos_mean = cosines.iter().sum::<f64>() / cosines.len().max(1) as f64;
    let cos_min = cosines.iter().copied().fold(f64::INFINITY, f64::min);

    let lee = embed(&data.lee_docs)?;
    let (predicted, human): (Vec<f64>, Vec<f64>) = data
        .lee_pairs
        .iter()
        .map(|&(i, j, h)| (metrics::cosine(&lee[i], &lee[j]), h))
        .unzip();
    let lee_pearson = metrics::pearson(&predicted, &human);
    let lee_spearman = metrics::spearman(&predicted, &human);

    let polarity = embed(&polarity_texts)?;
    let labels: Vec<bool> = data.polarity.iter().map(|(_, l)| *l).collect();
    let polarity_probe_acc = probe::probe_accuracy(&polarity, &labels, PROBE_FOLDS, PROBE_C);

    let wordsim_spearman = word_spearman(&data.wordsim, &wordsim_words, &embed(&wordsim_words)?);
    let simlex_spearman = word_spearman(&data.simlex, &simlex_words, &embed(&simlex_words)?);

    Ok(EvalReport {
        cos_mean,
        cos_min,
        lee_pearson,
        lee_spearman,
        wordsim_spearman,
        simlex_spearman,
        polarity_probe_acc,
    })
}

/// Spearman of word-pair cosines vs human scores; `words` is sorted and `embeddings` parallel to it.
fn word_spearman(pairs: &[WordPair], words: &[String], embeddings: &[Vec<f32>]) -> f64 {
    let lookup = |w: &String| words.binary_search(w).ok().map(|i| &embeddings[i]);
    let (predicted, human): (Vec<f64>, Vec<f64>) = pairs
        .iter()
        .filter_map(|p| Some((metrics::cosine(lookup(&p.a)?, lookup(&p.b)?), p.score)))
        .unzip();
    metrics::spearman(&predicted, &human)
}

impl EvalReport {
    /// A human-readable table, one figure per line.
    pub fn table(&self) -> String {
        let rows = [
            ("cosine vs fp32, mean (64 sentences)", self.cos_mean),
            ("cosine vs fp32, min", self.cos_min),
            ("Lee Pearson (1,225 pairs)", self.lee_pearson),
            ("Lee Spearman", self.lee_spearman),
            ("WordSim-353 Spearman", self.wordsim_spearman),
            ("SimLex-999 Spearman", self.simlex_spearman),
            ("polarity probe accuracy (10-fold)", self.polarity_probe_acc),
        ];
        rows.iter().map(|(name, v)| format!("{name:<40} {v:>9.4}\n")).collect()
    }
}
