//! `ember embed` / `ember eval` / `ember bench` as a user runs them: the real binary in temp dirs.

use std::path::PathBuf;
use std::process::Command;

fn ember() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
    cmd.arg("--quiet");
    cmd
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn embed_writes_one_normalized_vector_per_sentence() {
    let dir = temp_dir("embed");
    let input = dir.join("in.txt");
    std::fs::write(
        &input,
        "The cat sat on the mat.\n\nA man is eating food.\nA much longer sentence about nothing.\n",
    )
    .unwrap();
    let output = dir.join("out.jsonl");
    let status = ember()
        .args(["embed", "--model", "minilm-l6", "--batch", "2", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "blank lines are skipped");
    assert_eq!(lines[0]["text"], "The cat sat on the mat.");
    for line in &lines {
        let v: Vec<f64> = line["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_models_fail_with_documented_exit_codes() {
    let dir = temp_dir("bad");
    let input = dir.join("in.txt");
    std::fs::write(&input, "hello\n").unwrap();
    let run = |model: &str| {
        let out = ember()
            .args(["embed", "--model", model, "--input"])
            .arg(&input)
            .arg("--output")
            .arg(dir.join("out.jsonl"))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    // A missing artifact: exit 4, naming the file.
    let (code, stderr) = run("model.ember");
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("model.ember"), "{stderr}");
    // A file that is not an artifact: exit 4, saying so.
    let (code, stderr) = run(input.to_str().unwrap());
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("not a valid .ember artifact"), "{stderr}");
    // A directory without model files: exit 4, naming the missing file.
    let (code, stderr) = run(dir.to_str().unwrap());
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("tokenizer.json"), "{stderr}");
    let (code, stderr) = run("minilm-l7");
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("minilm-l6"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_json_has_ember_fp32_and_burn_rows() {
    let out = ember()
        .args([
            "bench",
            "--model",
            "minilm-l6",
            "--batch",
            "2",
            "--seq",
            "16",
            "--repeats",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["seq"], 16);
    let rows = report["rows"].as_array().unwrap();
    let engines: Vec<&str> = rows.iter().map(|r| r["engine"].as_str().unwrap()).collect();
    assert_eq!(engines, ["ember-cpu fp32", "burn-flex fp32"]);
    assert_eq!(report["baseline"], 0);
    for r in rows {
        assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
        assert!(r["sentences_per_s"].as_f64().unwrap() > 0.0);
    }
}
