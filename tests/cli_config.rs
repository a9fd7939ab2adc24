//! The `ember` binary on configs: `check` accepts every recipe and rejects every bad config with
//! exactly its expected message and exit code 2; `plan` prints plans; `compose` refuses what it
//! cannot do yet with exit code 3; `schema` prints the checked-in schema. Runs the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("ember runs")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn check_accepts_every_recipe() {
    for cfg in files(&root().join("configs"), "json") {
        let out = ember(&["check", "--config", cfg.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            cfg.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
    }
}

#[test]
fn check_rejects_every_bad_config_with_its_message_and_exit_code_2() {
    let cases = files(&root().join("tests/bad_configs"), "json");
    assert!(cases.len() >= 30);
    for cfg in cases {
        let out = ember(&["check", "--config", cfg.to_str().unwrap()]);
        let expected = std::fs::read_to_string(cfg.with_extension("expected")).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", cfg.display());
        assert_eq!(stderr.trim_end(), expected.trim_end(), "{}", cfg.display());
        assert!(!stderr.contains("panicked"), "{}", cfg.display());
    }
}

#[test]
fn plan_prints_deepspeed_recipes_on_bert_base() {
    let out = ember(&["plan", "--config", "tests/data/deepspeed/zeroquant_w8a8_qgroup48.json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("plan for bert-base"), "{text}");
    assert!(text.contains("encoder.layer.11.output.dense"));
    assert!(text.contains("gemm_i8i8"));
    let json = ember(&["plan", "--json", "--config", "configs/head-pruning-50.json"]);
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let o = plan["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "encoder.layer.0.attention.output.dense")
        .unwrap();
    assert_eq!(o["shape_after"], serde_json::json!([384, 192]));
}

#[test]
fn compose_refuses_what_it_cannot_do_yet_with_exit_code_3() {
    let out = ember(&["compose", "--quiet", "--config", "configs/sparse-l1-50.json"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Every reason at once, before any model is fetched or loaded.
    assert!(stderr.starts_with("not supported yet: "), "{stderr}");
    for part in ["sparse_pruning", "pruning masks"] {
        assert!(stderr.contains(part), "{part} missing from: {stderr}");
    }
}

#[test]
fn missing_config_file_is_exit_code_4_not_a_panic() {
    let out = ember(&["check", "--config", "no/such/file.json"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.json"));
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let out = ember(&["schema"]);
    let checked_in = std::fs::read_to_string(root().join("schemas/ember.schema.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), checked_in);
}

#[test]
fn a_missing_or_empty_calibration_file_is_reported_before_any_work() {
    let dir = std::env::temp_dir().join(format!("ember-calib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let recipe = std::fs::read_to_string(root().join("configs/w8a8-static.json")).unwrap();
    for (data, code, message) in [
        (dir.join("missing.txt"), 4, "missing.txt"),
        (empty.clone(), 4, "has no sentences (one per line expected)"),
    ] {
        let mut cfg: serde_json::Value = serde_json::from_str(&recipe).unwrap();
        cfg["calibration"]["data"] = serde_json::Value::String(data.display().to_string());
        let path = dir.join("cfg.json");
        std::fs::write(&path, cfg.to_string()).unwrap();
        let out = ember(&["compose", "--quiet", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
