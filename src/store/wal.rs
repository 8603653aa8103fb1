//! The write-ahead log: committed changes since the last checkpoint.
//!
//! ```text
//! header (16 bytes, kind "WLOG")
//! record*: body length u32 | crc32(body) u32 | body
//! body: 5 = add    doc u64 | modality u8 | grid u16 u16 | n_tokens u32 | meta bytes | pad bytes | embedding (dim f32) | token block bytes
//!       1 = add, as 5 without the pad (written before 2026-12; still replayed)
//!       2 = delete doc u64
//!       3 = commit next_doc u64
//!       4 = payload doc u64 | payload JSON bytes (a new payload for a stored doc)
//! ```
//! ("bytes" are a u32 length and the bytes.) The pad puts an add record's
//! token block at a multiple of 64 bytes in the file, so that a snapshot
//! reads committed token blocks in place, through a mapping of the log
//! ([`Logged`]): the writer keeps no copy of what it logged.
//!
//! A commit appends its records and fsyncs them, then appends the commit
//! record and fsyncs again: only then does `commit()` return. So a valid
//! commit record is only ever written after every record before it is on
//! disk, and whatever a crash tears (in any order the disk chooses) lies
//! after the last valid commit record.
//!
//! Replay applies records up to the last commit record. At the first record
//! that does not read (a length running past the end, a checksum that fails,
//! a body that does not decode) it looks for a valid commit record anywhere
//! after it:
//! - none: the bad bytes are the torn tail of a commit that never returned;
//!   they are dropped and the next writer truncates them;
//! - one or more: acknowledged data lies behind damaged bytes. That is
//!   corruption, never a torn tail: replay reports the file and offset
//!   ([`Replayed::damage`]), readers see the batches before it, and no
//!   writer opens until `weft collections repair` has kept a copy of the log
//!   and cut it at the damage.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::segment::{decode_meta, encode_meta, modality_code, modality_from};
use super::{ItemMeta, StoredItem, TokBlock};
use crate::error::{Error, Result};
use crate::format::io::WFile;
use crate::format::{self, corrupt, Dec, Enc};
use crate::index::DocId;

const KIND: &[u8; 4] = b"WLOG";
const ADD: u8 = 1;
const DELETE: u8 = 2;
const COMMIT: u8 = 3;
const PAYLOAD: u8 = 4;
const ADD_ALIGNED: u8 = 5;
/// Where an add record's token block starts in the file: a multiple of this.
const TOKEN_ALIGN: u64 = 64;
/// Records are written to the file in runs of about this many bytes.
const WRITE_RUN: usize = 1 << 20;

/// A committed token block in the write-ahead log: the add record that
/// holds it and where in the record it is. Its record's checksum is
/// checked on the first read through a snapshot, and on every read a
/// checkpoint makes.
#[derive(Debug)]
pub(crate) struct Logged {
    /// Offset of the record (its length, crc and body) in the log.
    pub rec: u64,
    /// Bytes of the record: 8 + body.
    pub rec_len: u32,
    /// Where the token block starts, from `rec`.
    pub tok_at: u32,
    /// Bytes of the token block.
    pub tok_len: u32,
    /// crc32 of the token block (what a segment's index keeps).
    pub tok_crc: u32,
    /// The record passed its checksum through a snapshot's mapping.
    checked: AtomicBool,
}

impl Clone for Logged {
    fn clone(&self) -> Self {
        Logged {
            checked: AtomicBool::new(self.checked.load(Ordering::Relaxed)),
            ..*self
        }
    }
}

impl PartialEq for Logged {
    fn eq(&self, o: &Self) -> bool {
        (
            self.rec,
            self.rec_len,
            self.tok_at,
            self.tok_len,
            self.tok_crc,
        ) == (o.rec, o.rec_len, o.tok_at, o.tok_len, o.tok_crc)
    }
}

impl Logged {
    /// Where the token block starts in the log file.
    pub fn tok_offset(&self) -> u64 {
        self.rec + u64::from(self.tok_at)
    }

