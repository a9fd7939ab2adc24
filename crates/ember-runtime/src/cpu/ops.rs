//! The engine's f32 element-wise and row operations: `exp`, `erf`, GELU, softmax, LayerNorm (with
//! the residual add fused), written branch-free so LLVM vectorizes them.
//!
//! Every operation is one `#[inline(always)]` body compiled twice by [`simd_fn!`]: once inside an
//! `avx2,fma` target-feature function (chosen at run time when the CPU has them; `mul_add` is then
//! one `vfmadd` and the element-wise loops become 8-lane AVX2 code) and once for any CPU (where
//! `mul_add` is a correctly rounded libm `fmaf`). Reductions (sum, max, min/max) are written with
//! explicit AVX2 intrinsics on the fast path — LLVM does not vectorize float reductions on its own —
//! and with the same 8 lanes, combined in the same order, on the portable one. Both paths compute
//! the same correctly rounded operations in the same order, so they agree bit for bit.
//!
//! Accuracy (tests below, against f64 references): `exp` ≤ 2 ulp on the range it is used on,
//! `erf` ≤ 1e-7 relative (Norbert Juffa's faithfully rounded `erff` polynomials), GELU
//! `x·(1 + erf(x/√2))/2` as the reference model writes it.

/// Which compiled copy of the element-wise code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Simd {
    /// Any CPU (`mul_add` is then libm's `fmaf`: slow, but the same results).
    Portable,
    /// AVX2 + FMA: 8 lanes.
    Avx2,
    /// AVX-512F: the same code 16 lanes wide. GELU's and `exp`'s polynomial chains are
    /// latency-bound, so twice the lanes in flight nearly halves their time (Zen 4 runs 512-bit
    /// operations as two 256-bit halves, but one instruction in the out-of-order window).
    Avx512,
}

impl Simd {
    /// The copy that matches `isa`: portable for [`Isa::Scalar`], AVX2 for [`Isa::Avx2`], AVX-512
    /// for [`Isa::Avx512Vnni`] when the CPU has AVX-512F/VL (else AVX2).
    pub(crate) fn for_isa(isa: ember_kernels::Isa) -> Simd {
        use ember_kernels::Isa;
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = Isa::Avx2.is_supported();
            let avx512 =
                std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl");
            match isa {
                Isa::Avx512Vnni if avx2 && avx512 => Simd::Avx512,
                Isa::Avx2 | Isa::Avx512Vnni if avx2 => Simd::Avx2,
                _ => Simd::Portable,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = isa;
            Simd::Portable
        }
    }

    /// Whether AVX2 intrinsics may run (the reductions below).
    #[inline(always)]
    pub(crate) fn has_avx2(self) -> bool {
        self != Simd::Portable
    }

    /// Every copy this CPU can run (tests compare them).
    #[cfg(test)]
    pub(crate) fn all() -> Vec<Simd> {
        use ember_kernels::Isa;
        let mut v = vec![Simd::Portable];
        for isa in [Isa::Avx2, Isa::Avx512Vnni] {
            let s = Simd::for_isa(isa);
            if !v.contains(&s) {
                v.push(s);
            }
        }
        v
    }
}

