//! Late-interaction scoring (FILIP / ColBERT MaxSim) and token pooling.
//!
//! A query is a row-major `f32` matrix `Q [nq x dim]`, a document a token
//! matrix `D [nd x dim]` stored as `f32`, IEEE half bits, bfloat16 bits or
//! symmetric per-token `i8` ([`TokensRef`]). Rows are expected to be L2-normalised.
//! [`interact`] computes, in one pass over the similarity blocks `Q·Dᵀ`,
//! both the sum over query rows of the row maximum and the sum over doc rows
//! of the column maximum ([`Interaction`]); FILIP (both directions and
//! symmetric) and ColBERT MaxSim are derived from those.
//!
//! Kernels ([`Kernel`]) are chosen at run time: AVX-512 (F + BW + VL + VNNI),
//! AVX2 + FMA + F16C, or portable Rust. The dispatch and scratch layouts
//! live here (`x86.rs`); the raw SIMD kernels live behind safe wrappers in
//! `crate::sys::simd`, with the crate's other `unsafe`.
//!
//! Value semantics (shared by every kernel and by [`interact_reference`]):
//! * `F16`: each half is converted exactly to `f32` ([`f16_bits_to_f32`]).
//! * `Bf16`: each bfloat16 is converted exactly to `f32`
//!   ([`bf16_bits_to_f32`]) and the query is rounded to bfloat16 once per
//!   call ([`f32_to_bf16_bits`]), so every product is exact in `f32`; sums
//!   are `f32`. The AVX-512 BF16 kernel (`vdpbf16ps`, two products per
//!   lane and instruction) treats bfloat16 values below `2^-126` as zero.
//! * `I8`: doc value = `data * scale`. The query is quantized once per call
//!   with [`quantize_i8`] (per-token scale `max|x|/127`, round half away from
//!   zero), the dot product is computed exactly in integers and the
//!   similarity is `((dot as f32) * q_scale) * d_scale`, except in the
//!   AVX-512 kernel, which multiplies once by `q_scale * d_scale` (one
//!   product per query block and doc row): within 1 ulp of the other
//!   kernels, and `NaN` where that product overflows and `dot == 0`
//!   (scales above ~1e19, which [`quantize_i8`] of finite unit rows never
//!   gives).

mod half;
pub mod pool;
pub(crate) mod portable;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Dot product of two f32 slices (over the shorter length): AVX2 + FMA
/// when the CPU has them, else a portable loop the compiler vectorises.
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(d) = crate::sys::simd::dot(a, b) {
        return d;
    }
    portable::dot_f32(a, b)
}

/// Dot product of two i8 slices (the HNSW walk over i8 codes), with the
/// fastest kernel this CPU runs; `portable::dot_i8` is its reference.
#[inline]
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(d) = crate::sys::simd::dot_i8(a, b) {
        return d;
    }
    portable::dot_i8(a, b)
}

/// Symmetric i8 quantization of one vector, as [`quantize_i8`] does per
/// row: writes the codes into `out` and returns the scale.
pub(crate) fn quantize_vector(x: &[f32], out: &mut [i8]) -> f32 {
    quantize_row(x, out)
}

pub use half::{bf16_bits_to_f32, f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits};

/// [`f32_to_f16_bits`] over a slice (`dst.len()` values), with F16C where
/// the CPU has it: the same bits, 8 at a time. Panics unless the slices
/// have the same length.
pub fn f32s_to_f16_bits(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "f32s_to_f16_bits: lengths differ");
    #[cfg(target_arch = "x86_64")]
    let done = crate::sys::simd::f32_to_f16(src, dst).unwrap_or(0);
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (o, &x) in dst[done..].iter_mut().zip(&src[done..]) {
        *o = f32_to_f16_bits(x);
    }
}

use std::sync::atomic::{AtomicU8, Ordering};

