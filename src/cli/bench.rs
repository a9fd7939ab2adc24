//! `ember bench`: latency (batch 1) and throughput (batch B) of a model's forward pass at a fixed
//! sequence length, medians over repeats after warmup, peak memory, and optionally onnxruntime
//! timed on the same inputs in the same invocation (`--peer ort`).
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

use crate::Error;
use crate::eval::data::reference_token_ids;
use crate::eval::load_model;

const CLS: i64 = 101;
const SEP: i64 = 102;

/// Arguments of `ember bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Model: a known name (`minilm-l6`) or an HF model directory.
    #[arg(long)]
    pub model: String,
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
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also time a peer runtime on the same inputs (`ort`: onnxruntime fp32 through
    /// `scripts/peer_ort.sh`, which must be able to run `bench --variant fp32`).
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
}

/// Peer runtimes `ember bench` can time next to Ember.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// onnxruntime fp32 (`scripts/peer_ort.sh bench --variant fp32`).
    Ort,
}

/// One engine's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EngineRow {
    /// What ran (`ember fp32 (burn-flex)`, `onnxruntime 1.32.0 fp32`).
    pub engine: String,
    /// Median latency of a `[1, seq]` forward, ms.
    pub latency_ms: f64,
    /// Median time of a `[batch, seq]` forward, ms.
    pub batch_ms: f64,
    /// `batch / batch_ms`, sentences per second.
    pub sentences_per_s: f64,
    /// Peak resident memory of the process, MB (VmHWM / ru_maxrss).
    pub peak_rss_mb: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub batch: usize,
    pub seq: usize,
    pub threads: usize,
    pub repeats: usize,
    pub ember: EngineRow,
    pub peer: Option<EngineRow>,
    /// Why the peer row is missing, when it was asked for.
    pub peer_error: Option<String>,
}

/// Runs `ember bench`.
pub fn run(args: &BenchArgs, quiet: bool) -> Result<(), Error> {
    let (batch, seq, repeats) = (args.batch as usize, args.seq as usize, args.repeats as usize);
    let threads = args
        .threads
        .map(|t| t as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rows = bench_rows(batch, seq)?;
    // The peer runs first: a child inherits the parent's peak RSS (ru_maxrss survives fork and
    // exec), so spawning it after loading Ember's model would report Ember's memory as the peer's.
    let (peer, peer_error) = match args.peer {
        None => (None, None),
        Some(Peer::Ort) if args.model != "minilm-l6" => {
            let reason = "the onnxruntime peer runs all-MiniLM-L6-v2 only (--model minilm-l6)".to_string();
            eprintln!("peer onnxruntime skipped: {reason}");
            (None, Some(reason))
        }
        Some(Peer::Ort) => match ort_row(&rows, seq, threads, repeats) {
            Ok(row) => (Some(row), None),
            Err(reason) => {
                eprintln!("peer onnxruntime skipped: {reason}");
                (None, Some(reason))
            }
        },
    };
    let assets = Assets::from_env()?.quiet(quiet);
    let model = load_model(&args.model, &assets)?;
    let single = Batch {
        input_ids: rows[0].clone(),
        attention_mask: vec![1; seq],
        batch: 1,
        seq,
    };
    let full = Batch {
        input_ids: rows.concat(),
        attention_mask: vec![1; batch * seq],
        batch,
        seq,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Other(format!("cannot start {threads} threads: {e}")))?;
    let bar = super::embed::progress_bar((2 * (repeats + 1)) as u64, "benchmarking", quiet);
    let time = |b: &Batch, warmup: usize| -> Result<f64, Error> {
        pool.install(|| {
            let mut times = Vec::with_capacity(repeats);
            for i in 0..warmup + repeats {
                let start = Instant::now();
                let out = model.encoder.model.encode(b, &model.encoder.device)?;
                let _ = out.embedding.into_data();
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
    bar.finish_and_clear();
    let ember = EngineRow {
        engine: "ember fp32 (burn-flex)".to_string(),
        latency_ms,
        batch_ms,
        sentences_per_s: batch as f64 / (batch_ms / 1e3),
        peak_rss_mb: peak_rss_mb(),
    };
    let report = BenchReport {
        model: model.name,
        batch,
        seq,
        threads,
        repeats,
        ember,
        peer,
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

/// Peak resident set size of this process in MB (`VmHWM` in `/proc/self/status`; NaN elsewhere).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Times onnxruntime fp32 on the same rows: batch 1 (first row) and the full batch.
fn ort_row(rows: &[Vec<i64>], seq: usize, threads: usize, repeats: usize) -> Result<EngineRow, String> {
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
            .args(["bench", "--variant", "fp32", "--json"])
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
            engine: format!("{runtime} fp32"),
            latency_ms: field(&one, "median_ms")?,
            batch_ms: field(&full, "median_ms")?,
            sentences_per_s: field(&full, "sentences_per_s")?,
            peak_rss_mb: field(&full, "peak_rss_mb")?,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn table(r: &BenchReport) -> String {
    let mut out = format!(
        "{} fp32 forward, seq {}, {} thread(s), median of {} repeats\n{:<28} {:>16} {:>22} {:>14}\n",
        r.model,
        r.seq,
        r.threads,
        r.repeats,
        "engine",
        "1×seq latency ms",
        format!("{}×seq sentences/s", r.batch),
        "peak RSS MB"
    );
    let mut row = |e: &EngineRow| {
        out += &format!(
            "{:<28} {:>16.2} {:>22.2} {:>14.0}\n",
            e.engine, e.latency_ms, e.sentences_per_s, e.peak_rss_mb
        );
    };
    row(&r.ember);
    if let Some(p) = &r.peer {
        row(p);
        out += &format!(
            "{:<28} {:>16.2} {:>22.2}\n",
            "ratio ember / peer",
            r.ember.latency_ms / p.latency_ms,
            r.ember.sentences_per_s / p.sentences_per_s
        );
    }
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
