//! `ember bench`: latency (batch 1) and throughput (batch B) of a model's forward pass at a fixed
//! sequence length, medians over repeats after warmup, peak memory and load time, side by side in
//! one run: the model under test (e.g. a `.ember` artifact on Ember's CPU engine), Ember fp32 (the
//! same engine on the uncompressed source model: the baseline of every ratio), burn-flex fp32,
//! and optionally onnxruntime fp32 and dynamic int8 on the same inputs (`--peer ort`).
//!
//! Inputs are real token sequences that need no tokenizer, built exactly as
//! `scripts/peer_ort.py`'s default: row r is the 64 reference sentences' ids (without
//! `[CLS]`/`[SEP]`) concatenated from sentence r on, cut to `seq − 2`, wrapped in `[CLS] … [SEP]`;
//! no padding. The same rows are written to a temporary ids file for the peer.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ember_models::Batch;
use ember_models::assets::Assets;
use serde::Serialize;

use ember_models::{CleanOptions, clean};

use crate::Error;
use crate::eval::data::reference_token_ids;
use crate::eval::load_model;
use crate::runner::{DeviceKind, Runner, is_artifact};

const CLS: i64 = 101;
const SEP: i64 = 102;

/// Arguments of `ember bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Model: a known name (`minilm-l6`), an HF model directory, or a `.ember` artifact.
    #[arg(long)]
    pub model: String,
    /// Where the model under test runs: `cpu` (Ember's engine), `flex`, `wgpu`, `cuda`.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Sentences per batch for the throughput row.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Tokens per sentence (including `[CLS]` and `[SEP]`).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(2..))]
    pub seq: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
    /// Timed repetitions per row (after warmup); medians are reported.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeats: u64,
    /// Skip the burn-flex fp32 row (slow; reported for reference).
    #[arg(long)]
    pub no_burn: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also time a peer runtime on the same inputs (`ort`: onnxruntime fp32 and dynamic int8
    /// per-channel through `scripts/peer_ort.sh`).
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
}

/// Peer runtimes `ember bench` can time next to Ember.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// onnxruntime fp32 and int8 (`scripts/peer_ort.sh bench --variant …`).
    Ort,
}

/// One engine's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EngineRow {
    /// What ran (`ember-cpu fp32`, `ember-cpu w8a8.ember`, `burn-flex fp32`, `onnxruntime 1.23 int8-per-channel`).
    pub engine: String,
    /// Median latency of a `[1, seq]` forward, ms.
    pub latency_ms: f64,
    /// Median time of a `[batch, seq]` forward, ms.
    pub batch_ms: f64,
    /// `batch / batch_ms`, sentences per second.
    pub sentences_per_s: f64,
    /// Peak resident memory of the process after this row, MB (VmHWM / ru_maxrss). Ember's rows
    /// run smallest model first, so each figure is that row's own peak.
    pub peak_rss_mb: f64,
    /// Seconds to load the model (read + prepare), when measured.
    pub load_s: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub batch: usize,
    pub seq: usize,
    pub threads: usize,
    pub repeats: usize,
    /// Every engine timed, in run order; ratios are taken against `baseline` (Ember fp32).
    pub rows: Vec<EngineRow>,
    /// Index into `rows` of Ember's own fp32 engine.
    pub baseline: Option<usize>,
    /// Why a peer row is missing, when one was asked for.
    pub peer_error: Option<String>,
}