/// A borrowed document token matrix (`nd` rows of `dim` values, row-major).
#[derive(Clone, Copy, Debug)]
pub enum TokensRef<'a> {
    /// `f32` values, `nd * dim` of them.
    F32(&'a [f32]),
    /// IEEE 754 half-precision bit patterns, `nd * dim` of them.
    F16(&'a [u16]),
    /// bfloat16 bit patterns (the upper half of an `f32`), `nd * dim` of them.
    Bf16(&'a [u16]),
    /// Symmetric per-token `i8` quantization: value = `data * scale`.
    I8 {
        /// Quantized values, `nd * dim` of them.
        data: &'a [i8],
        /// One scale per token (`nd` of them).
        scales: &'a [f32],
    },
}

impl TokensRef<'_> {
    /// The tokens as `f32` values, as the kernels define them (allocates;
    /// for explanations and references, not the hot path).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TokensRef::F32(v) => v.to_vec(),
            TokensRef::F16(v) => v.iter().map(|b| f16_bits_to_f32(*b)).collect(),
            TokensRef::Bf16(v) => v.iter().map(|b| bf16_bits_to_f32(*b)).collect(),
            TokensRef::I8 { data, scales } => {
                let dim = data.len() / scales.len().max(1);
                data.iter()
                    .enumerate()
                    .map(|(i, q)| f32::from(*q) * scales[i / dim.max(1)])
                    .collect()
            }
        }
    }

    /// Number of tokens (rows) for the given dimension (`len / dim`; 0 when
    /// `dim == 0`).
    pub fn len_tokens(&self, dim: usize) -> usize {
        if dim == 0 {
            return 0;
        }
        match self {
            TokensRef::F32(v) => v.len() / dim,
            TokensRef::F16(v) | TokensRef::Bf16(v) => v.len() / dim,
            TokensRef::I8 { data, .. } => data.len() / dim,
        }
    }

    /// Checks shape consistency and returns the number of tokens.
    fn validate(&self, dim: usize) -> usize {
        let (len, nd) = match self {
            TokensRef::F32(v) => (v.len(), v.len() / dim),
            TokensRef::F16(v) | TokensRef::Bf16(v) => (v.len(), v.len() / dim),
            TokensRef::I8 { data, scales } => {
                assert_eq!(
                    scales.len(),
                    data.len() / dim,
                    "I8 tokens: need one scale per token"
                );
                (data.len(), data.len() / dim)
            }
        };
        assert_eq!(
            len % dim,
            0,
            "doc length {len} is not a multiple of dim {dim}"
        );
        nd
    }
}

/// Which implementation [`interact_with`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Plain Rust (auto-vectorised by the compiler for the baseline target).
    Portable,
    /// x86_64 AVX2 + FMA + F16C (8-lane `f32`, `vpmaddwd` for `i8`).
    Avx2,
    /// x86_64 AVX-512 F + BW + VL + VNNI (16-lane `f32`, `vpdpbusd` for `i8`,
    /// and `vdpbf16ps` for `bf16` where the CPU also has AVX-512 BF16), also
    /// requires the AVX2 set.
    Avx512,
}

static DETECTED: AtomicU8 = AtomicU8::new(0);