/// Defines `pub(crate) fn $name(simd: Simd, args…)` that runs `$body` compiled for the chosen
/// [`Simd`] level (the engine picks only levels the CPU supports). Inside the body the level
/// (named first: `fn name(simd; args…)`) is a constant of each copy (for the reductions below).
macro_rules! simd_fn {
    ($(#[$meta:meta])* fn $name:ident($simd:ident; $($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        pub(crate) fn $name($simd: $crate::cpu::ops::Simd, $($arg: $ty),*) $(-> $ret)? {
            use $crate::cpu::ops::Simd;
            #[inline(always)]
            #[allow(unused_variables)]
            fn body($simd: Simd, $($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                body(Simd::Avx2, $($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
            fn avx512($($arg: $ty),*) $(-> $ret)? {
                body(Simd::Avx512, $($arg),*)
            }
            match $simd {
                // SAFETY: the engine only selects a level the CPU supports (`Simd::for_isa`).
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => unsafe { avx2($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 => unsafe { avx512($($arg),*) },
                _ => body(Simd::Portable, $($arg),*),
            }
        }
    };
}
pub(crate) use simd_fn;

/// `eˣ` for finite `x`: `x = n·ln2 + r` (Cody–Waite, two constants), Cephes' degree-6 polynomial
/// on `|r| ≤ ln2/2`, `2ⁿ` built in the exponent bits. Below −87.3 the result is 0 (so `e^−∞ = 0`,
/// which masked attention scores rely on); above 88.3 it saturates near `f32::MAX`.
#[inline(always)]
#[allow(clippy::excessive_precision)] // coefficients as published
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0.693359375, exact in 9 bits
    const LN2_LO: f32 = -2.121_944_4e-4; // ln2 − LN2_HI
    // 1.5·2²³: adding it rounds to an integer (ties to even) held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.3);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = n.mul_add(-LN2_HI, xc);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5.000_000_1e-1);
    let y = (p * r).mul_add(r, r) + 1.0;
    // n ∈ [−126, 127] after the clamp: 2ⁿ is a normal float.
    let bits = (t.to_bits() as i32).wrapping_sub(0x4B40_0000).wrapping_add(127) << 23;
    let v = y * f32::from_bits(bits as u32);
    if x < -87.3 { 0.0 } else { v }
}

/// `erf(a)`: Norbert Juffa's faithfully rounded single-precision approximation
/// (<https://stackoverflow.com/a/35148199>, max error < 1 ulp with an accurate `exp`): an odd
/// polynomial below |a| = 0.9277, `1 − exp(poly(|a|))` above. Both branches are computed and
/// selected, so the function vectorizes.
#[inline(always)]
#[allow(clippy::excessive_precision)] // coefficients as published
pub(crate) fn erf(a: f32) -> f32 {
    let t = a.abs();
    // Tail: erf(|a|) = 1 − exp(p(|a|)); |a| ≥ 4 gives exactly 1, clamp so huge inputs stay finite.
    let tc = t.min(10.0);
    let sc = tc * tc;
    let mut r = (-1.728_534_7e-5f32).mul_add(tc, 3.831_971_3e-4);
    let u = (-3.883_964_4e-3f32).mul_add(tc, 2.425_462_2e-2);
    r = r.mul_add(sc, u);
    r = r.mul_add(tc, -1.067_778_8e-1);
    r = r.mul_add(tc, -6.348_466_9e-1);
    r = r.mul_add(tc, -1.287_175_1e-1);
    r = r.mul_add(tc, -tc);
    let tail = (1.0 - exp(r)).copysign(a);
    // Core: a + a·q(a²).
    let s = a * a;
    let mut q = -5.967_617e-4f32;
    q = q.mul_add(s, 4.991_194_2e-3);
    q = q.mul_add(s, -2.676_813_5e-2);
    q = q.mul_add(s, 1.128_199_3e-1);
    q = q.mul_add(s, -3.761_253_4e-1);
    q = q.mul_add(s, 1.283_791_7e-1);
    let core = q.mul_add(a, a);
    if t > 0.927_734_4 { tail } else { core }
}

/// GELU with the exact erf, as HF BERT and burn write it: `x · (1 + erf(x/√2)) / 2`.
#[inline(always)]
pub(crate) fn gelu1(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

simd_fn!(
    /// GELU in place.
    fn gelu(simd; x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = gelu1(*v);
        }
    }
);

simd_fn!(
    /// `erf` of every element (tests).
    #[cfg(test)]
    fn erf_slice(simd; x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = erf(*v);
        }
    }
);

/// Reductions over 8 lanes: lane `i` takes elements `i, i+8, …` of the whole 8-chunks, the lanes
/// combine as `((0+4)+(2+6)) + ((1+5)+(3+7))`, then the tail is folded in sequentially. Explicit
/// AVX2 for the AVX2 and AVX-512 levels, the same arithmetic portably otherwise: every level gives
/// the same bits.
mod lanes {
    #[inline(always)]
    pub(crate) fn combine(a: [f32; 8]) -> f32 {
        ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    }

    #[inline(always)]
    pub(crate) fn sum(simd: super::Simd, x: &[f32]) -> f32 {
        let body = x.len() / 8 * 8;
        let mut s = {
            #[cfg(target_arch = "x86_64")]
            if simd.has_avx2() {
                // SAFETY: `simd` is only true inside AVX2 code on a CPU that has it.
                unsafe { avx::sum(&x[..body]) }
            } else {
                portable_sum(&x[..body])
            }
            #[cfg(not(target_arch = "x86_64"))]
            portable_sum(&x[..body])
        };
        for &v in &x[body..] {
            s += v;
        }
        s
    }

    fn portable_sum(x: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        for c in x.chunks_exact(8) {
            for i in 0..8 {
                acc[i] += c[i];
            }
        }
        combine(acc)
    }

    /// `Σ (x − mean)²`, each lane accumulated with a fused multiply-add.
    #[inline(always)]
    pub(crate) fn sum_sq_dev(simd: super::Simd, x: &[f32], mean: f32) -> f32 {
        let body = x.len() / 8 * 8;
        let mut s = {
            #[cfg(target_arch = "x86_64")]
            if simd.has_avx2() {
                // SAFETY: `simd` is only true inside AVX2 code on a CPU that has it.
                unsafe { avx::sum_sq_dev(&x[..body], mean) }
            } else {
                portable_sum_sq_dev(&x[..body], mean)
            }
            #[cfg(not(target_arch = "x86_64"))]
            portable_sum_sq_dev(&x[..body], mean)
        };
        for &v in &x[body..] {
            let d = v - mean;
            s = d.mul_add(d, s);
        }
        s
    }

    fn portable_sum_sq_dev(x: &[f32], mean: f32) -> f32 {
        let mut acc = [0f32; 8];
        for c in x.chunks_exact(8) {
            for i in 0..8 {
                let d = c[i] - mean;
                acc[i] = d.mul_add(d, acc[i]);
            }
        }
        combine(acc)
    }

    /// `(min, max)` of NaN-free values (`(∞, −∞)` when empty).
    #[inline(always)]
    pub(crate) fn min_max(simd: super::Simd, x: &[f32]) -> (f32, f32) {
        let body = x.len() / 8 * 8;
        let (mut mn, mut mx) = {
            #[cfg(target_arch = "x86_64")]
            if simd.has_avx2() {
                // SAFETY: `simd` is only true inside AVX2 code on a CPU that has it.
                unsafe { avx::min_max(&x[..body]) }
            } else {
                portable_min_max(&x[..body])
            }
            #[cfg(not(target_arch = "x86_64"))]
            portable_min_max(&x[..body])
        };
        for &v in &x[body..] {
            mn = if v < mn { v } else { mn };
            mx = if v > mx { v } else { mx };
        }
        (mn, mx)
    }

    fn portable_min_max(x: &[f32]) -> (f32, f32) {
        let (mut mn, mut mx) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in x {
            mn = if v < mn { v } else { mn };
            mx = if v > mx { v } else { mx };
        }
        (mn, mx)
    }

    #[cfg(target_arch = "x86_64")]
    mod avx {
        use std::arch::x86_64::*;

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn lanes(v: __m256) -> [f32; 8] {
            let mut out = [0f32; 8];
            // SAFETY: `out` holds 8 f32.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
            out
        }

        /// `x.len()` is a multiple of 8.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        pub(super) fn sum(x: &[f32]) -> f32 {
            let mut acc = _mm256_setzero_ps();
            for c in x.chunks_exact(8) {
                // SAFETY: `c` holds 8 f32.
                acc = _mm256_add_ps(acc, unsafe { _mm256_loadu_ps(c.as_ptr()) });
            }
            super::combine(lanes(acc))
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        pub(super) fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
            let (mut acc, m) = (_mm256_setzero_ps(), _mm256_set1_ps(mean));
            for c in x.chunks_exact(8) {
                // SAFETY: `c` holds 8 f32.
                let d = _mm256_sub_ps(unsafe { _mm256_loadu_ps(c.as_ptr()) }, m);
                acc = _mm256_fmadd_ps(d, d, acc);
            }
            super::combine(lanes(acc))
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        pub(super) fn min_max(x: &[f32]) -> (f32, f32) {
            let (mut lo, mut hi) = (_mm256_set1_ps(f32::INFINITY), _mm256_set1_ps(f32::NEG_INFINITY));
            for c in x.chunks_exact(8) {
                // SAFETY: `c` holds 8 f32.
                let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
                lo = _mm256_min_ps(lo, v);
                hi = _mm256_max_ps(hi, v);
            }
            let (l, h) = (lanes(lo), lanes(hi));
            let mn = l.iter().fold(f32::INFINITY, |a, &v| if v < a { v } else { a });
            let mx = h.iter().fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
            (mn, mx)
        }
    }
}
pub(crate) use lanes::min_max;

simd_fn!(
    /// Softmax of one row in place. Entries of −∞ (masked keys) get weight exactly 0; a row that
    /// is entirely −∞ (every key masked) becomes all zeros instead of NaN.
    fn softmax(simd; row: &mut [f32]) {
        let m = lanes::min_max(simd, row).1;
        if m == f32::NEG_INFINITY {
            row.iter_mut().for_each(|v| *v = 0.0);
            return;
        }
        for v in row.iter_mut() {
            *v = exp(*v - m);
        }
        let inv = 1.0 / lanes::sum(simd, row);
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
);

simd_fn!(
    /// LayerNorm of one row in place (biased variance, `(x − μ)/√(σ² + eps)·γ + β`, as burn).
    fn layer_norm(simd; x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        norm_row(simd, x, gamma, beta, eps);
    }
);

simd_fn!(
    /// Post-LayerNorm residual block, one row: `x ← LayerNorm(h + x)` (`h` is clobbered).
    fn add_layer_norm(simd; h: &mut [f32], x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        for (hv, &xv) in h.iter_mut().zip(x.iter()) {
            *hv += xv;
        }
        x.copy_from_slice(h);
        norm_row(simd, x, gamma, beta, eps);
    }
);

#[inline(always)]
fn norm_row(simd: Simd, x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len() as f32;
    let mean = lanes::sum(simd, x) / n;
    let var = lanes::sum_sq_dev(simd, x, mean) / n;
    let denom = (var + eps).sqrt();
    for ((v, &g), &b) in x.iter_mut().zip(gamma).zip(beta) {
        *v = ((*v - mean) / denom).mul_add(g, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64: Taylor series for |x| < 3, continued fraction for erfc beyond (both to ~1e-16).
    fn erf64(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            let (mut term, mut s, x2) = (a, a, a * a);
            for n in 1..200 {
                term *= -x2 / n as f64;
                let add = term / (2 * n + 1) as f64;
                s += add;
                if add.abs() < 1e-18 * s.abs() {
                    break;
                }
            }
            s * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = exp(−a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + 2/(a + …)))))
            let mut f = a;
            for k in (1..80).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        v.copysign(x)
    }

    fn grid(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..=n).map(|i| lo + (hi - lo) * i as f32 / n as f32).collect()
    }

    #[test]
    fn f64_erf_reference_is_right() {
        // erf(1) and erf(0.5) to 16 digits (Abramowitz & Stegun table 7.1), erf(3.5) via erfc.
        assert!((erf64(1.0) - 0.842_700_792_949_714_9).abs() < 1e-15);
        assert!((erf64(0.5) - 0.520_499_877_813_046_5).abs() < 1e-15);
        assert!((erf64(3.5) - 0.999_999_256_901_627_7).abs() < 1e-15);
        // continuity where the series hands over to the continued fraction: the central difference
        // equals erf'(3)·2h = 2/√π·e^−9·2h up to O(h³)
        let slope = 2.0 / std::f64::consts::PI.sqrt() * (-9f64).exp();
        assert!((erf64(3.0001) - erf64(2.9999) - 2e-4 * slope).abs() < 1e-13);
    }

    #[test]
    fn exp_is_accurate_on_the_softmax_range() {
        for simd in Simd::all() {
            let mut worst = 0f64;
            for x in grid(-87.0, 0.0, 200_000) {
                let got = {
                    let mut v = [x];
                    softmax_free_exp(simd, &mut v);
                    v[0] as f64
                };
                let want = (x as f64).exp();
                worst = worst.max((got - want).abs() / want);
            }
            assert!(worst < 2.5e-7, "exp relative error {worst:e}");
        }
        let mut v = [f32::NEG_INFINITY, -100.0, 0.0];
        softmax_free_exp(Simd::Portable, &mut v);
        assert_eq!(v, [0.0, 0.0, 1.0]);
    }

    simd_fn!(
        fn softmax_free_exp(simd; x: &mut [f32]) {
            for v in x.iter_mut() {
                *v = exp(*v);
            }
        }
    );

    #[test]
    fn erf_is_within_1e7_relative_of_an_f64_erf() {
        let mut xs = grid(-6.0, 6.0, 400_000);
        xs.extend(grid(-1e-3, 1e-3, 10_000));
        xs.extend([0.0, -0.0, 1e-30, 20.0, -1e30, 0.927_734_4, 0.927_734_5]);
        let mut portable = xs.clone();
        erf_slice(Simd::Portable, &mut portable);
        for simd in Simd::all() {
            let mut fast = xs.clone();
            erf_slice(simd, &mut fast);
            let same = fast.iter().zip(&portable).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{simd:?} and portable erf differ");
        }
        let mut worst = (0f64, 0f32);
        for (&x, &f) in xs.iter().zip(&portable) {
            let want = erf64(x as f64);
            let rel = if want == 0.0 {
                f.abs() as f64
            } else {
                ((f as f64) - want).abs() / want.abs()
            };
            if rel > worst.0 {
                worst = (rel, x);
            }
        }
        assert!(worst.0 <= 1e-7, "erf relative error {:e} at x = {}", worst.0, worst.1);
    }

    #[test]
    fn gelu_matches_an_f64_gelu() {
        let xs = grid(-12.0, 12.0, 200_000);
        let mut got = xs.clone();
        gelu(Simd::Portable, &mut got);
        for simd in Simd::all() {
            let mut fast = xs.clone();
            gelu(simd, &mut fast);
            assert!(
                fast.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{simd:?}"
            );
        }
        for (&x, &g) in xs.iter().zip(&got) {
            let x64 = x as f64;
            let want = 0.5 * x64 * (1.0 + erf64(x64 / 2f64.sqrt()));
            // The formula's `1 + erf` loses relative accuracy where erf → −1 (as the reference's
            // does), so the bound is relative to max(|gelu|, ulp-scale of x).
            let tol = 3e-7 * want.abs().max(x64.abs() * 0.5);
            assert!(
                (g as f64 - want).abs() <= tol.max(1e-30),
                "gelu({x}) = {g}, want {want}"
            );
        }
        let mut edge = [0.0f32, -0.0, 1e30, -1e30];
        gelu(Simd::Portable, &mut edge);
        assert_eq!(edge[0], 0.0);
        assert_eq!(edge[2], 1e30);
        assert_eq!(edge[3], 0.0);
    }

    #[test]
    fn softmax_matches_f64_with_masked_keys() {
        for (simd, len) in Simd::all()
            .into_iter()
            .flat_map(|s| [1usize, 7, 8, 19, 128].map(|l| (s, l)))
        {
            let x: Vec<f32> = (0..len).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
            let masked: Vec<bool> = (0..len).map(|i| len > 1 && i % 3 == 1).collect();
            let mut row: Vec<f32> = x
                .iter()
                .zip(&masked)
                .map(|(&v, &m)| if m { f32::NEG_INFINITY } else { v })
                .collect();
            softmax(simd, &mut row);
            let mx = x
                .iter()
                .zip(&masked)
                .filter(|(_, m)| !**m)
                .map(|(&v, _)| v as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = x
                .iter()
                .zip(&masked)
                .filter(|(_, m)| !**m)
                .map(|(&v, _)| (v as f64 - mx).exp())
                .sum();
            for i in 0..len {
                let want = if masked[i] { 0.0 } else { (x[i] as f64 - mx).exp() / z };
                assert!((row[i] as f64 - want).abs() <= 1e-6 * want + 1e-12, "len {len} i {i}");
                if masked[i] {
                    assert_eq!(row[i], 0.0);
                }
            }
        }
        let mut all_masked = [f32::NEG_INFINITY; 5];
        softmax(Simd::Portable, &mut all_masked);
        assert_eq!(all_masked, [0.0; 5]);
    }

    #[test]
    fn layer_norm_matches_f64() {
        for (simd, d) in Simd::all()
            .into_iter()
            .flat_map(|s| [1usize, 5, 16, 384, 389].map(|d| (s, d)))
        {
            let h: Vec<f32> = (0..d).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.31 + 100.0).collect();
            let x: Vec<f32> = (0..d).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.2).collect();
            let gamma: Vec<f32> = (0..d).map(|i| 1.0 + (i % 5) as f32 * 0.1).collect();
            let beta: Vec<f32> = (0..d).map(|i| (i % 3) as f32 * 0.05 - 0.05).collect();
            let eps = 1e-12f32;
            let (mut hh, mut xx) = (h.clone(), x.clone());
            add_layer_norm(simd, &mut hh, &mut xx, &gamma, &beta, eps);
            let s: Vec<f64> = h.iter().zip(&x).map(|(&a, &b)| (a + b) as f64).collect();
            let mean = s.iter().sum::<f64>() / d as f64;
            let var = s.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
            for i in 0..d {
                let want = (s[i] - mean) / (var + eps as f64).sqrt() * gamma[i] as f64 + beta[i] as f64;
                assert!((xx[i] as f64 - want).abs() < 2e-5, "d {d} i {i}: {} vs {want}", xx[i]);
            }
            let mut plain = s.iter().map(|&v| v as f32).collect::<Vec<_>>();
            layer_norm(simd, &mut plain, &gamma, &beta, eps);
            assert_eq!(plain, xx);
            let (mut hp, mut xp) = (h.clone(), x.clone());
            add_layer_norm(Simd::Portable, &mut hp, &mut xp, &gamma, &beta, eps);
            assert_eq!(xp, xx, "{simd:?} and portable differ");
        }
    }
}
