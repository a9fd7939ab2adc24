//! The CPU engine end to end on a random MiniLM-shaped model (vocab 30522, d 384, 6 layers × 12
//! heads × 32, d_ff 1536, 512 positions): Ember fp32 against W8A8 (int8 per-row weights, dynamic
//! asymmetric 8-bit activations, Ember numerics), W8 weight-only, and W4 (asymmetric, groups of
//! 64) + the same A8, at batch 32×128 and 1×128, on all cores and on one.
//!
//! `cargo bench -p ember-runtime --bench engine`. Medians over ≥ `EMBER_BENCH_REPEATS` (default 5)
//! interleaved rounds: every round runs each variant once, so drift from other processes hits all
//! columns alike; ratios are fp32 time / variant time from the same rounds.
//! `EMBER_BENCH_PROFILE=1` adds the time per phase of one forward pass of each variant;
//! `EMBER_BENCH_SHAPES=1x128` picks shapes, `EMBER_BENCH_THREADS=1` thread counts,
//! `EMBER_BENCH_VARIANTS=fp32,W8A8` variants (the first listed is the ratios' base);
//! `EMBER_BENCH_LINEAR=1` prints the single-thread kernel-only table instead.

use std::time::{Duration, Instant};

use ember_numerics::Numerics;
use ember_numerics::{GroupLayout, Scheme, quantize};
use ember_runtime::{
    ActRange, ActSpec, Architecture, CompressedLinear, CompressedModel, Embeddings, Engine, EngineOptions, Layer,
    LayerArch, LayerNormParams, Meta, Pooling, QuantTensor, Weight,
};

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}

const VOCAB: usize = 30522;
const D: usize = 384;
const LAYERS: usize = 6;
const HEADS: usize = 12;
const HEAD_DIM: usize = 32;
const D_FF: usize = 1536;
const MAX_POS: usize = 512;

fn minilm() -> CompressedModel {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let norm = |rng: &mut Rng| LayerNormParams {
        gamma: (0..D).map(|_| 1.0 + 0.1 * rng.uniform()).collect(),
        beta: rng.vec(D, 0.05),
        eps: 1e-12,
    };
    let layers = (0..LAYERS)
        .map(|i| {
            let lin = |suffix: &str, rows: usize, cols: usize, rng: &mut Rng| CompressedLinear {
                name: format!("encoder.layer.{i}.{suffix}"),
                weight: Weight::F32 {
                    rows,
                    cols,
                    values: rng.vec(rows * cols, (3.0 / cols as f32).sqrt()),
                },
                bias: Some(rng.vec(rows, 0.05)),
                act: None,
            };
            Layer {
                query: lin("attention.self.query", D, D, &mut rng),
                key: lin("attention.self.key", D, D, &mut rng),
                value: lin("attention.self.value", D, D, &mut rng),
                attn_out: lin("attention.output.dense", D, D, &mut rng),
                attn_norm: norm(&mut rng),
                ffn_in: lin("intermediate.dense", D_FF, D, &mut rng),
                ffn_out: lin("output.dense", D, D_FF, &mut rng),
                out_norm: norm(&mut rng),
            }
        })
        .collect();
    let table = |rng: &mut Rng, rows: usize| Weight::F32 {
        rows,
        cols: D,
        values: rng.vec(rows * D, 0.1),
    };
    CompressedModel {
        arch: Architecture {
            family: "bert".into(),
            name: "minilm-shaped".into(),
            vocab_size: VOCAB,
            d_model: D,
            max_positions: MAX_POS,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            max_seq_length: 256,
            pooling: Pooling::MeanNormalized,
            layers: vec![
                LayerArch {
                    n_heads: HEADS,
                    head_dim: HEAD_DIM,
                    d_ff: D_FF,
                };
                LAYERS
            ],
            kept_layers: (0..LAYERS).collect(),
        },
        embeddings: Embeddings {
            word: table(&mut rng, VOCAB),
            position: table(&mut rng, MAX_POS),
            token_type: table(&mut rng, 2),
            norm: norm(&mut rng),
        },
        layers,
        tokenizer: None,
        meta: Meta::default(),
    }
}