impl Kernel {
    /// The best kernel this CPU supports (detected once, then cached).
    pub fn detect() -> Kernel {
        match DETECTED.load(Ordering::Relaxed) {
            1 => Kernel::Portable,
            2 => Kernel::Avx2,
            3 => Kernel::Avx512,
            _ => {
                let k = if Kernel::Avx512.is_supported() {
                    Kernel::Avx512
                } else if Kernel::Avx2.is_supported() {
                    Kernel::Avx2
                } else {
                    Kernel::Portable
                };
                let code = match k {
                    Kernel::Portable => 1,
                    Kernel::Avx2 => 2,
                    Kernel::Avx512 => 3,
                };
                DETECTED.store(code, Ordering::Relaxed);
                k
            }
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => crate::sys::simd::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => crate::sys::simd::has_avx2() && crate::sys::simd::has_avx512(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// All kernels this CPU supports, slowest first.
    pub fn available() -> Vec<Kernel> {
        [Kernel::Portable, Kernel::Avx2, Kernel::Avx512]
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// Short lower-case name (`"portable"`, `"avx2"`, `"avx512"`).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }
}

/// Result of one query/document interaction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interaction {
    /// Sum over query rows of the max similarity over doc rows.
    pub q_max_sum: f32,
    /// Sum over doc rows of the max similarity over query rows.
    pub d_max_sum: f32,
    /// Number of query tokens.
    pub nq: usize,
    /// Number of document tokens.
    pub nd: usize,
}

impl Interaction {
    /// FILIP query→doc score: mean over query rows of the row max
    /// (0 when `nq == 0`).
    pub fn filip_q2d(&self) -> f32 {
        if self.nq == 0 {
            0.0
        } else {
            self.q_max_sum / self.nq as f32
        }
    }

    /// FILIP doc→query score: mean over doc rows of the column max
    /// (0 when `nd == 0`).
    pub fn filip_d2q(&self) -> f32 {
        if self.nd == 0 {
            0.0
        } else {
            self.d_max_sum / self.nd as f32
        }
    }

    /// Symmetric FILIP: average of the two directions.
    pub fn filip_symmetric(&self) -> f32 {
        0.5 * (self.filip_q2d() + self.filip_d2q())
    }

    /// Zero sums: the query or the doc has no rows.
    fn empty(nq: usize, nd: usize) -> Interaction {
        Interaction {
            q_max_sum: 0.0,
            d_max_sum: 0.0,
            nq,
            nd,
        }
    }

    /// ColBERT MaxSim: sum over query rows of the row max.
    pub fn maxsim(&self) -> f32 {
        self.q_max_sum
    }
}

// Bits of `MaxSimScratch::prepared`: which derived query forms are valid.
const PREP_T16: u16 = 1;
const PREP_T8: u16 = 2;
const PREP_Q8: u16 = 4;
const PREP_VNNI: u16 = 8;
const PREP_MADD: u16 = 16;
const PREP_BF16: u16 = 32;
const PREP_BF16_T8: u16 = 64;
const PREP_BF16_PAIRS: u16 = 128;
const PREP_BF16_T16: u16 = 256;

/// Reusable buffers for [`interact`]; after warm-up the hot path does not
/// allocate. Derived forms of the query (transposed/quantized) are cached
/// and reused while consecutive calls pass a bit-identical query, so scoring
/// one query against many documents prepares it only once.
#[derive(Default, Debug, Clone)]
pub struct MaxSimScratch {
    pub(crate) key: Vec<f32>,
    pub(crate) key_nq: usize,
    pub(crate) key_dim: usize,
    pub(crate) prepared: u16,
    pub(crate) qmax: Vec<f32>,
    pub(crate) dmax: Vec<f32>,
    /// Query transposed to `[nq/16][dim][16]`.
    pub(crate) qt16: Vec<f32>,
    /// Query transposed to `[nq/8][dim][8]`.
    pub(crate) qt8: Vec<f32>,
    /// Quantized query `[nq][dim]` and its scales.
    pub(crate) q_i8: Vec<i8>,
    pub(crate) q_scale: Vec<f32>,
    /// VNNI layout `[nq/16][dim/4][16][4]` of `q + 128` (u8), padded scales.
    pub(crate) qt_u8: Vec<u8>,
    pub(crate) qs16: Vec<f32>,
    /// `vpmaddwd` layout `[nq/8][dim/2][8][2]` (i16), padded scales.
    pub(crate) qt_i16: Vec<i16>,
    pub(crate) qs8: Vec<f32>,
    /// The query rounded to bfloat16 (as `f32` values), `[nq][dim]`.
    pub(crate) q_bf16: Vec<f32>,
    /// That query transposed to `[nq/16][dim][16]` and `[nq/8][dim][8]`
    /// (the f32 kernels' bf16 path on CPUs without AVX-512 BF16).
    pub(crate) qt16_bf16: Vec<f32>,
    pub(crate) qt8_bf16: Vec<f32>,
    /// `vdpbf16ps` layout `[nq/16][dim/2][16]`: one `u32` per query row
    /// and dimension pair, the even dimension's bfloat16 in the low half.
    pub(crate) qt_bf16: Vec<u32>,
    /// Per-call document conversions.
    pub(crate) doc_f32: Vec<f32>,
    pub(crate) doc_i8: Vec<i8>,
    pub(crate) doc_i16: Vec<i16>,
    pub(crate) doc_sum: Vec<i32>,
}

/// Bitwise equality of two equally long slices (this runs on every
/// `interact` call): a byte comparison, which the C library does with the
/// widest vectors of the CPU (the loop it replaced compiled to 16-byte SSE2
/// and took 60% of the non-kernel time of an i8 MaxSim call at 32 x 128).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    bytemuck::cast_slice::<f32, u8>(a) == bytemuck::cast_slice::<f32, u8>(b)
}

/// `src` (rows of `dim`) transposed into `out` as `[rows/lanes][dim][lanes]`
/// (zero padded).
fn transpose(src: &[f32], dim: usize, lanes: usize, out: &mut Vec<f32>) {
    let nq = src.len() / dim;
    out.clear();
    out.resize(nq.div_ceil(lanes) * dim * lanes, 0.0);
    for (i, row) in src.chunks_exact(dim).enumerate() {
        let (b, l) = (i / lanes, i % lanes);
        for (k, &v) in row.iter().enumerate() {
            out[(b * dim + k) * lanes + l] = v;
        }
    }
}

/// bfloat16 bits to `f32` over a slice (`dst.len()` values; a shift the
/// compiler vectorises).
pub(crate) fn bf16s_to_f32(src: &[u16], dst: &mut [f32]) {
    for (o, &h) in dst.iter_mut().zip(src) {
        *o = bf16_bits_to_f32(h);
    }
}

/// Resizes `v` to exactly `n` elements without shrinking its capacity.
pub(crate) fn sized<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    v.resize(n, T::default());
    &mut v[..n]
}

impl MaxSimScratch {
    /// Empty scratch; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Invalidates cached query forms unless `query` is bit-identical to the
    /// previous call's.
    fn sync_query(&mut self, query: &[f32], nq: usize, dim: usize) {
        let same = self.key_nq == nq
            && self.key_dim == dim
            && self.key.len() == query.len()
            && same_bits(&self.key, query);
        if !same {
            self.key.clear();
            self.key.extend_from_slice(query);
            self.key_nq = nq;
            self.key_dim = dim;
            self.prepared = 0;
        }
    }