    /// The token block, out of `log` (the log's bytes from offset 0, e.g.
    /// a mapping of it, at `path`), its record checked the first time.
    pub fn bytes<'a>(&self, log: &'a [u8], path: &Path) -> Result<&'a [u8]> {
        let rec = self.record(log, path)?;
        if !self.checked.load(Ordering::Relaxed) {
            self.check(rec, path)?;
            self.checked.store(true, Ordering::Relaxed);
        }
        Ok(self.tokens_in(rec))
    }

    /// Checks the record in `log` again, whatever an earlier read found
    /// (a deep verify).
    pub fn verify(&self, log: &[u8], path: &Path) -> Result<()> {
        self.check(self.record(log, path)?, path)
    }

    /// The token block read from the log file `file` (at `path`) into
    /// `buf`, its record checked: what a checkpoint copies into a segment.
    pub fn read<'a>(
        &self,
        file: &std::fs::File,
        path: &Path,
        buf: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        use std::os::unix::fs::FileExt;
        buf.resize(self.rec_len as usize, 0);
        file.read_exact_at(buf, self.rec).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.cut(path)
            } else {
                Error::io(path, e)
            }
        })?;
        self.check(buf, path)?;
        Ok(self.tokens_in(buf))
    }

    fn record<'a>(&self, log: &'a [u8], path: &Path) -> Result<&'a [u8]> {
        let end = self.rec + u64::from(self.rec_len);
        if end > log.len() as u64 {
            return Err(self.cut(path));
        }
        Ok(&log[self.rec as usize..end as usize])
    }

    fn cut(&self, path: &Path) -> Error {
        corrupt(
            path,
            format!(
                "the add record at offset {} ({} bytes) runs past the end of the log",
                self.rec, self.rec_len
            ),
        )
    }

    fn check(&self, rec: &[u8], path: &Path) -> Result<()> {
        let crc = u32::from_le_bytes(rec[4..8].try_into().expect("4"));
        if format::crc32(&rec[8..]) != crc {
            return Err(corrupt(
                path,
                format!(
                    "the add record at offset {} fails its checksum (it was valid when the log \
                     was written or opened: the file changed since)",
                    self.rec
                ),
            ));
        }
        Ok(())
    }

    fn tokens_in<'a>(&self, rec: &'a [u8]) -> &'a [u8] {
        &rec[self.tok_at as usize..(self.tok_at + self.tok_len) as usize]
    }
}

/// One logged change.
#[derive(Debug, Clone)]
pub enum Op {
    /// A new item with its doc id.
    Add(DocId, std::sync::Arc<StoredItem>),
    /// A doc hidden (tombstone).
    Delete(DocId),
    /// A new payload (JSON text) for a doc; its vectors stay as they are.
    Payload(DocId, std::sync::Arc<str>),
}

/// Appends to the log.
#[derive(Debug)]
pub struct WalWriter {
    file: WFile,
    path: PathBuf,
    len: u64,
    /// The log is version 3: add records are aligned (kind 5). A version 2
    /// log keeps getting kind 1 records, so that a build from before
    /// version 3 still reads it until the next checkpoint starts a new log.
    aligned: bool,
}

/// The log's own version (in its header where other files have
/// [`format::FORMAT_VERSION`]): 3 = add records of kind 5; 2 = kind 1 only.
/// A build before version 3 refuses a version 3 log by its header, instead
/// of taking its records for damage.
const WAL_VERSION: u32 = 3;
const WAL_VERSION_UNALIGNED: u32 = 2;

fn wal_header(version: u32) -> [u8; format::HEADER_LEN] {
    let mut h = format::header(KIND);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h
}

/// The log's version, from its first bytes (`None`: not a log header).
fn wal_version(bytes: &[u8]) -> Option<u32> {
    [WAL_VERSION, WAL_VERSION_UNALIGNED]
        .into_iter()
        .find(|v| bytes.get(..format::HEADER_LEN) == Some(&wal_header(*v)[..]))
}

