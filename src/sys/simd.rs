//! x86_64 SIMD kernels. ALL `unsafe` pointer code of the score module is
//! here. The raw kernels are private `#[target_feature]` functions over
//! slices; `score` (which owns dispatch and scratch, `score/x86.rs`) calls
//! the safe wrappers at the end of this file, which check the CPU features
//! first.
//!
//! Layout: the query is transposed so that one SIMD register holds one
//! coordinate of 16 (AVX-512) or 8 (AVX2) query rows. A doc coordinate is
//! broadcast and FMA'd into one accumulator per (query block, doc row), so a
//! register directly holds the similarities of 16/8 query rows with one doc
//! row: the query-side max is a vertical `max`, and only the doc-side max
//! needs one horizontal reduction per doc row. Tiles are `QB` query blocks x
//! `DB` doc rows of accumulators.
//!
//! `i8`: AVX-512 uses `vpdpbusd` (u8 x i8, 4 products per lane) with the
//! query stored as `q + 128` (u8) and a per-doc-row correction
//! `-128 * sum(d)`; AVX2 sign-extends to i16 and uses `vpmaddwd`.
//! Integer dot products are exact (|acc| <= 255*128*dim < 2^31 for any
//! dim < 65 000).

use core::arch::x86_64::*;
use core::ptr;

/// Shape/scale arguments of the `i8` kernels.
pub(crate) struct I8Args<'a> {
    pub nq: usize,
    pub nd: usize,
    /// Number of k groups (dim/4 for VNNI, dim/2 for madd, rounded up).
    pub dimg: usize,
    /// Doc row stride in elements (`dimg * 4` or `dimg * 2`), zero padded.
    pub doc_stride: usize,
    pub doc_scale: &'a [f32],
}

// ---------------------------------------------------------------- AVX-512

/// Prefetches (into L1) the cache lines of `elems[start..end]` (clamped to
/// the slice). Used one tile ahead so that doc rows streamed from memory
/// overlap with the FMA work of the current tile.
#[inline(always)]
fn prefetch_range<T>(elems: &[T], start: usize, end: usize) {
    let end = end.min(elems.len());
    let step = (64 / core::mem::size_of::<T>()).max(1);
    let p = elems.as_ptr();
    let mut i = start;
    while i < end {
        // SAFETY: i < elems.len(), so the address is inside the slice;
        // prefetch never faults and reads nothing architecturally.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(i).cast()) };
        i += step;
    }
}

/// Prefetches the cache line holding `elems[i]`, if `i` is inside the slice.
#[inline(always)]
fn prefetch_at<T>(elems: &[T], i: usize) {
    if i < elems.len() {
        // SAFETY: i < elems.len(): the address is inside the slice; prefetch
        // never faults and reads nothing architecturally.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(elems.as_ptr().add(i).cast()) };
    }
}

/// Doc tiles ahead of the one computed whose rows the f32 kernel
/// prefetches, one cache line per step of the tile's inner loop (a burst of
/// a whole tile's lines one tile ahead left it waiting for memory: 8.1 ms vs
/// 6.0-6.8 ms for 1000 docs x 64 x 128 on Zen 4). The i8 kernel is bound by
/// its own work, not by memory, and keeps its one-tile burst.
const PREFETCH_TILES: usize = 2;

/// Prefetches (into L1) every cache line of `elems`: the HNSW walk asks
/// for a neighbour's vector one step before it computes its distance.
#[inline(always)]
pub(crate) fn prefetch_all<T>(elems: &[T]) {
    prefetch_range(elems, 0, elems.len());
}

fn mask16(nq: usize, b: usize) -> u16 {
    let rem = nq - b * 16;
    if rem >= 16 {
        0xffff
    } else {
        (1u16 << rem) - 1
    }
}

/// f16 -> f32 for a whole slice (`dst.len() <= src.len()`).
#[target_feature(enable = "avx512f")]
fn f16_to_f32_avx512(src: &[u16], dst: &mut [f32]) -> usize {
    let n = dst.len();
    assert!(src.len() >= n);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n <= src.len() and <= dst.len(); unaligned ops.
        unsafe {
            let h = _mm256_loadu_si256(src.as_ptr().add(i).cast());
            _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
        }
        i += 16;
    }
    i
}

/// Accumulators of a `QB x DB` tile over the full dimension.
#[target_feature(enable = "avx512f")]
#[inline]
fn tile16_f32<const QB: usize, const DB: usize, T>(
    qt: &[f32],
    qstride: usize,
    doc: &[f32],
    dim: usize,
    ahead: &[T],
) -> [[__m512; QB]; DB] {
    let line = 64 / core::mem::size_of::<T>().max(1);
    assert!((QB - 1) * qstride + dim * 16 <= qt.len());
    assert!(DB * dim <= doc.len());
    let (qp, dp) = (qt.as_ptr(), doc.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); QB]; DB];
    for k in 0..dim {
        // one line of the rows `PREFETCH_TILES` ahead per step (DB rows of
        // dim values are at most DB * dim / 16 <= dim lines for DB <= 16)
        prefetch_at(ahead, k * line);
        let mut qv = [_mm512_setzero_ps(); QB];
        for (b, v) in qv.iter_mut().enumerate() {
            // SAFETY: b*qstride + k*16 + 16 <= (QB-1)*qstride + dim*16 <= qt.len().
            *v = unsafe { _mm512_loadu_ps(qp.add(b * qstride + k * 16)) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r*dim + k < DB*dim <= doc.len().
            let dv = _mm512_set1_ps(unsafe { *dp.add(r * dim + k) });
            for (a, q) in row.iter_mut().zip(&qv) {
                *a = _mm512_fmadd_ps(*q, dv, *a);
            }
        }
    }
    acc
}

/// Folds a tile of similarities into the running maxima.
#[target_feature(enable = "avx512f")]
#[inline]
fn epi16<const QB: usize, const DB: usize>(
    sims: &[[__m512; QB]; DB],
    masks: &[u16; QB],
    qm: &mut [__m512; QB],
    dmax: &mut [f32],
) {
    let neg = _mm512_set1_ps(f32::NEG_INFINITY);
    for (row, dm) in sims.iter().zip(dmax.iter_mut()) {
        let mut m = neg;
        for ((q, v), &k) in qm.iter_mut().zip(row).zip(masks) {
            *q = _mm512_max_ps(*q, *v);
            m = _mm512_mask_max_ps(m, k, m, *v);
        }
        *dm = dm.max(_mm512_reduce_max_ps(m));
    }
}