    pub(crate) fn prep_transposed(&mut self, lanes: usize) {
        self.prep_transposed_of(false, lanes);
    }

    /// The query rounded to bfloat16 (`q_bf16`), the `Bf16` value semantics.
    pub(crate) fn prep_bf16(&mut self) {
        if self.prepared & PREP_BF16 != 0 {
            return;
        }
        self.q_bf16.clear();
        self.q_bf16.extend(
            self.key
                .iter()
                .map(|&x| bf16_bits_to_f32(f32_to_bf16_bits(x))),
        );
        self.prepared |= PREP_BF16;
    }

    /// `q_bf16` transposed for the f32 kernel of `lanes` (16 or 8) lanes.
    pub(crate) fn prep_bf16_transposed(&mut self, lanes: usize) {
        self.prep_bf16();
        self.prep_transposed_of(true, lanes);
    }

    /// The query (`bf16`: its bfloat16 rounding, prepared first) transposed
    /// to `[nq/lanes][dim][lanes]` for the f32 kernel of `lanes` lanes.
    fn prep_transposed_of(&mut self, bf16: bool, lanes: usize) {
        let (flag, src, out) = match (bf16, lanes == 16) {
            (false, true) => (PREP_T16, &self.key, &mut self.qt16),
            (false, false) => (PREP_T8, &self.key, &mut self.qt8),
            (true, true) => (PREP_BF16_T16, &self.q_bf16, &mut self.qt16_bf16),
            (true, false) => (PREP_BF16_T8, &self.q_bf16, &mut self.qt8_bf16),
        };
        if self.prepared & flag == 0 {
            transpose(src, self.key_dim, lanes, out);
            self.prepared |= flag;
        }
    }

