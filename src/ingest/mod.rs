//! Ingest: files on disk to collection items, incrementally.
//!
//! * Images (`jpg jpeg png webp gif bmp tif tiff`): one item per file.
//! * Text (`txt md`): one item per file, the whole text.
//! * JSON lines (`jsonl`): one item per line: `{"id"?, "text" | "smiles" | "image", "payload"?}`.
//! * Molecules (`smi`): `SMILES [name]` per line; (`csv`, `tsv`): a header
//!   with a `smiles` column, optional `id` and `name`, other columns go to the payload.
//!
//! Re-running [`sync`] indexes only files that are new or changed (size and
//! modification time, recorded in each item's payload under `weft_file`),
//! replaces the items of changed files, and removes items whose files are
//! gone (under the folders given). Every commit covers whole files, so an
//! interrupted run leaves the collection consistent and the next run
//! finishes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::bundle::Modality;
use crate::encoder::{BundleEncoders, Input};
use crate::error::{Error, Result};
use crate::store::Collection;

/// Items encoded per batch (and per commit) when the caller does not say.
pub const DEFAULT_BATCH: usize = 32;

/// Payload key holding the file state of file-sourced items.
pub const FILE_KEY: &str = "weft_file";

/// The kind of a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// One image.
    Image,
    /// One text.
    Text,
    /// JSON lines.
    Jsonl,
    /// SMILES lines.
    Smi,
    /// CSV or TSV with a `smiles` column (the separator).
    Table(u8),
}

impl SourceKind {
    /// From the extension; `None` for files weft does not read.
    pub fn of(path: &Path) -> Option<SourceKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "jpg" | "jpeg" | "png" | "webp" | "gif" | "bmp" | "tif" | "tiff" => SourceKind::Image,
            "txt" | "md" => SourceKind::Text,
            "jsonl" => SourceKind::Jsonl,
            "smi" => SourceKind::Smi,
            "csv" => SourceKind::Table(b','),
            "tsv" => SourceKind::Table(b'\t'),
            _ => return None,
        })
    }
}

/// A file to index.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Kind.
    pub kind: SourceKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: u128,
}

impl SourceFile {
    fn state(&self) -> Value {
        serde_json::json!({ "size": self.size, "mtime_ns": self.mtime_ns.to_string() })
    }
}

fn stat(path: &Path, kind: SourceKind) -> Result<SourceFile> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(SourceFile {
        path: path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
        kind,
        size: meta.len(),
        mtime_ns,
    })
}

/// Matches `name` against a glob of `*` and `?` (no `/` crossing).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Expands inputs (files, folders searched recursively, globs on the file
/// name such as `photos/*.jpg` or `photos/**/*.png`) into readable files.
/// Returns the files and the folders they were found under (for deletions).
pub fn discover(inputs: &[String]) -> Result<(Vec<SourceFile>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut roots = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        if input.contains(['*', '?']) {
            let (dir, pattern, recursive) = split_glob(input);
            if !dir.is_dir() {
                return Err(Error::NotFound {
                    what: "folder",
                    name: dir.display().to_string(),
                });
            }
            walk(
                &dir,
                recursive,
                &mut |p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    glob_match(&pattern, name)
                },
                &mut files,
            )?;
            roots.push(dir.canonicalize().unwrap_or(dir));
        } else if path.is_dir() {
            walk(path, true, &mut |_| true, &mut files)?;
            roots.push(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()));
        } else if path.is_file() {
            let kind = SourceKind::of(path).ok_or_else(|| Error::InvalidInput {
                item: input.clone(),
                reason: "unsupported file type (images, txt, md, jsonl, smi, csv, tsv)".into(),
            })?;
            files.push(stat(path, kind)?);
        } else {
            return Err(Error::NotFound {
                what: "file or folder",
                name: input.clone(),
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok((files, roots))
}

fn split_glob(input: &str) -> (PathBuf, String, bool) {
    let path = Path::new(input);
    let pattern = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("*")
        .to_string();
    let mut dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut recursive = false;
    if dir.file_name().and_then(|n| n.to_str()) == Some("**") {
        recursive = true;
        dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    if dir.as_os_str().is_empty() {
        dir = PathBuf::from(".");
    }
    (dir, pattern, recursive)
}

fn walk(
    dir: &Path,
    recursive: bool,
    keep: &mut dyn FnMut(&Path) -> bool,
    out: &mut Vec<SourceFile>,
) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            if recursive {
                walk(&p, recursive, keep, out)?;
            }
        } else if let Some(kind) = SourceKind::of(&p) {
            if keep(&p) {
                out.push(stat(&p, kind)?);
            }
        }
    }
    Ok(())
}

