//! Text clean-up that runs before a tokenizer, as the model's own Python
//! pipeline does it (the bundle's `text_cleanup` names which):
//!
//! * [`Cleanup::Clip`]: open_clip's / OpenAI CLIP's default (`clean="lower"`):
//!   `basic_clean` (ftfy's `fix_text` without its mojibake repair, see below,
//!   then `html.unescape` twice), `whitespace_clean`, lower case.
//! * [`Cleanup::ClipWhitespace`]: open_clip `clean="whitespace"`: the same without lower case.
//! * [`Cleanup::ClipCanonicalize`]: open_clip `clean="canonicalize"` (its SigLIP
//!   models): `basic_clean`, `_` to space, ASCII punctuation removed, lower
//!   case, whitespace collapsed.
//! * [`Cleanup::Whitespace`]: Immich's `" ".join(text.split())`.
//! * [`Cleanup::WhitespaceCanonicalize`]: Immich's SigLIP clean-up: whitespace
//!   collapsed, ASCII punctuation removed, lower case.
//! * [`Cleanup::Siglip`]: transformers' `SiglipTokenizer`: lower case, then
//!   its `canonicalize_text`, on the text behind a leading `▁`.
//!
//! ftfy's `fix_encoding` (repairing mojibake such as `cafÃ©`) is a heuristic
//! over code pages and is not ported: text that is mojibake stays as it is.
//! Everything else in ftfy's default `fix_text` is: HTML entities (only when
//! the segment has no `<`), C1 controls, Latin ligatures, character width,
//! curly quotes, line breaks, terminal escapes, control characters, NFC.

mod tables;

use tokenizers::normalizer::NormalizedString;

pub use crate::bundle::TextCleanup as Cleanup;

/// Applies `cleanup` to `text`.
pub fn apply(cleanup: Cleanup, text: &str) -> String {
    match cleanup {
        Cleanup::None => text.to_string(),
        Cleanup::Clip => py_lower(&collapse_whitespace(&basic_clean(text))),
        Cleanup::ClipWhitespace => collapse_whitespace(&basic_clean(text)),
        Cleanup::ClipCanonicalize => {
            let t = basic_clean(text).replace('_', " ");
            collapse_whitespace(&py_lower(&remove_ascii_punctuation(&t)))
        }
        Cleanup::Whitespace => collapse_whitespace(text),
        Cleanup::WhitespaceCanonicalize => {
            py_lower(&remove_ascii_punctuation(&collapse_whitespace(text)))
        }
        Cleanup::Siglip => {
            let t = format!("\u{2581}{}", text.replace('\u{2581}', " "));
            let t = remove_ascii_punctuation(&py_lower(&t));
            collapse_whitespace(&t)
        }
    }
}

/// open_clip's `basic_clean`: ftfy, `html.unescape` twice, `strip()`.
fn basic_clean(text: &str) -> String {
    let t = fix_text(text);
    let t = html_unescape(&html_unescape(&t));
    t.trim_matches(is_py_space).to_string()
}

/// Python's `str.isspace()`.
fn is_py_space(c: char) -> bool {
    tables::PY_SPACE.binary_search(&(c as u32)).is_ok()
}

/// `" ".join(text.split())`.
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(is_py_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Python's `str.lower()`: full Unicode lower case (final sigma included).
fn py_lower(text: &str) -> String {
    text.to_lowercase()
}

fn remove_ascii_punctuation(text: &str) -> String {
    text.chars().filter(|c| !c.is_ascii_punctuation()).collect()
}

fn lookup<'t, K: Ord, V>(table: &'t [(K, V)], key: &K) -> Option<&'t V> {
    table
        .binary_search_by(|(k, _)| k.cmp(key))
        .ok()
        .map(|i| &table[i].1)
}

fn lookup_str(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .map(|i| table[i].1)
}

/// ftfy's `fix_text` with its default settings, minus `fix_encoding`.
fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    // ftfy fixes one line at a time; once a line holds `<`, HTML unescaping
    // stays off for the rest of the text (its config is replaced, not restored).
    for segment in text.split_inclusive('\n') {
        if segment.contains('<') {
            unescape = false;
        }
        out.push_str(&fix_segment(segment, unescape));
    }
    out
}