    /// `q_bf16` in the `vdpbf16ps` layout (`qt_bf16`): the bits of each
    /// rounded value are the upper half of its `f32`.
    pub(crate) fn prep_bf16_pairs(&mut self) {
        if self.prepared & PREP_BF16_PAIRS != 0 {
            return;
        }
        self.prep_bf16();
        let (nq, dim) = (self.key_nq, self.key_dim);
        let (nqb, dim2) = (nq.div_ceil(16), dim.div_ceil(2));
        self.qt_bf16.clear();
        self.qt_bf16.resize(nqb * dim2 * 16, 0);
        for (i, row) in self.q_bf16.chunks_exact(dim).enumerate() {
            let (b, l) = (i / 16, i % 16);
            for (k, &v) in row.iter().enumerate() {
                // padding (an odd dim's last high half, rows >= nq) stays 0
                let half = (v.to_bits() >> 16) << (16 * (k % 2));
                self.qt_bf16[(b * dim2 + k / 2) * 16 + l] |= half;
            }
        }
        self.prepared |= PREP_BF16_PAIRS;
    }

    pub(crate) fn prep_quantized(&mut self) {
        if self.prepared & PREP_Q8 != 0 {
            return;
        }
        let (nq, dim) = (self.key_nq, self.key_dim);
        let q = sized(&mut self.q_i8, nq * dim);
        let s = sized(&mut self.q_scale, nq);
        quantize_i8_into(&self.key, dim, q, s);
        self.prepared |= PREP_Q8;
    }

    pub(crate) fn prep_vnni(&mut self) {
        if self.prepared & PREP_VNNI != 0 {
            return;
        }
        self.prep_quantized();
        let (nq, dim) = (self.key_nq, self.key_dim);
        let (nqb, dim4) = (nq.div_ceil(16), dim.div_ceil(4));
        self.qt_u8.clear();
        self.qt_u8.resize(nqb * dim4 * 64, 0);
        self.qs16.clear();
        self.qs16.resize(nqb * 16, 0.0);
        for (i, row) in self.q_i8.chunks_exact(dim).enumerate() {
            let (b, l) = (i / 16, i % 16);
            for (k, &v) in row.iter().enumerate() {
                // q + 128 in 1..=255; padding (k >= dim, i >= nq) stays 0 so
                // it contributes nothing to the u8 x i8 products.
                self.qt_u8[((b * dim4 + k / 4) * 16 + l) * 4 + k % 4] = (i16::from(v) + 128) as u8;
            }
            self.qs16[i] = self.q_scale[i];
        }
        self.prepared |= PREP_VNNI;
    }

    pub(crate) fn prep_madd(&mut self) {
        if self.prepared & PREP_MADD != 0 {
            return;
        }
        self.prep_quantized();
        let (nq, dim) = (self.key_nq, self.key_dim);
        let (nqb, dim2) = (nq.div_ceil(8), dim.div_ceil(2));
        self.qt_i16.clear();
        self.qt_i16.resize(nqb * dim2 * 16, 0);
        self.qs8.clear();
        self.qs8.resize(nqb * 8, 0.0);
        for (i, row) in self.q_i8.chunks_exact(dim).enumerate() {
            let (b, l) = (i / 8, i % 8);
            for (k, &v) in row.iter().enumerate() {
                self.qt_i16[((b * dim2 + k / 2) * 8 + l) * 2 + k % 2] = i16::from(v);
            }
            self.qs8[i] = self.q_scale[i];
        }
        self.prepared |= PREP_MADD;
    }

