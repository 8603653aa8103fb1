//! Collections: crash-safe on-disk storage of embeddings, token matrices and
//! payloads, with an HNSW index over the global embeddings.
//!
//! A collection is a folder:
//!
//! | file | what |
//! |---|---|
//! | `collection.cfg` | immutable settings: bundle name + hash, dim, token dtype, HNSW params (framed JSON) |
//! | `MANIFEST` | the current state: generation, segments, tombstones file, HNSW dump + checksums, WAL name (framed JSON, replaced atomically) |
//! | `wal-G.log` | committed changes since checkpoint G (`wal.rs`); committed token blocks are read from it in place |
//! | `seg-N.*` | immutable, memory-mapped segments (`segment.rs`); `seg-N.tlog` is the log a checkpoint kept as the segment's token file |
//! | `del-G.bin` | tombstoned doc ids at checkpoint G |
//! | `pay-G.bin` | payloads updated in place (`update_payload`, `weft tag`) since the last compaction, at checkpoint G: `(doc u64, payload)*`; written only once a payload was updated, folded into the segment by compaction |
//! | `hnsw-G.graph` | the HNSW graph at checkpoint G (ids, levels, neighbour lists; read whole at open) |
//! | `hnsw-G.vec` | the vectors the index gained between the previous checkpoint and G (mapped; the graph file lists every part in use with a crc32 per 64 KiB) |
//! | `hnsw-G.vec.q8` | that part's i8 codes, which the graph walk reads (mapped; a crc32 per 64 KiB in the file itself; written for an older part without one at the next checkpoint) |
//! | `LOCK` | held (flock) by the one writer |
//!
//! Durability: `commit()` returns after the WAL is fsynced. A checkpoint
//! writes new files, then swaps `MANIFEST` (fsync + rename); files that no
//! manifest names (a crash mid-checkpoint) are removed when a writer opens.
//! Readers hold an `Arc<Snapshot>`: a commit publishes a new snapshot and
//! never changes one a reader holds.

mod collection;

#[cfg(test)]
mod crash_sim;
pub(crate) mod segment;
pub mod tokens;
pub(crate) mod wal;

pub use collection::{
    Collection, CollectionConfig, CollectionInfo, CommitStats, RepairReport, Snapshot, WriteBatch,
};
pub use tokens::TokenDtype;

use crate::bundle::Modality;

/// What is known of an item besides its vectors.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ItemMeta {
    /// External id, unique in the collection.
    pub id: String,
    /// Where it came from (path or URI); may be empty.
    pub source: String,
    /// JSON payload as text (`null` when none).
    pub payload: String,
    /// Modality of the item.
    pub modality: Modality,
    /// Number of token rows.
    pub n_tokens: usize,
    /// Patch grid of an image's tokens.
    pub grid: Option<[usize; 2]>,
}

/// An item as stored: embedding and the token block already in the collection dtype.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredItem {
    /// Meta.
    pub meta: ItemMeta,
    /// Global embedding.
    pub embedding: Vec<f32>,
    /// Token block (`tokens.rs` layout).
    pub tok_block: TokBlock,
}

/// Where an item's token block (`tokens.rs` layout) is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokBlock {
    /// In memory, as 4-byte words for alignment: staged, read back from a
    /// segment, or replayed from a log record that predates aligned blocks.
    Owned(Vec<u32>),
    /// Committed, and only in the write-ahead log: a writer keeps no copy
    /// of what it logged, the snapshot reads it through its mapping of the
    /// log, a checkpoint copies it into a segment.
    Logged(wal::Logged),
}

impl TokBlock {
    /// Bytes of the block.
    pub fn len(&self) -> usize {
        match self {
            TokBlock::Owned(w) => 4 * w.len(),
            TokBlock::Logged(l) => l.tok_len as usize,
        }
    }

    /// The block, when it is in memory.
    pub fn owned(&self) -> Option<&[u8]> {
        match self {
            TokBlock::Owned(w) => Some(bytemuck::cast_slice(w)),
            TokBlock::Logged(_) => None,
        }
    }

    /// `bytes` as a block in memory.
    pub fn from_bytes(bytes: &[u8]) -> TokBlock {
        let mut words = vec![0u32; bytes.len().div_ceil(4)];
        bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        TokBlock::Owned(words)
    }
}

/// An item to add.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewItem {
    /// External id, unique in the collection.
    pub id: String,
    /// Modality.
    pub modality: Modality,
    /// Where it came from; may be empty.
    pub source: String,
    /// JSON payload (`Value::Null` when none).
    pub payload: serde_json::Value,
    /// Global embedding (`dim` floats; normalised on add).
    pub embedding: Vec<f32>,
    /// Token matrix, row-major `n x dim` (may be empty).
    pub tokens: Vec<f32>,
    /// Patch grid of image tokens.
    pub grid: Option<[usize; 2]>,
}

impl NewItem {
    /// An item with an id, a modality and an embedding; no tokens, no payload.
    pub fn new(id: impl Into<String>, modality: Modality, embedding: Vec<f32>) -> Self {
        NewItem {
            id: id.into(),
            modality,
            source: String::new(),
            payload: serde_json::Value::Null,
            embedding,
            tokens: Vec::new(),
            grid: None,
        }
    }

    /// Sets the token matrix.
    pub fn with_tokens(mut self, tokens: Vec<f32>, grid: Option<[usize; 2]>) -> Self {
        self.tokens = tokens;
        self.grid = grid;
        self
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }
}

/// Replays the write-ahead log at `path` for items of `dim` floats and
/// returns how many bytes of it are valid: the fuzz target's entry point
/// (the log itself is private).
#[doc(hidden)]
pub fn fuzz_wal_replay(path: &std::path::Path, dim: usize) -> crate::Result<u64> {
    wal::replay(path, dim).map(|r| r.valid_len)
}