fn fix_segment(segment: &str, unescape: bool) -> String {
    let mut text = segment.to_string();
    loop {
        let orig = text.clone();
        if unescape {
            text = ftfy_unescape_html(&text);
        }
        text = map_chars(&text, |c| {
            let cp = c as u32;
            if (0x80..=0x9f).contains(&cp) {
                lookup(tables::SLOPPY_1252, &cp).map(|s| s.to_string())
            } else {
                None
            }
        });
        text = map_chars(&text, |c| {
            lookup(tables::LIGATURES, &(c as u32)).map(|s| s.to_string())
        });
        text = map_chars(&text, |c| {
            lookup(tables::WIDTH_MAP, &(c as u32)).map(|s| s.to_string())
        });
        text = map_chars(&text, |c| {
            if tables::SINGLE_QUOTES.contains(c) {
                Some("'".to_string())
            } else if tables::DOUBLE_QUOTES.contains(c) {
                Some("\"".to_string())
            } else {
                None
            }
        });
        text = text
            .replace("\r\n", "\n")
            .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
        text = remove_terminal_escapes(&text);
        text = map_chars(&text, |c| {
            lookup(tables::CONTROL_CHARS, &(c as u32)).map(|s| s.to_string())
        });
        text = NormalizedString::from(text.as_str())
            .nfc()
            .get()
            .to_string();
        if text == orig {
            return text;
        }
    }
}

fn map_chars(text: &str, f: impl Fn(char) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match f(c) {
            Some(s) => out.push_str(&s),
            None => out.push(c),
        }
    }
    out
}