#[target_feature(enable = "avx512f")]
#[inline]
fn store_qmax16<const QB: usize>(qm: &[__m512; QB], qmax: &mut [f32]) {
    assert!(qmax.len() >= QB * 16);
    for (b, v) in qm.iter().enumerate() {
        // SAFETY: b*16 + 16 <= QB*16 <= qmax.len().
        unsafe { _mm512_storeu_ps(qmax.as_mut_ptr().add(b * 16), *v) };
    }
}

/// Doc values the f32 kernel reads a tile at a time: f32 in place, or f16
/// converted per tile into a small buffer that stays in L1 (a conversion of
/// the whole doc first wrote 32 KB per doc and read it back from L2).
trait TileSrc: Copy {
    /// The values of `src` as f32, in `buf` if they need converting.
    ///
    /// # Safety
    /// The CPU has AVX-512 F + BW + VL (the f16 conversion uses them).
    unsafe fn tile<'b>(src: &'b [Self], buf: &'b mut [f32]) -> &'b [f32];
}

impl TileSrc for f32 {
    #[inline(always)]
    unsafe fn tile<'b>(src: &'b [f32], _buf: &'b mut [f32]) -> &'b [f32] {
        src
    }
}

impl TileSrc for u16 {
    #[inline(always)]
    unsafe fn tile<'b>(src: &'b [u16], buf: &'b mut [f32]) -> &'b [f32] {
        let out = &mut buf[..src.len()];
        // SAFETY: the caller guarantees AVX-512 F + BW + VL (`TileSrc::tile`).
        unsafe { f16_tile_avx512(src, out) };
        out
    }
}

/// f16 -> f32 of all of `src` into `dst` (same length), the tail masked.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn f16_tile_avx512(src: &[u16], dst: &mut [f32]) {
    let done = f16_to_f32_avx512(src, dst);
    let rem = dst.len() - done;
    if rem > 0 {
        let m = ((1u32 << rem) - 1) as u16;
        // SAFETY: rem < 16 values from `done` are inside both slices (same
        // length); masked-off lanes are neither read nor written.
        unsafe {
            let h = _mm256_maskz_loadu_epi16(m, src.as_ptr().add(done).cast());
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(done), m, _mm512_cvtph_ps(h));
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
#[inline]
fn group16_f32<const QB: usize, T: TileSrc>(
    qt: &[f32],
    qstride: usize,
    masks: [u16; QB],
    doc: &[T],
    next: &[T],
    nd: usize,
    dim: usize,
    buf: &mut [f32],
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    let mut qm = [_mm512_set1_ps(f32::NEG_INFINITY); QB];
    let doc = &doc[..nd * dim];
    prefetch_range(doc, 8 * dim, 8 * PREFETCH_TILES * dim);
    let mut j = 0;
    while j + 8 <= nd {
        // the rows `PREFETCH_TILES` tiles ahead run on into `next` (the doc
        // scored after this one), so its first tiles are in cache when it starts
        let ahead = ahead_rows(doc, next, (j + 8 * PREFETCH_TILES) * dim, dim);
        // SAFETY: group16_f32 runs only inside f32_avx512, whose wrappers
        // checked AVX-512 F + BW + VL.
        let rows = unsafe { T::tile(&doc[j * dim..(j + 8) * dim], buf) };
        let acc = tile16_f32::<QB, 8, T>(qt, qstride, rows, dim, ahead);
        epi16(&acc, &masks, &mut qm, &mut dmax[j..j + 8]);
        j += 8;
    }
    if j + 4 <= nd {
        // SAFETY: as above.
        let rows = unsafe { T::tile(&doc[j * dim..(j + 4) * dim], buf) };
        let acc = tile16_f32::<QB, 4, T>(qt, qstride, rows, dim, &[]);
        epi16(&acc, &masks, &mut qm, &mut dmax[j..j + 4]);
        j += 4;
    }
    while j < nd {
        // SAFETY: as above.
        let rows = unsafe { T::tile(&doc[j * dim..(j + 1) * dim], buf) };
        let acc = tile16_f32::<QB, 1, T>(qt, qstride, rows, dim, &[]);
        epi16(&acc, &masks, &mut qm, &mut dmax[j..j + 1]);
        j += 1;
    }
    store_qmax16(&qm, qmax);
}

/// f32 kernel over f32 or f16 (`u16` bits) doc values. `qt`: query
/// transposed `[ceil(nq/16)][dim][16]` (zero padded); `next`: the doc scored
/// next (may be empty), whose first rows are prefetched while the last
/// tiles of `doc` are computed; `buf`: scratch of at least `8 * dim` (f16
/// tiles); writes `qmax[..ceil(nq/16)*16]` (lanes >= nq are garbage) and
/// `dmax[..nd]`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn f32_avx512<T: TileSrc>(
    qt: &[f32],
    nq: usize,
    doc: &[T],
    next: &[T],
    nd: usize,
    dim: usize,
    buf: &mut [f32],
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    let nqb = nq.div_ceil(16);
    let qs = dim * 16;
    assert!(qt.len() >= nqb * qs && doc.len() >= nd * dim);
    assert!(qmax.len() >= nqb * 16 && dmax.len() >= nd);
    dmax[..nd].fill(f32::NEG_INFINITY);
    let mut b = 0;
    while b < nqb {
        // a group before the last one is followed by the next group's pass
        // over this same doc
        let then = |width: usize| if b + width >= nqb { next } else { doc };
        if nqb - b >= 2 {
            let masks = [mask16(nq, b), mask16(nq, b + 1)];
            group16_f32::<2, T>(
                &qt[b * qs..],
                qs,
                masks,
                doc,
                then(2),
                nd,
                dim,
                buf,
                &mut qmax[b * 16..],
                dmax,
            );
            b += 2;
        } else {
            group16_f32::<1, T>(
                &qt[b * qs..],
                qs,
                [mask16(nq, b)],
                doc,
                then(1),
                nd,
                dim,
                buf,
                &mut qmax[b * 16..],
                dmax,
            );
            b += 1;
        }
    }
}

/// A `__m512i` as 32 bfloat16 values, the operand type of `vdpbf16ps`.
#[inline(always)]
fn as_bh(v: __m512i) -> __m512bh {
    // SAFETY: both are plain 64-byte vectors, every bit pattern valid for both.
    unsafe { core::mem::transmute::<__m512i, __m512bh>(v) }
}

