//! Differential tests: every AVX2 kernel against its scalar reference, on random data, odd shapes
//! and extreme values. Integer kernels must agree bit for bit (identical i32 sums, identical f32
//! epilogues); weight-only kernels (f32 sums in another order) within rounding.

mod common;

use common::*;
use ember_kernels::*;

/// Run one format on one shape in one mode, reference vs every SIMD configuration.
fn check_integer(case: &FormatCase, (m, k, n): (usize, usize, usize), mode: Mode, seed: u64) {
    let mut r = rng(seed);
    let (w, _) = (case.random)(&mut r, n, k, mode);
    let a = activations(&mut r, m, k, mode);
    let bias = seed.is_multiple_of(2).then(|| gaussian(&mut r, n));
    let mut want = vec![0f32; m * n];
    w.linear_quantized(&a, bias.as_deref(), &mut want, &KernelConfig::reference());
    for cfg in simd_configs() {
        let mut got = vec![f32::NAN; m * n];
        w.linear_quantized(&a, bias.as_deref(), &mut got, &cfg);
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                e.to_bits(),
                "{} {mode:?} m×k×n={m}×{k}×{n} {cfg:?}: y[{}][{}] = {g} but the reference gives {e}",
                case.name,
                i / n,
                i % n
            );
        }
    }
}

#[test]
fn every_integer_kernel_equals_its_reference_on_random_data() {
    for (fi, case) in FORMATS.iter().enumerate() {
        for (si, &shape) in SHAPES.iter().enumerate() {
            check_integer(case, shape, Mode::Random, (fi * 100 + si) as u64);
        }
    }
}

#[test]
fn every_integer_kernel_equals_its_reference_on_extreme_values() {
    // ±127 / −8,7 / 0,15 / ±1 weights against ±127 and −128 activations, with zero rows: the
    // worst case for every i16 intermediate (sign trick pairs, int4 and ternary chunk sums).
    for (fi, case) in FORMATS.iter().enumerate() {
        for (si, &shape) in SHAPES.iter().enumerate() {
            check_integer(case, shape, Mode::Extreme, (fi * 100 + si + 7) as u64);
        }
        check_integer(case, (4, 4096, 16), Mode::Extreme, 99);
        for (si, &shape) in [(1, 1000, 16), (2, 256, 9), (6, 4096, 24)].iter().enumerate() {
            check_integer(case, shape, Mode::Saturate, 500 + si as u64);
        }
    }
}

#[test]
fn multithreaded_tiles_equal_the_reference() {
    // 70×600×110 = 4.6M MACs ≥ PARALLEL_MIN_MACS: two row tiles (64 + 6), four panel tiles (the
    // last one partial), so `Threads::Count(2)` really splits the work.
    const { assert!(70 * 600 * 110 >= ember_kernels::gemm::PARALLEL_MIN_MACS) };
    for (fi, case) in FORMATS.iter().enumerate() {
        check_integer(case, (70, 600, 110), Mode::Random, 300 + fi as u64);
    }
}

#[test]
fn weight_only_kernels_match_their_reference_within_rounding() {
    for (fi, case) in FORMATS.iter().enumerate() {
        for (si, &(m, k, n)) in SHAPES.iter().chain(&[(70, 600, 110)]).enumerate() {
            let mut r = rng((fi * 100 + si) as u64 + 5000);
            let (w, _) = (case.random)(&mut r, n, k, Mode::Random);
            let a = gaussian(&mut r, m * k);
            let bias = si.is_multiple_of(2).then(|| gaussian(&mut r, n));
            let mut want = vec![0f32; m * n];
            if !w.linear_weight_only(&a, m, bias.as_deref(), &mut want, &KernelConfig::reference()) {
                continue;
            }
            let tol = abs_gemm(&a, &w.dequantize(), m, k, n);
            for cfg in simd_configs() {
                let mut got = vec![f32::NAN; m * n];
                w.linear_weight_only(&a, m, bias.as_deref(), &mut got, &cfg);
                for i in 0..m * n {
                    let bound = 1e-5 * tol[i] + 1e-6;
                    assert!(
                        (got[i] - want[i]).abs() <= bound,
                        "{} m×k×n={m}×{k}×{n} {cfg:?}: y[{i}] = {} vs reference {} (bound {bound})",
                        case.name,
                        got[i],
                        want[i]
                    );
                }
            }
        }
    }
}