/// `\x1b[` digits-or-semicolons, then one ASCII letter, removed.
fn remove_terminal_escapes(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] == 0x1b && b.get(i + 1) == Some(&b'[') {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b';') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_alphabetic() {
                out.push_str(&text[copied..i]);
                i = j + 1;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// ftfy's `unescape_html`: `&#?[0-9A-Za-z]{1,24};` replaced when it is a known entity.
fn ftfy_unescape_html(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        if b[i] == b'&' {
            let start = i;
            let mut j = i + 1;
            if b.get(j) == Some(&b'#') {
                j += 1;
            }
            let body = j;
            while j < b.len() && j - body < 24 && b[j].is_ascii_alphanumeric() {
                j += 1;
            }
            if j > body && b.get(j) == Some(&b';') {
                let entity = &text[start..=j];
                let replacement = if let Some(r) = lookup_str(tables::FTFY_ENTITIES, entity) {
                    Some(r.to_string())
                } else if entity.starts_with("&#") {
                    let u = html_unescape(entity);
                    (!u.contains(';')).then_some(u)
                } else {
                    None
                };
                if let Some(r) = replacement {
                    out.push_str(&text[copied..start]);
                    out.push_str(&r);
                    i = j + 1;
                    copied = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Python's `html.unescape`.
pub(crate) fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '&' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match charref(&chars[i + 1..]) {
            Some((consumed, replacement)) => {
                out.push_str(&replacement);
                i += 1 + consumed;
            }
            None => {
                out.push('&');
                i += 1;
            }
        }
    }
    out
}

/// One reference after `&`: the characters it spans and its replacement,
/// following CPython's `html._charref` regex and `_replace_charref`.
fn charref(s: &[char]) -> Option<(usize, String)> {
    if s.first() == Some(&'#') {
        let hex = matches!(s.get(1), Some('x' | 'X'));
        let digits_from = if hex { 2 } else { 1 };
        let mut j = digits_from;
        while j < s.len()
            && (if hex {
                s[j].is_ascii_hexdigit()
            } else {
                s[j].is_ascii_digit()
            })
        {
            j += 1;
        }
        if j == digits_from {
            return None;
        }
        let digits: String = s[digits_from..j].iter().collect();
        let consumed = if s.get(j) == Some(&';') { j + 1 } else { j };
        let num = u64::from_str_radix(&digits, if hex { 16 } else { 10 }).unwrap_or(u64::MAX);
        let text = if let Some(r) = u32::try_from(num)
            .ok()
            .and_then(|n| lookup(tables::INVALID_CHARREFS, &n))
        {
            r.to_string()
        } else if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
            "\u{FFFD}".to_string()
        } else if tables::INVALID_CODEPOINTS
            .binary_search(&(num as u32))
            .is_ok()
        {
            String::new()
        } else {
            char::from_u32(num as u32).map_or_else(|| "\u{FFFD}".to_string(), |c| c.to_string())
        };
        return Some((consumed, text));
    }
    // Named: [^\t\n\f <&#;]{1,32};?
    let mut j = 0;
    while j < s.len()
        && j < 32
        && !matches!(s[j], '\t' | '\n' | '\u{c}' | ' ' | '<' | '&' | '#' | ';')
    {
        j += 1;
    }
    if j == 0 {
        return None;
    }
    let consumed = if s.get(j) == Some(&';') { j + 1 } else { j };
    let name: String = s[..consumed].iter().collect();
    if let Some(r) = lookup_str(tables::HTML5, &name) {
        return Some((consumed, r.to_string()));
    }
    // The longest prefix that is an entity (names without `;` in the table).
    let name_chars: Vec<char> = name.chars().collect();
    for x in (2..name_chars.len()).rev() {
        let prefix: String = name_chars[..x].iter().collect();
        if let Some(r) = lookup_str(tables::HTML5, &prefix) {
            let rest: String = name_chars[x..].iter().collect();
            return Some((consumed, format!("{r}{rest}")));
        }
    }
    Some((consumed, format!("&{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted() {
        let sorted = |keys: Vec<u32>| keys.windows(2).all(|w| w[0] < w[1]);
        assert!(sorted(tables::LIGATURES.iter().map(|(k, _)| *k).collect()));
        assert!(sorted(tables::WIDTH_MAP.iter().map(|(k, _)| *k).collect()));
        assert!(sorted(
            tables::CONTROL_CHARS.iter().map(|(k, _)| *k).collect()
        ));
        assert!(tables::HTML5.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(tables::FTFY_ENTITIES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn html_unescape_follows_python() {
        assert_eq!(html_unescape("a &amp; b"), "a & b");
        assert_eq!(html_unescape("&amp;amp;"), "&amp;");
        assert_eq!(html_unescape("&lt;b&gt;"), "<b>");
        assert_eq!(html_unescape("&#39;&#x1F600;"), "'😀");
        assert_eq!(html_unescape("&ampxyz"), "&xyz");
        assert_eq!(html_unescape("&notit;"), "¬it;");
        assert_eq!(html_unescape("&#0;"), "\u{FFFD}");
        assert_eq!(html_unescape("&#128;"), "€");
        assert_eq!(html_unescape("& alone"), "& alone");
        assert_eq!(html_unescape("&unknownentity;"), "&unknownentity;");
    }

    #[test]
    fn clip_cleanup_matches_open_clip() {
        // Values from open_clip's SimpleTokenizer pre-processing (ftfy 6.3.1).
        assert_eq!(
            apply(Cleanup::Clip, "  A  Photo\tof a CAT "),
            "a photo of a cat"
        );
        assert_eq!(
            apply(Cleanup::Clip, "“curly” ‘quotes’"),
            "\"curly\" 'quotes'"
        );
        assert_eq!(apply(Cleanup::Clip, "ﬁsh &amp; chips"), "fish & chips");
        assert_eq!(apply(Cleanup::Clip, "Ｆｕｌｌｗｉｄｔｈ"), "fullwidth");
        assert_eq!(apply(Cleanup::Clip, "e\u{301}"), "é");
        assert_eq!(apply(Cleanup::Clip, "\u{1b}[36mblue\u{1b}[0m"), "blue");
        assert_eq!(apply(Cleanup::Clip, "<b>&amp;amp;</b>"), "<b>&</b>");
        assert_eq!(apply(Cleanup::Clip, "ΟΔΟΣ"), "οδος");
    }

    #[test]
    fn siglip_and_canonical_cleanups() {
        assert_eq!(
            apply(Cleanup::Siglip, "A Photo, of a Cat!"),
            "\u{2581}a photo of a cat"
        );
        assert_eq!(
            apply(Cleanup::ClipCanonicalize, "A Photo, of_a Cat!"),
            "a photo of a cat"
        );
        assert_eq!(
            apply(Cleanup::WhitespaceCanonicalize, "A Photo, of_a Cat!"),
            "a photo ofa cat"
        );
        assert_eq!(apply(Cleanup::Whitespace, " a \t b\n"), "a b");
    }
}