    fn result(&self, nq: usize, nd: usize) -> Interaction {
        let q: f64 = self.qmax[..nq].iter().map(|&v| f64::from(v)).sum();
        let d: f64 = self.dmax[..nd].iter().map(|&v| f64::from(v)).sum();
        Interaction {
            q_max_sum: q as f32,
            d_max_sum: d as f32,
            nq,
            nd,
        }
    }
}

/// Scores `query` (`nq` rows of `dim`) against `doc` with the best kernel of
/// this CPU ([`Kernel::detect`]). Both directions are computed in one pass.
///
/// Panics if `dim == 0` or the slice lengths are inconsistent. Returns zero
/// sums when `nq == 0` or the doc is empty.
pub fn interact(
    query: &[f32],
    nq: usize,
    doc: TokensRef<'_>,
    dim: usize,
    scratch: &mut MaxSimScratch,
) -> Interaction {
    interact_with(Kernel::detect(), query, nq, doc, dim, scratch)
}

/// Like [`interact`] but with an explicit kernel. A kernel this CPU does not
/// support ([`Kernel::is_supported`]) silently falls back to
/// [`Kernel::Portable`].
pub fn interact_with(
    kernel: Kernel,
    query: &[f32],
    nq: usize,
    doc: TokensRef<'_>,
    dim: usize,
    scratch: &mut MaxSimScratch,
) -> Interaction {
    scratch.prepare_with(kernel, query, nq, dim).interact(doc)
}

/// One query made ready for scoring against many documents
/// ([`MaxSimScratch::prepare`]): the query was checked and copied once, so
/// each [`PreparedQuery::interact`] goes straight to the kernel (an
/// `interact` call compares its query with the cached one first, 16 KB at
/// 32 x 128, which is a fifth of the i8 kernel's time per document).
#[derive(Debug)]
pub struct PreparedQuery<'s> {
    s: &'s mut MaxSimScratch,
    kernel: Kernel,
}

impl MaxSimScratch {
    /// Prepares `query` (`nq` rows of `dim`) for the best kernel of this CPU.
    ///
    /// Panics if `dim == 0` or `query.len() != nq * dim`.
    pub fn prepare(&mut self, query: &[f32], nq: usize, dim: usize) -> PreparedQuery<'_> {
        self.prepare_with(Kernel::detect(), query, nq, dim)
    }

    /// Like [`MaxSimScratch::prepare`] with an explicit kernel; one this CPU
    /// does not support falls back to [`Kernel::Portable`].
    pub fn prepare_with(
        &mut self,
        kernel: Kernel,
        query: &[f32],
        nq: usize,
        dim: usize,
    ) -> PreparedQuery<'_> {
        assert!(dim > 0, "dim must be positive");
        assert_eq!(query.len(), nq * dim, "query length != nq * dim");
        self.sync_query(query, nq, dim);
        let kernel = if kernel.is_supported() {
            kernel
        } else {
            Kernel::Portable
        };
        PreparedQuery { s: self, kernel }
    }
}