/// What to encode for one item.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemInput {
    /// Text.
    Text(String),
    /// SMILES.
    Smiles(String),
    /// An image file.
    Image(PathBuf),
}

impl ItemInput {
    fn as_input(&self) -> Input<'_> {
        match self {
            ItemInput::Text(t) => Input::Text(t),
            ItemInput::Smiles(s) => Input::Smiles(s),
            ItemInput::Image(p) => Input::ImagePath(p),
        }
    }

    fn modality(&self) -> Modality {
        self.as_input().modality()
    }
}

/// One item read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemSpec {
    /// External id.
    pub id: String,
    /// Where it was read: `file` or `file:line` (1-based).
    pub at: String,
    /// What to encode.
    pub input: ItemInput,
    /// Payload (an object).
    pub payload: Value,
}

/// What reading one file gave.
#[derive(Debug)]
pub enum FileRead {
    /// Its items, and its bad lines as errors naming the line.
    Items(Vec<ItemSpec>, Vec<Error>),
    /// A file passed over on purpose (a table without a `smiles` column):
    /// `path: skipped: reason`.
    Skipped(String),
}

/// Reads the items of a file; bad lines are returned as errors naming the line.
pub fn read_items(file: &SourceFile) -> Result<FileRead> {
    let path = &file.path;
    let id_base = path.display().to_string();
    let line_err = |n: usize, reason: String| Error::InvalidInput {
        item: format!("{}:{}", path.display(), n + 1),
        reason,
    };
    let mut items = Vec::new();
    let mut errors = Vec::new();
    match file.kind {
        SourceKind::Image => items.push(ItemSpec {
            at: id_base.clone(),
            id: id_base,
            input: ItemInput::Image(path.clone()),
            payload: serde_json::json!({}),
        }),
        SourceKind::Text => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            items.push(ItemSpec {
                at: id_base.clone(),
                id: id_base,
                input: ItemInput::Text(text),
                payload: serde_json::json!({}),
            });
        }
        SourceKind::Jsonl => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match parse_jsonl(line, path) {
                    Ok((id, input, payload)) => items.push(ItemSpec {
                        at: format!("{id_base}:{}", n + 1),
                        id: id.unwrap_or_else(|| format!("{id_base}#{}", n + 1)),
                        input,
                        payload,
                    }),
                    Err(reason) => errors.push(line_err(n, reason)),
                }
            }
        }
        SourceKind::Smi => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            for (n, line) in text.lines().enumerate() {
                let mut parts = line.split_whitespace();
                let Some(smiles) = parts.next() else { continue };
                if smiles.starts_with('#') {
                    continue;
                }
                let name: Vec<&str> = parts.collect();
                let mut payload = serde_json::json!({ "smiles": smiles });
                if !name.is_empty() {
                    payload["name"] = Value::String(name.join(" "));
                }
                items.push(ItemSpec {
                    at: format!("{id_base}:{}", n + 1),
                    id: format!("{id_base}#{}", n + 1),
                    input: ItemInput::Smiles(smiles.to_string()),
                    payload,
                });
            }
        }
        SourceKind::Table(sep) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let mut lines = text.lines().enumerate();
            let Some((_, header)) = lines.next() else {
                return Ok(FileRead::Items(items, errors));
            };
            let cols = split_row(header, sep);
            let find = |name: &str| {
                cols.iter()
                    .position(|c| c.trim().eq_ignore_ascii_case(name))
            };
            let Some(smiles_col) = find("smiles") else {
                return Ok(FileRead::Skipped(format!(
                    "{}: skipped: no `smiles` column in the header `{}`",
                    path.display(),
                    header.chars().take(80).collect::<String>()
                )));
            };
            let id_col = find("id");
            for (n, line) in lines {
                if line.trim().is_empty() {
                    continue;
                }
                let row = split_row(line, sep);
                if row.len() != cols.len() {
                    errors.push(line_err(
                        n,
                        format!("{} fields, the header has {}", row.len(), cols.len()),
                    ));
                    continue;
                }
                let mut payload = serde_json::Map::new();
                for (c, v) in cols.iter().zip(&row) {
                    payload.insert(c.trim().to_string(), Value::String(v.clone()));
                }
                items.push(ItemSpec {
                    at: format!("{id_base}:{}", n + 1),
                    id: id_col
                        .map(|i| row[i].clone())
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| format!("{id_base}#{}", n + 1)),
                    input: ItemInput::Smiles(row[smiles_col].trim().to_string()),
                    payload: Value::Object(payload),
                });
            }
        }
    }
    // An id given twice in one file: the first line keeps it.
    let mut first: HashMap<String, String> = HashMap::new();
    items.retain(|it| match first.get(&it.id) {
        Some(at) => {
            errors.push(Error::InvalidInput {
                item: it.at.clone(),
                reason: format!(
                    "id `{}` is already used at {at}; this line is skipped (ids must be unique)",
                    it.id
                ),
            });
            false
        }
        None => {
            first.insert(it.id.clone(), it.at.clone());
            true
        }
    });
    Ok(FileRead::Items(items, errors))
}