/// Accumulators of a `QB x DB` bfloat16 tile over the full dimension: a
/// query register holds one dimension pair of 16 query rows (`qt`), the
/// doc row's same pair is broadcast, and `vdpbf16ps` adds both products
/// (twice the multiply-adds of an f32 FMA per instruction).
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
fn tile16_bf16<const QB: usize, const DB: usize>(
    qt: &[u32],
    qstride: usize,
    doc: &[u16],
    dim: usize,
    ahead: &[u16],
) -> [[__m512; QB]; DB] {
    let (pairs, dim2) = (dim / 2, dim.div_ceil(2));
    assert!((QB - 1) * qstride + dim2 * 16 <= qt.len());
    assert!(DB * dim <= doc.len());
    let (qp, dp) = (qt.as_ptr(), doc.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); QB]; DB];
    let load = |k: usize| {
        let mut qv = [_mm512_setzero_si512(); QB];
        for (b, v) in qv.iter_mut().enumerate() {
            // SAFETY: b*qstride + k*16 + 16 <= (QB-1)*qstride + dim2*16 <= qt.len().
            *v = unsafe { _mm512_loadu_si512(qp.add(b * qstride + k * 16).cast()) };
        }
        qv
    };
    for k in 0..pairs {
        // one line (32 values) of the rows `PREFETCH_TILES` ahead per step
        prefetch_at(ahead, k * 32);
        let qv = load(k);
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r*dim + 2k + 1 < (r+1)*dim <= doc.len(): two values
            // read as one unaligned i32 (the even dimension in the low half).
            let pair = unsafe { dp.add(r * dim + 2 * k).cast::<i32>().read_unaligned() };
            let dv = as_bh(_mm512_set1_epi32(pair));
            for (a, q) in row.iter_mut().zip(&qv) {
                *a = _mm512_dpbf16_ps(*a, as_bh(*q), dv);
            }
        }
    }
    if pairs < dim2 {
        // an odd dim's last value alone (the query's high halves are 0)
        let qv = load(pairs);
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r*dim + dim - 1 < DB*dim <= doc.len().
            let last = i32::from(unsafe { *dp.add(r * dim + dim - 1) });
            let dv = as_bh(_mm512_set1_epi32(last));
            for (a, q) in row.iter_mut().zip(&qv) {
                *a = _mm512_dpbf16_ps(*a, as_bh(*q), dv);
            }
        }
    }
    acc
}

/// The doc rows `at..at + 8` (in values, clamped) of `doc`, run on into
/// `next` past the end of `doc`: what the kernels prefetch
/// `PREFETCH_TILES` tiles ahead.
#[inline(always)]
fn ahead_rows<'a, T>(doc: &'a [T], next: &'a [T], at: usize, dim: usize) -> &'a [T] {
    let (s, at) = if at < doc.len() {
        (doc, at)
    } else {
        (next, at - doc.len())
    };
    &s[at.min(s.len())..(at + 8 * dim).min(s.len())]
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
fn group16_bf16<const QB: usize>(
    qt: &[u32],
    qstride: usize,
    masks: [u16; QB],
    doc: &[u16],
    next: &[u16],
    nd: usize,
    dim: usize,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    let mut qm = [_mm512_set1_ps(f32::NEG_INFINITY); QB];
    let doc = &doc[..nd * dim];
    prefetch_range(doc, 8 * dim, 8 * PREFETCH_TILES * dim);
    let mut j = 0;
    while j + 8 <= nd {
        let ahead = ahead_rows(doc, next, (j + 8 * PREFETCH_TILES) * dim, dim);
        let rows = &doc[j * dim..(j + 8) * dim];
        let acc = tile16_bf16::<QB, 8>(qt, qstride, rows, dim, ahead);
        epi16(&acc, &masks, &mut qm, &mut dmax[j..j + 8]);
        j += 8;
    }
    if j + 4 <= nd {
        let acc = tile16_bf16::<QB, 4>(qt, qstride, &doc[j * dim..(j + 4) * dim], dim, &[]);
        epi16(&acc, &masks, &mut qm, &mut dmax[j..j + 4]);
        j += 4;
    }
    while j < nd {
        let acc = tile16_bf16::<QB, 1>(qt, qstride, &doc[j * dim..(j + 1) * dim], dim, &[]);
        epi16(&acc, &masks, &mut qm, &mut dmax[j..j + 1]);
        j += 1;
    }
    store_qmax16(&qm, qmax);
}

/// bfloat16 kernel (`vdpbf16ps`). `qt`: `[ceil(nq/16)][ceil(dim/2)][16]`
/// dimension pairs of the query rounded to bfloat16 (zero padded); `next`:
/// the doc scored next (may be empty), prefetched during the last tiles;
/// writes `qmax[..ceil(nq/16)*16]` (lanes >= nq are garbage) and
/// `dmax[..nd]`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bf16")]
fn bf16_avx512(
    qt: &[u32],
    nq: usize,
    doc: &[u16],
    next: &[u16],
    nd: usize,
    dim: usize,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    let nqb = nq.div_ceil(16);
    let qs = dim.div_ceil(2) * 16;
    assert!(qt.len() >= nqb * qs && doc.len() >= nd * dim);
    assert!(qmax.len() >= nqb * 16 && dmax.len() >= nd);
    dmax[..nd].fill(f32::NEG_INFINITY);
    let mut b = 0;
    while b < nqb {
        // a group before the last one is followed by the next group's pass
        // over this same doc
        let then = |width: usize| if b + width >= nqb { next } else { doc };
        if nqb - b >= 2 {
            let masks = [mask16(nq, b), mask16(nq, b + 1)];
            let (qt, qmax) = (&qt[b * qs..], &mut qmax[b * 16..]);
            group16_bf16::<2>(qt, qs, masks, doc, then(2), nd, dim, qmax, dmax);
            b += 2;
        } else {
            let (qt, qmax) = (&qt[b * qs..], &mut qmax[b * 16..]);
            group16_bf16::<1>(qt, qs, [mask16(nq, b)], doc, then(1), nd, dim, qmax, dmax);
            b += 1;
        }
    }
}

/// `vpsadbw` partial sums of one i8 row, biased: eight u64 lanes that add
/// up to `sum(d + 128)` over the row (`d ^ 0x80 = d + 128` as u8).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn row_sad_i8_avx512(row: &[i8]) -> __m512i {
    let bias = _mm512_set1_epi8(i8::MIN);
    let zero = _mm512_setzero_si512();
    let len = row.len();
    let mut acc = zero;
    let mut k = 0;
    while k + 64 <= len {
        // SAFETY: k + 64 <= row.len().
        let v = unsafe { _mm512_loadu_si512(row.as_ptr().add(k).cast()) };
        acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_xor_si512(v, bias), zero));
        k += 64;
    }
    let rem = len - k;
    if rem != 0 {
        let tail_mask: u64 = (1u64 << rem) - 1;
        // SAFETY: the masked load only touches the `rem` bytes k .. len, all
        // inside `row`; masked-off bytes are not accessed (and cannot fault).
        let v = unsafe { _mm512_maskz_loadu_epi8(tail_mask, row.as_ptr().add(k)) };
        let x = _mm512_maskz_mov_epi8(tail_mask, _mm512_xor_si512(v, bias));
        acc = _mm512_add_epi64(acc, _mm512_sad_epu8(x, zero));
    }
    acc
}

