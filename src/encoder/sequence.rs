//! Tokenizing text and SMILES with the bundle's `tokenizer.json`.
//!
//! Truncation to the bundle's `max_length` is done by the tokenizer and
//! reported per item ([`Truncation`]); padding is done per batch, to the
//! longest item, by the encoder.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::bundle::{Modality, SequenceSpec};
use crate::error::{Error, Result};

use super::cleanup::{self, Cleanup};

/// An item that was cut to the model's maximum length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Truncation {
    /// Tokens the model saw (special tokens included).
    pub kept_tokens: usize,
    /// Content tokens dropped from the end, counted in the part of the
    /// input that was tokenized (see `skipped_bytes`).
    pub dropped_tokens: usize,
    /// Bytes at the end of the input that were never tokenized: a long text
    /// is tokenized from a prefix (doubled until the kept tokens cannot
    /// depend on the cut), so its cost is bounded by the model's length,
    /// not the input's.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped_bytes: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// First prefix of a long text that is tokenized, in bytes per position of
/// `max_length` (at least [`MIN_PREFIX`]).
const PREFIX_PER_POSITION: usize = 64;
/// Smallest first prefix, in bytes.
const MIN_PREFIX: usize = 4096;
/// Text past this many bytes is never tokenized (reported in
/// [`Truncation::skipped_bytes`]): a text whose first 256 KiB do not fill
/// the model's length is not prose.
pub const MAX_TOKENIZED_BYTES: usize = 256 << 10;
/// Characters between the end of the last kept token and the cut: a cut
/// this far away cannot change the kept tokens unless one word is longer.
const CUT_GUARD: usize = 256;

/// One tokenized item.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Set when the input was longer than `max_length`.
    pub truncated: Option<Truncation>,
}

/// Longest SMILES accepted, in bytes (it is parsed and tokenized whole).
pub const MAX_SMILES_BYTES: usize = 64 << 10;

/// The bundle's tokenizer with its truncation set up.
#[derive(Debug, Clone)]
pub struct SequenceTokenizer {
    tokenizer: Tokenizer,
    max_length: usize,
    modality: Modality,
    pad_id: u32,
    unk_id: Option<u32>,
    cleanup: Cleanup,
}

impl SequenceTokenizer {
    /// The tokenizer a bundle's sequence spec names (`tokenizer` in `dir`),
    /// with its truncation, padding id and text clean-up.
    pub fn from_spec(dir: &Path, spec: &SequenceSpec, modality: Modality) -> Result<Self> {
        let mut t = Self::from_file(&dir.join(&spec.tokenizer), spec.max_length, modality)?;
        if let Some(id) = spec.pad_id {
            t.pad_id = id;
        }
        t.cleanup = spec.text_cleanup;
        Ok(t)
    }