/// Whether the log at `path` can hold a segment's token blocks (a
/// version 3 log, whose blocks are aligned): checks its header.
pub fn check_token_log(bytes: &[u8], path: &Path) -> Result<()> {
    match wal_version(bytes) {
        Some(WAL_VERSION) => Ok(()),
        _ => Err(corrupt(
            path,
            "bad header: not a version 3 write-ahead log holding token blocks",
        )),
    }
}

impl WalWriter {
    /// Add records are aligned (a version 3 log).
    pub fn aligned(&self) -> bool {
        self.aligned
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Checks every record of a log that a segment keeps as its `.tlog` (a
/// deep verify): each record reads and passes its checksum, up to a last
/// commit record at the end of the file.
pub fn verify_token_log(bytes: &[u8], path: &Path, dim: usize) -> Result<()> {
    check_token_log(bytes, path)?;
    let mut pos = format::HEADER_LEN;
    let mut committed = true;
    while pos < bytes.len() {
        let (op, used) = read_record(&bytes[pos..], pos as u64, ADD_ALIGNED, dim)
            .map_err(|problem| corrupt(path, format!("{problem} at offset {pos}")))?;
        committed = matches!(op, Decoded::Commit(_));
        pos += used;
    }
    if !committed {
        return Err(corrupt(path, "the log does not end with a commit record"));
    }
    Ok(())
}

/// Creates an empty log (header only), durable.
pub fn create(path: &Path) -> Result<()> {
    format::write_atomic(path, |f| f.write_all(&wal_header(WAL_VERSION)))
}

impl WalWriter {
    /// Opens the log for appending at `valid_len` (cutting a torn tail).
    pub fn open(path: &Path, valid_len: u64) -> Result<Self> {
        let mut head = [0u8; format::HEADER_LEN];
        std::fs::File::open(path)
            .and_then(|f| {
                use std::io::Read;
                (&f).read_exact(&mut head)
            })
            .map_err(|e| Error::io(path, e))?;
        let version =
            wal_version(&head).ok_or_else(|| corrupt(path, "bad write-ahead log header"))?;
        let mut file = WFile::open(path).map_err(|e| Error::io(path, e))?;
        let actual = file.len().map_err(|e| Error::io(path, e))?;
        if actual != valid_len {
            file.set_len(valid_len).map_err(|e| Error::io(path, e))?;
            file.sync().map_err(|e| Error::io(path, e))?;
        }
        file.seek_to(valid_len).map_err(|e| Error::io(path, e))?;
        Ok(WalWriter {
            file,
            path: path.to_path_buf(),
            len: valid_len,
            aligned: version >= WAL_VERSION,
        })
    }

    /// Appends `ops` and a commit record, then fsyncs. Returns `ops` with
    /// each added item's token block [`TokBlock::Logged`] in the log (the
    /// caller drops its copy). The records go to the file in runs of about
    /// 1 MiB: no second copy of the whole batch is made.
    pub fn commit(&mut self, ops: &[Op], next_doc: DocId) -> Result<Vec<Op>> {
        let mut buf = Vec::with_capacity(WRITE_RUN);
        let mut at = self.len;
        let mut logged = Vec::with_capacity(ops.len());
        let result = (|| -> std::io::Result<()> {
            for op in ops {
                if buf.len() >= WRITE_RUN {
                    self.file.write_all(&buf)?;
                    at += buf.len() as u64;
                    buf.clear();
                }
                let rec = at + buf.len() as u64;
                let mut e = Enc::default();
                match op {
                    Op::Add(doc, item) => {
                        let tok = item.tok_block.owned().ok_or_else(|| {
                            std::io::Error::other("an item's token block is already logged")
                        })?;
                        e.u8(if self.aligned { ADD_ALIGNED } else { ADD });
                        e.u64(*doc);
                        e.u8(modality_code(item.meta.modality));
                        let [r, c] = item.meta.grid.unwrap_or([0, 0]);
                        e.u16(r as u16);
                        e.u16(c as u16);
                        e.u32(item.meta.n_tokens as u32);
                        e.bytes(&encode_meta(
                            &item.meta.id,
                            &item.meta.source,
                            &item.meta.payload,
                        ));
                        if !self.aligned {
                            e.f32s(&item.embedding);
                            e.bytes(tok);
                            push_record(&mut buf, &e.0);
                            logged.push(op.clone());
                            continue;
                        }
                        // Record header (8), what is encoded, the pad's length
                        // (4), the embedding and the block's length (4) come
                        // before the block.
                        let before = 8 + e.0.len() as u64 + 4 + 4 * item.embedding.len() as u64 + 4;
                        let pad = (rec + before).next_multiple_of(TOKEN_ALIGN) - (rec + before);
                        e.bytes(&[0u8; TOKEN_ALIGN as usize][..pad as usize]);
                        e.f32s(&item.embedding);
                        e.bytes(tok);
                        let tok_at = (before + pad) as u32;
                        logged.push(Op::Add(
                            *doc,
                            std::sync::Arc::new(StoredItem {
                                meta: item.meta.clone(),
                                embedding: item.embedding.clone(),
                                tok_block: TokBlock::Logged(Logged {
                                    rec,
                                    rec_len: 8 + e.0.len() as u32,
                                    tok_at,
                                    tok_len: tok.len() as u32,
                                    tok_crc: format::crc32(tok),
                                    checked: AtomicBool::new(true),
                                }),
                            }),
                        ));
                    }
                    Op::Delete(doc) => {
                        e.u8(DELETE);
                        e.u64(*doc);
                        logged.push(op.clone());
                    }
                    Op::Payload(doc, payload) => {
                        e.u8(PAYLOAD);
                        e.u64(*doc);
                        e.str(payload);
                        logged.push(op.clone());
                    }
                }
                push_record(&mut buf, &e.0);
            }
            // Records first, durable, then the commit record that vouches
            // for them (see the module docs: this order is what lets replay
            // tell a torn tail from damage).
            self.file.write_all(&buf)?;
            at += buf.len() as u64;
            self.file.sync()?;
            buf.clear();
            let mut e = Enc::default();
            e.u8(COMMIT);
            e.u64(next_doc);
            push_record(&mut buf, &e.0);
            self.file.write_all(&buf)?;
            at += buf.len() as u64;
            self.file.sync()
        })();
        if let Err(err) = result {
            // Leave the file as it was before this commit.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek_to(self.len);
            return Err(Error::io(&self.path, err));
        }
        self.len = at;
        Ok(logged)
    }

    /// The committed log, mapped (see [`map`]).
    pub fn map(&self) -> Result<crate::sys::Mapped> {
        map(&self.path, self.len)
    }
}

/// Maps the first `len` bytes of the log at `path`: its committed part,
/// which never changes while the log is in use.
pub fn map(path: &Path, len: u64) -> Result<crate::sys::Mapped> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    crate::sys::map_prefix(&file, path, len as usize).map_err(|e| Error::io(path, e))
}

fn push_record(buf: &mut Vec<u8>, body: &[u8]) {
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&format::crc32(body).to_le_bytes());
    buf.extend_from_slice(body);
}

/// What replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Committed batches, in order, with the next doc id after each.
    pub batches: Vec<(Vec<Op>, DocId)>,
    /// Length of the log up to the last commit record.
    pub valid_len: u64,
    /// Set when damaged bytes lie before a valid commit record: what and
    /// where (file and offset). `batches` then holds what precedes it.
    pub damage: Option<Error>,
}

