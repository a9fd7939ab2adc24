//! Integer weight fake quantization with tensor ops on the weight's own device: what training
//! runs in every forward, without taking the weight to the host.
//!
//! Only the per-group extremes (one or two floats a group) go to the host, where
//! [`numerics::symmetric_params`] / [`numerics::asymmetric_params`] (the formulas the slice
//! quantizer uses) turn them into scales and zero points; the rounding itself runs on the
//! device. The result equals `numerics::dequantize(numerics::quantize(..))` bit for bit (tested
//! below), at any bit width from 2 to 16 (MoQ starts above the 8 bits the artifact stores).

use burn::tensor::{Distribution, Tensor, TensorData};

use crate::numerics::{self, GroupLayout, Numerics};

/// The groups of a `[rows, cols]` weight as a `[groups, len]` reshape of the row-major tensor
/// (every layout's groups are contiguous); `None` for ragged input groups (a `group_size` that
/// does not divide the row).
pub(crate) fn group_shape(rows: usize, cols: usize, layout: GroupLayout) -> Option<[usize; 2]> {
    match layout {
        GroupLayout::Chunks(g) if g > 0 && (rows * cols).is_multiple_of(g) => Some([g, rows * cols / g]),
        GroupLayout::Chunks(_) => None,
        GroupLayout::PerRow => Some([rows, cols]),
        GroupLayout::RowGroups(g) if g >= cols => Some([rows, cols]),
        GroupLayout::RowGroups(g) if g > 0 && cols.is_multiple_of(g) => Some([rows * cols / g, g]),
        GroupLayout::RowGroups(_) => None,
    }
}

/// How the codes are rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoundingNoise {
    /// Round to nearest, ties to even (what clean stores).
    Nearest,
    /// Add U(−½, ½) before rounding (MoQ's stochastic rounding, training only).
    Stochastic,
}