    /// Loads `tokenizer.json` and sets truncation to `max_length` (padding off).
    pub fn from_file(path: &Path, max_length: usize, modality: Modality) -> Result<Self> {
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| Error::Bundle {
            path: path.to_path_buf(),
            reason: format!("cannot read the tokenizer: {e}"),
        })?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::Bundle {
                path: path.to_path_buf(),
                reason: format!("cannot set truncation to {max_length}: {e}"),
            })?;
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| tokenizer.token_to_id("[PAD]"))
            .or_else(|| tokenizer.token_to_id("<pad>"))
            .unwrap_or(0);
        tokenizer.with_padding(None);
        let unk_id = tokenizer
            .token_to_id("[UNK]")
            .or_else(|| tokenizer.token_to_id("<unk>"));
        Ok(SequenceTokenizer {
            tokenizer,
            max_length,
            modality,
            pad_id,
            unk_id,
            cleanup: Cleanup::None,
        })
    }

    /// Token ids of `input` after the clean-up, special tokens included and
    /// truncated: what the Python tokenizer of the model gives (the parity
    /// tests compare this). Empty text is tokenized too.
    pub fn ids(&self, input: &str) -> Result<Vec<u32>> {
        let text = cleanup::apply(self.cleanup, input);
        let encoding = self
            .tokenizer
            .encode_char_offsets(text.as_str(), true)
            .map_err(|e| Error::InvalidInput {
                item: "text".into(),
                reason: format!("tokenizer failed: {e}"),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Id used for padding positions.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Tokenizes one item; `item` names it in errors.
    pub fn tokenize(&self, input: &str, item: &str) -> Result<Tokens> {
        let invalid = |reason: String| Error::InvalidInput {
            item: item.to_string(),
            reason,
        };
        if input.trim().is_empty() {
            return Err(invalid(format!("empty {}", self.what())));
        }
        if self.modality == Modality::Molecule {
            return self.tokenize_smiles(input, item);
        }
        // Text: tokenize a prefix, doubled until the kept tokens end well
        // before the cut (or the prefix is the whole input).
        let mut take = MIN_PREFIX
            .max(self.max_length.saturating_mul(PREFIX_PER_POSITION))
            .min(MAX_TOKENIZED_BYTES);
        loop {
            let (prefix, cut) = if input.len() <= take {
                (input, false)
            } else {
                {
                    let mut end = take;
                    while !input.is_char_boundary(end) {
                        end -= 1;
                    }
                    (&input[..end], true)
                }
            };
            let cleaned;
            let text = if self.cleanup == Cleanup::None {
                prefix
            } else {
                cleaned = cleanup::apply(self.cleanup, prefix);
                if !cut && cleaned.trim_start_matches('\u{2581}').trim().is_empty() {
                    return Err(invalid(format!("empty {} after clean-up", self.what())));
                }
                cleaned.as_str()
            };
            let encoding = self
                .tokenizer
                .encode_char_offsets(text, true)
                .map_err(|e| invalid(format!("tokenizer failed: {e}")))?;
            if cut && take < MAX_TOKENIZED_BYTES {
                let last_end = encoding
                    .get_offsets()
                    .iter()
                    .zip(encoding.get_special_tokens_mask())
                    .filter(|(_, special)| **special == 0)
                    .map(|((_, end), _)| *end)
                    .max()
                    .unwrap_or(0);
                let settled = !encoding.get_overflowing().is_empty()
                    && last_end + CUT_GUARD <= text.chars().count();
                if !settled {
                    take = take.saturating_mul(2).min(MAX_TOKENIZED_BYTES);
                    continue;
                }
            }
            if cut && encoding.get_special_tokens_mask().iter().all(|m| *m == 1) {
                return Err(invalid(format!(
                    "no text in the first {MAX_TOKENIZED_BYTES} bytes ({} bytes in all)",
                    input.len()
                )));
            }
            return Ok(self.tokens(&encoding, input.len() - prefix.len()));
        }
    }

    /// A SMILES is tokenized whole (every character must be covered), within
    /// [`MAX_SMILES_BYTES`].
    fn tokenize_smiles(&self, input: &str, item: &str) -> Result<Tokens> {
        let invalid = |reason: String| Error::InvalidInput {
            item: item.to_string(),
            reason,
        };
        if input.len() > MAX_SMILES_BYTES {
            return Err(invalid(format!(
                "SMILES of {} bytes, over the limit of {MAX_SMILES_BYTES} bytes",
                input.len()
            )));
        }
        let cleaned;
        let input = if self.cleanup == Cleanup::None {
            input
        } else {
            cleaned = cleanup::apply(self.cleanup, input);
            cleaned.as_str()
        };
        let encoding = self
            .tokenizer
            .encode_char_offsets(input, true)
            .map_err(|e| invalid(format!("tokenizer failed: {e}")))?;
        crate::chem::parse(input.trim()).map_err(|e| invalid(e.to_string()))?;
        if let Err(why) = self.check_covered(input, &encoding) {
            // Ring-closure labels carry no meaning: a label the vocabulary
            // lacks (`0`, `%00`) is renumbered as RDKit writes SMILES.
            let renumbered = crate::chem::renumber_ring_closures(input);
            if renumbered == input {
                return Err(invalid(why));
            }
            let again = self
                .tokenizer
                .encode_char_offsets(renumbered.as_str(), true)
                .map_err(|e| invalid(format!("tokenizer failed: {e}")))?;
            self.check_covered(&renumbered, &again)
                .map_err(|_| invalid(why))?;
            return Ok(self.tokens(&again, 0));
        }
        Ok(self.tokens(&encoding, 0))
    }

    fn tokens(&self, encoding: &tokenizers::Encoding, skipped_bytes: usize) -> Tokens {
        let truncated = if encoding.get_overflowing().is_empty() && skipped_bytes == 0 {
            None
        } else {
            let dropped = encoding
                .get_overflowing()
                .iter()
                .map(|o| {
                    o.get_special_tokens_mask()
                        .iter()
                        .filter(|m| **m == 0)
                        .count()
                })
                .sum();
            Some(Truncation {
                kept_tokens: encoding.len(),
                dropped_tokens: dropped,
                skipped_bytes,
            })
        };
        Tokens {
            ids: encoding.get_ids().to_vec(),
            truncated,
        }
    }

    fn what(&self) -> &'static str {
        match self.modality {
            Modality::Molecule => "SMILES",
            _ => "text",
        }
    }

    /// Every character of a SMILES must be covered by a known token.
    fn check_covered(
        &self,
        input: &str,
        encoding: &tokenizers::Encoding,
    ) -> std::result::Result<(), String> {
        let chars: Vec<char> = input.chars().collect();
        let mut covered = vec![false; chars.len()];
        let specials = encoding.get_special_tokens_mask();
        for (i, (&id, &(start, end))) in encoding
            .get_ids()
            .iter()
            .zip(encoding.get_offsets())
            .enumerate()
        {
            if specials[i] == 1 {
                continue;
            }
            if Some(id) == self.unk_id {
                let piece: String = chars[start.min(chars.len())..end.min(chars.len())]
                    .iter()
                    .collect();
                return Err(format!(
                    "invalid SMILES: unknown token `{piece}` at position {start} (0-based character index)"
                ));
            }
            for c in covered.iter_mut().take(end.min(chars.len())).skip(start) {
                *c = true;
            }
        }
        // Overflowing (truncated) parts are covered too; check them the same way.
        for o in encoding.get_overflowing() {
            for (&id, &(start, end)) in o.get_ids().iter().zip(o.get_offsets()) {
                if Some(id) == self.unk_id {
                    let piece: String = chars[start.min(chars.len())..end.min(chars.len())]
                        .iter()
                        .collect();
                    return Err(format!(
                        "invalid SMILES: unknown token `{piece}` at position {start}"
                    ));
                }
                for c in covered.iter_mut().take(end.min(chars.len())).skip(start) {
                    *c = true;
                }
            }
        }
        if let Some(pos) = covered.iter().position(|c| !c) {
            return Err(format!(
                "invalid SMILES: character `{}` at position {pos} is not covered by the SMILES vocabulary",
                chars[pos]
            ));
        }
        Ok(())
    }
}