impl PreparedQuery<'_> {
    /// Scores the prepared query against `doc`; both directions in one pass.
    ///
    /// Panics if the doc's length is not a multiple of `dim` (or an `I8`
    /// doc has not one scale per row). Returns zero sums when the query or
    /// the doc is empty.
    pub fn interact(&mut self, doc: TokensRef<'_>) -> Interaction {
        self.interact_then(doc, TokensRef::F32(&[]))
    }

    /// Like [`PreparedQuery::interact`], and while the last rows of `doc`
    /// are scored the first rows of `next` (the doc this query scores next)
    /// are fetched into cache, so the next call does not start by waiting
    /// for memory (AVX-512 kernels, f32, f16 and bf16 tokens; a hint
    /// elsewhere).
    pub fn interact_then(&mut self, doc: TokensRef<'_>, next: TokensRef<'_>) -> Interaction {
        let (nq, dim) = (self.s.key_nq, self.s.key_dim);
        let nd = doc.validate(dim);
        if nq == 0 || nd == 0 {
            return Interaction::empty(nq, nd);
        }
        let s = &mut *self.s;
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 | Kernel::Avx512 => {
                x86::run(self.kernel == Kernel::Avx512, nq, nd, doc, next, dim, s)
            }
            _ => run_portable(nq, nd, doc, dim, s),
        }
        s.result(nq, nd)
    }
}

/// The portable kernels over the scratch's query (`s.key`).
fn run_portable(nq: usize, nd: usize, doc: TokensRef<'_>, dim: usize, s: &mut MaxSimScratch) {
    sized(&mut s.qmax, nq);
    sized(&mut s.dmax, nd);
    match doc {
        TokensRef::F32(d) => portable::f32_scores(&s.key, nq, d, nd, dim, &mut s.qmax, &mut s.dmax),
        TokensRef::F16(bits) => {
            let d = sized(&mut s.doc_f32, nd * dim);
            for (o, &h) in d.iter_mut().zip(bits) {
                *o = f16_bits_to_f32(h);
            }
            portable::f32_scores(&s.key, nq, &s.doc_f32, nd, dim, &mut s.qmax, &mut s.dmax);
        }
        TokensRef::Bf16(bits) => {
            s.prep_bf16();
            bf16s_to_f32(bits, sized(&mut s.doc_f32, nd * dim));
            portable::f32_scores(&s.q_bf16, nq, &s.doc_f32, nd, dim, &mut s.qmax, &mut s.dmax);
        }
        TokensRef::I8 { data, scales } => {
            s.prep_quantized();
            portable::i8_scores(
                &s.q_i8,
                &s.q_scale,
                nq,
                data,
                scales,
                nd,
                dim,
                &mut s.qmax,
                &mut s.dmax,
            );
        }
    }
}

/// Quantizes one row: returns the scale `max|x| / 127` and writes
/// `round(x * 127 / max|x|)` (half away from zero). Rows that are all zero
/// or contain a non-finite maximum quantize to zeros with scale 0.
fn quantize_row(x: &[f32], out: &mut [i8]) -> f32 {
    let maxabs = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if maxabs == 0.0 || !maxabs.is_finite() {
        out.fill(0);
        return 0.0;
    }
    let inv = 127.0 / maxabs;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
    }
    maxabs / 127.0
}

fn quantize_i8_into(tokens: &[f32], dim: usize, data: &mut [i8], scales: &mut [f32]) {
    for ((row, out), s) in tokens
        .chunks_exact(dim)
        .zip(data.chunks_exact_mut(dim))
        .zip(scales.iter_mut())
    {
        *s = quantize_row(row, out);
    }
}

/// Symmetric per-token `i8` quantization of `tokens` (`n` rows of `dim`):
/// `scale = max|x| / 127`, `q = round(x / scale)` (half away from zero,
/// computed as `x * (127 / max|x|)`), so `x ≈ q * scale`. All-zero or
/// non-finite rows give zeros and scale 0. This is also exactly how the
/// `I8` kernels quantize the query.
pub fn quantize_i8(tokens: &[f32], dim: usize) -> (Vec<i8>, Vec<f32>) {
    assert!(
        dim > 0 && tokens.len().is_multiple_of(dim),
        "tokens length not a multiple of dim"
    );
    let n = tokens.len() / dim;
    let mut data = vec![0i8; n * dim];
    let mut scales = vec![0.0f32; n];
    quantize_i8_into(tokens, dim, &mut data, &mut scales);
    (data, scales)
}

