//! Side-by-side GEMM throughput table: the f32 GEMM Ember's fp32 path uses (the `gemm` crate, as
//! in burn-flex) against every packed kernel, BERT-base and MiniLM linear shapes, 1 and 2 threads.
//!
//! `cargo bench -p ember-kernels --bench gemm_table` (env `EMBER_BENCH_M=1,128` picks batch rows,
//! `EMBER_BENCH_QUICK=1` only the first shape of each model, `EMBER_BENCH_ONLY=i8i8,binary` only
//! those kernel columns, `EMBER_BENCH_COLD=1` evicts the caches before every timed call, as for
//! batch-1 decode of a model whose weights do not fit in L3). GOP/s = 2·M·N·K / median time;
//! "×" columns are ratios to the f32 GEMM measured in the same run with the same thread count.

use std::hint::black_box;

use std::time::{Duration, Instant};

use ember_kernels::*;

/// Median wall time of each closure, measured in interleaved rounds (one timed call of every
/// closure per round, so slow drift from other processes hits all of them alike), each timed call
/// right after an untimed one (every kernel measured with its own operands warm in cache, the
/// f32 GEMM included) — or, with `EMBER_BENCH_COLD=1`, right after evicting the caches: at least
/// 7 rounds and ~0.4 s.
fn median_times(fs: &mut [Box<dyn FnMut() + '_>]) -> Vec<f64> {
    let mut flush = std::env::var("EMBER_BENCH_COLD").is_ok().then(|| vec![1u8; 64 << 20]);
    fs.iter_mut().for_each(|f| f());
    let mut times = vec![Vec::new(); fs.len()];
    let start = Instant::now();
    while times[0].len() < 7 || (start.elapsed() < Duration::from_millis(400) && times[0].len() < 300) {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            match &mut flush {
                // cold: evict the caches (64 MiB > the 32 MiB L3) so weights come from DRAM
                // (read, not written: dirty lines would make the kernel pay their write-back)
                Some(buf) => {
                    black_box(buf.iter().step_by(64).fold(0u8, |a, &b| a ^ b));
                }
                // warm: same cache state for every kernel, its own operands just used
                None => f(),
            }
            let t0 = Instant::now();
            f();
            t.push(t0.elapsed().as_secs_f64());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

fn data(len: usize, seed: u32) -> Vec<f32> {
    // cheap deterministic pseudo-normal-ish values in [-1, 1]
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn f32_gemm(a: &[f32], w: &[f32], y: &mut [f32], m: usize, k: usize, n: usize, threads: usize) {
    let par = if threads <= 1 {
        ::gemm::Parallelism::None
    } else {
        ::gemm::Parallelism::Rayon(threads)
    };
    // SAFETY: a is [m × k] row-major (row stride k, col stride 1); w is [n × k] row-major, read as
    // the [k × n] matrix wᵀ (row stride 1, col stride k); y is [m × n] row-major; all in bounds.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

/// Kernel columns: name and whether it exists in the AVX-512 VNNI variant too.
const KERNELS: [(&str, bool); 8] = [
    ("i8i8", true),
    ("i8i8+q", true),
    ("i8i4", true),
    ("i8i4+q", true),
    ("f32×i4", false),
    ("tern2b", true),
    ("tern3", true),
    ("binary", true),
];

struct Weights {
    w8: PackedInt8,
    w4: PackedInt4,
    wt2: PackedTernary,
    wt3: PackedTernary,
    wb: PackedBinary,
    bias: Vec<f32>,
}

/// One timed call of kernel column `i` on `cfg`.
#[allow(clippy::too_many_arguments)]
fn call(
    i: usize,
    w: &Weights,
    a: &[f32],
    aq: &QuantizedActivations,
    m: usize,
    k: usize,
    y: &mut [f32],
    cfg: &KernelConfig,
) {
    let b = Some(&w.bias[..]);
    match i {
        0 => gemm_i8i8(black_box(aq), &w.w8, b, y, cfg),
        1 => gemm_i8i8(
            &QuantizedActivations::quantize(black_box(a), m, k, cfg),
            &w.w8,
            b,
            y,
            cfg,
        ),
        2 => gemm_i8i4(black_box(aq), &w.w4, b, y, cfg),
        3 => gemm_i8i4(
            &QuantizedActivations::quantize(black_box(a), m, k, cfg),
            &w.w4,
            b,
            y,
            cfg,
        ),
        4 => gemm_f32_i4(black_box(a), m, &w.w4, b, y, cfg),
        5 => gemm_i8_ternary(black_box(aq), &w.wt2, b, y, cfg),
        6 => gemm_i8_ternary(black_box(aq), &w.wt3, b, y, cfg),
        _ => gemm_i8_binary(black_box(aq), &w.wb, b, y, cfg),
    }
}

fn header(title: &str, cols: &[&str]) -> String {
    let mut h = format!("{title}\n\n| shape (K→N) | M | thr | f32 GOP/s |");
    for c in cols {
        h += &format!(" {c} GOP/s (×f32) |");
    }
    h += "\n|---|---|---|---|";
    h += &"---|".repeat(cols.len());
    h
}

fn main() {
    let ms: Vec<usize> = std::env::var("EMBER_BENCH_M")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 128, 512]);
    let quick = std::env::var("EMBER_BENCH_QUICK").is_ok();
    let shapes: &[(&str, usize, usize)] = if quick {
        &[("BERT 768→768", 768, 768), ("MiniLM 384→384", 384, 384)]
    } else {
        &[
            ("BERT 768→768", 768, 768),
            ("BERT 768→3072", 768, 3072),
            ("BERT 3072→768", 3072, 768),
            ("MiniLM 384→384", 384, 384),
            ("MiniLM 384→1536", 384, 1536),
            ("MiniLM 1536→384", 1536, 384),
        ]
    };
    let only: Option<Vec<String>> = std::env::var("EMBER_BENCH_ONLY")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let vnni = Isa::Avx512Vnni.is_supported();
    // (column index, isa) pairs measured in every round, after the f32 GEMM
    let mut cols: Vec<(usize, Isa)> = Vec::new();
    for isa in [Isa::Avx2, Isa::Avx512Vnni] {
        for (i, (name, has_vnni)) in KERNELS.iter().enumerate() {
            let wanted = only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));
            if wanted && isa.is_supported() && (isa == Isa::Avx2 || (*has_vnni && vnni)) {
                cols.push((i, isa));
            }
        }
    }
    println!("int4 = symmetric, group 128, f16 scales; ternary 2-bit (tern2b) and base-3 (tern3)");
    println!("+q = dynamic per-token activation quantization (f32 → int8) included in the time");
    let mut tables: Vec<(Isa, String)> = [Isa::Avx2, Isa::Avx512Vnni]
        .into_iter()
        .filter(|isa| cols.iter().any(|c| c.1 == *isa))
        .map(|isa| {
            let names: Vec<&str> = cols.iter().filter(|c| c.1 == isa).map(|c| KERNELS[c.0].0).collect();
            let title = match isa {
                Isa::Avx2 => "### AVX2 kernels (no VNNI: madd / maddubs sign trick)",
                _ => "### AVX-512 VNNI variant (same kernels, vpdpbusd on 256-bit registers)",
            };
            (isa, header(title, &names))
        })
        .collect();
    for &(name, k, n) in shapes {
        let wf = data(n * k, 1);
        let w = Weights {
            w8: PackedInt8::quantize(&wf, n, k, None).unwrap(),
            w4: PackedInt4::quantize(&wf, n, k, 128, false, ScaleDtype::F16).unwrap(),
            wt2: PackedTernary::quantize(&wf, n, k, TernaryPacking::TwoBit).unwrap(),
            wt3: PackedTernary::quantize(&wf, n, k, TernaryPacking::Base3).unwrap(),
            wb: PackedBinary::quantize(&wf, n, k).unwrap(),
            bias: data(n, 3),
        };
        for &m in &ms {
            let a = data(m * k, 2);
            let y = std::cell::RefCell::new(vec![0f32; m * n]);
            for threads in [1usize, 2] {
                let th = if threads == 1 {
                    Threads::Single
                } else {
                    Threads::Count(threads)
                };
                let aq = QuantizedActivations::quantize(&a, m, k, &KernelConfig::with_threads(th));
                let (w, a, aq, y, wf) = (&w, &a, &aq, &y, &wf);
                let mut fs: Vec<Box<dyn FnMut()>> = vec![Box::new(move || {
                    f32_gemm(black_box(a), wf, &mut y.borrow_mut(), m, k, n, threads)
                })];
                for &(i, isa) in &cols {
                    let cfg = KernelConfig::with_isa(isa, th);
                    fs.push(Box::new(move || call(i, w, a, aq, m, k, &mut y.borrow_mut(), &cfg)));
                }
                let times = median_times(&mut fs);
                let ops = 2.0 * (m * n * k) as f64;
                for (isa, table) in &mut tables {
                    *table += &format!("\n| {name} | {m} | {threads} | {:.1} |", ops / times[0] / 1e9);
                    for (c, t) in cols.iter().zip(&times[1..]) {
                        if c.1 == *isa {
                            *table += &format!(" {:.1} ({:.2}×) |", ops / t / 1e9, times[0] / t);
                        }
                    }
                }
            }
        }
    }
    for (_, t) in tables {
        println!("\n{t}");
    }
}
