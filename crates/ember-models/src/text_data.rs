//! Text for calibration (and training): samples from a built-in corpus or a user file, read with
//! a size limit, taken as lines or as the sentences of each line, then tokenized and batched by
//! length so that no batch is padded. The composer's calibration consumes it; the trainer reads
//! its corpora the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ember_config::types::CalibrationSplit;
use ember_config::{BUILTIN_TEXTS, MAX_TEXT_BYTES, read_text_bounded};

use crate::assets::Assets;
use crate::{Batch, Encoded, Error, Result, Tokenizer};

/// The file a text source names: a built-in corpus (`builtin:lee_background`, fetched with the
/// gensim test data: 300 news articles, one per line, disjoint from the evaluation data) or a
/// path.
pub fn source_file(data: &str, assets: &Assets) -> Result<PathBuf> {
    match data.strip_prefix("builtin:") {
        Some(name) if BUILTIN_TEXTS.contains(&data) => assets.gensim_file(&format!("{name}.cor")),
        Some(_) => Err(Error::Input(format!(
            "`{data}` is not a built-in text; built-ins: {}",
            BUILTIN_TEXTS.join(", ")
        ))),
        None => Ok(PathBuf::from(data)),
    }
}

/// The first `count` samples of `path`: its non-empty lines, or their sentences
/// ([`split_sentences`]). An empty result is an error naming the file.
pub fn read_samples(path: &Path, split: CalibrationSplit, count: usize) -> Result<Vec<String>> {
    let text = read_text_bounded(path, MAX_TEXT_BYTES).map_err(|e| Error::io(path, e))?;
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let samples: Vec<String> = match split {
        CalibrationSplit::Lines => lines.take(count).map(String::from).collect(),
        CalibrationSplit::Sentences => lines.flat_map(split_sentences).take(count).map(String::from).collect(),
    };
    if samples.is_empty() {
        let why = "has no sentences (one per line expected)";
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, why),
        ));
    }
    Ok(samples)
}

/// The pieces of `line` after each `.`, `!` or `?` that is followed by whitespace, trimmed, empty
/// ones dropped (`split: sentences`).
pub fn split_sentences(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_some_and(|(_, n)| n.is_whitespace()) {
            out.push(&line[start..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    out.push(&line[start..]);
    out.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// Batches without padding: the samples are tokenized, grouped by token count (file order within
/// a count) and cut into batches of at most `batch_size`, so observers (ranges, GPTQ's Gram
/// matrices) see real tokens only, never `[PAD]` positions.
pub fn length_batches(tokenizer: &Tokenizer, samples: &[String], batch_size: usize) -> Result<Vec<Batch>> {
    let mut by_len: BTreeMap<usize, Vec<Encoded>> = BTreeMap::new();
    for s in samples {
        let e = tokenizer.encode(s)?;
        by_len.entry(e.input_ids.len()).or_default().push(e);
    }
    Ok(by_len
        .values()
        .flat_map(|same| same.chunks(batch_size.max(1)).map(Batch::pad))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_a_stop_followed_by_whitespace() {
        let line = "Fires burn near Sydney.  Are homes safe? Yes! Dr. Smith said 4.5 km.  ";
        assert_eq!(
            split_sentences(line),
            [
                "Fires burn near Sydney.",
                "Are homes safe?",
                "Yes!",
                "Dr.",
                "Smith said 4.5 km."
            ]
        );
        // No stop: the whole (trimmed) line; nothing: no sentence.
        assert_eq!(split_sentences(" one clause "), ["one clause"]);
        assert!(split_sentences("   ").is_empty());
        // Multi-byte characters next to a stop are cut on character boundaries.
        assert_eq!(split_sentences("Naïve?\u{a0}Très bien."), ["Naïve?", "Très bien."]);
    }

    #[test]
    fn every_builtin_text_is_a_fetched_file() {
        for name in BUILTIN_TEXTS {
            let file = format!("{}.cor", &name["builtin:".len()..]);
            assert!(
                crate::assets::GENSIM_TEST_DATA.files.iter().any(|(f, _)| *f == file),
                "{name}: {file} is not fetched"
            );
        }
        let assets = Assets::at(std::env::temp_dir().join("ember-no-such-cache"));
        assert!(source_file("builtin:lee", &assets).is_err());
        assert_eq!(source_file("my.txt", &assets).unwrap(), PathBuf::from("my.txt"));
    }

    #[test]
    fn samples_are_lines_or_sentences_and_never_empty() {
        let dir = std::env::temp_dir().join(format!("ember-text-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.txt");
        std::fs::write(&f, "One. Two!\n\n  Three\nFour? Five.\n").unwrap();
        assert_eq!(
            read_samples(&f, CalibrationSplit::Lines, 2).unwrap(),
            ["One. Two!", "Three"]
        );
        assert_eq!(
            read_samples(&f, CalibrationSplit::Sentences, 4).unwrap(),
            ["One.", "Two!", "Three", "Four?"]
        );
        std::fs::write(&f, "\n   \n").unwrap();
        let e = read_samples(&f, CalibrationSplit::Lines, 8).unwrap_err().to_string();
        assert!(e.contains("has no sentences"), "{e}");
        #[cfg(unix)]
        {
            let e = read_samples(Path::new("/dev/zero"), CalibrationSplit::Lines, 8)
                .unwrap_err()
                .to_string();
            assert!(e.contains("larger than"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