/// Per-row sums of `out.len()` i8 rows of `dim` values (AVX-512BW
/// `vpsadbw` on `d ^ 0x80 = d + 128`, then minus `128 * dim`).
#[target_feature(enable = "avx512f,avx512bw")]
fn row_sums_i8_avx512(data: &[i8], dim: usize, out: &mut [i32]) {
    assert!(data.len() >= out.len() * dim);
    for (o, row) in out.iter_mut().zip(data.chunks_exact(dim)) {
        *o = (_mm512_reduce_add_epi64(row_sad_i8_avx512(row)) - 128 * dim as i64) as i32;
    }
}

/// Sums of 8 i8 rows of `stride` bytes each (`rows.len() >= 8 * stride`),
/// in row order: `vpsadbw` of `d ^ 0x80` per row, then one tree of
/// shuffles and adds for the 8 rows instead of a horizontal sum per row.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn row_sums8_i8_avx512(rows: &[i8], stride: usize) -> __m256i {
    assert!(rows.len() >= 8 * stride);
    let s: [__m512i; 8] =
        core::array::from_fn(|r| row_sad_i8_avx512(&rows[r * stride..(r + 1) * stride]));
    // rows (a, b) -> [a's 4 partials | b's 4 partials]
    let pair = |a: __m512i, b: __m512i| {
        _mm512_add_epi64(
            _mm512_shuffle_i64x2::<0b01_00_01_00>(a, b),
            _mm512_shuffle_i64x2::<0b11_10_11_10>(a, b),
        )
    };
    let (t01, t23, t45, t67) = (
        pair(s[0], s[1]),
        pair(s[2], s[3]),
        pair(s[4], s[5]),
        pair(s[6], s[7]),
    );
    // (t01, t23) -> quarter k holds row k's 2 partials
    let quad = |a: __m512i, b: __m512i| {
        _mm512_add_epi64(
            _mm512_shuffle_i64x2::<0b10_00_10_00>(a, b),
            _mm512_shuffle_i64x2::<0b11_01_11_01>(a, b),
        )
    };
    let (u0, u1) = (quad(t01, t23), quad(t45, t67));
    // quarter k: [row k, row k + 4]
    let w = _mm512_add_epi64(_mm512_unpacklo_epi64(u0, u1), _mm512_unpackhi_epi64(u0, u1));
    let order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    let w = _mm512_permutexvar_epi64(order, w);
    let w = _mm512_sub_epi64(w, _mm512_set1_epi64(128 * stride as i64));
    _mm512_cvtepi64_epi32(w)
}

/// The maxima of 8 vectors of 16 lanes, in order (one tree of shuffles
/// and maxima instead of a horizontal reduction per vector).
#[target_feature(enable = "avx512f")]
#[inline]
fn hmax8x16(v: &[__m512; 8]) -> __m256 {
    // (a, b) -> [a's 8 partials | b's 8 partials]
    let pair = |a: __m512, b: __m512| {
        _mm512_max_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        )
    };
    let (t01, t23, t45, t67) = (
        pair(v[0], v[1]),
        pair(v[2], v[3]),
        pair(v[4], v[5]),
        pair(v[6], v[7]),
    );
    // quarter k holds vector k's 4 partials
    let quad = |a: __m512, b: __m512| {
        _mm512_max_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    };
    let (u0, u1) = (quad(t01, t23), quad(t45, t67));
    // quarter k: [k, k, k + 4, k + 4] partials
    let w = _mm512_max_ps(
        _mm512_shuffle_ps::<0b01_00_01_00>(u0, u1),
        _mm512_shuffle_ps::<0b11_10_11_10>(u0, u1),
    );
    // quarter k: lane 0 = max of k, lane 2 = max of k + 4
    let w = _mm512_max_ps(w, _mm512_shuffle_ps::<0b10_11_00_01>(w, w));
    let order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castps512_ps256(_mm512_permutexvar_ps(order, w))
}

