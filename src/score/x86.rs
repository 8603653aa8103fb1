//! x86 dispatch of the max-sim kernels: prepares the scratch layouts the
//! kernels read (transposed f32, VNNI u8, madd i16, bfloat16 pairs) and calls the safe
//! wrappers of `crate::sys::simd`.

use super::{f16_bits_to_f32, sized, MaxSimScratch, TokensRef};
use crate::sys::simd::{self, I8Args};

/// Runs the AVX-512 (`wide`) or AVX2 kernel; the query is read through the
/// scratch's cached forms (`sync_query` ran first). The AVX-512 f32, f16
/// and bf16 kernels prefetch the first rows of `next` (the doc scored after this
/// one, same dtype; empty for none) during their last tiles.
pub(super) fn run(
    wide: bool,
    nq: usize,
    nd: usize,
    doc: TokensRef<'_>,
    next: TokensRef<'_>,
    dim: usize,
    s: &mut MaxSimScratch,
) {
    let lanes = if wide { 16 } else { 8 };
    sized(&mut s.qmax, nq.div_ceil(lanes) * lanes);
    sized(&mut s.dmax, nd);
    match doc {
        TokensRef::F16(bits) if wide => {
            s.prep_transposed(lanes);
            let buf = sized(&mut s.doc_f32, 8 * dim);
            let next: &[u16] = match next {
                TokensRef::F16(n) => n,
                _ => &[],
            };
            simd::maxsim_f16_avx512(
                &s.qt16,
                nq,
                bits,
                next,
                nd,
                dim,
                buf,
                &mut s.qmax,
                &mut s.dmax,
            );
        }
        TokensRef::F32(_) | TokensRef::F16(_) => {
            s.prep_transposed(lanes);
            let d: &[f32] = match doc {
                TokensRef::F32(d) => d,
                TokensRef::F16(bits) => {
                    let out = sized(&mut s.doc_f32, nd * dim);
                    let done = simd::f16_to_f32(wide, bits, out);
                    for (o, &h) in out[done..].iter_mut().zip(&bits[done..]) {
                        *o = f16_bits_to_f32(h);
                    }
                    &s.doc_f32
                }
                TokensRef::I8 { .. } | TokensRef::Bf16(_) => unreachable!(),
            };
            let qt = if wide { &s.qt16 } else { &s.qt8 };
            let next: &[f32] = match next {
                TokensRef::F32(n) => n,
                _ => &[],
            };
            simd::maxsim_f32(wide, qt, nq, d, next, nd, dim, &mut s.qmax, &mut s.dmax);
        }
        TokensRef::Bf16(bits) if wide && simd::has_avx512_bf16() => {
            s.prep_bf16_pairs();
            let next: &[u16] = match next {
                TokensRef::Bf16(n) => n,
                _ => &[],
            };
            simd::maxsim_bf16_avx512(
                &s.qt_bf16,
                nq,
                bits,
                next,
                nd,
                dim,
                &mut s.qmax,
                &mut s.dmax,
            );
        }
        TokensRef::Bf16(bits) => bf16_widened(wide, nq, nd, bits, dim, s),
        TokensRef::I8 { data, scales } => {
            if wide {
                s.prep_vnni();
                let dim4 = dim.div_ceil(4);
                let stride = dim4 * 4;
                let d: &[i8] = if stride == dim {
                    data
                } else {
                    let out = sized(&mut s.doc_i8, nd * stride);
                    for (o, r) in out.chunks_exact_mut(stride).zip(data.chunks_exact(dim)) {
                        o[..dim].copy_from_slice(r);
                        o[dim..].fill(0);
                    }
                    &s.doc_i8
                };
                sized(&mut s.doc_sum, nd);
                let args = I8Args {
                    nq,
                    nd,
                    dimg: dim4,
                    doc_stride: stride,
                    doc_scale: scales,
                };
                simd::maxsim_i8_vnni(
                    &s.qt_u8,
                    &s.qs16,
                    d,
                    &mut s.doc_sum,
                    &args,
                    &mut s.qmax,
                    &mut s.dmax,
                );
            } else {
                s.prep_madd();
                let dim2 = dim.div_ceil(2);
                let stride = dim2 * 2;
                let out = sized(&mut s.doc_i16, nd * stride);
                for (o, r) in out.chunks_exact_mut(stride).zip(data.chunks_exact(dim)) {
                    for (a, &b) in o.iter_mut().zip(r) {
                        *a = i16::from(b);
                    }
                    o[dim..].fill(0);
                }
                let args = I8Args {
                    nq,
                    nd,
                    dimg: dim2,
                    doc_stride: stride,
                    doc_scale: scales,
                };
                simd::maxsim_i8_madd(
                    &s.qt_i16,
                    &s.qs8,
                    &s.doc_i16,
                    &args,
                    &mut s.qmax,
                    &mut s.dmax,
                );
            }
        }
    }
}

/// bfloat16 docs without AVX-512 BF16 (AVX2, or AVX-512 F without BF16):
/// the f32 kernel of `wide` over the doc widened to f32 and the query
/// rounded to bfloat16. `s.qmax` holds at least `ceil(nq/16)*16` (`wide`)
/// or `ceil(nq/8)*8` values, `s.dmax` `nd`.
pub(super) fn bf16_widened(
    wide: bool,
    nq: usize,
    nd: usize,
    bits: &[u16],
    dim: usize,
    s: &mut MaxSimScratch,
) {
    let lanes = if wide { 16 } else { 8 };
    s.prep_bf16_transposed(lanes);
    super::bf16s_to_f32(bits, sized(&mut s.doc_f32, nd * dim));
    let qt = if wide { &s.qt16_bf16 } else { &s.qt8_bf16 };
    simd::maxsim_f32(
        wide,
        qt,
        nq,
        &s.doc_f32,
        &[],
        nd,
        dim,
        &mut s.qmax,
        &mut s.dmax,
    );
}
