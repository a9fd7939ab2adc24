//! "Did you mean" suggestions: nearest keys, nearest choices, nearest module paths.

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), on chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo
/// (distance ≤ max(2, len/3)), or if one contains the other (`quantize_group` → `quantize_groups`).
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let lower = word.to_lowercase();
    let budget = 2.max(word.chars().count() / 3);
    let candidates: Vec<&str> = candidates.into_iter().collect();
    // An abbreviation (`asym` → `asymmetric`) is a plausible slip too.
    if lower.len() >= 3
        && let Some(c) = candidates.iter().find(|c| c.to_lowercase().starts_with(&lower))
    {
        return Some(c.to_string());
    }
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c.to_string())
}

/// The module paths nearest to a pattern that matched nothing, for the error message. Layer
/// indices are generalised (`encoder.layer.N.…`) so one suggestion stands for all layers.
pub fn nearest_paths<'a>(pattern: &str, paths: impl IntoIterator<Item = &'a str>, n: usize) -> Vec<String> {
    // Compare the literal text of the pattern with every window of the path of the same length.
    let literal: String = pattern.chars().filter(|c| !"^$\\()[]{}*+?|".contains(*c)).collect();
    let mut scored: Vec<(usize, String)> = Vec::new();
    for path in paths {
        let general = generalise(path);
        if scored.iter().any(|(_, p)| *p == general) {
            continue;
        }
        scored.push((window_distance(&literal, path), general));
    }
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(n).map(|(_, p)| p).collect()
}

fn window_distance(needle: &str, hay: &str) -> usize {
    let h: Vec<char> = hay.chars().collect();
    let k = needle.chars().count();
    if k == 0 || h.len() <= k {
        return edit_distance(needle, hay);
    }
    (0..=h.len() - k)
        .map(|i| edit_distance(needle, &h[i..i + k].iter().collect::<String>()))
        .min()
        .unwrap_or(usize::MAX)
}

fn generalise(path: &str) -> String {
    path.split('.')
        .map(|part| {
            if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
                "N"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_transpositions() {
        assert_eq!(edit_distance("quantize_group", "quantize_groups"), 1);
        assert_eq!(edit_distance("symmetirc", "symmetric"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_only_plausible_typos() {
        let keys = ["quantize_groups", "quantization_type", "schedule_offset"];
        assert_eq!(did_you_mean("quantize_group", keys).as_deref(), Some("quantize_groups"));
        assert_eq!(did_you_mean("schedule_ofset", keys).as_deref(), Some("schedule_offset"));
        assert_eq!(did_you_mean("learning_rate", keys), None);
    }

    #[test]
    fn nearest_paths_generalise_layers() {
        let paths = [
            "encoder.layer.0.attention.self.query",
            "encoder.layer.1.attention.self.query",
            "encoder.layer.0.output.dense",
        ];
        let near = nearest_paths("attention.self.qurey", paths, 2);
        assert_eq!(near[0], "encoder.layer.N.attention.self.query");
        assert_eq!(near.len(), 2);
    }
}
