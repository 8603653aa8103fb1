//! Immutable segments: items written once at a checkpoint, then memory-mapped.
//!
//! A segment `seg-NNNNNN` is five files, each framed (`format.rs`):
//!
//! | file | kind | body | verified |
//! |---|---|---|---|
//! | `.idx` | `SIDX` | one [`IdxEntry`] (56 bytes, Pod) per item | whole, at open |
//! | `.ids` | `SIDS` | `(hash of id u64, local index u64)` sorted by hash | whole, at open |
//! | `.vec` | `SVEC` | `n x dim` f32 embeddings | per item (crc in `.idx`), at read |
//! | `.tok` | `STOK` | token blocks in the collection dtype (`tokens.rs`) | per item, at first read |
//! | `.meta`| `SMET` | per item: id, source, payload JSON | per item, at read |
//!
//! A checkpoint of items whose token blocks are all in the write-ahead log
//! (aligned, version 3) writes no `.tok` file: the log itself becomes the
//! segment's `.tlog` (a hard link; no writer appends to it again), and the
//! `.idx` offsets point at the blocks inside it. So ingest writes each token
//! block once. The manifest says which segments are so (`tok_log`).
//!
//! Opening maps the files and checks the two small ones; it does not read the
//! vectors or tokens.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::Mapped;
use bytemuck::{Pod, Zeroable};

use super::tokens::TokenDtype;
use super::ItemMeta;
use crate::bundle::Modality;
use crate::error::{Error, Result};
use crate::format::{self, corrupt, Dec, Enc};
use crate::index::DocId;
use crate::score::TokensRef;

/// Per-item entry of the `.idx` file.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct IdxEntry {
    /// Offset of the token block in the `.tok` body (in a `.tlog`: in the file).
    pub tok_offset: u64,
    /// Offset of the meta record in the `.meta` body.
    pub meta_offset: u64,
    /// Hash of the external id.
    pub id_hash: u64,
    /// Token block length in bytes.
    pub tok_len: u32,
    /// Number of token rows.
    pub n_tokens: u32,
    /// Meta record length.
    pub meta_len: u32,
    /// crc32 of the embedding bytes.
    pub vec_crc: u32,
    /// crc32 of the token block.
    pub tok_crc: u32,
    /// crc32 of the meta record.
    pub meta_crc: u32,
    /// Patch grid rows (0 = none).
    pub grid_rows: u16,
    /// Patch grid columns.
    pub grid_cols: u16,
    /// Modality code (0 text, 1 image, 2 molecule).
    pub modality: u8,
    /// Padding.
    pub pad: [u8; 3],
}

/// Stable 64-bit hash of an external id (FNV-1a).
pub fn id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) fn modality_code(m: Modality) -> u8 {
    match m {
        Modality::Text => 0,
        Modality::Image => 1,
        Modality::Molecule => 2,
    }
}

pub(crate) fn modality_from(code: u8) -> Option<Modality> {
    match code {
        0 => Some(Modality::Text),
        1 => Some(Modality::Image),
        2 => Some(Modality::Molecule),
        _ => None,
    }
}

pub(crate) fn encode_meta(id: &str, source: &str, payload: &str) -> Vec<u8> {
    let mut e = Enc::default();
    e.str(id);
    e.str(source);
    e.str(payload);
    e.0
}

pub(crate) fn decode_meta(bytes: &[u8]) -> Option<(String, String, String)> {
    let mut d = Dec::new(bytes);
    Some((
        d.str()?.to_string(),
        d.str()?.to_string(),
        d.str()?.to_string(),
    ))
}

const EXTS: [(&str, &[u8; 4]); 5] = [
    ("idx", b"SIDX"),
    ("ids", b"SIDS"),
    ("vec", b"SVEC"),
    ("tok", b"STOK"),
    ("meta", b"SMET"),
];

/// Where token blocks are when they stay in the log (see the module docs).
const TOK_LOG: usize = 3;
const TOK_LOG_EXT: &str = "tlog";

/// The segment's file extensions and kinds, in `EXTS` order.
fn exts(tok_log: bool) -> impl Iterator<Item = (&'static str, &'static [u8; 4])> {
    EXTS.iter().enumerate().map(move |(i, (ext, kind))| {
        if tok_log && i == TOK_LOG {
            (TOK_LOG_EXT, *kind)
        } else {
            (*ext, *kind)
        }
    })
}

/// Whether an open reads and verifies a segment file of this extension whole
/// (the small index files) rather than lazily, item by item.
fn verified_whole(ext: &str) -> bool {
    matches!(ext, "idx" | "ids")
}