/// Splits a CSV/TSV row, honouring double quotes.
fn split_row(line: &str, sep: u8) -> Vec<String> {
    let sep = sep as char;
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == sep && !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn parse_jsonl(
    line: &str,
    file: &Path,
) -> std::result::Result<(Option<String>, ItemInput, Value), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("each line must be a JSON object")?;
    let field = |k: &str| obj.get(k).and_then(Value::as_str).map(String::from);
    let input = if let Some(t) = field("text") {
        ItemInput::Text(t)
    } else if let Some(s) = field("smiles") {
        ItemInput::Smiles(s)
    } else if let Some(i) = field("image") {
        let p = Path::new(&i);
        ItemInput::Image(if p.is_absolute() {
            p.to_path_buf()
        } else {
            file.parent().unwrap_or(Path::new(".")).join(p)
        })
    } else {
        return Err("needs a `text`, `smiles` or `image` field".into());
    };
    let payload = match obj.get("payload") {
        Some(Value::Object(p)) => Value::Object(p.clone()),
        Some(other) => return Err(format!("`payload` must be an object, got {other}")),
        None => serde_json::json!({}),
    };
    let id = match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(format!(
                "`id` must be a non-empty string or a number, got {other}"
            ))
        }
        None => None,
    };
    Ok((id, input, payload))
}

/// What [`sync`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// Files found.
    pub files_seen: usize,
    /// Files unchanged since the last run (skipped).
    pub files_unchanged: usize,
    /// Files (re)indexed.
    pub files_indexed: usize,
    /// Items added.
    pub items_added: usize,
    /// Items removed (changed or vanished files).
    pub items_removed: usize,
    /// Items or files that failed, with the reason.
    pub errors: Vec<String>,
    /// Files passed over on purpose (a table without a `smiles` column), with the reason.
    pub skipped: Vec<String>,
}

