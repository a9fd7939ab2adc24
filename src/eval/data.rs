//! The evaluation sets, parsed from gensim 4.4.0's test data (fetched and verified by
//! `ember_models::assets`), and the 64 reference sentences with their fp32 embeddings.

use std::path::Path;

use ember_models::assets::Assets;
use serde::Deserialize;

use crate::Error;

/// A word pair with its human similarity rating.
#[derive(Debug, Clone, PartialEq)]
pub struct WordPair {
    pub a: String,
    pub b: String,
    pub score: f64,
}

/// Every labeled set `ember eval` scores a model on.
#[derive(Debug, Clone)]
pub struct EvalData {
    /// The 50 Lee corpus documents (`lee.cor`).
    pub lee_docs: Vec<String>,
    /// Human similarity of document pairs `(i, j)`, `i < j` (1,225 pairs, `similarities0-1.txt`).
    pub lee_pairs: Vec<(usize, usize, f64)>,
    /// Pang & Lee sentences with their polarity (true = positive), 200 sentences.
    pub polarity: Vec<(String, bool)>,
    /// WordSim-353 pairs.
    pub wordsim: Vec<WordPair>,
    /// SimLex-999 pairs.
    pub simlex: Vec<WordPair>,
}

impl EvalData {
    /// Loads the sets from the asset cache, fetching gensim's test data on first use.
    pub fn load(assets: &Assets) -> Result<EvalData, Error> {
        let read = |name: &str| -> Result<String, Error> {
            let path = assets.gensim_file(name)?;
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            Ok(decode_text(bytes))
        };
        let lee_docs: Vec<String> = read("lee.cor")?.lines().map(str::to_string).collect();
        let lee_pairs = parse_similarity_matrix(&read("similarities0-1.txt")?, lee_docs.len())?;
        Ok(EvalData {
            lee_docs,
            lee_pairs,
            polarity: parse_polarity(&read("pang_lee_polarity.cor")?)?,
            wordsim: parse_word_pairs(&read("wordsim353.tsv")?, Path::new("wordsim353.tsv"))?,
            simlex: parse_word_pairs(&read("simlex999.txt")?, Path::new("simlex999.txt"))?,
        })
    }
}

/// UTF-8 if the bytes are valid UTF-8, else ISO-8859-1. `lee.cor` (a `£`) and
/// `pang_lee_polarity.cor` (a cp1252 dash) are Latin-1, which gensim's own tutorials read them as;
/// the one dash byte decodes to a C1 control character that BERT's normalizer drops.
fn decode_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| e.into_bytes().iter().map(|&b| char::from(b)).collect())
}

/// The upper triangle (`i < j`) of an `n × n` whitespace-separated matrix.
fn parse_similarity_matrix(text: &str, n: usize) -> Result<Vec<(usize, usize, f64)>, Error> {
    let rows: Vec<Vec<f64>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            line.split_whitespace()
                .map(|v| v.parse::<f64>().map_err(|_| bad("similarities0-1.txt", i, line)))
                .collect()
        })
        .collect::<Result<_, _>>()?;
    if rows.len() != n || rows.iter().any(|r| r.len() != n) {
        return Err(Error::Other(format!("similarities0-1.txt: expected a {n}×{n} matrix")));
    }
    Ok((0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .map(|(i, j)| (i, j, rows[i][j]))
        .collect())
}

/// `__label__neg text` / `__label__pos text` lines.
fn parse_polarity(text: &str) -> Result<Vec<(String, bool)>, Error> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            if let Some(rest) = line.strip_prefix("__label__pos") {
                Ok((rest.trim().to_string(), true))
            } else if let Some(rest) = line.strip_prefix("__label__neg") {
                Ok((rest.trim().to_string(), false))
            } else {
                Err(bad("pang_lee_polarity.cor", i, line))
            }
        })
        .collect()
}

