//! Scaled dot-product self-attention, one task per (sentence, head), all in f32:
//! `softmax(Q·Kᵀ/√head_dim, padding keys = −∞)·V`, heads written side by side into the context.
//!
//! Keys after a sentence's last real token are skipped outright (right padding costs nothing);
//! masked keys before it get −∞. Padding *queries* are computed like any other (the reference's
//! last hidden state includes them). A sentence without a single real token attends to nothing
//! and gets a zero context (with every key at −∞ the softmax itself is undefined).

use rayon::prelude::*;

use super::Exec;
use super::ops;

/// A raw pointer handed to tasks that write disjoint parts of one exclusively borrowed buffer.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);

impl SharedMut {
    fn ptr(&self) -> *mut f32 {
        self.0
    }
}
// SAFETY: only used for the context buffer, borrowed `&mut` for the whole parallel section, by
// (sentence, head) tasks that write pairwise-disjoint elements.
unsafe impl Send for SharedMut {}
// SAFETY: as above; tasks only copy the pointer.
unsafe impl Sync for SharedMut {}

/// A row-major matrix inside a wider buffer: element `(r, c)` is `data[r·ld + off + c]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub off: usize,
}

/// Shapes of one attention call.
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// `ctx[b·seq + i, h·hd + c]` for every sentence `b`, head `h`; `ctx` is `[batch·seq, heads·hd]`.
pub(crate) fn attention(ex: &Exec, q: View<'_>, k: View<'_>, v: View<'_>, mask: &[u32], d: Dims, ctx: &mut [f32]) {
    let (seq, hd) = (d.seq, d.head_dim);
    let width = d.heads * hd;
    let rows = d.batch * seq;
    for m in [&q, &k, &v] {
        assert!(rows == 0 || m.data.len() >= (rows - 1) * m.ld + m.off + width);
    }
    assert!(ctx.len() >= rows * width && mask.len() >= rows);
    let scale = 1.0 / (hd as f32).sqrt();
    let out = SharedMut(ctx.as_mut_ptr());
    let task = |t: usize| {
        let (b, h) = (t / d.heads, t % d.heads);
        let keep = &mask[b * seq..(b + 1) * seq];
        let keys = keep.iter().rposition(|&m| m != 0).map_or(0, |p| p + 1);
        let row0 = b * seq;
        if keys == 0 {
            for i in 0..seq {
                // SAFETY: row row0 + i, columns h·hd.. of ctx: inside ctx (asserted above) and
                // written by this (b, h) task only.
                unsafe { std::slice::from_raw_parts_mut(out.ptr().add((row0 + i) * width + h * hd), hd) }.fill(0.0);
            }
            return;
        }
        let mut s = vec![0f32; seq * keys];
        let at = |m: &View<'_>| m.off + row0 * m.ld + h * hd;
        // SAFETY: S = scale · Q_bh [seq × hd] · K_bhᵀ [hd × keys]; Q rows row0.. with stride q.ld,
        // K rows row0..row0+keys (K_bhᵀ: row stride 1, column stride k.ld); every read is inside
        // the views (asserted above); S is a task-local [seq × keys] buffer.
        unsafe {
            gemm::gemm(
                seq,
                keys,
                hd,
                s.as_mut_ptr(),
                1,
                keys as isize,
                false,
                q.data.as_ptr().add(at(&q)),
                1,
                q.ld as isize,
                k.data.as_ptr().add(at(&k)),
                k.ld as isize,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        let masked: Vec<usize> = (0..keys).filter(|&j| keep[j] == 0).collect();
        for row in s.chunks_mut(keys) {
            for &j in &masked {
                row[j] = f32::NEG_INFINITY;
            }
            ops::softmax(ex.simd, row);
        }
        // SAFETY: ctx_bh [seq × hd] (row stride width, starting at row row0, column h·hd) = P
        // [seq × keys] · V_bh [keys × hd] (row stride v.ld); reads inside P and the V view, writes
        // inside ctx, to the columns of this (b, h) task only.
        unsafe {
            gemm::gemm(
                seq,
                hd,
                keys,
                out.ptr().add(row0 * width + h * hd),
                1,
                width as isize,
                false,
                s.as_ptr(),
                1,
                keys as isize,
                v.data.as_ptr().add(at(&v)),
                1,
                v.ld as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    let tasks = d.batch * d.heads;
    if ex.parallel() {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}