/// Integer accumulators of a `QB x DB` VNNI tile, starting from `init`
/// (each row's `-128 * sum(d)` correction of the `q + 128` query).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn tile16_i8<const QB: usize, const DB: usize>(
    qt: &[u8],
    qstride: usize,
    doc: &[i8],
    dstride: usize,
    dim4: usize,
    init: &[i32],
) -> [[__m512i; QB]; DB] {
    assert!((QB - 1) * qstride + dim4 * 64 <= qt.len());
    assert!(dstride >= dim4 * 4 && (DB - 1) * dstride + dim4 * 4 <= doc.len());
    assert!(init.len() >= DB);
    let (qp, dp) = (qt.as_ptr(), doc.as_ptr());
    let mut acc = [[_mm512_setzero_si512(); QB]; DB];
    for (row, &c) in acc.iter_mut().zip(init) {
        *row = [_mm512_set1_epi32(c); QB];
    }
    for g in 0..dim4 {
        let mut qv = [_mm512_setzero_si512(); QB];
        for (b, v) in qv.iter_mut().enumerate() {
            // SAFETY: b*qstride + g*64 + 64 <= (QB-1)*qstride + dim4*64 <= qt.len().
            *v = unsafe { _mm512_loadu_si512(qp.add(b * qstride + g * 64).cast()) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r*dstride + g*4 + 4 <= (DB-1)*dstride + dim4*4 <= doc.len();
            // read_unaligned has no alignment requirement.
            let w = unsafe { ptr::read_unaligned(dp.add(r * dstride + g * 4).cast::<i32>()) };
            let dv = _mm512_set1_epi32(w);
            for (a, q) in row.iter_mut().zip(&qv) {
                *a = _mm512_dpbusd_epi32(*a, *q, dv);
            }
        }
    }
    acc
}

/// One `QB x DB` tile at doc row `j`: integer dot products, then each
/// similarity is `dot * (qscale * dscale)` (one product per query block
/// and row, folded before the per-lane work), and the maxima.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn tile16_i8_epi<const QB: usize, const DB: usize>(
    qt: &[u8],
    qstride: usize,
    qs: &[__m512; QB],
    masks: &[u16; QB],
    doc: &[i8],
    corr: &[i32],
    a: &I8Args<'_>,
    j: usize,
    qm: &mut [__m512; QB],
    dmax: &mut [f32],
) {
    let acc = tile16_i8::<QB, DB>(
        qt,
        qstride,
        &doc[j * a.doc_stride..],
        a.doc_stride,
        a.dimg,
        corr,
    );
    let neg = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut rmax = [neg; DB];
    for ((m, arow), &dscale) in rmax.iter_mut().zip(&acc).zip(&a.doc_scale[j..j + DB]) {
        let ds = _mm512_set1_ps(dscale);
        for (((q, &x), s), &k) in qm.iter_mut().zip(arow).zip(qs).zip(masks) {
            let sim = _mm512_mul_ps(_mm512_cvtepi32_ps(x), _mm512_mul_ps(*s, ds));
            *q = _mm512_max_ps(*q, sim);
            *m = _mm512_mask_max_ps(*m, k, *m, sim);
        }
    }
    let dm = &mut dmax[j..j + DB];
    if DB == 8 {
        let rm: [__m512; 8] = core::array::from_fn(|i| rmax[i]);
        let m = hmax8x16(&rm);
        // SAFETY: dm has exactly 8 elements (DB == 8); unaligned load/store.
        unsafe {
            _mm256_storeu_ps(
                dm.as_mut_ptr(),
                _mm256_max_ps(_mm256_loadu_ps(dm.as_ptr()), m),
            )
        };
    } else {
        for (d, m) in dm.iter_mut().zip(&rmax) {
            *d = d.max(_mm512_reduce_max_ps(*m));
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn group16_i8<const QB: usize>(
    qt: &[u8],
    qstride: usize,
    qscale: &[f32],
    masks: [u16; QB],
    doc: &[i8],
    dsum: &mut [i32],
    fill_sums: bool,
    a: &I8Args<'_>,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    assert!(qscale.len() >= QB * 16);
    let stride = a.doc_stride;
    // The first pass over the doc rows also sums them, just before each
    // tile reads them: the rows come from memory once and the kernel finds
    // them in L1 (a separate sums pass streamed every row twice).
    let mut corr = [0i32; 8];
    let mut sums = |j: usize, n: usize, dsum: &mut [i32]| -> [i32; 8] {
        if fill_sums {
            let rows = &doc[j * stride..(j + n) * stride];
            if n == 8 {
                let v = row_sums8_i8_avx512(rows, stride);
                // SAFETY: dsum[j..j + 8] has 8 i32; unaligned store.
                unsafe { _mm256_storeu_si256(dsum[j..j + 8].as_mut_ptr().cast(), v) };
            } else {
                row_sums_i8_avx512(rows, stride, &mut dsum[j..j + n]);
            }
        }
        for (c, &s) in corr.iter_mut().zip(&dsum[j..j + n]) {
            *c = -128 * s;
        }
        corr
    };
    let mut qs = [_mm512_setzero_ps(); QB];
    for (b, v) in qs.iter_mut().enumerate() {
        // SAFETY: b*16 + 16 <= QB*16 <= qscale.len().
        *v = unsafe { _mm512_loadu_ps(qscale.as_ptr().add(b * 16)) };
    }
    let mut qm = [_mm512_set1_ps(f32::NEG_INFINITY); QB];
    let nd = a.nd;
    let mut j = 0;
    while j + 8 <= nd {
        prefetch_range(doc, (j + 8) * stride, (j + 16) * stride);
        let c = sums(j, 8, dsum);
        tile16_i8_epi::<QB, 8>(qt, qstride, &qs, &masks, doc, &c, a, j, &mut qm, dmax);
        j += 8;
    }
    if j + 4 <= nd {
        let c = sums(j, 4, dsum);
        tile16_i8_epi::<QB, 4>(qt, qstride, &qs, &masks, doc, &c, a, j, &mut qm, dmax);
        j += 4;
    }
    while j < nd {
        let c = sums(j, 1, dsum);
        tile16_i8_epi::<QB, 1>(qt, qstride, &qs, &masks, doc, &c, a, j, &mut qm, dmax);
        j += 1;
    }
    store_qmax16(&qm, qmax);
}

/// i8 kernel (VNNI). `qt`: `[nq/16][dim4][16][4]` of `q + 128` (padding 0);
/// `qscale`: `[nq/16 * 16]`; `doc`: rows of `doc_stride` (zero padded);
/// `dsum`: scratch of at least `nd`, filled with each doc row's sum of its
/// i8 values (the `128 * sum` correction of the u8 query) on the first
/// query-block pass.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn i8_avx512(
    qt: &[u8],
    qscale: &[f32],
    doc: &[i8],
    dsum: &mut [i32],
    a: &I8Args<'_>,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    let (nq, nd) = (a.nq, a.nd);
    let nqb = nq.div_ceil(16);
    let qs = a.dimg * 64;
    assert!(qt.len() >= nqb * qs && qscale.len() >= nqb * 16);
    assert!(doc.len() >= nd * a.doc_stride && dsum.len() >= nd && a.doc_scale.len() >= nd);
    assert!(qmax.len() >= nqb * 16 && dmax.len() >= nd);
    dmax[..nd].fill(f32::NEG_INFINITY);
    let mut b = 0;
    while b < nqb {
        if nqb - b >= 2 {
            let masks = [mask16(nq, b), mask16(nq, b + 1)];
            group16_i8::<2>(
                &qt[b * qs..],
                qs,
                &qscale[b * 16..],
                masks,
                doc,
                dsum,
                b == 0,
                a,
                &mut qmax[b * 16..],
                dmax,
            );
            b += 2;
        } else {
            let masks = [mask16(nq, b)];
            group16_i8::<1>(
                &qt[b * qs..],
                qs,
                &qscale[b * 16..],
                masks,
                doc,
                dsum,
                b == 0,
                a,
                &mut qmax[b * 16..],
                dmax,
            );
            b += 1;
        }
    }
}

// ------------------------------------------------------------------- AVX2

/// Lane mask (all-ones in valid lanes) for query block `b`.
#[target_feature(enable = "avx2")]
fn mask8(nq: usize, b: usize) -> __m256 {
    let rem = (nq - b * 8).min(8) as i32;
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(rem), idx))
}

#[target_feature(enable = "avx2")]
#[inline]
fn hmax8(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_shuffle_ps::<0b01>(m, m));
    _mm_cvtss_f32(m)
}