/// Every Linear of `m` quantized (embeddings stay f32, as in the recipes).
fn variant(m: &CompressedModel, scheme: Scheme, layout: GroupLayout, act: Option<ActSpec>) -> CompressedModel {
    let mut m = m.clone();
    for l in &mut m.layers {
        for lin in l.linears_mut() {
            let (rows, cols) = (lin.out_features(), lin.in_features());
            let q = quantize(&lin.weight.to_f32(), rows, cols, layout, scheme, Numerics::Ember);
            lin.weight = Weight::Quant(QuantTensor::from_quantized(&q).expect("packable"));
            lin.act = act;
        }
    }
    m
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_list<T>(name: &str, default: Vec<T>, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    match std::env::var(name) {
        Ok(s) => s.split(',').filter_map(|p| parse(p.trim())).collect(),
        Err(_) => default,
    }
}

/// `EMBER_BENCH_LINEAR=1`: single products on MiniLM's linear shapes, all cores (rayon's global
/// pool): the f32 GEMM with the weight `[n, k]` (as the engine stores it) or transposed `[k, n]`,
/// with `gemm`'s own threading or with rows split per thread; the int8 kernel (pre-quantized
/// activations) and the weight-only int8 kernel (f32 activations), each with its own threading or
/// with rows split per thread.
fn linear_table() {
    use ember_kernels::{KernelConfig, PackedInt8, PackedWeights, QuantizedActivations, Threads};
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    let single = KernelConfig::with_threads(Threads::Single);
    let all = KernelConfig::with_threads(Threads::All);
    println!("{threads} threads, GOP/s");
    println!(
        "| K→N | M | f32 [n,k] gemm-threads | f32 [n,k] row chunks | f32 [k,n] gemm-threads | f32 [k,n] row chunks | i8i8 kernel-threads | i8i8 row chunks | f32×i8 kernel-threads | f32×i8 row chunks |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut rng = Rng(77);
    let f32_gemm =
        |x: &[f32], m: usize, k: usize, w: &[f32], n: usize, y: &mut [f32], t: bool, par: gemm::Parallelism| {
            let (rcs, rrs) = if t { (1, n as isize) } else { (k as isize, 1) };
            // SAFETY: x [m × k], w [n × k] or [k × n], y [m × n], all row-major and in bounds.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    y.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    rcs,
                    rrs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            }
        };
    for (k, n) in [(384, 1152), (384, 384), (384, 1536), (1536, 384)] {
        let w = rng.vec(n * k, 0.1);
        let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let packed = PackedWeights::Int8(PackedInt8::quantize(&w, n, k, None).unwrap());
        for m in [128usize, 4096] {
            let x = rng.vec(m * k, 1.0);
            let rows = (m / (4 * threads)).max(64);
            let a = QuantizedActivations::quantize(&x, m, k, &all);
            let chunks: Vec<QuantizedActivations> = x
                .chunks(rows * k)
                .map(|c| QuantizedActivations::quantize(c, c.len() / k, k, &single))
                .collect();
            let mut y = vec![0f32; m * n];
            let time = |f: &mut dyn FnMut()| {
                f();
                let mut t: Vec<f64> = (0..7)
                    .map(|_| {
                        let t0 = Instant::now();
                        f();
                        t0.elapsed().as_secs_f64()
                    })
                    .collect();
                2.0 * (m * n * k) as f64 / median(&mut t) / 1e9
            };
            let mut cols = Vec::new();
            for t in [false, true] {
                let wv = if t { &wt } else { &w };
                cols.push(time(&mut || {
                    f32_gemm(&x, m, k, wv, n, &mut y, t, gemm::Parallelism::Rayon(threads))
                }));
                cols.push(time(&mut || {
                    x.par_chunks(rows * k)
                        .zip(y.par_chunks_mut(rows * n))
                        .for_each(|(xc, yc)| f32_gemm(xc, xc.len() / k, k, wv, n, yc, t, gemm::Parallelism::None))
                }));
            }
            cols.push(time(&mut || packed.linear_quantized(&a, None, &mut y, &all)));
            cols.push(time(&mut || {
                chunks
                    .par_iter()
                    .zip(y.par_chunks_mut(rows * n))
                    .for_each(|(c, yc)| packed.linear_quantized(c, None, yc, &single))
            }));
            cols.push(time(&mut || {
                packed.linear_weight_only(&x, m, None, &mut y, &all);
            }));
            cols.push(time(&mut || {
                x.par_chunks(rows * k)
                    .zip(y.par_chunks_mut(rows * n))
                    .for_each(|(xc, yc)| {
                        packed.linear_weight_only(xc, xc.len() / k, None, yc, &single);
                    })
            }));
            println!(
                "| {k}→{n} | {m} | {} |",
                cols.iter().map(|g| format!("{g:.1}")).collect::<Vec<_>>().join(" | ")
            );
        }
    }
}

fn main() {
    if std::env::var("EMBER_BENCH_LINEAR").is_ok() {
        linear_table();
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let repeats: usize = std::env::var("EMBER_BENCH_REPEATS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let shapes = env_list("EMBER_BENCH_SHAPES", vec![(32usize, 128usize), (1, 128)], |p| {
        let (b, s) = p.split_once('x')?;
        Some((b.parse().ok()?, s.parse().ok()?))
    });
    let thread_counts = env_list("EMBER_BENCH_THREADS", vec![cores, 1], |p| p.parse().ok());
    let profile = std::env::var("EMBER_BENCH_PROFILE").is_ok();

    let t0 = Instant::now();
    let fp32 = minilm();
    let a8 = ActSpec {
        bits: 8,
        symmetric: false,
        numerics: Numerics::Ember,
        range: ActRange::Dynamic,
    };
    let models = [
        ("fp32", fp32.clone()),
        (
            "W8A8",
            variant(&fp32, Scheme::Symmetric { bits: 8 }, GroupLayout::PerRow, Some(a8)),
        ),
        (
            "W8",
            variant(&fp32, Scheme::Symmetric { bits: 8 }, GroupLayout::PerRow, None),
        ),
        (
            "W4g64+A8",
            variant(
                &fp32,
                Scheme::Asymmetric { bits: 4 },
                GroupLayout::RowGroups(64),
                Some(a8),
            ),
        ),
    ];
    let wanted = env_list("EMBER_BENCH_VARIANTS", Vec::new(), |p| Some(p.to_string()));
    let models: Vec<_> = models
        .into_iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.iter().any(|w| w == name))
        .collect();
    eprintln!("models built in {:.1} s", t0.elapsed().as_secs_f64());

    println!(
        "Ember CPU engine, random MiniLM-shaped model ({LAYERS} layers, d {D}, {HEADS}×{HEAD_DIM} heads, d_ff {D_FF}), {} cores; median ms of ≥ {repeats} interleaved rounds, ratio = fp32 / variant",
        cores
    );
    println!();
    print!("| batch×seq | threads |");
    for (name, _) in &models {
        print!(" {name} ms{} |", if *name == "fp32" { "" } else { " (×fp32)" });
    }
    println!();
    println!("|---|---|{}", "---|".repeat(models.len()));

    let mut profiles = Vec::new();
    for &threads in &thread_counts {
        let t0 = Instant::now();
        let engines: Vec<(&str, Engine)> = models
            .iter()
            .map(|(name, m)| {
                let opts = EngineOptions {
                    threads: Some(threads),
                    isa: None,
                };
                (*name, Engine::new(m, opts).expect("engine"))
            })
            .collect();
        eprintln!(
            "{threads} thread(s): engines built in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        if threads == thread_counts[0] {
            for (name, e) in &engines {
                let k = &e.kernels()[..6];
                eprintln!(
                    "  {name}: {}",
                    k.iter()
                        .map(|k| format!("{} [{}]", k.kernel, k.isa))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
        }
        for &(batch, seq) in &shapes {
            let mut rng = Rng(0xABCDEF ^ (batch * 1000 + seq) as u64);
            let ids: Vec<u32> = (0..batch * seq)
                .map(|_| ((rng.uniform() * 0.5 + 0.5) * (VOCAB - 1) as f32) as u32)
                .collect();
            let mask = vec![1u32; batch * seq];
            let run = |e: &Engine| {
                let out = e.forward(&ids, &mask, batch, seq).expect("forward");
                std::hint::black_box(out);
            };
            engines.iter().for_each(|(_, e)| run(e)); // warm up: scratch buffers, pools, caches
            let mut times = vec![Vec::new(); engines.len()];
            let start = Instant::now();
            while times[0].len() < repeats || (start.elapsed() < Duration::from_secs(2) && times[0].len() < 50) {
                for ((_, e), t) in engines.iter().zip(&mut times) {
                    let t1 = Instant::now();
                    run(e);
                    t.push(t1.elapsed().as_secs_f64() * 1e3);
                }
            }
            let med: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
            print!("| {batch}×{seq} | {threads} |");
            for (i, m) in med.iter().enumerate() {
                if i == 0 {
                    print!(" {m:.1} |");
                } else {
                    print!(" {m:.1} ({:.2}×) |", med[0] / m);
                }
            }
            println!();
            if profile {
                for (name, e) in &engines {
                    e.profile_phases(true);
                    run(e);
                    e.profile_phases(false);
                    profiles.push((format!("{batch}×{seq}, {threads} thr, {name}"), e.take_phase_times()));
                }
            }
        }
    }
    for (what, phases) in profiles {
        let total: f64 = phases.iter().map(|(_, t)| t).sum();
        println!();
        println!("phases of one forward pass, {what} ({:.1} ms timed):", total * 1e3);
        for (name, t) in phases {
            println!("  {name:<20} {:>8.2} ms {:>5.1} %", t * 1e3, 100.0 * t / total);
        }
    }
}
