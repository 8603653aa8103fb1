//! The write-ahead log: committed changes since the last checkpoint.
//!
//! ```text
//! header (16 bytes, kind "WLOG")
//! record*: body length u32 | crc32(body) u32 | body
//! body: 1 = add    doc u64 | modality u8 | grid u16 u16 | n_tokens u32 | meta bytes | embedding (dim f32) | token block bytes
//!       2 = delete doc u64
//!       3 = commit next_doc u64
//!       4 = payload doc u64 | payload JSON bytes (a new payload for a stored doc)
//! ```
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

use super::segment::{decode_meta, encode_meta, modality_code, modality_from};
use super::{ItemMeta, StoredItem};
use crate::error::{Error, Result};
use crate::format::io::WFile;
use crate::format::{self, corrupt, Dec, Enc};
use crate::index::DocId;

const KIND: &[u8; 4] = b"WLOG";
const ADD: u8 = 1;
const DELETE: u8 = 2;
const COMMIT: u8 = 3;
const PAYLOAD: u8 = 4;

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
}

/// Creates an empty log (header only), durable.
pub fn create(path: &Path) -> Result<()> {
    format::write_atomic(path, |f| f.write_all(&format::header(KIND)))
}

impl WalWriter {
    /// Opens the log for appending at `valid_len` (cutting a torn tail).
    pub fn open(path: &Path, valid_len: u64) -> Result<Self> {
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
        })
    }

    /// Appends `ops` and a commit record, then fsyncs.
    pub fn commit(&mut self, ops: &[Op], next_doc: DocId) -> Result<()> {
        let mut buf = Vec::new();
        for op in ops {
            let mut e = Enc::default();
            match op {
                Op::Add(doc, item) => {
                    e.u8(ADD);
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
                    e.f32s(&item.embedding);
                    e.bytes(bytemuck::cast_slice(&item.tok_block));
                }
                Op::Delete(doc) => {
                    e.u8(DELETE);
                    e.u64(*doc);
                }
                Op::Payload(doc, payload) => {
                    e.u8(PAYLOAD);
                    e.u64(*doc);
                    e.str(payload);
                }
            }
            push_record(&mut buf, &e.0);
        }
        let mut e = Enc::default();
        e.u8(COMMIT);
        e.u64(next_doc);
        // Records first, durable, then the commit record that vouches for
        // them (see the module docs: this order is what lets replay tell a
        // torn tail from damage).
        let commit_at = buf.len();
        push_record(&mut buf, &e.0);
        let result = self
            .file
            .write_all(&buf[..commit_at])
            .and_then(|_| self.file.sync())
            .and_then(|_| self.file.write_all(&buf[commit_at..]))
            .and_then(|_| self.file.sync());
        if let Err(err) = result {
            // Leave the file as it was before this commit.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek_to(self.len);
            return Err(Error::io(&self.path, err));
        }
        self.len += buf.len() as u64;
        Ok(())
    }
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
    if bytes.len() < format::HEADER_LEN || bytes[..format::HEADER_LEN] != format::header(KIND) {
        return Err(corrupt(path, "bad write-ahead log header"));
    }
    let mut out = Replayed {
        valid_len: format::HEADER_LEN as u64,
        ..Default::default()
    };
    let mut pos = format::HEADER_LEN;
    let mut pending = Vec::new();
    while pos < bytes.len() {
        let problem = match read_record(&bytes[pos..], dim) {
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
fn read_record(rest: &[u8], dim: usize) -> std::result::Result<(Decoded, usize), &'static str> {
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
    let op = decode(body, dim).ok_or("a record is malformed")?;
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

fn decode(body: &[u8], dim: usize) -> Option<Decoded> {
    let mut d = Dec::new(body);
    let op = match d.u8()? {
        ADD => {
            let doc = d.u64()?;
            let modality = modality_from(d.u8()?)?;
            let (r, c) = (d.u16()?, d.u16()?);
            let n_tokens = d.u32()? as usize;
            let (id, source, payload) = decode_meta(d.bytes()?)?;
            let embedding = d.f32s(dim)?;
            let block = d.bytes()?;
            if block.len() % 4 != 0 {
                return None;
            }
            let mut tok_block = vec![0u32; block.len() / 4];
            bytemuck::cast_slice_mut::<u32, u8>(&mut tok_block).copy_from_slice(block);
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