/// f16 -> f32 for a whole slice (`dst.len() <= src.len()`).
#[target_feature(enable = "avx2,f16c")]
fn f16_to_f32_f16c(src: &[u16], dst: &mut [f32]) -> usize {
    let n = dst.len();
    assert!(src.len() >= n);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n <= src.len() and <= dst.len(); unaligned ops.
        unsafe {
            let h = _mm_loadu_si128(src.as_ptr().add(i).cast());
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
        i += 8;
    }
    i
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn tile8_f32<const QB: usize, const DB: usize>(
    qt: &[f32],
    qstride: usize,
    doc: &[f32],
    dim: usize,
    ahead: &[f32],
) -> [[__m256; QB]; DB] {
    assert!((QB - 1) * qstride + dim * 8 <= qt.len());
    assert!(DB * dim <= doc.len());
    let (qp, dp) = (qt.as_ptr(), doc.as_ptr());
    let mut acc = [[_mm256_setzero_ps(); QB]; DB];
    // The rows of a later tile, one cache line every other step: spread
    // out, the misses overlap with the FMAs instead of queueing at once.
    let mut pf = 0;
    for k in 0..dim {
        if k % 2 == 0 && pf < ahead.len() {
            prefetch_range(ahead, pf, pf + 1);
            pf += 16;
        }
        let mut qv = [_mm256_setzero_ps(); QB];
        for (b, v) in qv.iter_mut().enumerate() {
            // SAFETY: b*qstride + k*8 + 8 <= (QB-1)*qstride + dim*8 <= qt.len().
            *v = unsafe { _mm256_loadu_ps(qp.add(b * qstride + k * 8)) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r*dim + k < DB*dim <= doc.len().
            let dv = _mm256_set1_ps(unsafe { *dp.add(r * dim + k) });
            for (a, q) in row.iter_mut().zip(&qv) {
                *a = _mm256_fmadd_ps(*q, dv, *a);
            }
        }
    }
    acc
}

#[target_feature(enable = "avx2")]
#[inline]
fn epi8<const QB: usize, const DB: usize>(
    sims: &[[__m256; QB]; DB],
    masks: &[__m256; QB],
    qm: &mut [__m256; QB],
    dmax: &mut [f32],
) {
    let neg = _mm256_set1_ps(f32::NEG_INFINITY);
    for (row, dm) in sims.iter().zip(dmax.iter_mut()) {
        let mut m = neg;
        for ((q, v), k) in qm.iter_mut().zip(row).zip(masks) {
            *q = _mm256_max_ps(*q, *v);
            m = _mm256_max_ps(m, _mm256_blendv_ps(neg, *v, *k));
        }
        *dm = dm.max(hmax8(m));
    }
}

#[target_feature(enable = "avx2")]
#[inline]
fn store_qmax8<const QB: usize>(qm: &[__m256; QB], qmax: &mut [f32]) {
    assert!(qmax.len() >= QB * 8);
    for (b, v) in qm.iter().enumerate() {
        // SAFETY: b*8 + 8 <= QB*8 <= qmax.len().
        unsafe { _mm256_storeu_ps(qmax.as_mut_ptr().add(b * 8), *v) };
    }
}

/// One `QB x DB` tile: query blocks `qt` against `DB` doc rows, folded into
/// the stored query maxima `qmax[..QB*8]` and the doc maxima `dmax[..DB]`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn step8_f32<const QB: usize, const DB: usize>(
    qt: &[f32],
    qstride: usize,
    masks: [__m256; QB],
    doc: &[f32],
    dim: usize,
    ahead: &[f32],
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    assert!(qmax.len() >= QB * 8);
    let mut qm = [_mm256_setzero_ps(); QB];
    for (b, v) in qm.iter_mut().enumerate() {
        // SAFETY: b*8 + 8 <= QB*8 <= qmax.len().
        *v = unsafe { _mm256_loadu_ps(qmax.as_ptr().add(b * 8)) };
    }
    let acc = tile8_f32::<QB, DB>(qt, qstride, doc, dim, ahead);
    epi8(&acc, &masks, &mut qm, &mut dmax[..DB]);
    store_qmax8(&qm, qmax);
}

/// The query blocks, two at a time, against one tile of `DB` doc rows.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn tile_rows8_f32<const DB: usize>(
    qt: &[f32],
    nq: usize,
    doc: &[f32],
    dim: usize,
    ahead: &[f32],
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    let nqb = nq.div_ceil(8);
    let qs = dim * 8;
    let mut b = 0;
    while b < nqb {
        // The first pass over the tile prefetches the next one.
        let pf = if b == 0 { ahead } else { &[] };
        if nqb - b >= 2 {
            let masks = [mask8(nq, b), mask8(nq, b + 1)];
            step8_f32::<2, DB>(
                &qt[b * qs..],
                qs,
                masks,
                doc,
                dim,
                pf,
                &mut qmax[b * 8..],
                dmax,
            );
            b += 2;
        } else {
            let masks = [mask8(nq, b)];
            step8_f32::<1, DB>(
                &qt[b * qs..],
                qs,
                masks,
                doc,
                dim,
                pf,
                &mut qmax[b * 8..],
                dmax,
            );
            b += 1;
        }
    }
}

/// f32 kernel (AVX2+FMA). `qt`: `[ceil(nq/8)][dim][8]` (zero padded).
/// Doc tiles are the outer loop, so each doc row comes from memory once
/// for all query blocks; the query (a few KB) stays in L1.
#[target_feature(enable = "avx2,fma")]
fn f32_avx2(
    qt: &[f32],
    nq: usize,
    doc: &[f32],
    nd: usize,
    dim: usize,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    let nqb = nq.div_ceil(8);
    let qs = dim * 8;
    assert!(qt.len() >= nqb * qs && doc.len() >= nd * dim);
    assert!(qmax.len() >= nqb * 8 && dmax.len() >= nd);
    dmax[..nd].fill(f32::NEG_INFINITY);
    qmax[..nqb * 8].fill(f32::NEG_INFINITY);
    let mut j = 0;
    while j + 6 <= nd {
        let ahead = &doc[((j + 6) * dim).min(doc.len())..((j + 12) * dim).min(doc.len())];
        tile_rows8_f32::<6>(qt, nq, &doc[j * dim..], dim, ahead, qmax, &mut dmax[j..]);
        j += 6;
    }
    if j + 3 <= nd {
        tile_rows8_f32::<3>(qt, nq, &doc[j * dim..], dim, &[], qmax, &mut dmax[j..]);
        j += 3;
    }
    while j < nd {
        tile_rows8_f32::<1>(qt, nq, &doc[j * dim..], dim, &[], qmax, &mut dmax[j..]);
        j += 1;
    }
}