/// Runs `ember bench`.
pub fn run(args: &BenchArgs, quiet: bool) -> Result<(), Error> {
    let (batch, seq, repeats) = (args.batch as usize, args.seq as usize, args.repeats as usize);
    let threads = args
        .threads
        .map(|t| t as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let ids = bench_rows(batch, seq)?;
    let assets = Assets::from_env()?.quiet(quiet);
    let artifact = is_artifact(&args.model);
    let source = if artifact {
        ember_runtime::artifact::read_manifest(Path::new(&args.model))?
            .architecture
            .name
            .clone()
    } else {
        args.model.clone()
    };
    let mut rows = Vec::new();
    let mut peer_error = None;
    // The peers run first: a child inherits the parent's peak RSS (ru_maxrss survives fork and
    // exec), so spawning them after loading Ember's models would report Ember's memory as theirs.
    if let Some(Peer::Ort) = args.peer {
        if source != ember_models::assets::MINILM_L6.key {
            let reason = "the onnxruntime peer runs all-MiniLM-L6-v2 only".to_string();
            eprintln!("peer onnxruntime skipped: {reason}");
            peer_error = Some(reason);
        } else {
            for variant in ["fp32", "int8-per-channel"] {
                match ort_row(&ids, seq, threads, repeats, variant) {
                    Ok(row) => rows.push(row),
                    Err(reason) => {
                        eprintln!("peer onnxruntime {variant} skipped: {reason}");
                        peer_error = Some(reason);
                    }
                }
            }
        }
    }
    let single = Batch {
        input_ids: ids[0].clone(),
        attention_mask: vec![1; seq],
        batch: 1,
        seq,
    };
    let full = Batch {
        input_ids: ids.concat(),
        attention_mask: vec![1; batch * seq],
        batch,
        seq,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Other(format!("cannot start {threads} threads: {e}")))?;
    let n_rows = 1 + usize::from(artifact) + usize::from(!args.no_burn);
    let bar = crate::progress::progress_bar((n_rows * 2 * repeats) as u64, "benchmarking", quiet);
    let time_runner = |runner: &Runner, label: String| -> Result<EngineRow, Error> {
        let time = |b: &Batch, warmup: usize| -> Result<f64, Error> {
            pool.install(|| {
                let mut times = Vec::with_capacity(repeats);
                for i in 0..warmup + repeats {
                    let start = Instant::now();
                    let out = runner.forward(b)?;
                    std::hint::black_box(out);
                    if i >= warmup {
                        times.push(start.elapsed().as_secs_f64() * 1e3);
                        bar.inc(1);
                    }
                }
                Ok(median(&mut times))
            })
        };
        let latency_ms = time(&single, 2)?;
        let batch_ms = time(&full, 1)?;
        Ok(EngineRow {
            engine: label,
            latency_ms,
            batch_ms,
            sentences_per_s: batch as f64 / (batch_ms / 1e3),
            peak_rss_mb: crate::memory::peak_rss_mb(),
            load_s: Some(runner.load_seconds),
        })
    };
    // Smallest model first, so each row's peak memory is its own.
    if artifact {
        let runner = Runner::open(&args.model, args.device, Some(threads), &assets)?;
        let label = format!("{} {}", runner.engine_name, runner.name);
        rows.push(time_runner(&runner, label)?);
    }
    let baseline = {
        // Ember fp32: the same CPU engine on the uncompressed source model (DESIGN §8).
        let loaded = load_model(&source, &assets)?;
        let start = Instant::now();
        let fp32 = clean(
            &loaded.encoder.model,
            &CleanOptions {
                tokenizer: Some(read_tokenizer(&loaded.dir)?),
                max_seq_length: Some(loaded.encoder.tokenizer.max_length()),
                ..Default::default()
            },
        )?;
        let device = if artifact { DeviceKind::Cpu } else { args.device };
        let mut runner = Runner::from_compressed(&fp32, &source, device, Some(threads))?;
        runner.load_seconds = start.elapsed().as_secs_f64();
        let label = format!("{} fp32", runner.engine_name);
        rows.push(time_runner(&runner, label)?);
        let baseline = rows.len() - 1;
        if !args.no_burn {
            let runner = Runner {
                name: loaded.name.clone(),
                source: loaded.name.clone(),
                engine_name: "burn-flex".into(),
                backend: crate::runner::Backend::Burn(loaded.encoder),
                artifact: None,
                loaded_dir: Some(loaded.dir.clone()),
                load_seconds: f64::NAN,
            };
            let mut row = time_runner(&runner, "burn-flex fp32".into())?;
            row.load_s = None;
            rows.push(row);
        }
        baseline
    };
    bar.finish_and_clear();
    let report = BenchReport {
        model: args.model.clone(),
        batch,
        seq,
        threads,
        repeats,
        rows,
        baseline: Some(baseline),
        peer_error,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Error::Other(e.to_string()))?
        );
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

fn read_tokenizer(dir: &Path) -> Result<String, Error> {
    let path = dir.join("tokenizer.json");
    std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))
}