/// Reads the committed part of the log at `path`.
pub fn replay(path: &Path, dim: usize) -> Result<Replayed> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let Some(version) = wal_version(&bytes) else {
        return Err(corrupt(path, "bad write-ahead log header"));
    };
    // Each version has its own add record: the other one is damage (a flipped
    // bit in the version, too).
    let add = if version >= WAL_VERSION {
        ADD_ALIGNED
    } else {
        ADD
    };
    let mut out = Replayed {
        valid_len: format::HEADER_LEN as u64,
        ..Default::default()
    };
    let mut pos = format::HEADER_LEN;
    let mut pending = Vec::new();
    while pos < bytes.len() {
        let problem = match read_record(&bytes[pos..], pos as u64, add, dim) {
            Ok((op, used)) => {
                pos += used;
                match op {
                    Decoded::Op(op) => pending.push(op),
                    Decoded::Commit(next) => {
                        out.batches.push((std::mem::take(&mut pending), next));
                        out.valid_len = pos as u64;
                    }
                }
                continue;
            }
            Err(problem) => problem,
        };
        // Torn tail or damage: a valid commit record after this point means
        // acknowledged data lies behind the bad bytes.
        if !pending.is_empty() && last_commit_damaged(&bytes, pos) {
            out.damage = Some(corrupt(
                path,
                format!(
                    "{problem} at offset {pos}: the last commit record is damaged (a torn write \
                     leaves a zeroed sector, this one has none), so the last committed batch \
                     cannot be read (the log is left as it is; `weft collections repair` keeps a \
                     copy and cuts it at offset {})",
                    out.valid_len
                ),
            ));
        } else if let Some(at) = next_commit(&bytes, pos + 1) {
            out.damage = Some(corrupt(
                path,
                format!(
                    "{problem} at offset {pos}, followed by a valid commit record at offset {at}: \
                     committed items after offset {pos} cannot be read (the log is left as it is; \
                     `weft collections repair` keeps a copy and cuts it at offset {})",
                    out.valid_len
                ),
            ));
        }
        break;
    }
    Ok(out)
}