#[target_feature(enable = "avx2")]
#[inline]
fn tile8_i16<const QB: usize, const DB: usize>(
    qt: &[i16],
    qstride: usize,
    doc: &[i16],
    dstride: usize,
    dim2: usize,
) -> [[__m256i; QB]; DB] {
    assert!((QB - 1) * qstride + dim2 * 16 <= qt.len());
    assert!(dstride >= dim2 * 2 && (DB - 1) * dstride + dim2 * 2 <= doc.len());
    let (qp, dp) = (qt.as_ptr(), doc.as_ptr());
    let mut acc = [[_mm256_setzero_si256(); QB]; DB];
    for g in 0..dim2 {
        let mut qv = [_mm256_setzero_si256(); QB];
        for (b, v) in qv.iter_mut().enumerate() {
            // SAFETY: b*qstride + g*16 + 16 <= (QB-1)*qstride + dim2*16 <= qt.len().
            *v = unsafe { _mm256_loadu_si256(qp.add(b * qstride + g * 16).cast()) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r*dstride + g*2 + 2 <= (DB-1)*dstride + dim2*2 <= doc.len();
            // read_unaligned has no alignment requirement.
            let w = unsafe { ptr::read_unaligned(dp.add(r * dstride + g * 2).cast::<i32>()) };
            let dv = _mm256_set1_epi32(w);
            for (a, q) in row.iter_mut().zip(&qv) {
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(*q, dv));
            }
        }
    }
    acc
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
#[inline]
fn tile8_i16_epi<const QB: usize, const DB: usize>(
    qt: &[i16],
    qstride: usize,
    qs: &[__m256; QB],
    masks: &[__m256; QB],
    doc: &[i16],
    a: &I8Args<'_>,
    j: usize,
    qm: &mut [__m256; QB],
    dmax: &mut [f32],
) {
    let acc = tile8_i16::<QB, DB>(qt, qstride, &doc[j * a.doc_stride..], a.doc_stride, a.dimg);
    let mut sims = [[_mm256_setzero_ps(); QB]; DB];
    for (r, (srow, arow)) in sims.iter_mut().zip(&acc).enumerate() {
        let ds = _mm256_set1_ps(a.doc_scale[j + r]);
        for ((s, &x), q) in srow.iter_mut().zip(arow).zip(qs) {
            *s = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(x), *q), ds);
        }
    }
    epi8(&sims, masks, qm, &mut dmax[j..j + DB]);
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
#[inline]
fn group8_i16<const QB: usize>(
    qt: &[i16],
    qstride: usize,
    qscale: &[f32],
    masks: [__m256; QB],
    doc: &[i16],
    a: &I8Args<'_>,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    assert!(qscale.len() >= QB * 8);
    let mut qs = [_mm256_setzero_ps(); QB];
    for (b, v) in qs.iter_mut().enumerate() {
        // SAFETY: b*8 + 8 <= QB*8 <= qscale.len().
        *v = unsafe { _mm256_loadu_ps(qscale.as_ptr().add(b * 8)) };
    }
    let mut qm = [_mm256_set1_ps(f32::NEG_INFINITY); QB];
    let nd = a.nd;
    let mut j = 0;
    while j + 4 <= nd {
        prefetch_range(doc, (j + 4) * a.doc_stride, (j + 8) * a.doc_stride);
        tile8_i16_epi::<QB, 4>(qt, qstride, &qs, &masks, doc, a, j, &mut qm, dmax);
        j += 4;
    }
    while j < nd {
        tile8_i16_epi::<QB, 1>(qt, qstride, &qs, &masks, doc, a, j, &mut qm, dmax);
        j += 1;
    }
    store_qmax8(&qm, qmax);
}

/// i8 kernel (AVX2, `vpmaddwd`). `qt`: `[nq/8][dim2][8][2]` i16 (padding 0);
/// `doc`: i16 rows of `doc_stride` (zero padded).
#[target_feature(enable = "avx2,fma")]
fn i8_avx2(
    qt: &[i16],
    qscale: &[f32],
    doc: &[i16],
    a: &I8Args<'_>,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    let (nq, nd) = (a.nq, a.nd);
    let nqb = nq.div_ceil(8);
    let qs = a.dimg * 16;
    assert!(qt.len() >= nqb * qs && qscale.len() >= nqb * 8);
    assert!(doc.len() >= nd * a.doc_stride && a.doc_scale.len() >= nd);
    assert!(qmax.len() >= nqb * 8 && dmax.len() >= nd);
    dmax[..nd].fill(f32::NEG_INFINITY);
    let mut b = 0;
    while b < nqb {
        if nqb - b >= 2 {
            let masks = [mask8(nq, b), mask8(nq, b + 1)];
            group8_i16::<2>(
                &qt[b * qs..],
                qs,
                &qscale[b * 8..],
                masks,
                doc,
                a,
                &mut qmax[b * 8..],
                dmax,
            );
            b += 2;
        } else {
            let masks = [mask8(nq, b)];
            group8_i16::<1>(
                &qt[b * qs..],
                qs,
                &qscale[b * 8..],
                masks,
                doc,
                a,
                &mut qmax[b * 8..],
                dmax,
            );
            b += 1;
        }
    }
}

// ------------------------------------------------------- safe wrappers

/// Whether the AVX-512 kernels (F + BW + VL + VNNI) can run.
pub(crate) fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// Whether the AVX-512 bfloat16 kernel can run (the AVX-512 set and BF16).
pub(crate) fn has_avx512_bf16() -> bool {
    has_avx512() && is_x86_feature_detected!("avx512bf16")
}

/// Whether the AVX2 kernels (AVX2 + FMA + F16C) can run.
pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

fn need(ok: bool, what: &str) {
    assert!(ok, "{what} kernel called on a CPU without it");
}

/// f16 -> f32 of `dst.len()` values, 16 (`wide`) or 8 at a time; returns
/// how many were converted (the caller converts the tail).
pub(crate) fn f16_to_f32(wide: bool, src: &[u16], dst: &mut [f32]) -> usize {
    if wide {
        need(has_avx512(), "AVX-512");
        // SAFETY: the features were checked just above.
        unsafe { f16_to_f32_avx512(src, dst) }
    } else {
        need(has_avx2(), "AVX2");
        // SAFETY: the features were checked just above.
        unsafe { f16_to_f32_f16c(src, dst) }
    }
}

/// f32 -> f16 bits (`vcvtps2ph`, round to nearest even) of `dst.len()`
/// values, 8 at a time; `None` on a CPU without F16C, else how many were
/// converted (the caller converts the tail).
pub(crate) fn f32_to_f16(src: &[f32], dst: &mut [u16]) -> Option<usize> {
    if has_avx2() {
        // SAFETY: the features were checked just above.
        Some(unsafe { f32_to_f16_f16c(src, dst) })
    } else {
        None
    }
}

#[target_feature(enable = "avx2,f16c")]
fn f32_to_f16_f16c(src: &[f32], dst: &mut [u16]) -> usize {
    let n = dst.len();
    assert!(src.len() >= n);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n <= src.len() and <= dst.len(); unaligned ops.
        unsafe {
            let h =
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
            _mm_storeu_si128(dst.as_mut_ptr().add(i).cast(), h);
        }
        i += 8;
    }
    i
}