/// The benchmark's `[batch, seq]` token rows (see the module docs).
fn bench_rows(batch: usize, seq: usize) -> Result<Vec<Vec<i64>>, Error> {
    let bodies: Vec<Vec<i64>> = reference_token_ids()?
        .into_iter()
        .map(|ids| {
            ids[1..ids.len().saturating_sub(1).max(1)]
                .iter()
                .map(|&i| i64::from(i))
                .collect()
        })
        .collect();
    Ok((0..batch)
        .map(|r| {
            let mut body = Vec::with_capacity(seq);
            let mut k = r;
            while body.len() < seq - 2 {
                body.extend_from_slice(&bodies[k % bodies.len()]);
                k += 1;
            }
            body.truncate(seq - 2);
            let mut row = vec![CLS];
            row.extend(body);
            row.push(SEP);
            row
        })
        .collect())
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    }
}

/// Times an onnxruntime variant (`fp32`, `int8-per-channel`) on the same rows: batch 1 (first
/// row) and the full batch.
fn ort_row(rows: &[Vec<i64>], seq: usize, threads: usize, repeats: usize, variant: &str) -> Result<EngineRow, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/peer_ort.sh");
    if !script.is_file() {
        return Err(format!("{} not found", script.display()));
    }
    let dir = std::env::temp_dir().join(format!("ember-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let run = |rows: &[Vec<i64>], tag: &str| -> Result<serde_json::Value, String> {
        let ids_file = dir.join(format!("ids-{tag}.json"));
        let ids = serde_json::json!({ "input_ids": rows, "attention_mask": vec![vec![1; seq]; rows.len()] });
        std::fs::write(&ids_file, ids.to_string()).map_err(|e| format!("{}: {e}", ids_file.display()))?;
        let output = Command::new("bash")
            .arg(&script)
            .args(["bench", "--variant", variant, "--json"])
            .args(["--threads", &threads.to_string(), "--repeats", &repeats.to_string()])
            .arg("--ids-file")
            .arg(&ids_file)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(format!(
                "{} exited with {}: {}",
                script.display(),
                output.status,
                tail.join(" | ")
            ));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or("");
        serde_json::from_str(line).map_err(|e| format!("unreadable peer output ({e}): {stdout}"))
    };
    let result = (|| {
        let one = run(&rows[..1], "1")?;
        let full = run(rows, "batch")?;
        let field = |v: &serde_json::Value, k: &str| v[k].as_f64().ok_or_else(|| format!("peer output lacks `{k}`"));
        let runtime = full["runtime"].as_str().unwrap_or("onnxruntime").to_string();
        Ok(EngineRow {
            engine: format!("{runtime} {variant}"),
            latency_ms: field(&one, "median_ms")?,
            batch_ms: field(&full, "median_ms")?,
            sentences_per_s: field(&full, "sentences_per_s")?,
            peak_rss_mb: field(&full, "peak_rss_mb")?,
            load_s: None,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn table(r: &BenchReport) -> String {
    let mut out = format!(
        "{}: forward, seq {}, {} thread(s), median of {} repeats\n{:<40} {:>12} {:>16} {:>10} {:>10} {:>9} {:>8}\n",
        r.model,
        r.seq,
        r.threads,
        r.repeats,
        "engine",
        "1×seq ms",
        format!("{}×seq sent/s", r.batch),
        "vs fp32",
        "vs ort i8",
        "peak MB",
        "load s"
    );
    let base = r.baseline.map(|i| &r.rows[i]);
    let ort8 = r.rows.iter().find(|e| e.engine.ends_with("int8-per-channel"));
    let ratio = |e: &EngineRow, b: Option<&EngineRow>| {
        b.map_or("—".to_string(), |b| {
            format!("{:.2}×", e.sentences_per_s / b.sentences_per_s)
        })
    };
    for e in &r.rows {
        out += &format!(
            "{:<40} {:>12.2} {:>16.2} {:>10} {:>10} {:>9.0} {:>8}\n",
            e.engine,
            e.latency_ms,
            e.sentences_per_s,
            ratio(e, base),
            ratio(e, ort8),
            e.peak_rss_mb,
            e.load_s.map_or("—".to_string(), |s| format!("{s:.2}"))
        );
    }
    out += "ratios are throughput (sentences/s) at the batch size; latency is batch 1\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_rows_are_cls_body_sep_of_the_requested_length() {
        let rows = bench_rows(3, 40).unwrap();
        assert_eq!(rows.len(), 3);
        for row in &rows {
            assert_eq!(row.len(), 40);
            assert_eq!((row[0], row[39]), (CLS, SEP));
        }
        assert_ne!(rows[0], rows[1]);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
