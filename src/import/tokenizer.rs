//! Tokenizers the exports ship in other formats, written as `tokenizer.json`
//! for the `tokenizers` crate:
//!
//! * [`clip_bpe_json`]: open_clip's `bpe_simple_vocab_16e6.txt.gz` (CLIP's
//!   byte-level BPE, read as open_clip's `SimpleTokenizer` reads it);
//! * [`sentencepiece_json`]: a SentencePiece `spiece.model` (Unigram), as
//!   transformers' `SiglipTokenizer` uses it.
//!
//! Text clean-up that the Python tokenizers do in Python (ftfy, lower case,
//! punctuation) is not in the JSON: it is the bundle's `text_cleanup`,
//! applied by weft before tokenizing (`encoder::Cleanup`).

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::onnx::wire;

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Import {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// GPT-2 / CLIP `bytes_to_unicode`: byte -> printable character, in CLIP's order.
pub(crate) fn bytes_to_unicode() -> Vec<(u8, char)> {
    let mut bs: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .map(|(b, c)| (b as u8, char::from_u32(c).expect("valid")))
        .collect()
}

/// Merges CLIP takes from the vocabulary file: lines 1..49152-256-2+1.
const CLIP_MERGE_LINES: usize = 49152 - 256 - 2;

/// `tokenizer.json` for open_clip's `SimpleTokenizer` over the gzipped BPE
/// merges file at `path`. Special tokens are open_clip's
/// `<start_of_text>` / `<end_of_text>`, after the merges.
pub fn clip_bpe_json(path: &Path) -> Result<(String, ClipVocab)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| bad(path, format!("not a gzipped UTF-8 BPE vocabulary: {e}")))?;
    let lines: Vec<&str> = text.split('\n').collect();
    let mut take: Vec<&str> = lines
        .iter()
        .skip(1)
        .take(CLIP_MERGE_LINES)
        .copied()
        .collect();
    if take.last() == Some(&"") {
        take.pop(); // a file that ends with a newline inside the range
    }
    if take.is_empty() {
        return Err(bad(
            path,
            "the BPE vocabulary has no merges after its header line",
        ));
    }
    let mut merges = Vec::with_capacity(take.len());
    for (i, line) in take.iter().enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() != 2 {
            return Err(bad(
                path,
                format!("line {}: a merge is two symbols, found `{line}`", i + 2),
            ));
        }
        merges.push((parts[0].to_string(), parts[1].to_string()));
    }
    let mut vocab: Vec<String> = bytes_to_unicode()
        .iter()
        .map(|(_, c)| c.to_string())
        .collect();
    let singles = vocab.clone();
    vocab.extend(singles.iter().map(|c| format!("{c}</w>")));
    vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    let sot = vocab.len() as u32;
    vocab.push("<start_of_text>".into());
    vocab.push("<end_of_text>".into());
    let eot = sot + 1;
    let vocab_json: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
               "normalized": false, "special": true})
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(sot, "<start_of_text>"), special(eot, "<end_of_text>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex":
                "(?i)<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"},
             "behavior": "Removed", "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": template("<start_of_text>", sot, "<end_of_text>", eot),
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab_json,
                  "merges": merges.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>()}
    });
    Ok((
        serde_json::to_string(&tokenizer).expect("json"),
        ClipVocab {
            size: vocab.len(),
            start: sot,
            end: eot,
        },
    ))
}

/// Sizes of a CLIP BPE vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipVocab {
    /// Tokens in the vocabulary.
    pub size: usize,
    /// `<start_of_text>`.
    pub start: u32,
    /// `<end_of_text>`.
    pub end: u32,
}

fn template(start: &str, start_id: u32, end: &str, end_id: u32) -> Value {
    let mut single = Vec::new();
    let mut special = serde_json::Map::new();
    if !start.is_empty() {
        single.push(json!({"SpecialToken": {"id": start, "type_id": 0}}));
        special.insert(
            start.into(),
            json!({"id": start, "ids": [start_id], "tokens": [start]}),
        );
    }
    single.push(json!({"Sequence": {"id": "A", "type_id": 0}}));
    single.push(json!({"SpecialToken": {"id": end, "type_id": 0}}));
    special.insert(
        end.into(),
        json!({"id": end, "ids": [end_id], "tokens": [end]}),
    );
    let mut pair = single.clone();
    pair.push(json!({"Sequence": {"id": "B", "type_id": 1}}));
    pair.push(json!({"SpecialToken": {"id": end, "type_id": 1}}));
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special})
}

/// What a SentencePiece model says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SentencePieceInfo {
    /// Number of pieces.
    pub size: usize,
    /// Id of `</s>` (the end token SigLIP appends), if the model has one.
    pub eos: Option<u32>,
    /// Id of the padding piece, if any.
    pub pad: Option<u32>,
    /// Id of the unknown piece.
    pub unk: u32,
}