/// What an open of segment `name` reads, for [`format::prefetch`].
pub fn open_reads(name: &str, tok_log: bool) -> Vec<(String, format::Prefetch)> {
    exts(tok_log)
        .map(|(ext, _)| {
            let what = if verified_whole(ext) {
                format::Prefetch::Whole
            } else {
                format::Prefetch::Ends
            };
            (format!("{name}.{ext}"), what)
        })
        .collect()
}

/// Every file name of segment `name`.
pub fn file_names(name: &str, tok_log: bool) -> Vec<String> {
    exts(tok_log)
        .map(|(ext, _)| format!("{name}.{ext}"))
        .collect()
}

/// Writes a segment item by item: the vector, token and meta bodies stream
/// to their files, only the per-item index (72 bytes an item) stays in
/// memory. Nothing is visible until a manifest names the segment: a writer
/// that fails or is dropped leaves temp files, or, when `finish` fails
/// part-way, some of the segment's files under their final names; no
/// manifest names them and `cleanup` removes them at the next open. After an
/// error the writer is unusable: drop it.
pub struct SegmentWriter {
    dir: PathBuf,
    name: String,
    dim: usize,
    idx: Vec<IdxEntry>,
    vec: format::FramedWriter,
    /// Where the token blocks go: a `.tok` file, or (`Err`) the log at
    /// this path, which becomes the `.tlog`.
    tok: std::result::Result<format::FramedWriter, PathBuf>,
    meta: format::FramedWriter,
}

impl SegmentWriter {
    /// Starts segment `name` of `dir` for `dim`-d embeddings.
    pub fn create(dir: &Path, name: &str, dim: usize) -> Result<Self> {
        let tok = format::FramedWriter::create(&dir.join(format!("{name}.tok")), b"STOK")?;
        Self::start(dir, name, dim, Ok(tok))
    }

    /// Starts segment `name` whose token blocks stay in the write-ahead log
    /// at `log` (its committed part never changes again): items go in with
    /// [`SegmentWriter::push_logged`], and `finish` links the log as the
    /// segment's `.tlog`.
    pub fn over_log(dir: &Path, name: &str, dim: usize, log: &Path) -> Result<Self> {
        Self::start(dir, name, dim, Err(log.to_path_buf()))
    }

