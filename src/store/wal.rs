//! The write-ahead log: committed changes since the last checkpoint.
//!
//! ```text
//! header (16 bytes, kind "WLOG")
//! record*: body length u32 | crc32(body) u32 | body
//! body: 1 = add    doc u64 | modality u8 | grid u16 u16 | n_tokens u32 | meta bytes | embedding (dim f32) | token block bytes
//!       2 = delete doc u64
//!       3 = commit next_doc u64
//! ```
//!
//! A commit appends its records and a commit record, then fsyncs: only then
//! does `commit()` return. Replay applies records up to the last commit
//! record; a torn record at the very end (a crash during append) is dropped
//! and truncated by the next writer. A bad record followed by more data is
//! corruption and is reported with the file name and offset.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::format::{self, corrupt, Dec, Enc};
use super::segment::{decode_meta, encode_meta, modality_code, modality_from};
use super::{ItemMeta, StoredItem};
use crate::error::{Error, Result};
use crate::index::DocId;

const KIND: &[u8; 4] = b"WLOG";
const ADD: u8 = 1;
const DELETE: u8 = 2;
const COMMIT: u8 = 3;

/// One logged change.
#[derive(Debug, Clone)]
pub enum Op {
    /// A new item with its doc id.
    Add(DocId, std::sync::Arc<StoredItem>),
    /// A doc hidden (tombstone).
    Delete(DocId),
}

/// Appends to the log.
#[derive(Debug)]
pub struct WalWriter {
    file: File,
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
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let actual = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if actual != valid_len {
            file.set_len(valid_len).map_err(|e| Error::io(path, e))?;
            file.sync_all().map_err(|e| Error::io(path, e))?;
        }
        let mut file = file;
        file.seek(SeekFrom::Start(valid_len))
            .map_err(|e| Error::io(path, e))?;
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
            }
            push_record(&mut buf, &e.0);
        }
        let mut e = Enc::default();
        e.u8(COMMIT);
        e.u64(next_doc);
        push_record(&mut buf, &e.0);
        let result = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data());
        if let Err(err) = result {
            // Leave the file as it was before this commit.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(Error::io(&self.path, err));
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when only the header is there.
    pub fn is_empty(&self) -> bool {
        self.len <= format::HEADER_LEN as u64
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
        let rest = &bytes[pos..];
        let torn = |what: &str| -> Result<Replayed> {
            Err(corrupt(path, format!("{what} at offset {pos}")))
        };
        if rest.len() < 8 {
            break; // torn header of the last record
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4"));
        let Some(body) = rest.get(8..8 + len) else {
            break; // the last record was cut short
        };
        if format::crc32(body) != crc {
            // A crash while appending leaves the tail unwritten (zeros); a
            // full record with other bytes is damage, never dropped quietly.
            if 8 + len == rest.len() && body.iter().all(|b| *b == 0) {
                break;
            }
            return torn("record fails its checksum");
        }
        let Some(op) = decode(body, dim) else {
            return torn("malformed record");
        };
        pos += 8 + len;
        match op {
            Decoded::Op(op) => pending.push(op),
            Decoded::Commit(next) => {
                out.batches.push((std::mem::take(&mut pending), next));
                out.valid_len = pos as u64;
            }
        }
    }
    Ok(out)
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
        COMMIT => Decoded::Commit(d.u64()?),
        _ => return None,
    };
    (d.remaining() == 0).then_some(op)
}
