//! GPTQ (Frantar et al., 2022): error-compensating rounding for post-training weight quantization.
//! Columns (input features) are quantized one at a time; each column's rounding error is spread
//! over the not-yet-quantized columns through the inverse Hessian of the layer's reconstruction
//! loss, H = 2·XᵀX/N from calibration inputs X. Scales are those of the symmetric/asymmetric
//! quantizers, computed per input group when the group is entered (so they see the compensated
//! weights). The result is a [`Quantized`] like round-to-nearest's, so packing is unchanged.

use ember_config::types::Numerics;
use rayon::prelude::*;

use super::{GroupLayout, Quantized, Scheme, group_ranges, int};

/// Relative damping added to the Hessian's diagonal (GPTQ's default 1 %).
const DAMP: f64 = 0.01;

/// Quantizes `w` (`[rows, cols]`, row-major, rows = outputs) with GPTQ given the `[cols, cols]`
/// Gram matrix `xtx` = Σ xᵀx of the layer's calibration inputs. Supports integer schemes with
/// per-row or input-group layouts; returns `None` for other schemes or layouts (callers fall back
/// to round-to-nearest) and when the Hessian cannot be factored.
pub fn gptq(
    w: &[f32],
    rows: usize,
    cols: usize,
    xtx: &[f64],
    layout: GroupLayout,
    scheme: Scheme,
    numerics: Numerics,
) -> Option<Quantized> {
    let group = match layout {
        GroupLayout::PerRow => cols,
        GroupLayout::RowGroups(g) => g.min(cols),
        GroupLayout::Chunks(_) => return None,
    };
    let (bits, asym) = match scheme {
        Scheme::Symmetric { bits } => (bits, false),
        Scheme::Asymmetric { bits } => (bits, true),
        _ => return None,
    };
    assert_eq!(xtx.len(), cols * cols);
    let mut h = xtx.to_vec();
    let mut w: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    // Inputs that never fire carry no information: their weights are irrelevant, quantize to 0.
    let mean_diag = (0..cols).map(|i| h[i * cols + i]).sum::<f64>() / cols as f64;
    for i in 0..cols {
        if h[i * cols + i] == 0.0 {
            h[i * cols + i] = 1.0;
            for r in 0..rows {
                w[r * cols + i] = 0.0;
            }
        }
    }
    let damp = DAMP * mean_diag.max(1e-12);
    for i in 0..cols {
        h[i * cols + i] += damp;
    }
    // Act-order: quantize the inputs with the largest activations first, while the most
    // columns remain to absorb their error. Group scales are fixed from the original weights
    // up front ("static groups"), so groups stay contiguous in the packed layout.
    let mut perm: Vec<usize> = (0..cols).collect();
    perm.sort_by(|&a, &b| h[b * cols + b].total_cmp(&h[a * cols + a]));
    let mut hp = vec![0f64; cols * cols];
    for (a, &pa) in perm.iter().enumerate() {
        for (b, &pb) in perm.iter().enumerate() {
            hp[a * cols + b] = h[pa * cols + pb];
        }
    }
    let u = upper_cholesky_of_inverse(&hp, cols)?;

    let ngroups = cols.div_ceil(group);
    let mut scales = vec![0f32; rows * ngroups];
    let mut zeros = vec![0f32; rows * ngroups];
    let mut codes = vec![0i32; rows * cols];
    // Rows are independent (their scales are their own): quantize them in parallel.
    w.par_chunks_mut(cols)
        .zip(codes.par_chunks_mut(cols))
        .zip(scales.par_chunks_mut(ngroups).zip(zeros.par_chunks_mut(ngroups)))
        .for_each(|((row, row_codes), (row_scales, row_zeros))| {
            let mut tmp = vec![0i32; group];
            for g in 0..ngroups {
                let x: Vec<f32> = row[g * group..((g + 1) * group).min(cols)]
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                let (s, z) = if asym {
                    int::asymmetric(&x, bits, numerics, &mut tmp[..x.len()])
                } else {
                    int::symmetric(&x, bits, numerics, &mut tmp[..x.len()])
                };
                row_scales[g] = s;
                row_zeros[g] = z;
            }
            let mut wp: Vec<f64> = perm.iter().map(|&c| row[c]).collect();
            for a in 0..cols {
                let c = perm[a];
                let g = c / group;
                let (s, z) = (row_scales[g], row_zeros[g]);
                let x = wp[a] as f32;
                let (code, q) = if asym {
                    let code = int::asymmetric_code(x, s, z, bits, numerics);
                    (code, int::asymmetric_value(code, s, z, numerics))
                } else {
                    let code = int::symmetric_code(x, s, bits, numerics);
                    (code, code as f32 * s)
                };
                row_codes[c] = code;
                let err = (wp[a] - q as f64) / u[a * cols + a];
                let urow = &u[a * cols..(a + 1) * cols];
                for j in a + 1..cols {
                    wp[j] -= err * urow[j];
                }
            }
        });
    if !asym {
        zeros.clear();
    }
    // Reorder the per-row group scales into `group_ranges` order (row-major groups).
    debug_assert_eq!(group_ranges(rows, cols, layout).len(), rows * ngroups);
    Some(Quantized {
        scheme,
        numerics,
        layout,
        rows,
        cols,
        codes,
        scales,
        zeros,
    })
}