/// Reads one record at the start of `rest`: the op and the bytes it used,
/// or what is wrong with it.
fn read_record(
    rest: &[u8],
    at: u64,
    add: u8,
    dim: usize,
) -> std::result::Result<(Decoded, usize), &'static str> {
    if rest.len() < 8 {
        return Err("a record header runs past the end of the file");
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4"));
    let Some(body) = rest.get(8..8 + len) else {
        return Err("a record length runs past the end of the file");
    };
    if format::crc32(body) != crc {
        return Err("a record fails its checksum");
    }
    let op = decode(body, at, add, dim).ok_or("a record is malformed")?;
    Ok((op, 8 + len))
}

/// Bytes of a commit record: header and body.
const COMMIT_RECORD: usize = 8 + 9;
/// The sector size a torn write is assumed to respect (disks write whole
/// sectors; a crash leaves a sector old or new, and new space reads as zeros).
const SECTOR: usize = 512;

/// True when the bad bytes at `pos` are exactly one commit record's worth at
/// the end of the log, shaped like one, and either one flipped bit away from
/// a valid commit record or without a zeroed sector: a commit record that
/// was written whole and then changed, not one that a crash tore. (A torn
/// commit record keeps its first sector and reads zeros after; when the
/// record's true bytes there are zeros too, as `next_doc`'s high bytes
/// often are, only the one-bit test tells the two apart.)
fn last_commit_damaged(bytes: &[u8], pos: usize) -> bool {
    if bytes.len() - pos != COMMIT_RECORD {
        return false;
    }
    // Shaped like a commit record: its length or its type byte says so (a
    // flipped bit changes one of them at most). A torn prefix of an add
    // record has neither.
    let rec = &bytes[pos..];
    if rec[..4] != ((COMMIT_RECORD - 8) as u32).to_le_bytes() && rec[8] != COMMIT {
        return false;
    }
    let mut fixed = [0u8; COMMIT_RECORD];
    fixed.copy_from_slice(rec);
    for bit in 0..COMMIT_RECORD * 8 {
        fixed[bit / 8] ^= 1 << (bit % 8);
        let valid = is_commit_record(&fixed);
        fixed[bit / 8] ^= 1 << (bit % 8);
        if valid {
            return true;
        }
    }
    let mut at = pos;
    while at < bytes.len() {
        let end = ((at / SECTOR + 1) * SECTOR).min(bytes.len());
        if bytes[at..end].iter().all(|b| *b == 0) {
            return false;
        }
        at = end;
    }
    true
}

/// Offset of the first valid commit record at or after `from`.
fn next_commit(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(COMMIT_RECORD - 1))
        .find(|&at| is_commit_record(&bytes[at..at + COMMIT_RECORD]))
}

