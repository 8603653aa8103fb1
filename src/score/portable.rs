//! Portable (safe, scalar/auto-vectorised) kernels.

/// Dot product with 8 independent partial sums (vectorisable).
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

/// Row maxima (`qmax[..nq]`) and column maxima (`dmax[..nd]`) of `Q·Dᵀ`.
pub(super) fn f32_scores(
    query: &[f32],
    nq: usize,
    doc: &[f32],
    nd: usize,
    dim: usize,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    qmax[..nq].fill(f32::NEG_INFINITY);
    for (r, dm) in doc.chunks_exact(dim).take(nd).zip(dmax.iter_mut()) {
        let mut m = f32::NEG_INFINITY;
        for (q, qm) in query.chunks_exact(dim).take(nq).zip(qmax.iter_mut()) {
            let s = dot_f32(q, r);
            m = m.max(s);
            *qm = qm.max(s);
        }
        *dm = m;
    }
}

/// `i8` variant: sim = `((dot as f32) * qs) * ds` (the AVX-512 kernel
/// multiplies by `qs * ds` instead: see the module docs of `score`).
#[allow(clippy::too_many_arguments)]
pub(super) fn i8_scores(
    q: &[i8],
    qs: &[f32],
    nq: usize,
    doc: &[i8],
    ds: &[f32],
    nd: usize,
    dim: usize,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    qmax[..nq].fill(f32::NEG_INFINITY);
    for ((r, &dsj), dm) in doc.chunks_exact(dim).take(nd).zip(ds).zip(dmax.iter_mut()) {
        let mut m = f32::NEG_INFINITY;
        for ((qr, &qsi), qm) in q.chunks_exact(dim).take(nq).zip(qs).zip(qmax.iter_mut()) {
            let s = (dot_i8(qr, r) as f32) * qsi * dsj;
            m = m.max(s);
            *qm = qm.max(s);
        }
        *dm = m;
    }
}
