//! The artifact loop as a user runs it, with the real binary on the real MiniLM:
//! `compose --out` → `inspect` → `embed` on Ember's CPU engine and on burn (`--device flex`).
//! The two engines are independent implementations of the same cleaned model (integer kernels vs
//! burn on dequantized weights), so their agreement checks both; the fidelity the manifest records is checked against the bar.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ember() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
    cmd.arg("--quiet");
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn embeddings(path: &Path) -> Vec<Vec<f32>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn compose_out_inspect_and_embed_on_two_engines() {
    let dir = std::env::temp_dir().join(format!("ember-artifact-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let artifact = dir.join("w8a8.ember");
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/zeroquant-w8a8.json");

    let json = run_ok(
        ember()
            .args(["compose", "--json", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&artifact),
    );
    let outcome: serde_json::Value = serde_json::from_str(&json).unwrap();
    let written = &outcome["artifact"];
    let bytes = std::fs::metadata(&artifact).unwrap().len();
    assert_eq!(written["bytes"].as_u64(), Some(bytes));
    assert!(
        bytes <= 23_500_000,
        "W8A8 artifact is {bytes} bytes (issue bar: 23.5 MB)"
    );
    let (mean, min) = (
        written["cos_mean"].as_f64().unwrap(),
        written["cos_min"].as_f64().unwrap(),
    );
    assert!(
        mean >= 0.995 && min >= 0.98,
        "artifact fidelity: mean {mean}, min {min}"
    );
    // Every Linear runs on the int8×int8 kernel.
    let kernels = written["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 36);
    assert!(
        kernels.iter().all(|k| k[1].as_str() == Some("gemm_i8i8")),
        "{kernels:?}"
    );

    let table = run_ok(ember().arg("inspect").arg(&artifact));
    assert!(table.contains("encoder.layer.5.output.dense"), "{table}");
    assert!(table.contains("int8") && table.contains("gemm_i8i8"), "{table}");
    assert!(table.contains("total:"), "{table}");
    // An artifact every loader refuses (one scale made NaN) is refused by inspect too.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let scales = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with(".scales"))
        .map(|(_, t)| t["data_offsets"][0].as_u64().unwrap() as usize)
        .unwrap();
    bytes[8 + n + scales..8 + n + scales + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let bad = dir.join("nan-scale.ember");
    std::fs::write(&bad, &bytes).unwrap();
    let out = ember().arg("inspect").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not a finite number"),
        "{stderr}"
    );

    let input = dir.join("in.txt");
    std::fs::write(
        &input,
        "A man is playing a guitar.\nThe stock market fell sharply today.\nCats sleep most of the day.\n",
    )
    .unwrap();
    let embed_both = |artifact: &Path| -> Vec<Vec<Vec<f32>>> {
        ["cpu", "flex"]
            .iter()
            .map(|device| {
                let out = dir.join(format!("{device}.jsonl"));
                run_ok(
                    ember()
                        .args(["embed", "--device", device, "--model"])
                        .arg(artifact)
                        .arg("--input")
                        .arg(&input)
                        .arg("--output")
                        .arg(&out),
                );
                embeddings(&out)
            })
            .collect()
    };
    // W8A8: per-token activation codes sit on rounding boundaries, so the engines' float
    // differences flip a few codes; both stay as close to each other as to fp32's 0.998.
    let outs = embed_both(&artifact);
    assert_eq!(outs[0].len(), 3);
    for (a, b) in outs[0].iter().zip(&outs[1]) {
        let c = cosine(a, b);
        assert!(c >= 0.999, "W8A8, CPU engine vs burn engine: cosine {c}");
    }
    // Weight-only int8: no activation rounding, so the engines agree to float precision.
    let weight_only = dir.join("w8.ember");
    run_ok(
        ember()
            .arg("compose")
            .arg("--config")
            .arg(config.with_file_name("w8-weight-only.json"))
            .arg("--out")
            .arg(&weight_only),
    );
    let outs = embed_both(&weight_only);
    let max = outs[0]
        .iter()
        .flatten()
        .zip(outs[1].iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max <= 1e-5,
        "W8 weight-only, CPU engine vs burn engine: max |Δ| {max:e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