/// `rec` (commit-record sized) is a valid commit record.
fn is_commit_record(rec: &[u8]) -> bool {
    rec[..4] == ((COMMIT_RECORD - 8) as u32).to_le_bytes()
        && rec[8] == COMMIT
        && format::crc32(&rec[8..]) == u32::from_le_bytes(rec[4..8].try_into().expect("4"))
}

enum Decoded {
    Op(Op),
    Commit(DocId),
}

/// Decodes the body of the record at offset `at` of the log, whose add
/// records are of kind `add`.
fn decode(body: &[u8], at: u64, add: u8, dim: usize) -> Option<Decoded> {
    let mut d = Dec::new(body);
    let op = match d.u8()? {
        kind if kind == add => {
            let doc = d.u64()?;
            let modality = modality_from(d.u8()?)?;
            let (r, c) = (d.u16()?, d.u16()?);
            let n_tokens = d.u32()? as usize;
            let (id, source, payload) = decode_meta(d.bytes()?)?;
            if kind == ADD_ALIGNED {
                d.bytes()?;
            }
            let embedding = d.f32s(dim)?;
            let block = d.bytes()?;
            if block.len() % 4 != 0 {
                return None;
            }
            let tok_at = 8 + (body.len() - d.remaining() - block.len());
            let tok_block = if kind == ADD_ALIGNED && (at + tok_at as u64).is_multiple_of(4) {
                TokBlock::Logged(Logged {
                    rec: at,
                    rec_len: u32::try_from(8 + body.len()).ok()?,
                    tok_at: tok_at as u32,
                    tok_len: block.len() as u32,
                    tok_crc: format::crc32(block),
                    // replay checked the record
                    checked: AtomicBool::new(true),
                })
            } else {
                TokBlock::from_bytes(block)
            };
            let item = StoredItem {
                meta: ItemMeta {
                    id,
                    source,
                    payload,
                    modality,
                    n_tokens,
                    grid: (r > 0).then_some([usize::from(r), usize::from(c)]),
                },
                embedding,
                tok_block,
            };
            Decoded::Op(Op::Add(doc, std::sync::Arc::new(item)))
        }
        DELETE => Decoded::Op(Op::Delete(d.u64()?)),
        PAYLOAD => {
            let doc = d.u64()?;
            Decoded::Op(Op::Payload(doc, d.str()?.into()))
        }
        COMMIT => Decoded::Commit(d.u64()?),
        _ => return None,
    };
    (d.remaining() == 0).then_some(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit_record(next_doc: u64) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(COMMIT);
        e.u64(next_doc);
        let mut buf = Vec::new();
        push_record(&mut buf, &e.0);
        buf
    }

    #[test]
    fn a_flipped_final_commit_record_is_damage_at_every_sector_alignment() {
        for next_doc in [18u64, 0x0102_0304_0506_0708] {
            let rec = commit_record(next_doc);
            for pad in 500..530 {
                let mut bytes = vec![7u8; pad];
                bytes.extend_from_slice(&rec);
                for bit in 0..COMMIT_RECORD * 8 {
                    let mut b = bytes.clone();
                    b[pad + bit / 8] ^= 1 << (bit % 8);
                    assert!(
                        last_commit_damaged(&b, pad),
                        "next_doc {next_doc:#x}, pad {pad}, bit {bit}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_torn_final_commit_record_is_not_damage() {
        let rec = commit_record(0x0102_0304_0506_0708);
        for pad in 496..512 {
            let mut bytes = vec![7u8; pad];
            bytes.extend_from_slice(&rec);
            // The sector after the boundary was never written: zeros.
            let boundary = 512;
            bytes[boundary..].iter_mut().for_each(|b| *b = 0);
            // A tear that changed one bit only looks like a flip: it is
            // reported (never lost: repair cuts the same unacknowledged batch).
            let changed: u32 = rec
                .iter()
                .zip(&bytes[pad..])
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(last_commit_damaged(&bytes, pad), changed == 1, "pad {pad}");
        }
    }
}
