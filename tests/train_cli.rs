//! `compose` on a training recipe (QAT + distillation): a few real steps on MiniLM write an
//! artifact and one event per step with finite loss terms; configs and training text it cannot
//! use are refused before the model is loaded, each with its message and exit code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ember(args: &[&str], cache: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
    cmd.args(args).current_dir(root());
    if let Some(c) = cache {
        cmd.env("EMBER_CACHE", c);
    }
    cmd.output().expect("ember runs")
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ember-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The KD recipe with `edit` applied, written to `dir/name`.
fn recipe(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let text = std::fs::read_to_string(root().join("configs/w4-g64-a8-kd.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    cfg.as_object_mut().unwrap().remove("$schema");
    edit(&mut cfg);
    let path = dir.join(name);
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

/// `configs/moq-8to4.json` annealing 6 → 4 bits with period 1: W6 at step 0, W5 at 1, W4 at 2.
fn moq_6_to_4() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("configs/moq-8to4.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    cfg.as_object_mut().unwrap().remove("$schema");
    let params = &mut cfg["compression_training"]["weight_quantization"]["different_groups"]["wq1"]["params"];
    params["start_bits"] = 6.into();
    params["quantization_period"] = 1.into();
    cfg
}

/// `ember compose --quiet --config CFG --out OUT --events EVENTS` plus `extra`.
fn compose_run(cfg: &Path, out: &Path, events: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "compose",
        "--quiet",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ember(&args, None)
}

/// Every event of an events file, in order.
fn read_events(events: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_few_distillation_steps_write_an_artifact_and_their_events() {
    let dir = temp_dir("run");
    let cfg = recipe(&dir, "kd.json", |c| {
        c["training"]["steps"] = 3.into();
        c["training"]["warmup_steps"] = 1.into();
        c["training"]["batch_size"] = 4.into();
        c["training"]["max_seq_len"] = 32.into();
    });
    let (out, events) = (dir.join("kd.ember"), dir.join("events.jsonl"));
    let run = compose_run(&cfg, &out, &events, &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(std::fs::metadata(&out).unwrap().len() > 1_000_000);
    let lines = read_events(&events);
    let steps: Vec<&serde_json::Value> = lines.iter().filter(|e| e["event"] == "train_step").collect();
    assert_eq!(steps.len(), 3, "{lines:?}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i);
        let terms = s["terms"].as_object().unwrap();
        assert_eq!(terms.keys().collect::<Vec<_>>(), ["embedding_cosine", "hidden_mse"]);
        let total: f64 = terms.values().map(|v| v.as_f64().unwrap()).sum();
        // Both terms weigh 1: the loss is their sum, positive (the W4A8 student is not the teacher).
        assert!(
            (s["loss"].as_f64().unwrap() - total).abs() < 1e-5 * total.max(1e-9),
            "{s}"
        );
        assert!(total > 0.0 && total.is_finite());
        assert!(s["lr"].as_f64().unwrap() > 0.0 && s["grad_norm"].as_f64().unwrap() > 0.0);
    }
    // The warmup: the first step runs at half the peak, the second at the peak.
    assert!((steps[0]["lr"].as_f64().unwrap() - 2.5e-5).abs() < 1e-12);
    assert!((steps[1]["lr"].as_f64().unwrap() - 5e-5).abs() < 1e-12);
    assert!(lines.iter().any(|e| e["event"] == "trained"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn training_configs_and_text_it_cannot_use_are_refused_before_any_work() {
    let dir = temp_dir("refused");
    // No model cache at all: every refusal must come before the model is fetched.
    let no_cache = dir.join("no-cache");
    let tiny = dir.join("tiny.txt");
    std::fs::write(&tiny, "One short sentence here. And a second one.\n").unwrap();
    let leaked = dir.join("leaked.txt");
    let reference = std::fs::read_to_string(root().join("tests/data/reference/minilm_l6_reference.json")).unwrap();
    let first: serde_json::Value = serde_json::from_str(&reference).unwrap();
    let sentence = first["items"][0]["text"].as_str().unwrap().to_string();
    std::fs::write(
        &leaked,
        format!(
            "{}\n",
            "A harmless line of text. ".repeat(40) + &sentence.to_uppercase()
        ),
    )
    .unwrap();
    let cases: Vec<(&str, PathBuf, i32, String)> = vec![
        (
            "a DeepSpeed file with no step count",
            recipe(&dir, "nosteps.json", |c| {
                let o = c.as_object_mut().unwrap();
                o.remove("training");
                o.insert("train_batch_size".into(), 16.into());
                o.insert("optimizer".into(), serde_json::json!({"type": "AdamW", "params": {"lr": 2e-5}}));
            }),
            2,
            "gives no step count: add `training.steps`, a DeepSpeed `scheduler` with `total_num_steps`, or pass `compose --steps N`".into(),
        ),
        (
            "an attention-score loss",
            recipe(&dir, "attn.json", |c| {
                c["distillation"]["losses"] = serde_json::json!([{"kind": "attention_mse"}])
            }),
            3,
            "distillation loss `attention_mse`: the attention-score taps are not built yet".into(),
        ),
        (
            "GPTQ rounding with training",
            recipe(&dir, "gptq.json", |c| {
                c["compression_training"]["weight_quantization"]["shared_parameters"]["rounding"] = "gptq".into()
            }),
            3,
            "rounding: gptq with training".into(),
        ),
        (
            "a MoQ schedule that settles only at the last step",
            recipe(&dir, "moq-late.json", |c| {
                let w = &mut c["compression_training"]["weight_quantization"];
                w["shared_parameters"]["quantize_weight_in_forward"] = false.into();
                w["different_groups"]["wq1"]["params"]["start_bits"] = 8.into();
                w["different_groups"]["wq1"]["params"]["quantization_period"] = 50.into();
            }),
            2,
            "settles at step 400, not before the last of training.steps = 400".into(),
        ),
        (
            "activations from DeepSpeed's default offset, after the last step",
            recipe(&dir, "act-late.json", |c| {
                c["compression_training"]["activation_quantization"]["shared_parameters"]
                    .as_object_mut()
                    .unwrap()
                    .remove("schedule_offset");
            }),
            2,
            "activation_quantization starts at step 1000, but training ends after 400 steps".into(),
        ),
        (
            "a training file that does not exist",
            recipe(&dir, "missing.json", |c| {
                c["training"]["data"] = dir.join("nope.txt").display().to_string().into()
            }),
            4,
            "nope.txt".into(),
        ),
        (
            "a corpus smaller than one batch",
            recipe(&dir, "tiny.json", |c| {
                c["training"]["data"] = tiny.display().to_string().into()
            }),
            1,
            "2 sentences, fewer than one batch of training.batch_size = 16".into(),
        ),
        (
            "a corpus holding an evaluation sentence",
            recipe(&dir, "leak.json", |c| {
                c["training"]["data"] = leaked.display().to_string().into()
            }),
            1,
            "contains the evaluation sentence".into(),
        ),
    ];
    for (what, cfg, code, phrase) in cases {
        let out = ember(
            &["compose", "--quiet", "--config", cfg.to_str().unwrap()],
            Some(&no_cache),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
        assert!(stderr.contains(&phrase), "{what}: wants `{phrase}`, got: {stderr}");
    }
    assert!(!no_cache.exists(), "a refusal fetched something");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resumed_run_continues_the_interrupted_one_and_refuses_another_runs_checkpoint() {
    let dir = temp_dir("resume");
    let cfg = recipe(&dir, "kd.json", |c| {
        c["training"]["steps"] = 4.into();
        c["training"]["warmup_steps"] = 1.into();
        c["training"]["batch_size"] = 4.into();
        c["training"]["max_seq_len"] = 24.into();
        c["training"]["checkpoint_every"] = 2.into();
    });
    let out = dir.join("kd.ember");
    let ckpt = dir.join("kd.ember.ckpt");
    let steps = |events: &Path| -> Vec<(u64, f64)> {
        std::fs::read_to_string(events)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["event"] == "train_step")
            .map(|e| (e["step"].as_u64().unwrap(), e["loss"].as_f64().unwrap()))
            .collect()
    };
    let compose = |cfg: &Path, events: &Path, resume: bool| {
        let mut args = vec![
            "compose",
            "--quiet",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ];
        if resume {
            args.push("--resume");
        }
        ember(&args, None)
    };
    // The whole run: 4 steps, a checkpoint after step 2 (kept: the interrupted state).
    let all = dir.join("all.jsonl");
    let run = compose(&cfg, &all, false);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(ckpt.is_file());
    let whole = steps(&all);
    assert_eq!(whole.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    // A new process continues from step 2 and ends where the whole run ended.
    let rest = dir.join("rest.jsonl");
    let run = compose(&cfg, &rest, true);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let resumed = steps(&rest);
    assert_eq!(resumed.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3]);
    for ((_, a), (_, b)) in resumed.iter().zip(&whole[2..]) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs(),
            "resumed {resumed:?} vs whole {whole:?}"
        );
    }
    // Another config (another lr) may not resume this checkpoint; a damaged one is refused.
    let other = recipe(&dir, "other.json", |c| {
        c["training"]["steps"] = 4.into();
        c["training"]["lr"] = 1e-4.into();
        c["training"]["warmup_steps"] = 1.into();
        c["training"]["batch_size"] = 4.into();
    });
    let run = compose(&other, &dir.join("x.jsonl"), true);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("belongs to another run"),
        "{stderr}"
    );
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    let run = compose(&cfg, &dir.join("y.jsonl"), true);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("truncated or corrupt"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn layer_by_layer_distillation_trains_every_layer_and_writes_an_artifact() {
    let dir = temp_dir("lkd");
    let text = std::fs::read_to_string(root().join("configs/w4w8-a8-lkd.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    cfg.as_object_mut().unwrap().remove("$schema");
    cfg["distillation"]["layerwise"]["steps"] = 3.into();
    let path = dir.join("lkd.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let (out, events) = (dir.join("lkd.ember"), dir.join("events.jsonl"));
    let run = compose_run(&path, &out, &events, &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(out.is_file());
    let layers: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "lkd_layer")
        .collect();
    assert_eq!(
        layers.iter().map(|e| e["layer"].as_u64().unwrap()).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    for e in &layers {
        let (first, last) = (e["first_loss"].as_f64().unwrap(), e["last_loss"].as_f64().unwrap());
        assert!(first > 0.0 && first.is_finite() && last.is_finite(), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn moq_lowers_the_bits_on_schedule_and_the_artifact_stores_the_target_bits() {
    // MoQ 6 → 4 bits, period 1: W6 at step 0, W5 at 1, W4 from 2 on (compat-notes §2.8); the
    // fp16 blend off. The artifact holds 4-bit codes, as `ember plan` predicts.
    let dir = temp_dir("moq");
    let mut cfg = moq_6_to_4();
    cfg["training"]["steps"] = 4.into();
    cfg["training"]["batch_size"] = 4.into();
    cfg["training"]["max_seq_len"] = 32.into();
    let path = dir.join("moq.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let plan = ember(&["plan", "--config", path.to_str().unwrap()], None);
    let printed = String::from_utf8_lossy(&plan.stdout);
    assert!(printed.contains("wq1: W6 from step 0, W5 at 1, W4 at 2"), "{printed}");
    let (out, events) = (dir.join("moq.ember"), dir.join("events.jsonl"));
    let run = compose_run(&path, &out, &events, &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let lines = read_events(&events);
    let drops: Vec<(u64, u64)> = lines
        .iter()
        .filter(|e| e["event"] == "bits" && e["group"] == "wq1")
        .map(|e| (e["step"].as_u64().unwrap(), e["bits"].as_u64().unwrap()))
        .collect();
    assert_eq!(drops, [(0, 6), (1, 5), (2, 4)]);
    let per_step: Vec<u64> = lines
        .iter()
        .filter(|e| e["event"] == "train_step")
        .map(|e| e["bits"]["wq1"].as_u64().unwrap())
        .collect();
    assert_eq!(per_step, [6, 5, 4, 4]);
    let inspect = ember(&["inspect", out.to_str().unwrap()], None);
    let listing = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let query = listing
        .lines()
        .find(|l| l.contains("encoder.layer.0.attention.self.query"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(query.contains("int4"), "{query}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_whole_deepspeed_file_trains_with_its_batch_optimizer_and_scheduler() {
    // configs/deepspeed-moq-a8.json as pasted (fp16, ZeRO stage 0, Adam, WarmupDecayLR, MoQ +
    // A8, no distillation section), cut short: 4 steps of 4 sentences in 2 micro batches. The
    // lr of each step is DeepSpeed's: the scheduler steps after the optimizer, so steps 0 and 1
    // run at warmup_min_lr (0), step 2 at iteration 1 of a 2-step linear warmup (half the max),
    // step 3 at iteration 2 (the max, the decay to step 6 just starting).
    let dir = temp_dir("deepspeed");
    let text = std::fs::read_to_string(root().join("configs/deepspeed-moq-a8.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    cfg["train_batch_size"] = 4.into();
    cfg["train_micro_batch_size_per_gpu"] = 2.into();
    cfg["scheduler"]["params"]["warmup_num_steps"] = 2.into();
    cfg["scheduler"]["params"]["total_num_steps"] = 6.into();
    cfg["training"] = serde_json::json!({ "max_seq_len": 32, "steps": 4 });
    let params = &mut cfg["compression_training"]["weight_quantization"]["different_groups"]["wq1"]["params"];
    params["start_bits"] = 6.into();
    params["quantization_period"] = 1.into();
    let path = dir.join("ds.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let (out, events) = (dir.join("ds.ember"), dir.join("events.jsonl"));
    let run = ember(
        &[
            "compose",
            "--config",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    for note in [
        "fp16: not applicable here",
        "zero_optimization: not applicable here",
        "gradient_accumulation_steps: 2 → training.gradient_accumulation_steps",
        "scheduler: WarmupDecayLR → training.scheduler",
        "distils from the original model",
    ] {
        assert!(stderr.contains(note), "`{note}` missing from: {stderr}");
    }
    let steps: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "train_step")
        .collect();
    let lrs: Vec<f64> = steps.iter().map(|s| s["lr"].as_f64().unwrap()).collect();
    assert_eq!(lrs, [0.0, 0.0, 2.5e-5, 5e-5], "{steps:?}");
    let bits: Vec<u64> = steps.iter().map(|s| s["bits"]["wq1"].as_u64().unwrap()).collect();
    assert_eq!(bits, [6, 5, 4, 4]);
    for s in &steps {
        let terms = s["terms"].as_object().unwrap();
        assert_eq!(
            terms.keys().collect::<Vec<_>>(),
            ["embedding_cosine", "hidden_mse"],
            "{s}"
        );
        assert!(s["loss"].as_f64().unwrap().is_finite());
    }
    assert!(out.is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_checkpoints_the_step_and_resume_finishes_the_run() {
    // The first SIGINT lets the current step finish, writes the checkpoint (here long before
    // `checkpoint_every`), writes no artifact and exits with 130; `--resume` continues from there.
    let dir = temp_dir("interrupt");
    let cfg = recipe(&dir, "kd.json", |c| {
        c["training"]["steps"] = 60.into();
        c["training"]["warmup_steps"] = 1.into();
        c["training"]["batch_size"] = 4.into();
        c["training"]["max_seq_len"] = 16.into();
        c["training"]["checkpoint_every"] = 1000.into();
    });
    let (out, events, ckpt) = (
        dir.join("kd.ember"),
        dir.join("events.jsonl"),
        dir.join("kd.ember.ckpt"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "compose",
            "--quiet",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ])
        .current_dir(root())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until training is under way: a train_step event for step 1.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let started = || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"train_step\"") && l.contains("\"step\":1,"))
    };
    while !started() {
        assert!(std::time::Instant::now() < deadline, "training never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "compose ended before it was interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted after step"), "{stderr}");
    assert!(ckpt.is_file() && !out.exists(), "a checkpoint and no artifact");
    let lines = read_events(&events);
    let stopped = lines
        .iter()
        .find(|e| e["event"] == "interrupted")
        .and_then(|e| e["step"].as_u64())
        .expect("an interrupted event");
    assert!(
        lines.iter().any(|e| e["event"] == "checkpoint" && e["step"] == stopped),
        "{lines:?}"
    );
    assert!(stopped < 60);
    // The resumed run starts at the interrupted step and writes the artifact.
    let rest = dir.join("rest.jsonl");
    let run = ember(
        &[
            "compose",
            "--quiet",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--events",
            rest.to_str().unwrap(),
            "--resume",
        ],
        None,
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let first = std::fs::read_to_string(&rest)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "train_step")
        .unwrap();
    assert_eq!(first["step"].as_u64(), Some(stopped));
    assert!(out.is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn moq_eigenvalue_factors_stretch_each_layers_periods() {
    // MoQ 6 → 4 bits, period 1, eigenvalue on the first two layers: at the offset each layer
    // gets 1 + ⌊4·|λ|/max|λ|⌋ (the sharper layer 5), then drops its first bit at step 1 and its
    // second at step 2·factor (the period doubles times the factor).
    let dir = temp_dir("eigen");
    let mut cfg = moq_6_to_4();
    cfg["eigenvalue"] =
        serde_json::json!({ "enabled": true, "layer_num": 2, "max_iter": 3, "layer_name": "bert.encoder.layer" });
    cfg["training"] =
        serde_json::json!({ "steps": 11, "batch_size": 4, "max_seq_len": 24, "lr": 2e-5, "eval_every": 0 });
    let path = dir.join("eigen.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let (out, events) = (dir.join("eigen.ember"), dir.join("events.jsonl"));
    let run = compose_run(&path, &out, &events, &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let lines = read_events(&events);
    let eigen = lines
        .iter()
        .find(|e| e["event"] == "eigenvalue")
        .expect("an eigenvalue event");
    assert_eq!(eigen["step"], 0);
    let layers = eigen["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let factors: Vec<u64> = layers.iter().map(|l| l["factor"].as_u64().unwrap()).collect();
    assert!(
        factors.contains(&5),
        "the sharper layer gets the largest factor: {layers:?}"
    );
    for (b, l) in layers.iter().enumerate() {
        let (e, r, f) = (
            l["eigenvalue"].as_f64().unwrap(),
            l["ratio"].as_f64().unwrap(),
            factors[b],
        );
        assert!(e.is_finite() && (0.0..=1.0).contains(&r), "{l}");
        assert_eq!(f, 1 + (4.0 * r).floor() as u64, "{l}");
        let drops: Vec<(u64, u64)> = lines
            .iter()
            .filter(|x| x["event"] == "bits" && x["group"] == format!("wq1@layer{b}"))
            .map(|x| (x["step"].as_u64().unwrap(), x["bits"].as_u64().unwrap()))
            .collect();
        assert_eq!(drops, [(0, 6), (1, 5), (2 * f, 4)], "layer {b}, factor {f}");
    }
    assert!(out.is_file());
    let _ = std::fs::remove_dir_all(&dir);
}