/// Indexes `inputs` into `collection` (see the module docs). `batch` items
/// are encoded together; `progress(files_done, files_total, items_added)`
/// follows each commit.
pub fn sync(
    collection: &Collection,
    encoders: &mut BundleEncoders,
    inputs: &[String],
    batch: usize,
    mut progress: impl FnMut(usize, usize, usize),
) -> Result<SyncReport> {
    let (files, roots) = discover(inputs)?;
    let mut report = SyncReport {
        files_seen: files.len(),
        ..Default::default()
    };
    // Items per source file already in the collection, with their recorded state.
    let snap = collection.snapshot();
    let mut known: HashMap<String, (Vec<String>, Value)> = HashMap::new();
    for doc in snap.live_docs() {
        let meta = snap.meta(doc)?;
        if meta.source.is_empty() {
            continue;
        }
        let payload: Value = serde_json::from_str(&meta.payload).unwrap_or(Value::Null);
        let entry = known
            .entry(meta.source)
            .or_insert_with(|| (Vec::new(), payload[FILE_KEY].clone()));
        entry.0.push(meta.id);
    }
    // Vanished files under the given folders.
    let present: std::collections::HashSet<String> =
        files.iter().map(|f| f.path.display().to_string()).collect();
    for (source, (ids, _)) in &known {
        let under_root = roots.iter().any(|r| Path::new(source).starts_with(r));
        if under_root && !present.contains(source) {
            for id in ids {
                if collection.delete(id)? {
                    report.items_removed += 1;
                }
            }
        }
    }
    if report.items_removed > 0 {
        collection.commit()?;
    }
    let todo: Vec<&SourceFile> = files
        .iter()
        .filter(|f| {
            let unchanged = known
                .get(&f.path.display().to_string())
                .is_some_and(|(_, state)| *state == f.state());
            if unchanged {
                report.files_unchanged += 1;
            }
            !unchanged
        })
        .collect();
    // Each id belongs to one file: a file that still exists keeps the ids
    // it holds, and in this run the first file (in discovery order) that
    // gives a new id keeps it. Another file giving it is an error, not a
    // replacement, so indexing converges instead of flipping between them.
    // A file with an item skipped or failed is recorded as partial and read
    // again next run, so the error repeats until it is fixed and a skipped
    // id is picked up once its owner lets it go.
    let mut owner: HashMap<String, String> = HashMap::new();
    for (source, (ids, _)) in &known {
        if present.contains(source) || Path::new(source).exists() {
            for id in ids {
                owner.insert(id.clone(), source.clone());
            }
        }
    }
    let mut partial: std::collections::HashSet<String> = std::collections::HashSet::new();
    let total = todo.len();
    let mut done = 0;
    let mut group: Vec<(&SourceFile, Vec<ItemSpec>)> = Vec::new();
    let mut group_items = 0;
    for file in todo {
        match read_items(file) {
            Ok(FileRead::Items(mut items, errors)) => {
                report.errors.extend(errors.iter().map(|e| e.to_string()));
                let source = file.path.display().to_string();
                if !errors.is_empty() {
                    partial.insert(source.clone());
                }
                items.retain(|it| match owner.get(&it.id) {
                    Some(other) if *other != source => {
                        report.errors.push(format!(
                            "{}: id `{}` belongs to {other}; skipped (ids must be unique across files)",
                            it.at, it.id
                        ));
                        partial.insert(source.clone());
                        false
                    }
                    _ => {
                        owner.insert(it.id.clone(), source.clone());
                        true
                    }
                });
                group_items += items.len();
                group.push((file, items));
            }
            Ok(FileRead::Skipped(why)) => report.skipped.push(why),
            Err(e) => report.errors.push(e.to_string()),
        }
        if group_items >= batch.max(1) {
            done += group.len();
            flush(
                collection,
                encoders,
                &known,
                &partial,
                &mut group,
                &mut report,
            )?;
            group_items = 0;
            progress(done, total, report.items_added);
        }
    }
    if !group.is_empty() {
        done += group.len();
        flush(
            collection,
            encoders,
            &known,
            &partial,
            &mut group,
            &mut report,
        )?;
        progress(done, total, report.items_added);
    }
    Ok(report)
}

