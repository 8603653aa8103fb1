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
    /// Content tokens dropped from the end.
    pub dropped_tokens: usize,
}

/// One tokenized item.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Set when the input was longer than `max_length`.
    pub truncated: Option<Truncation>,
}

/// The bundle's tokenizer with its truncation set up.
#[derive(Debug, Clone)]
pub struct SequenceTokenizer {
    tokenizer: Tokenizer,
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
        let cleaned;
        let input = if self.cleanup == Cleanup::None {
            input
        } else {
            cleaned = cleanup::apply(self.cleanup, input);
            if cleaned.trim_start_matches('\u{2581}').trim().is_empty() {
                return Err(invalid(format!("empty {} after clean-up", self.what())));
            }
            cleaned.as_str()
        };
        let encoding = self
            .tokenizer
            .encode_char_offsets(input, true)
            .map_err(|e| invalid(format!("tokenizer failed: {e}")))?;
        if self.modality == Modality::Molecule {
            crate::chem::parse(input.trim()).map_err(|e| invalid(e.to_string()))?;
            self.check_covered(input, &encoding).map_err(invalid)?;
        }
        let truncated = if encoding.get_overflowing().is_empty() {
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
            })
        };
        Ok(Tokens {
            ids: encoding.get_ids().to_vec(),
            truncated,
        })
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
