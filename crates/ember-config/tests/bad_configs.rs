//! Every bad config under `tests/bad_configs/` must fail with exactly the message in its
//! `.expected` file (data-driven: add a pair of files to add a case). `EMBER_BLESS=1` rewrites the
//! expectations from the current output — review the diff before committing it.

mod common;

use common::{diagnose, repo_root};

#[test]
fn every_bad_config_fails_with_its_expected_message() {
    let dir = repo_root().join("tests/bad_configs");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 30,
        "the issue asks for at least 30 bad configs, found {}",
        cases.len()
    );
    let bless = std::env::var_os("EMBER_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let text = std::fs::read_to_string(case).unwrap();
        let got = diagnose(&text);
        assert_ne!(got, "ok", "{} is accepted, but it is a bad config", case.display());
        let expected_path = case.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, format!("{got}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no .expected file", case.display()));
        if got.trim_end() != expected.trim_end() {
            failures.push(format!(
                "{}:\n  expected: {}\n  got:      {}",
                case.display(),
                expected.trim_end(),
                got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_message_names_its_json_pointer_or_position() {
    for entry in std::fs::read_dir(repo_root().join("tests/bad_configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                assert!(
                    line.starts_with("error: /")
                        || line.starts_with("error: (top level): ")
                        || line.starts_with("error: invalid JSON at line"),
                    "{}: `{line}` does not locate the problem",
                    path.display()
                );
            }
        }
    }
}
