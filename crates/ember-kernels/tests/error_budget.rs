//! Error budgets per format: (1) every kernel equals an f32 GEMM of its own dequantized operands up
//! to float rounding; (2) against the unquantized f32 GEMM the relative Frobenius error stays
//! within the format's budget (`FORMATS[..].quant_budget`, provenance in `tests/common/mod.rs`).

mod common;

use common::*;
use ember_kernels::*;

fn frob(a: &[f32]) -> f64 {
    a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

#[test]
fn every_format_stays_within_its_error_budget() {
    let (m, k, n) = (16, 384, 48);
    let mut r = rng(2024);
    let x = gaussian(&mut r, m * k);
    let wf = gaussian(&mut r, n * k);
    let bias = gaussian(&mut r, n);
    let truth = f32_gemm(&x, &wf, m, k, n, Some(&bias));
    let cfg = KernelConfig::default();
    let xq = QuantizedActivations::quantize(&x, m, k, &cfg);
    for case in FORMATS {
        let w = quantize_like(case.name, &wf, n, k);
        let wd = w.dequantize();
        // (1) the integer kernel is exactly a GEMM of the dequantized operands, up to rounding
        let mut y = vec![0f32; m * n];
        w.linear_quantized(&xq, Some(&bias), &mut y, &cfg);
        let exact = f32_gemm(&xq.dequantize(), &wd, m, k, n, Some(&bias));
        let scale = abs_gemm(&xq.dequantize(), &wd, m, k, n);
        for i in 0..m * n {
            assert!(
                (y[i] - exact[i]).abs() <= 1e-5 * scale[i] + 1e-5,
                "{} y[{i}]",
                case.name
            );
        }
        // (2) quantization error vs the unquantized f32 GEMM
        let diff: Vec<f32> = y.iter().zip(&truth).map(|(a, b)| a - b).collect();
        let rel = frob(&diff) / frob(&truth);
        eprintln!(
            "{:<20} relative error {rel:.4} (budget {})",
            case.name, case.quant_budget
        );
        assert!(
            rel <= case.quant_budget as f64,
            "{}: relative error {rel} over budget {}",
            case.name,
            case.quant_budget
        );
        // weight-only kernels: f32 activations, only the weight quantization error
        let mut yw = vec![0f32; m * n];
        if w.linear_weight_only(&x, m, Some(&bias), &mut yw, &cfg) {
            let exact = f32_gemm(&x, &wd, m, k, n, Some(&bias));
            let scale = abs_gemm(&x, &wd, m, k, n);
            for i in 0..m * n {
                assert!(
                    (yw[i] - exact[i]).abs() <= 1e-5 * scale[i] + 1e-5,
                    "{} weight-only y[{i}]",
                    case.name
                );
            }
        }
    }
}