/// All query×doc similarities in `f64` (`[nq][nd]`), using the value
/// semantics documented at module level (the query is quantized for `I8`).
fn reference_sims(query: &[f32], nq: usize, doc: TokensRef<'_>, dim: usize) -> (Vec<f64>, usize) {
    assert!(dim > 0);
    assert_eq!(query.len(), nq * dim);
    let nd = doc.validate(dim);
    let mut sims = vec![0.0f64; nq * nd];
    match doc {
        TokensRef::F32(d) => {
            for (i, q) in query.chunks_exact(dim).enumerate() {
                for (j, r) in d.chunks_exact(dim).enumerate() {
                    sims[i * nd + j] = q
                        .iter()
                        .zip(r)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                }
            }
        }
        TokensRef::F16(bits) => {
            for (i, q) in query.chunks_exact(dim).enumerate() {
                for (j, r) in bits.chunks_exact(dim).enumerate() {
                    sims[i * nd + j] = q
                        .iter()
                        .zip(r)
                        .map(|(&a, &b)| f64::from(a) * f64::from(f16_bits_to_f32(b)))
                        .sum();
                }
            }
        }
        TokensRef::Bf16(bits) => {
            let qr: Vec<f32> = query
                .iter()
                .map(|&x| bf16_bits_to_f32(f32_to_bf16_bits(x)))
                .collect();
            for (i, q) in qr.chunks_exact(dim).enumerate() {
                for (j, r) in bits.chunks_exact(dim).enumerate() {
                    sims[i * nd + j] = q
                        .iter()
                        .zip(r)
                        .map(|(&a, &b)| f64::from(a) * f64::from(bf16_bits_to_f32(b)))
                        .sum();
                }
            }
        }
        TokensRef::I8 { data, scales } => {
            let (qd, qs) = quantize_i8(query, dim);
            for (i, q) in qd.chunks_exact(dim).enumerate() {
                for (j, r) in data.chunks_exact(dim).enumerate() {
                    let dot: f64 = q
                        .iter()
                        .zip(r)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    sims[i * nd + j] = dot * f64::from(qs[i]) * f64::from(scales[j]);
                }
            }
        }
    }
    (sims, nd)
}

/// Scalar reference implementation (f64 accumulation, same value semantics
/// as the fast kernels). Slow; meant for tests and debugging.
pub fn interact_reference(query: &[f32], nq: usize, doc: TokensRef<'_>, dim: usize) -> Interaction {
    let (sims, nd) = reference_sims(query, nq, doc, dim);
    if nq == 0 || nd == 0 {
        return Interaction::empty(nq, nd);
    }
    let mut q_sum = 0.0f64;
    for i in 0..nq {
        q_sum += sims[i * nd..(i + 1) * nd]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
    }
    let mut d_sum = 0.0f64;
    for j in 0..nd {
        d_sum += (0..nq)
            .map(|i| sims[i * nd + j])
            .fold(f64::NEG_INFINITY, f64::max);
    }
    Interaction {
        q_max_sum: q_sum as f32,
        d_max_sum: d_sum as f32,
        nq,
        nd,
    }
}

/// For each query row, the best-matching doc row and its similarity
/// (ties go to the lowest doc row; `(usize::MAX, -inf)` for an empty doc).
/// Scalar (f64), same value semantics as [`interact`]; not a hot path.
pub fn explain(query: &[f32], nq: usize, doc: TokensRef<'_>, dim: usize) -> Vec<(usize, f32)> {
    let (sims, nd) = reference_sims(query, nq, doc, dim);
    (0..nq)
        .map(|i| {
            let mut best = (usize::MAX, f64::NEG_INFINITY);
            for (j, &s) in sims[i * nd..(i + 1) * nd].iter().enumerate() {
                if best.0 == usize::MAX || s > best.1 {
                    best = (j, s);
                }
            }
            (best.0, best.1 as f32)
        })
        .collect()
}
