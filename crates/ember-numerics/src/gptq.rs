//! GPTQ (Frantar et al., 2022): error-compensating rounding for post-training weight quantization.
//! Columns (input features) are quantized one at a time; each column's rounding error is spread
//! over the not-yet-quantized columns through the inverse Hessian of the layer's reconstruction
//! loss, H = 2·XᵀX/N from calibration inputs X. Scales are those of the symmetric/asymmetric
//! quantizers, computed per input group when the group is entered (so they see the compensated
//! weights). The result is a [`Quantized`] like round-to-nearest's, so packing is unchanged.

use crate::number::{Clip, Numerics};
use rayon::prelude::*;

use super::{GroupLayout, Quantized, Scheme, group_ranges, int};

/// Relative damping added to the Hessian's diagonal (GPTQ's default 1 %).
const DAMP: f64 = 0.01;

/// Quantizes `w` (`[rows, cols]`, row-major, rows = outputs) with GPTQ given the `[cols, cols]`
/// Gram matrix `xtx` = Σ xᵀx of the layer's calibration inputs. Supports integer schemes with
/// per-row or input-group layouts; returns `None` for other schemes or layouts (callers fall back
/// to round-to-nearest) and when the Hessian cannot be factored. `clip` chooses the static group
/// ranges (from the original weights, before the sweep) as [`crate::quantize_with`] does.
#[allow(clippy::too_many_arguments)]
pub fn gptq(
    w: &[f32],
    rows: usize,
    cols: usize,
    xtx: &[f64],
    layout: GroupLayout,
    scheme: Scheme,
    numerics: Numerics,
    clip: Clip,
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
    // The factorization works on J·P·H·Pᵀ·J (P the act-order permutation, J the reversal):
    // built in one pass, so at most two `[cols, cols]` matrices are alive beside the Gram
    // (a 1536-wide FFN down-projection's are 19 MB each).
    let mut reversed = vec![0f64; cols * cols];
    for i in 0..cols {
        let pi = perm[cols - 1 - i];
        for j in 0..cols {
            reversed[i * cols + j] = h[pi * cols + perm[cols - 1 - j]];
        }
    }
    drop(h);
    let u = upper_cholesky_of_reversed(reversed, cols)?;

    let ngroups = cols.div_ceil(group);
    let mut scales = vec![0f32; rows * ngroups];
    let mut zeros = vec![0f32; rows * ngroups];
    let mut codes: Vec<crate::Code> = vec![0; rows * cols];
    // Rows are independent (their scales are their own): quantize them in parallel.
    w.par_chunks_mut(cols)
        .zip(codes.par_chunks_mut(cols))
        .zip(scales.par_chunks_mut(ngroups).zip(zeros.par_chunks_mut(ngroups)))
        .for_each(|((row, row_codes), (row_scales, row_zeros))| {
            let mut tmp: Vec<crate::Code> = vec![0; group];
            for g in 0..ngroups {
                let x: Vec<f32> = row[g * group..((g + 1) * group).min(cols)]
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                let codes = &mut tmp[..x.len()];
                let (s, z) = int::group(&x, bits, asym, numerics, clip, codes);
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
                row_codes[c] = code as crate::Code;
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

/// GPTQ with one Gram matrix per block of output rows: `xtx_blocks[b]` (`[cols, cols]`) is the
/// Gram of the inputs block `b`'s `rows / blocks` rows are read with (e.g. one attention head's
/// mixed inputs for the value projection). Each block is solved on its own, so blocks with
/// equal Gram matrices give exactly [`gptq`]'s result. `None` if `blocks` does not divide `rows`,
/// or for the cases where [`gptq`] returns `None`.
#[allow(clippy::too_many_arguments)]
pub fn gptq_blocks(
    w: &[f32],
    rows: usize,
    cols: usize,
    xtx_blocks: &[Vec<f64>],
    layout: GroupLayout,
    scheme: Scheme,
    numerics: Numerics,
    clip: Clip,
) -> Option<Quantized> {
    let blocks = xtx_blocks.len();
    if blocks == 0 || !rows.is_multiple_of(blocks) || matches!(layout, GroupLayout::Chunks(_)) {
        return None;
    }
    let per = rows / blocks;
    let mut out: Option<Quantized> = None;
    for (b, xtx) in xtx_blocks.iter().enumerate() {
        let part = gptq(
            &w[b * per * cols..(b + 1) * per * cols],
            per,
            cols,
            xtx,
            layout,
            scheme,
            numerics,
            clip,
        )?;
        // Per-row and input-group layouts number groups row by row: blocks of rows concatenate.
        match &mut out {
            None => out = Some(Quantized { rows, ..part }),
            Some(q) => {
                q.codes.extend(part.codes);
                q.scales.extend(part.scales);
                q.zeros.extend(part.zeros);
            }
        }
    }
    out
}

/// U with Uᵀ·U = H⁻¹ (upper Cholesky factor of the inverse), as GPTQ uses it.
///
/// With J the reversal permutation and C the lower Cholesky factor of J·H·J, V = J·C·J is upper
/// triangular with H = V·Vᵀ, so H⁻¹ = V⁻ᵀ·V⁻¹ and U = V⁻¹. One factorization and one triangular
/// inversion, both on contiguous rows (the explicit inverse and a second factorization cost
/// three times as much and walked columns).
#[cfg(test)]
fn upper_cholesky_of_inverse(h: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut reversed = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            reversed[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
        }
    }
    upper_cholesky_of_reversed(reversed, n)
}

/// [`upper_cholesky_of_inverse`] of H given `reversed` = J·H·J, consumed: the factorization
/// overwrites it, and the inverse factor is transposed in place, so two matrices are alive at a
/// time.
fn upper_cholesky_of_reversed(mut reversed: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    cholesky_in_place(&mut reversed, n)?;
    let c = reversed;
    // L = Vᵀ = J·Cᵀ·J is lower triangular: L[i][k] = C[n−1−k][n−1−i].
    let l = |i: usize, k: usize| c[(n - 1 - k) * n + (n - 1 - i)];
    // M = L⁻¹ row by row: M[i] = (eᵢ − Σₖ₍ₖ<ᵢ₎ L[i][k]·M[k]) / L[i][i]; then U = V⁻¹ = Mᵀ.
    let mut m = vec![0f64; n * n];
    for i in 0..n {
        let (done, rest) = m.split_at_mut(i * n);
        let row = &mut rest[..n];
        row[i] = 1.0;
        for k in 0..i {
            let f = l(i, k);
            if f != 0.0 {
                // Row k of M is zero beyond column k.
                for (r, &v) in row[..=k].iter_mut().zip(&done[k * n..k * n + k + 1]) {
                    *r -= f * v;
                }
            }
        }
        let d = l(i, i);
        for r in &mut row[..=i] {
            *r /= d;
        }
    }
    drop(c);
    // U = Mᵀ, in place (M is lower triangular, so U is upper).
    for i in 0..n {
        for j in 0..i {
            m.swap(i * n + j, j * n + i);
        }
    }
    Some(m)
}

/// Overwrites `a` (symmetric positive definite, `[n, n]`) with its lower Cholesky factor (the
/// upper triangle zeroed); `None` if it is not positive definite. Row `i` of the factor needs
/// only rows `< i` of the factor and row `i` of `a`, so the factor can take `a`'s place.
fn cholesky_in_place(a: &mut [f64], n: usize) -> Option<()> {
    for i in 0..n {
        let (done, rest) = a.split_at_mut(i * n);
        let row = &mut rest[..n];
        for j in 0..i {
            row[j] = (row[j] - dot(&row[..j], &done[j * n..j * n + j])) / done[j * n + j];
        }
        let s = row[i] - dot(&row[..i], &row[..i]);
        if s <= 0.0 || !s.is_finite() {
            return None;
        }
        row[i] = s.sqrt();
        row[i + 1..].fill(0.0);
    }
    Some(())
}

/// Σ aᵢ·bᵢ with four running sums (so the compiler can vectorize it).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for t in 0..4 {
            acc[t] += x[t] * y[t];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
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

    #[test]
    fn upper_factor_of_the_inverse_inverts_a_larger_gram_matrix() {
        // H = XᵀX + I for a random 70×37 X (37: not a multiple of the dot product's 4 lanes).
        let (n, d) = (70, 37);
        let x = lcg(n * d, 9);
        let mut h = vec![0f64; d * d];
        for i in 0..d {
            h[i * d + i] = 1.0;
            for j in 0..d {
                h[i * d + j] += (0..n).map(|s| x[s * d + i] as f64 * x[s * d + j] as f64).sum::<f64>();
            }
        }
        let u = upper_cholesky_of_inverse(&h, d).unwrap();
        for i in 0..d {
            for j in 0..i {
                assert_eq!(u[i * d + j], 0.0, "U is upper triangular");
            }
        }
        // (UᵀU)·H = I.
        let inv = |i: usize, j: usize| (0..d).map(|k| u[k * d + i] * u[k * d + j]).sum::<f64>();
        for i in 0..d {
            for j in 0..d {
                let p: f64 = (0..d).map(|k| inv(i, k) * h[k * d + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((p - want).abs() < 1e-9, "({i}, {j}): {p}");
            }
        }
        // Not positive definite: no factor.
        let mut bad = h.clone();
        bad[5 * d + 5] = -1.0;
        assert!(upper_cholesky_of_inverse(&bad, d).is_none());
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
            let g = gptq(&w, rows, cols, &xtx, layout, scheme, Numerics::Ember, Clip::None).unwrap();
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
    fn row_blocks_are_solved_on_their_own_gram_matrices() {
        let (rows, cols, n) = (8, 32, 128);
        let w = lcg(rows * cols, 4);
        let gram = |seed: u64| {
            let x = lcg(n * cols, seed);
            let mut g = vec![0f64; cols * cols];
            for s in 0..n {
                for i in 0..cols {
                    for j in 0..cols {
                        g[i * cols + j] += x[s * cols + i] as f64 * x[s * cols + j] as f64;
                    }
                }
            }
            g
        };
        let (ga, gb) = (gram(5), gram(6));
        let (layout, scheme, n_) = (
            GroupLayout::RowGroups(16),
            Scheme::Asymmetric { bits: 4 },
            Numerics::Ember,
        );
        // Equal Gram matrices in every block: exactly the whole-matrix GPTQ.
        let whole = gptq(&w, rows, cols, &ga, layout, scheme, n_, Clip::None).unwrap();
        let same = gptq_blocks(
            &w,
            rows,
            cols,
            &[ga.clone(), ga.clone()],
            layout,
            scheme,
            n_,
            Clip::None,
        )
        .unwrap();
        assert_eq!(whole, same);
        // Different ones: each half is GPTQ of that half's rows on its own Gram matrix.
        let mixed = gptq_blocks(&w, rows, cols, &[ga.clone(), gb.clone()], layout, scheme, n_, Clip::Mse).unwrap();
        let top = gptq(&w[..4 * cols], 4, cols, &ga, layout, scheme, n_, Clip::Mse).unwrap();
        let bottom = gptq(&w[4 * cols..], 4, cols, &gb, layout, scheme, n_, Clip::Mse).unwrap();
        assert_eq!(mixed.codes, [top.codes, bottom.codes].concat());
        assert_eq!(mixed.scales, [top.scales, bottom.scales].concat());
        assert_eq!(mixed.zeros, [top.zeros, bottom.zeros].concat());
        assert_eq!((mixed.rows, mixed.scales.len()), (rows, layout.groups(rows, cols)));
        // Blocks must divide the rows.
        assert!(
            gptq_blocks(
                &w,
                rows,
                cols,
                &[ga.clone(), ga.clone(), ga],
                layout,
                scheme,
                n_,
                Clip::None
            )
            .is_none()
        );
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
                Numerics::Ember,
                Clip::None
            )
            .is_none()
        );
    }
}