/// Encodes the items of whole files, replaces their old items, commits.
fn flush(
    collection: &Collection,
    encoders: &mut BundleEncoders,
    known: &HashMap<String, (Vec<String>, Value)>,
    partial: &std::collections::HashSet<String>,
    group: &mut Vec<(&SourceFile, Vec<ItemSpec>)>,
    report: &mut SyncReport,
) -> Result<()> {
    let specs: Vec<&ItemSpec> = group.iter().flat_map(|(_, items)| items.iter()).collect();
    let inputs: Vec<Input<'_>> = specs.iter().map(|s| s.input.as_input()).collect();
    let mut encoded = encoders.encode(&inputs).into_iter();
    for (file, items) in group.drain(..) {
        let source = file.path.display().to_string();
        if let Some((old, _)) = known.get(&source) {
            for id in old {
                if collection.delete(id)? {
                    report.items_removed += 1;
                }
            }
        }
        let results: Vec<_> = items
            .iter()
            .map(|_| encoded.next().expect("one result per input"))
            .collect();
        // A file with a line that failed is read again next run.
        let mut state = file.state();
        if partial.contains(&source) || results.iter().any(|r| r.is_err()) {
            state["partial"] = Value::Bool(true);
        }
        let mut any = false;
        for (spec, result) in items.into_iter().zip(results) {
            match result {
                Ok(e) => {
                    let mut payload = spec.payload.clone();
                    payload[FILE_KEY] = state.clone();
                    if let ItemInput::Smiles(s) = &spec.input {
                        if payload.get("smiles").is_none() {
                            payload["smiles"] = Value::String(s.clone());
                        }
                    }
                    let item = e
                        .into_item(spec.id.clone(), spec.input.modality())
                        .with_payload(payload)
                        .with_source(source.clone());
                    match collection.upsert(item) {
                        Ok(()) => {
                            report.items_added += 1;
                            any = true;
                        }
                        Err(err) => report
                            .errors
                            .push(format!("{}: id `{}`: {err}", spec.at, spec.id)),
                    }
                }
                Err(err) => {
                    // The encoder names the batch position; say file:line and id.
                    let reason = match &err {
                        Error::InvalidInput { reason, .. } => reason.clone(),
                        other => other.to_string(),
                    };
                    report
                        .errors
                        .push(format!("{}: id `{}`: {reason}", spec.at, spec.id))
                }
            }
        }
        if any {
            report.files_indexed += 1;
        }
    }
    collection.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.jpg", "a.jpg"));
        assert!(!glob_match("*.jpg", "a.png"));
        assert!(glob_match("img_??.png", "img_01.png"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "acd"));
    }

    #[test]
    fn a_table_without_a_smiles_column_is_skipped_and_one_with_it_is_read() {
        let dir = std::env::temp_dir().join(format!("weft-ingest-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let read = |name: &str, body: &str| {
            let path = dir.join(name);
            std::fs::write(&path, body).unwrap();
            read_items(&SourceFile {
                kind: SourceKind::of(&path).unwrap(),
                path,
                size: body.len() as u64,
                mtime_ns: 0,
            })
            .unwrap()
        };
        match read("prices.csv", "item,price\nsoap,3\n") {
            FileRead::Skipped(why) => {
                assert!(
                    why.contains("prices.csv: skipped: no `smiles` column"),
                    "{why}"
                )
            }
            other => panic!("not skipped: {other:?}"),
        }
        match read("mols.tsv", "id\tsmiles\nethanol\tCCO\n") {
            FileRead::Items(items, errors) => {
                assert!(errors.is_empty(), "{errors:?}");
                assert_eq!(items.len(), 1);
                assert_eq!(items[0].id, "ethanol");
            }
            other => panic!("not read: {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn csv_rows_with_quotes() {
        assert_eq!(
            split_row(r#"a,"b,c","d""e""#, b','),
            vec!["a", "b,c", "d\"e"]
        );
    }
}
