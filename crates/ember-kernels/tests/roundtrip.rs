//! Packing round-trips exactly for every format, including ragged K (not a multiple of the group,
//! unit or SIMD width) and N (not a multiple of the panel).

mod common;

use common::*;
use ember_kernels::*;

#[test]
fn every_format_round_trips_exactly() {
    for (fi, case) in FORMATS.iter().enumerate() {
        for (si, &(_, k, n)) in SHAPES.iter().enumerate() {
            for mode in [Mode::Random, Mode::Extreme] {
                let mut r = rng((fi * 100 + si) as u64);
                let (w, codes) = (case.random)(&mut r, n, k, mode);
                assert_eq!(w.unpack(), codes, "{} n×k={n}×{k} {mode:?}", case.name);
            }
        }
    }
}

#[test]
fn dequantize_is_code_times_scale() {
    let q: Vec<i8> = vec![1, -2, 3, -4, 5, -6];
    let w = PackedInt8::pack(&q, 2, 3, &[0.5, 2.0], None).unwrap();
    assert_eq!(w.dequantize(), vec![0.5, -1.0, 1.5, -8.0, 10.0, -12.0]);
}

#[test]
fn activation_codes_round_trip_and_dequantize_within_half_a_step() {
    let mut r = rng(3);
    let (m, k) = (5, 77);
    let x = gaussian(&mut r, m * k);
    let q = QuantizedActivations::quantize(&x, m, k, &KernelConfig::default());
    let d = q.dequantize();
    for i in 0..m * k {
        assert!((d[i] - x[i]).abs() <= q.scales()[i / k] * 0.5 + 1e-7, "{i}");
    }
    let codes: Vec<i8> = (0..m).flat_map(|i| q.row(i).to_vec()).collect();
    let again = QuantizedActivations::from_codes(&codes, m, k, q.scales()).unwrap();
    assert_eq!(again, q);
}