    fn start(
        dir: &Path,
        name: &str,
        dim: usize,
        tok: std::result::Result<format::FramedWriter, PathBuf>,
    ) -> Result<Self> {
        let body = |ext: &str, kind: &[u8; 4]| {
            format::FramedWriter::create(&dir.join(format!("{name}.{ext}")), kind)
        };
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            dim,
            idx: Vec::new(),
            vec: body("vec", b"SVEC")?,
            tok,
            meta: body("meta", b"SMET")?,
        })
    }

    /// Appends one item (the next doc id of the segment): its meta, its
    /// global embedding and its token block.
    pub fn push(&mut self, meta: &ItemMeta, embedding: &[f32], tok_bytes: &[u8]) -> Result<()> {
        let Ok(tok) = &mut self.tok else {
            return Err(corrupt(
                &self.dir,
                format!("segment {} keeps its tokens in the log", self.name),
            ));
        };
        let at = tok.body_len();
        tok.write(tok_bytes)?;
        let (len, crc) = (tok_bytes.len() as u32, format::crc32(tok_bytes));
        self.entry(meta, embedding, at, len, crc)
    }

    /// Appends one item whose token block is `tok_len` bytes at `tok_offset`
    /// of the log (`over_log`), with crc32 `tok_crc`.
    pub fn push_logged(
        &mut self,
        meta: &ItemMeta,
        embedding: &[f32],
        tok_offset: u64,
        tok_len: u32,
        tok_crc: u32,
    ) -> Result<()> {
        if self.tok.is_ok() {
            return Err(corrupt(
                &self.dir,
                format!("segment {} has a token file", self.name),
            ));
        }
        self.entry(meta, embedding, tok_offset, tok_len, tok_crc)
    }

    fn entry(
        &mut self,
        meta: &ItemMeta,
        embedding: &[f32],
        tok_offset: u64,
        tok_len: u32,
        tok_crc: u32,
    ) -> Result<()> {
        if embedding.len() != self.dim {
            return Err(Error::WrongDimension {
                what: format!("item `{}` written to segment {}", meta.id, self.name),
                expected: self.dim,
                received: embedding.len(),
            });
        }
        let item_meta = meta;
        let vec_bytes: &[u8] = bytemuck::cast_slice(embedding);
        let meta = encode_meta(&item_meta.id, &item_meta.source, &item_meta.payload);
        let [gr, gc] = item_meta.grid.unwrap_or([0, 0]);
        let entry = IdxEntry {
            tok_offset,
            meta_offset: self.meta.body_len(),
            id_hash: id_hash(&item_meta.id),
            tok_len,
            n_tokens: item_meta.n_tokens as u32,
            meta_len: meta.len() as u32,
            vec_crc: format::crc32(vec_bytes),
            tok_crc,
            meta_crc: format::crc32(&meta),
            grid_rows: gr as u16,
            grid_cols: gc as u16,
            modality: modality_code(item_meta.modality),
            pad: [0; 3],
        };
        self.vec.write(vec_bytes)?;
        self.meta.write(&meta)?;
        self.idx.push(entry);
        Ok(())
    }

    /// Finishes the three streamed files, writes the index and id files and
    /// fsyncs the folder; returns the number of items.
    pub fn finish(self) -> Result<usize> {
        let SegmentWriter {
            dir,
            name,
            idx,
            vec,
            tok,
            meta,
            ..
        } = self;
        vec.finish()?;
        match tok {
            Ok(tok) => tok.finish()?,
            Err(log) => {
                let to = dir.join(format!("{name}.{TOK_LOG_EXT}"));
                // A checkpoint that failed after linking left this name
                // (no manifest names it): it goes, or the retry could
                // never link.
                if to.exists() {
                    format::io::remove_file(&to).map_err(|e| Error::io(&to, e))?;
                }
                format::io::hard_link(&log, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        meta.finish()?;
        let mut ids: Vec<[u64; 2]> = idx
            .iter()
            .enumerate()
            .map(|(i, e)| [e.id_hash, i as u64])
            .collect();
        ids.sort_unstable();
        let whole: [(&str, &[u8; 4], &[u8]); 2] = [
            ("idx", b"SIDX", bytemuck::cast_slice(&idx)),
            ("ids", b"SIDS", bytemuck::cast_slice(&ids)),
        ];
        for (ext, kind, body) in whole {
            let mut w = format::FramedWriter::create(&dir.join(format!("{name}.{ext}")), kind)?;
            w.write(body)?;
            w.finish()?;
        }
        // one folder fsync for all five renames
        format::sync_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(idx.len())
    }
}

/// An open, mapped segment.
#[derive(Debug)]
pub struct Segment {
    name: String,
    dir: PathBuf,
    first_doc: DocId,
    len: usize,
    dim: usize,
    dtype: TokenDtype,
    maps: Vec<Mapped>,
    /// The token blocks are in a `.tlog` (see the module docs).
    tok_log: bool,
    /// One bit per item: its token block passed the crc check.
    tok_ok: Vec<AtomicU64>,
}

impl Segment {
    /// Maps segment `name` of `dir` holding docs `first_doc..first_doc+len`
    /// (`tok_log`: its token blocks are in a `.tlog`).
    pub fn open(
        dir: &Path,
        name: &str,
        first_doc: DocId,
        len: usize,
        dim: usize,
        dtype: TokenDtype,
        tok_log: bool,
    ) -> Result<Self> {
        let mut maps = Vec::with_capacity(EXTS.len());
        for (ext, kind) in exts(tok_log) {
            let path = dir.join(format!("{name}.{ext}"));
            let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            let map = crate::sys::map_readonly(&file, &path).map_err(|e| Error::io(&path, e))?;
            if ext == TOK_LOG_EXT {
                super::wal::check_token_log(&map, &path)?;
                maps.push(map);
                continue;
            }
            let body = format::open_framed(&map, kind, &path, verified_whole(ext))?;
            let expected = match ext {
                "idx" => Some(len * std::mem::size_of::<IdxEntry>()),
                "ids" => Some(len * 16),
                "vec" => Some(len * dim * 4),
                _ => None,
            };
            if let Some(expected) = expected {
                if body.len() != expected {
                    return Err(corrupt(
                        &path,
                        format!(
                            "{} body bytes, expected {expected} for {len} items",
                            body.len()
                        ),
                    ));
                }
            }
            maps.push(map);
        }
        let seg = Segment {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            first_doc,
            len,
            dim,
            dtype,
            maps,
            tok_log,
            tok_ok: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        };
        // Every block the index points to lies inside its file.
        let tok_len = seg.body(3).len() as u64;
        let meta_len = seg.body(4).len() as u64;
        for (i, e) in seg.idx().iter().enumerate() {
            let tok_end = e.tok_offset.checked_add(u64::from(e.tok_len));
            let meta_end = e.meta_offset.checked_add(u64::from(e.meta_len));
            if tok_end.is_none_or(|end| end > tok_len)
                || meta_end.is_none_or(|end| end > meta_len)
                || e.tok_offset % 4 != 0
                || modality_from(e.modality).is_none()
            {
                return Err(corrupt(
                    &seg.path("idx"),
                    format!("entry {i} points outside its files"),
                ));
            }
        }
        Ok(seg)
    }

    fn body(&self, which: usize) -> &[u8] {
        let m = &self.maps[which];
        if self.tok_log && which == TOK_LOG {
            return m;
        }
        &m[format::HEADER_LEN..m.len() - format::FOOTER_LEN]
    }

    /// The first of this segment's files found cut short under its mapping
    /// (`stat`: also by its size, a system call per file).
    pub fn truncated(&self, stat: bool) -> Option<PathBuf> {
        self.maps
            .iter()
            .find(|m| m.truncated(stat))
            .map(|m| m.path().to_path_buf())
    }

    fn path(&self, ext: &str) -> PathBuf {
        let ext = if ext == "tok" && self.tok_log {
            TOK_LOG_EXT
        } else {
            ext
        };
        self.dir.join(format!("{}.{ext}", self.name))
    }

    fn idx(&self) -> &[IdxEntry] {
        bytemuck::cast_slice(self.body(0))
    }

    /// First doc id.
    pub fn first_doc(&self) -> DocId {
        self.first_doc
    }

    /// Number of items (deleted ones included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Global embedding of local item `i`, crc-checked.
    pub fn embedding(&self, i: usize) -> Result<&[f32]> {
        let bytes = &self.body(2)[i * self.dim * 4..(i + 1) * self.dim * 4];
        if format::crc32(bytes) != self.idx()[i].vec_crc {
            return Err(corrupt(
                &self.path("vec"),
                format!("embedding of item {i} fails its checksum"),
            ));
        }
        Ok(bytemuck::cast_slice(bytes))
    }

    /// Token matrix of local item `i` (crc-checked on first read).
    pub fn tokens(&self, i: usize) -> Result<TokensRef<'_>> {
        let e = &self.idx()[i];
        let block =
            &self.body(3)[e.tok_offset as usize..(e.tok_offset + u64::from(e.tok_len)) as usize];
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.tok_ok[word].load(Ordering::Relaxed) & bit == 0 {
            if format::crc32(block) != e.tok_crc {
                return Err(corrupt(
                    &self.path("tok"),
                    format!("tokens of item {i} fail their checksum"),
                ));
            }
            self.tok_ok[word].fetch_or(bit, Ordering::Relaxed);
        }
        self.dtype
            .view(block, e.n_tokens as usize, self.dim)
            .ok_or_else(|| {
                corrupt(
                    &self.path("tok"),
                    format!("token block of item {i} has a wrong length"),
                )
            })
    }

    /// Meta of local item `i`, crc-checked.
    pub fn meta(&self, i: usize) -> Result<ItemMeta> {
        let e = &self.idx()[i];
        let bytes =
            &self.body(4)[e.meta_offset as usize..(e.meta_offset + u64::from(e.meta_len)) as usize];
        if format::crc32(bytes) != e.meta_crc {
            return Err(corrupt(
                &self.path("meta"),
                format!("record of item {i} fails its checksum"),
            ));
        }
        let (id, source, payload) = decode_meta(bytes).ok_or_else(|| {
            corrupt(
                &self.path("meta"),
                format!("record of item {i} is malformed"),
            )
        })?;
        Ok(ItemMeta {
            id,
            source,
            payload,
            modality: modality_from(e.modality).unwrap_or(Modality::Text),
            n_tokens: e.n_tokens as usize,
            grid: (e.grid_rows > 0).then_some([usize::from(e.grid_rows), usize::from(e.grid_cols)]),
        })
    }

    /// Local index of the item with this external id.
    pub fn find(&self, id: &str) -> Result<Option<usize>> {
        let h = id_hash(id);
        let ids: &[[u64; 2]] = bytemuck::cast_slice(self.body(1));
        let start = ids.partition_point(|e| e[0] < h);
        for e in &ids[start..] {
            if e[0] != h {
                break;
            }
            let local = e[1] as usize;
            if local < self.len && self.meta(local)?.id == id {
                return Ok(Some(local));
            }
        }
        Ok(None)
    }

    /// Reads every vector and token block and checks them (a deep verify).
    pub fn verify_all(&self) -> Result<()> {
        for (i, (path, kind)) in EXTS.iter().map(|(e, k)| (self.path(e), *k)).enumerate() {
            if self.tok_log && i == TOK_LOG {
                super::wal::verify_token_log(&self.maps[i], &path, self.dim)?;
            } else {
                format::open_framed(&self.maps[i], kind, &path, true)?;
            }
        }
        for i in 0..self.len {
            self.embedding(i)?;
            self.tokens(i)?;
            self.meta(i)?;
        }
        Ok(())
    }
}