/// U with Uᵀ·U = H⁻¹ (upper Cholesky factor of the inverse), as GPTQ uses it.
fn upper_cholesky_of_inverse(h: &[f64], n: usize) -> Option<Vec<f64>> {
    let l = cholesky(h, n)?;
    // H⁻¹ = L⁻ᵀ L⁻¹; invert L (lower triangular) column by column.
    let mut linv = vec![0f64; n * n];
    for i in 0..n {
        linv[i * n + i] = 1.0 / l[i * n + i];
        for j in 0..i {
            let mut s = 0.0;
            for k in j..i {
                s += l[i * n + k] * linv[k * n + j];
            }
            linv[i * n + j] = -s / l[i * n + i];
        }
    }
    let mut inv = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = 0.0;
            for k in i..n {
                s += linv[k * n + i] * linv[k * n + j];
            }
            inv[i * n + j] = s;
            inv[j * n + i] = s;
        }
    }
    // Upper factor of inv: inv = Uᵀ U with U = (lower Cholesky of inv)ᵀ.
    let l2 = cholesky(&inv, n)?;
    let mut u = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            u[j * n + i] = l2[i * n + j];
        }
    }
    Some(u)
}

/// Lower Cholesky factor of a symmetric positive definite matrix, or `None`.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dequantize, quantize};

    #[test]
    fn upper_factor_of_the_inverse_is_right() {
        // H = [[4, 2], [2, 3]] → H⁻¹ = [[3, −2], [−2, 4]] / 8; check Uᵀ·U = H⁻¹.
        let u = upper_cholesky_of_inverse(&[4.0, 2.0, 2.0, 3.0], 2).unwrap();
        assert_eq!(u[2], 0.0);
        let m = |i: usize, j: usize| (0..2).map(|k| u[k * 2 + i] * u[k * 2 + j]).sum::<f64>();
        for (i, j, want) in [(0, 0, 3.0 / 8.0), (0, 1, -2.0 / 8.0), (1, 1, 4.0 / 8.0)] {
            assert!((m(i, j) - want).abs() < 1e-12, "{i}{j}: {}", m(i, j));
        }
    }

    /// Deterministic pseudo-random numbers in [-1, 1).
    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn output_error(w: &[f32], q: &[f32], x: &[f32], rows: usize, cols: usize, n: usize) -> f64 {
        let mut e = 0.0;
        for s in 0..n {
            for r in 0..rows {
                let d: f64 = (0..cols)
                    .map(|c| (w[r * cols + c] - q[r * cols + c]) as f64 * x[s * cols + c] as f64)
                    .sum();
                e += d * d;
            }
        }
        e
    }

    #[test]
    fn gptq_reconstructs_the_layer_output_better_than_round_to_nearest() {
        let (rows, cols, n) = (16, 64, 256);
        let w = lcg(rows * cols, 1);
        // Correlated inputs (a shared component plus noise) are where compensation pays off.
        let base = lcg(n, 2);
        let noise = lcg(n * cols, 3);
        let x: Vec<f32> = (0..n * cols).map(|i| base[i / cols] + 0.3 * noise[i]).collect();
        let mut xtx = vec![0f64; cols * cols];
        for s in 0..n {
            for i in 0..cols {
                for j in 0..cols {
                    xtx[i * cols + j] += x[s * cols + i] as f64 * x[s * cols + j] as f64;
                }
            }
        }
        for (layout, scheme) in [
            (GroupLayout::RowGroups(32), Scheme::Symmetric { bits: 4 }),
            (GroupLayout::PerRow, Scheme::Asymmetric { bits: 3 }),
        ] {
            let rtn = dequantize(&quantize(&w, rows, cols, layout, scheme, Numerics::Ember));
            let g = gptq(&w, rows, cols, &xtx, layout, scheme, Numerics::Ember).unwrap();
            assert!(g.codes.iter().all(|&c| c.abs() <= 15));
            let gq = dequantize(&g);
            let (e_rtn, e_gptq) = (
                output_error(&w, &rtn, &x, rows, cols, n),
                output_error(&w, &gq, &x, rows, cols, n),
            );
            assert!(
                e_gptq < 0.7 * e_rtn,
                "{layout:?} {scheme:?}: GPTQ {e_gptq} vs RTN {e_rtn}"
            );
        }
    }

    #[test]
    fn unsupported_layouts_fall_back() {
        assert!(
            gptq(
                &[1.0; 4],
                2,
                2,
                &[1.0, 0.0, 0.0, 1.0],
                GroupLayout::Chunks(1),
                Scheme::Symmetric { bits: 4 },
                Numerics::Ember
            )
            .is_none()
        );
    }
}