/// `word1 <tab> word2 <tab> score` lines; `#` lines are comments.
fn parse_word_pairs(text: &str, file: &Path) -> Result<Vec<WordPair>, Error> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split('\t').collect();
            let score = fields.get(2).and_then(|s| s.trim().parse::<f64>().ok());
            match (fields.first(), fields.get(1), score) {
                (Some(a), Some(b), Some(score)) => Ok(WordPair {
                    a: a.trim().to_string(),
                    b: b.trim().to_string(),
                    score,
                }),
                _ => Err(bad(&file.display().to_string(), i, line)),
            }
        })
        .collect()
}

fn bad(file: &str, line: usize, text: &str) -> Error {
    Error::Other(format!("{file}:{}: cannot parse `{text}`", line + 1))
}

/// The 64 reference sentences and the fp32 embeddings of all-MiniLM-L6-v2 for them, from
/// `tests/data/reference/minilm_l6_reference.json` (onnxruntime fp32, cross-checked by an
/// independent float64 implementation to 4e-6), compiled into the binary.
#[derive(Debug, Clone)]
pub struct ReferenceEmbeddings {
    pub texts: Vec<String>,
    pub embeddings: Vec<Vec<f32>>,
}

const MINILM_REFERENCE: &str = include_str!("../../tests/data/reference/minilm_l6_reference.json");

impl ReferenceEmbeddings {
    /// The MiniLM-L6 fp32 reference.
    pub fn minilm_l6() -> Result<ReferenceEmbeddings, Error> {
        #[derive(Deserialize)]
        struct File {
            items: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            text: String,
            embedding_normalized: Vec<f32>,
        }
        let file: File = serde_json::from_str(MINILM_REFERENCE)
            .map_err(|e| Error::Other(format!("built-in MiniLM reference: {e}")))?;
        let (texts, embeddings) = file.items.into_iter().map(|i| (i.text, i.embedding_normalized)).unzip();
        Ok(ReferenceEmbeddings { texts, embeddings })
    }
}

/// Token ids of the 64 reference sentences (with `[CLS]`/`[SEP]`), from the built-in reference.
pub fn reference_token_ids() -> Result<Vec<Vec<u32>>, Error> {
    #[derive(Deserialize)]
    struct File {
        items: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        input_ids: Vec<u32>,
    }
    let file: File =
        serde_json::from_str(MINILM_REFERENCE).map_err(|e| Error::Other(format!("built-in MiniLM reference: {e}")))?;
    Ok(file.items.into_iter().map(|i| i.input_ids).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_files_decode() {
        assert_eq!(decode_text(b"caf\xe9 \xa33".to_vec()), "café £3");
        assert_eq!(decode_text("café".as_bytes().to_vec()), "café");
    }

    #[test]
    fn parses_the_gensim_formats() {
        let pairs = parse_similarity_matrix("1 0.5 0.2\n0 1 0.7\n0 0 1\n", 3).unwrap();
        assert_eq!(pairs, vec![(0, 1, 0.5), (0, 2, 0.2), (1, 2, 0.7)]);
        let pol = parse_polarity("__label__neg bad . \n__label__pos good\n").unwrap();
        assert_eq!(pol, vec![("bad .".to_string(), false), ("good".to_string(), true)]);
        let words = parse_word_pairs("# header\nlove\tsex\t6.77\n", Path::new("w")).unwrap();
        assert_eq!(
            words,
            vec![WordPair {
                a: "love".into(),
                b: "sex".into(),
                score: 6.77
            }]
        );
        assert!(parse_word_pairs("love\tsex\n", Path::new("w")).is_err());
    }

    #[test]
    fn the_builtin_reference_has_64_unit_embeddings() {
        let r = ReferenceEmbeddings::minilm_l6().unwrap();
        assert_eq!(
            (r.texts.len(), r.embeddings.len(), r.embeddings[0].len()),
            (64, 64, 384)
        );
    }
}