/// The f32 max-sim kernel: `qt` is the query transposed in blocks of 16
/// (`wide`) or 8 rows; writes the per-query and per-doc-row maxima.
#[allow(clippy::too_many_arguments)]
pub(crate) fn maxsim_f32(
    wide: bool,
    qt: &[f32],
    nq: usize,
    doc: &[f32],
    next: &[f32],
    nd: usize,
    dim: usize,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    if wide {
        need(has_avx512(), "AVX-512");
        // SAFETY: the features were checked just above.
        unsafe { f32_avx512(qt, nq, doc, next, nd, dim, &mut [], qmax, dmax) }
    } else {
        need(has_avx2(), "AVX2");
        // SAFETY: the features were checked just above.
        unsafe { f32_avx2(qt, nq, doc, nd, dim, qmax, dmax) }
    }
}

/// The AVX-512 f32 kernel over f16 doc values (`u16` bits), converted one
/// tile at a time into `buf` (at least `8 * dim`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn maxsim_f16_avx512(
    qt: &[f32],
    nq: usize,
    doc: &[u16],
    next: &[u16],
    nd: usize,
    dim: usize,
    buf: &mut [f32],
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    need(has_avx512(), "AVX-512");
    assert!(buf.len() >= 8 * dim);
    // SAFETY: the features were checked just above.
    unsafe { f32_avx512(qt, nq, doc, next, nd, dim, buf, qmax, dmax) }
}

/// The bfloat16 max-sim kernel (`vdpbf16ps`; see `bf16_avx512` for the
/// layout of `qt`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn maxsim_bf16_avx512(
    qt: &[u32],
    nq: usize,
    doc: &[u16],
    next: &[u16],
    nd: usize,
    dim: usize,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    need(has_avx512_bf16(), "AVX-512 BF16");
    // SAFETY: the features were checked just above.
    unsafe { bf16_avx512(qt, nq, doc, next, nd, dim, qmax, dmax) }
}

/// The i8 max-sim kernel with VNNI (see `i8_avx512` for the layouts).
pub(crate) fn maxsim_i8_vnni(
    qt: &[u8],
    qscale: &[f32],
    doc: &[i8],
    dsum: &mut [i32],
    a: &I8Args<'_>,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    need(has_avx512(), "AVX-512");
    // SAFETY: the features were checked just above.
    unsafe { i8_avx512(qt, qscale, doc, dsum, a, qmax, dmax) }
}

/// The i8 max-sim kernel with AVX2 `vpmaddwd` (see `i8_avx2`).
pub(crate) fn maxsim_i8_madd(
    qt: &[i16],
    qscale: &[f32],
    doc: &[i16],
    a: &I8Args<'_>,
    qmax: &mut [f32],
    dmax: &mut [f32],
) {
    need(has_avx2(), "AVX2");
    // SAFETY: the features were checked just above.
    unsafe { i8_avx2(qt, qscale, doc, a, qmax, dmax) }
}

/// Dot product of two f32 slices (over the shorter length) with AVX2 +
/// FMA; `None` on a CPU without them. One feature check per call: this is
/// the HNSW walk's distance.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> Option<f32> {
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the features were checked just above.
        Some(unsafe { dot_avx2(a, b) })
    } else {
        None
    }
}

/// Dot product of two i8 slices (over the shorter length) with AVX2;
/// `None` on a CPU without it. The HNSW walk's distance over i8 codes.
#[inline]
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> Option<i32> {
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the feature was checked just above.
        Some(unsafe { dot_i8_avx2(a, b) })
    } else {
        None
    }
}

// ------------------------------------------------------- test-only helpers

/// Hardware `vcvtph2ps` of one half (test oracle). Caller must have checked
/// F16C support.
#[cfg(test)]
pub(crate) fn hw_f16_to_f32(h: u16) -> f32 {
    #[target_feature(enable = "f16c")]
    fn inner(h: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(h as i16)))
    }
    assert!(is_x86_feature_detected!("f16c"));
    // SAFETY: F16C support asserted just above.
    unsafe { inner(h) }
}

/// Hardware `vcvtps2ph` (round to nearest even) of one `f32` (test oracle).
#[cfg(test)]
pub(crate) fn hw_f32_to_f16(x: f32) -> u16 {
    #[target_feature(enable = "f16c")]
    fn inner(x: f32) -> u16 {
        _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set1_ps(x))) as u16
    }
    assert!(is_x86_feature_detected!("f16c"));
    // SAFETY: F16C support asserted just above.
    unsafe { inner(x) }
}

// ---------------------------------------------------------------- dot product

/// Dot product of two equal-length f32 slices with AVX2 + FMA: four
/// 8-lane accumulators, then a scalar tail.
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8j + 8 <= i + 32 <= n: both 8-float loads are in bounds.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                )
            };
            *s = _mm256_fmadd_ps(x, y, *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let hi = _mm256_extractf128_ps::<1>(s);
    let q = _mm_add_ps(_mm256_castps256_ps128(s), hi);
    let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let q = _mm_add_ss(q, _mm_shuffle_ps::<1>(q, q));
    let mut total = _mm_cvtss_f32(q);
    while i < n {
        total += a[i] * b[i];
        i += 1;
    }
    total
}

/// Dot product of two i8 slices with AVX2: 32 bytes a step sign-extended to
/// i16 and multiplied pairwise into i32 (`vpmaddwd`; |q| <= 127, so a pair
/// sums to at most 2 * 127^2 and 2^31 / 32258 rows of that are far beyond
/// any dimension), then a scalar tail.
#[target_feature(enable = "avx2")]
fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_si256();
    let mut acc1 = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n: both 32-byte loads are in bounds.
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(pa.add(i).cast()),
                _mm256_loadu_si256(pb.add(i).cast()),
            )
        };
        let xl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x));
        let yl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(y));
        let xh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(x));
        let yh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(y));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(xl, yl));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(xh, yh));
        i += 32;
    }
    if i + 16 <= n {
        // SAFETY: i + 16 <= n: both 16-byte loads are in bounds.
        let (x, y) = unsafe {
            (
                _mm_loadu_si128(pa.add(i).cast()),
                _mm_loadu_si128(pb.add(i).cast()),
            )
        };
        let p = _mm256_madd_epi16(_mm256_cvtepi8_epi16(x), _mm256_cvtepi8_epi16(y));
        acc0 = _mm256_add_epi32(acc0, p);
        i += 16;
    }
    let s = _mm256_add_epi32(acc0, acc1);
    let q = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let q = _mm_add_epi32(q, _mm_shuffle_epi32::<0b01_00_11_10>(q));
    let q = _mm_add_epi32(q, _mm_shuffle_epi32::<0b10_11_00_01>(q));
    let mut total = _mm_cvtsi128_si32(q);
    while i < n {
        total += i32::from(a[i]) * i32::from(b[i]);
        i += 1;
    }
    total
}