/// `tokenizer.json` for a SentencePiece Unigram model (`spiece.model`) as
/// transformers' `SiglipTokenizer` runs it: the model's own normalizer
/// (its precompiled character map, which maps `▁` to a space), SentencePiece's
/// whitespace rules, spaces as `▁`, no dummy prefix (the clean-up puts a `▁`
/// in front), `eos_token` appended. `specials`
/// are the pieces the Python tokenizer matches whole in the text.
pub fn sentencepiece_json(
    path: &Path,
    eos_token: &str,
    specials: &[&str],
) -> Result<(String, SentencePieceInfo)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let malformed = |e: wire::WireError| bad(path, format!("not a SentencePiece model: {e}"));
    let mut pieces: Vec<(String, f32, i64)> = Vec::new();
    let mut model_type = 1;
    let mut byte_fallback = false;
    let mut unk_id = 0i64;
    let mut charsmap: &[u8] = &[];
    // NormalizerSpec: add_dummy_prefix (3), remove_extra_whitespaces (4),
    // escape_whitespaces (5); SiglipTokenizer turns the first off itself.
    let (mut extra_ws, mut escape_ws) = (true, true);
    for f in wire::fields(&bytes) {
        let f = f.map_err(malformed)?;
        match f.number {
            1 => {
                let (mut piece, mut score, mut kind) = (String::new(), 0.0, 1);
                for g in wire::fields(f.bytes().unwrap_or_default()) {
                    let g = g.map_err(malformed)?;
                    match g.number {
                        1 => piece = g.string().unwrap_or_default(),
                        2 => score = g.float().unwrap_or(0.0),
                        3 => kind = g.int().unwrap_or(1),
                        _ => {}
                    }
                }
                pieces.push((piece, score, kind));
            }
            2 => {
                for g in wire::fields(f.bytes().unwrap_or_default()) {
                    let g = g.map_err(malformed)?;
                    match g.number {
                        3 => model_type = g.int().unwrap_or(1),
                        35 => byte_fallback = g.int() == Some(1),
                        40 => unk_id = g.int().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            3 => {
                for g in wire::fields(f.bytes().unwrap_or_default()) {
                    let g = g.map_err(malformed)?;
                    match g.number {
                        2 => charsmap = g.bytes().unwrap_or_default(),
                        4 => extra_ws = g.int() != Some(0),
                        5 => escape_ws = g.int() != Some(0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if pieces.is_empty() {
        return Err(bad(path, "not a SentencePiece model: it has no pieces"));
    }
    if !(extra_ws && escape_ws) {
        return Err(bad(
            path,
            "the SentencePiece normalizer keeps extra whitespace or does not escape it; weft converts models with SentencePiece's default whitespace handling",
        ));
    }
    if unk_id < 0 || unk_id as usize >= pieces.len() {
        return Err(bad(
            path,
            format!("the SentencePiece unknown-token id {unk_id} is not a piece"),
        ));
    }
    if model_type != 1 {
        return Err(bad(
            path,
            format!("SentencePiece model type {model_type} is not Unigram (1); weft converts Unigram models"),
        ));
    }
    let id_of = |name: &str| {
        pieces
            .iter()
            .position(|(p, _, _)| p == name)
            .map(|i| i as u32)
    };
    let eos = id_of(eos_token).ok_or_else(|| {
        bad(
            path,
            format!("the SentencePiece model has no `{eos_token}` piece (the end token)"),
        )
    })?;
    // SiglipTokenizer matches its special tokens in the raw text, but the
    // clean-up has removed their punctuation by the time this tokenizer runs
    // (so `</s>` typed in a text is read as letters, not as the end token).
    let _ = specials;
    let added: Vec<Value> = pieces
        .iter()
        .enumerate()
        .filter(|(_, (_, _, kind))| *kind == 4)
        .map(|(i, (p, _, kind))| {
            json!({"id": i, "content": p, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": *kind == 4, "special": *kind != 4})
        })
        .collect();
    let mut normalizers = Vec::new();
    if !charsmap.is_empty() {
        normalizers.push(json!({"type": "Precompiled",
            "precompiled_charsmap": base64::engine::general_purpose::STANDARD.encode(charsmap)}));
    }
    // SentencePiece then collapses runs of spaces and drops trailing ones
    // (`remove_extra_whitespaces`), and writes spaces as `▁`. Leading spaces
    // stay, one of them: SiglipTokenizer encodes `<unk>` + text and strips the
    // `<unk>` pieces, so the text never starts the input.
    normalizers.push(json!({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}));
    normalizers.push(json!({"type": "Strip", "strip_left": false, "strip_right": true}));
    normalizers.push(json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}));
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": null,
        "post_processor": template("", 0, eos_token, eos),
        "decoder": {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "never", "split": true},
        "model": {"type": "Unigram", "unk_id": unk_id, "byte_fallback": byte_fallback,
                  "vocab": pieces.iter().map(|(p, s, _)| json!([p, s])).collect::<Vec<_>>()}
    });
    Ok((
        serde_json::to_string(&tokenizer).expect("json"),
        SentencePieceInfo {
            size: pieces.len(),
            eos: Some(eos),
            pad: id_of("<pad>"),
            unk: unk_id as u32,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_to_unicode_is_a_bijection_in_clip_order() {
        let m = bytes_to_unicode();
        assert_eq!(m.len(), 256);
        assert_eq!(m[0], (b'!', '!'));
        let mut bytes: Vec<u8> = m.iter().map(|(b, _)| *b).collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
        assert_eq!(m.iter().find(|(b, _)| *b == b' ').unwrap().1, 'Ġ');
    }
}