#[test]
fn simd_activation_quantizer_equals_the_reference() {
    let mut r = rng(7);
    for &(m, k) in &[(1, 1), (3, 7), (2, 8), (5, 67), (4, 768), (70, 1000)] {
        let mut x = gaussian(&mut r, m * k);
        // exact ties: x / s lands on k + 0.5 for a row whose max is 127
        if k >= 4 {
            x[0] = 127.0;
            x[1] = 0.5;
            x[2] = -2.5;
            x[3] = 3.5;
        }
        if m > 2 {
            x[2 * k..3 * k].fill(0.0);
        }
        let mut want = (vec![0i8; m * k], vec![0f32; m]);
        quantize_rows_i8_with(&KernelConfig::reference(), &x, m, k, &mut want.0, &mut want.1);
        for cfg in simd_configs() {
            let mut got = (vec![0i8; m * k], vec![0f32; m]);
            quantize_rows_i8_with(&cfg, &x, m, k, &mut got.0, &mut got.1);
            assert_eq!(got, want, "{m}×{k}");
            let q = QuantizedActivations::quantize(&x, m, k, &cfg);
            let r = QuantizedActivations::quantize(&x, m, k, &KernelConfig::reference());
            assert_eq!(q, r);
            let q = QuantizedActivations::quantize_static(&x, m, k, 0.01, &cfg);
            let r = QuantizedActivations::quantize_static(&x, m, k, 0.01, &KernelConfig::reference());
            assert_eq!(q, r);
        }
        if k >= 4 && m > 0 {
            assert_eq!(&want.0[..4], &[127, 0, -2, 4], "round half to even");
        }
    }
}

#[test]
fn thread_counts_do_not_change_results() {
    let case = &FORMATS[0];
    let mut r = rng(11);
    // 130×400×100 = 5.2M MACs: above PARALLEL_MIN_MACS, so `Threads::All` really runs in parallel
    let (w, _) = (case.random)(&mut r, 100, 400, Mode::Random);
    let a = activations(&mut r, 130, 400, Mode::Random);
    let mut y1 = vec![0f32; 130 * 100];
    let mut y2 = vec![1f32; 130 * 100];
    let isa = Isa::detect();
    w.linear_quantized(&a, None, &mut y1, &KernelConfig::with_isa(isa, Threads::Single));
    w.linear_quantized(&a, None, &mut y2, &KernelConfig::with_isa(isa, Threads::All));
    assert_eq!(y1, y2);
}

#[test]
fn empty_dimensions_give_empty_or_bias_only_outputs() {
    for case in FORMATS {
        for &(m, k, n) in &[(0, 5, 3), (2, 5, 0), (2, 0, 3)] {
            let mut r = rng(1);
            let (w, _) = (case.random)(&mut r, n, k, Mode::Random);
            let a = activations(&mut r, m, k, Mode::Random);
            let bias = vec![0.5f32; n];
            let mut cfgs = simd_configs();
            cfgs.push(KernelConfig::reference());
            for cfg in cfgs {
                let mut y = vec![f32::NAN; m * n];
                w.linear_quantized(&a, Some(&bias), &mut y, &cfg);
                assert!(y.iter().all(|&v| v == 0.5), "{} {m}×{k}×{n} {cfg:?}: {y:?}", case.name);
                let x = vec![1.0f32; m * k];
                if w.linear_weight_only(&x, m, Some(&bias), &mut y, &cfg) {
                    assert!(
                        y.iter().all(|&v| v == 0.5),
                        "{} weight-only {m}×{k}×{n} {cfg:?}",
                        case.name
                    );
                }
            }
        }
    }
}