/// `dequantize(quantize(w))` of an integer scheme, computed off the autodiff graph; `None` when
/// the layout cannot be cut into equal groups (the caller then uses the slice quantizer).
///
/// # Shapes
/// - `w`: `[rows, cols]`, a plain (inner) tensor
pub(crate) fn fake_quantize_int(
    w: Tensor<2>,
    bits: u32,
    asymmetric: bool,
    layout: GroupLayout,
    numerics: Numerics,
    noise: RoundingNoise,
) -> Option<Tensor<2>> {
    let [rows, cols] = w.dims();
    let [groups, len] = group_shape(rows, cols, layout)?;
    let device = w.device();
    let x = w.reshape([groups, len]);
    let column = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [groups, 1]), &device);
    let host = |t: Tensor<2>| t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
    let round = |t: Tensor<2>| match noise {
        RoundingNoise::Nearest => t.round(),
        RoundingNoise::Stochastic => (t.clone() + t.random_like(Distribution::Uniform(-0.5, 0.5))).round(),
    };
    // Every code gets `+ 0`, which turns a code of −0 (a small negative value rounded) into +0:
    // the slice quantizer's integer codes have no sign of zero, and clean compares bit for bit.
    let q = if asymmetric {
        let mins = host(x.clone().min_dim(1));
        let maxs = host(x.clone().max_dim(1));
        let (scales, zeros): (Vec<f32>, Vec<f32>) = mins
            .iter()
            .zip(&maxs)
            .map(|(&mn, &mx)| numerics::asymmetric_params(mn, mx, bits, numerics))
            .unzip();
        let safe = column(scales.iter().map(|&s| if s == 0.0 { 1.0 } else { s }).collect());
        let (scale, zero) = (column(scales), column(zeros));
        let top = ((1u64 << bits) - 1) as f32;
        match numerics {
            // code = clamp(round(x/s) + z); value = (code − z)·s
            Numerics::Ember => {
                let code = (round(x / safe) + zero.clone()).clamp(0.0, top) + 0.0;
                (code - zero) * scale
            }
            // code = clamp(round((x − z)/s)); value = code·s + z
            Numerics::Deepspeed => {
                let code = round((x - zero.clone()) / safe).clamp(0.0, top) + 0.0;
                code * scale + zero
            }
        }
    } else {
        let maxs = host(x.clone().abs().max_dim(1));
        // The code range depends on the bits alone.
        let (_, lo, hi) = numerics::symmetric_params(0.0, bits, numerics);
        let scales: Vec<f32> = maxs
            .iter()
            .map(|&m| numerics::symmetric_params(m, bits, numerics).0)
            .collect();
        let safe = column(scales.iter().map(|&s| if s == 0.0 { 1.0 } else { s }).collect());
        (round(x / safe).clamp(lo, hi) + 0.0) * column(scales)
    };
    Some(q.reshape([rows, cols]))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::numerics::{Clip, Scheme};

    fn run(
        w: &[f32],
        shape: [usize; 2],
        bits: u32,
        asym: bool,
        layout: GroupLayout,
        n: Numerics,
        noise: RoundingNoise,
    ) -> Vec<f32> {
        let t = Tensor::<2>::from_data(TensorData::new(w.to_vec(), shape), &Device::flex());
        fake_quantize_int(t, bits, asym, layout, n, noise)
            .expect("equal groups")
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    }

    fn weights(rows: usize, cols: usize, seed: usize) -> Vec<f32> {
        let mut w: Vec<f32> = (0..rows * cols)
            .map(|i| (((i * 7919 + seed * 104_729) % 997) as f32 - 480.0) * 0.00731)
            .collect();
        // A zero group, a constant group and a one-signed group exercise the edge cases.
        w[..8].iter_mut().for_each(|v| *v = 0.0);
        w[8..16].iter_mut().for_each(|v| *v = 0.37);
        w[16..24].iter_mut().for_each(|v| *v = v.abs() + 0.01);
        w
    }

    #[test]
    fn equals_the_slice_quantizer_bit_for_bit() {
        let (rows, cols) = (12, 32);
        let w = weights(rows, cols, 3);
        let layouts = [
            GroupLayout::Chunks(1),
            GroupLayout::Chunks(48),
            GroupLayout::PerRow,
            GroupLayout::RowGroups(8),
            GroupLayout::RowGroups(64),
        ];
        for numerics in [Numerics::Ember, Numerics::Deepspeed] {
            for asymmetric in [false, true] {
                for bits in 3..=8 {
                    for layout in layouts {
                        let got = run(
                            &w,
                            [rows, cols],
                            bits,
                            asymmetric,
                            layout,
                            numerics,
                            RoundingNoise::Nearest,
                        );
                        let scheme = if asymmetric {
                            Scheme::Asymmetric { bits }
                        } else {
                            Scheme::Symmetric { bits }
                        };
                        let want = numerics::dequantize(&numerics::quantize_with(
                            &w,
                            rows,
                            cols,
                            layout,
                            scheme,
                            numerics,
                            Clip::None,
                        ));
                        // Bit for bit, the sign of zeros included (clean compares bits).
                        let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits_of(&got),
                            bits_of(&want),
                            "{numerics:?} asym={asymmetric} {bits} bits {layout:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn above_eight_bits_it_follows_the_same_formulas() {
        // MoQ starts at up to 16 bits: the scale is max/(2^(b−1) − 1) and the error at most half a step.
        let w = weights(4, 16, 1);
        for bits in [9, 12, 16] {
            let got = run(
                &w,
                [4, 16],
                bits,
                false,
                GroupLayout::PerRow,
                Numerics::Ember,
                RoundingNoise::Nearest,
            );
            for (row, (g, x)) in got.chunks(16).zip(w.chunks(16)).enumerate() {
                let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                let step = max / ((1u32 << (bits - 1)) - 1) as f32;
                for (a, b) in g.iter().zip(x) {
                    assert!((a - b).abs() <= step * 0.5 + 1e-7, "row {row}, {bits} bits: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn stochastic_rounding_picks_a_neighbouring_code() {
        Device::flex().seed(7);
        let w = weights(6, 16, 2);
        let quantize = |noise| run(&w, [6, 16], 4, false, GroupLayout::PerRow, Numerics::Ember, noise);
        let (nearest, noisy) = (quantize(RoundingNoise::Nearest), quantize(RoundingNoise::Stochastic));
        let mut moved = 0;
        for (r, (n, s)) in nearest.chunks(16).zip(noisy.chunks(16)).enumerate() {
            let max = w[r * 16..(r + 1) * 16].iter().fold(0f32, |m, v| m.max(v.abs()));
            let step = max / 7.0;
            for (a, b) in n.iter().zip(s) {
                assert!(
                    (a - b).abs() <= step * 1.0001,
                    "row {r}: {a} vs {b} is more than one code apart"
                );
                moved += usize::from(a != b);
            }
        }
        assert!(moved > 0, "the noise moved no code");
    }
}
