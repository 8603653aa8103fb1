//! Token matrices on disk: one block per item, in the collection's dtype.
//!
//! | dtype | block layout (`n` tokens of `dim`) | bytes per token |
//! |---|---|---|
//! | `f32` | `n*dim` f32 | `4*dim` |
//! | `f16` | `n*dim` IEEE half | `2*dim` |
//! | `bf16` | `n*dim` bfloat16 (the upper half of the f32, rounded to nearest even) | `2*dim` |
//! | `i8`  | `n` f32 scales, then `n*dim` i8 (value = q * scale) | `dim + 4` |
//!
//! Every block is padded to a multiple of 4 bytes, so that blocks stay
//! 4-byte aligned inside a page-aligned mapping and cast without copies.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::score::{f32_to_bf16_bits, f32s_to_f16_bits, quantize_i8, TokensRef};

/// How token matrices are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenDtype {
    /// 32-bit floats (exact).
    F32,
    /// IEEE half floats (relative error ~5e-4).
    #[default]
    F16,
    /// bfloat16 (relative error ~4e-3). The query is rounded to bfloat16
    /// too, and CPUs with AVX-512 BF16 score it at twice the f32 rate.
    Bf16,
    /// int8 with a per-token scale (error <= scale/2 per value).
    I8,
}

impl std::str::FromStr for TokenDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(TokenDtype::F32),
            "f16" => Ok(TokenDtype::F16),
            "bf16" => Ok(TokenDtype::Bf16),
            "i8" | "int8" => Ok(TokenDtype::I8),
            other => Err(Error::InvalidConfig {
                name: "token_dtype".into(),
                reason: format!("`{other}` is not one of f32, f16, bf16, i8"),
            }),
        }
    }
}

impl TokenDtype {
    /// Bytes of a block of `n` tokens of `dim`, padding included.
    pub fn block_len(self, n: usize, dim: usize) -> usize {
        let raw = match self {
            TokenDtype::F32 => n * dim * 4,
            TokenDtype::F16 | TokenDtype::Bf16 => n * dim * 2,
            TokenDtype::I8 => n * 4 + n * dim,
        };
        raw.next_multiple_of(4)
    }

    /// Encodes `n x dim` f32 tokens into a block.
    pub fn encode(self, tokens: &[f32], dim: usize) -> Vec<u8> {
        let n = tokens.len().checked_div(dim).unwrap_or(0);
        let mut out = Vec::with_capacity(self.block_len(n, dim));
        match self {
            TokenDtype::F32 => out.extend_from_slice(bytemuck::cast_slice(tokens)),
            TokenDtype::F16 => {
                let mut bits = vec![0u16; tokens.len()];
                f32s_to_f16_bits(tokens, &mut bits);
                if cfg!(target_endian = "little") {
                    out.extend_from_slice(bytemuck::cast_slice(&bits));
                } else {
                    for b in bits {
                        out.extend_from_slice(&b.to_le_bytes());
                    }
                }
            }
            TokenDtype::Bf16 => {
                for &x in tokens {
                    out.extend_from_slice(&f32_to_bf16_bits(x).to_le_bytes());
                }
            }
            TokenDtype::I8 => {
                let (data, scales) = quantize_i8(tokens, dim);
                out.extend_from_slice(bytemuck::cast_slice(&scales));
                out.extend_from_slice(bytemuck::cast_slice(&data));
            }
        }
        out.resize(self.block_len(n, dim), 0);
        out
    }

    /// Views a block (4-byte aligned) of `n` tokens of `dim`; `None` if the length is wrong or it is misaligned.
    pub fn view(self, block: &[u8], n: usize, dim: usize) -> Option<TokensRef<'_>> {
        if block.len() != self.block_len(n, dim) {
            return None;
        }
        match self {
            TokenDtype::F32 => bytemuck::try_cast_slice(&block[..n * dim * 4])
                .ok()
                .map(TokensRef::F32),
            TokenDtype::F16 => bytemuck::try_cast_slice(&block[..n * dim * 2])
                .ok()
                .map(TokensRef::F16),
            TokenDtype::Bf16 => bytemuck::try_cast_slice(&block[..n * dim * 2])
                .ok()
                .map(TokensRef::Bf16),
            TokenDtype::I8 => {
                let scales: &[f32] = bytemuck::try_cast_slice(&block[..n * 4]).ok()?;
                let data: &[i8] = bytemuck::cast_slice(&block[n * 4..n * 4 + n * dim]);
                Some(TokensRef::I8 { data, scales })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(bytes: &[u8]) -> Vec<u32> {
        let mut v = vec![0u32; bytes.len() / 4];
        bytemuck::cast_slice_mut::<u32, u8>(&mut v).copy_from_slice(bytes);
        v
    }

    #[test]
    fn every_dtype_round_trips_within_its_bound() {
        let dim = 5;
        let tokens: Vec<f32> = (0..15).map(|i| ((i as f32) * 0.37).sin()).collect();
        for (dtype, bound) in [
            (TokenDtype::F32, 0.0),
            (TokenDtype::F16, 1e-3),
            (TokenDtype::Bf16, 4e-3),
            (TokenDtype::I8, 0.5 / 127.0),
        ] {
            let block = dtype.encode(&tokens, dim);
            assert_eq!(block.len() % 4, 0);
            let words = aligned(&block);
            let view = dtype.view(bytemuck::cast_slice(&words), 3, dim).unwrap();
            assert_eq!(view.len_tokens(dim), 3);
            for (a, b) in view.to_f32().iter().zip(&tokens) {
                assert!((a - b).abs() <= bound + 1e-7, "{dtype:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn wrong_length_is_refused() {
        let block = TokenDtype::F32.encode(&[1.0, 2.0], 2);
        assert!(TokenDtype::F32.view(&block, 2, 2).is_none());
    }
}
