//! weft's HNSW (Malkov & Yashunin, 2016) over L2-normalised vectors
//! (distance `1 - dot`).
//!
//! Concurrency: the node arrays sit behind one `RwLock` that only the
//! allocation of new nodes takes for writing. Searches and the linking of
//! new nodes run under the read lock: neighbour lists are arrays of
//! `AtomicU32` (`[count, id, id, ...]`), written by one inserting thread at
//! a time per node (a striped mutex) and read without locks. A reader may see
//! a list half rewritten; every id in it is an allocated node, so the worst
//! case is one stale neighbour.
//!
//! Persistence (see [`HnswIndex::dump`]): a graph file (`HNSG`, framed and
//! verified whole at load: ids, levels, neighbour lists, about 140 bytes a
//! node at `M = 16`) and vector parts (`HNSV`, `n x dim` f32, memory-mapped,
//! never read whole). A checkpoint writes only the vectors added since the
//! last one as a new part; each part carries a crc32 per 64 KiB chunk (kept in
//! the graph file), checked the first time a search touches the chunk. A bad
//! chunk makes that search, and every later one, return
//! [`Error::Corrupted`] naming the part.
//!
//! The walk reads i8 codes (`HNSQ` code files beside the parts, one row of
//! `dim` codes and an f32 scale per node, checked per chunk the same way):
//! a quarter of the bytes of the f32 vectors, where a search spends its
//! time waiting for memory. The beam it ends with is re-scored with the f32
//! vectors, so scores are exact. On clustered-100k x 384 (M 16, one core)
//! that answered 1.5-1.65x the queries/s of the f32 walk at ef 16-128,
//! with recall@10 lower by 0.001-0.0022. Inserts walk over the codes too
//! and re-score each layer's beam exactly before choosing neighbours (the
//! pruning heuristic compares f32 vectors): 1.55x faster builds, same
//! recall. A part written before code files existed gets its code file at
//! the next dump.
//!
//! Why not `hnsw_rs` (used until 2026-11-29): it built 20,000 x 384-d in
//! 61 s on this 2-core machine (faiss: 18.5 s), answered 0.21-0.44x the
//! queries/s of faiss and hnswlib, and reloads by deserialising the whole
//! graph, so neither a 1,000,000-item build nor a sub-second open was in reach.

//!
//! Files: `params.rs` (`HnswParams`), `graph.rs` (node arrays, vector
//! parts, visited set), `search.rs` (greedy descent, layer search),
//! `insert.rs` (levels, allocation, linking, pruning), `persist.rs` (dump
//! and load, chunk checks).

mod graph;
mod insert;
mod params;
mod persist;
mod search;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use crate::sys::Mapped;
use serde::{Deserialize, Serialize};

use super::{DocFilter, DocId, VectorIndex};
use crate::error::{Error, Result};
use crate::format::{self, corrupt, Dec, Enc};
use crate::score::dot_f32;

use graph::{
    code_dist, code_row_len, push_code_row, Codes, Graph, Part, Probe, Visited, D, SCRATCH,
};
pub use params::HnswParams;
pub use persist::HnswFiles;

/// Highest layer a node can get (levels are drawn with `mL = 1/ln M`; 16 is
/// out of reach below 16^16 nodes).
const MAX_LEVEL: u8 = 16;
/// Vector parts and code files are checked in chunks of about this many
/// bytes (the chunk size is written into each file, so files written with
/// another size still open). A search touches nodes all over the graph, so
/// the first searches after an open read (and check) every chunk they
/// touch. At 1,000,000 items with the files in the page cache, the first
/// search after an open took ~110 ms with 1 MiB chunks and ~30 ms with
/// 64 KiB ones. With a cold page cache a search reads a whole chunk for
/// each node it touches first: 16 KiB chunks read a quarter of the bytes
/// of 64 KiB ones (crc tables of 400 KB per million 384-d vectors and
/// 95 KB for their codes).
const CHUNK_BYTES: usize = 16 << 10;
/// Floats of an f32 vector the walk prefetches ahead (two cache lines; the
/// hardware prefetcher follows the rest). Prefetching all 24 lines of a
/// 384-d vector answered 10-19% fewer queries/s on clustered-100k: the
/// prefetches queue up behind each other.
const HEAD: usize = 32;
/// Number of writer mutexes guarding neighbour-list updates.
const STRIPES: usize = 1024;
/// `entry` when the index is empty.
const NO_ENTRY: u64 = u64::MAX;
/// Graph file kind and vector part kind.
const GRAPH_KIND: &[u8; 4] = b"HNSG";
const PART_KIND: &[u8; 4] = b"HNSV";
const CODES_KIND: &[u8; 4] = b"HNSQ";

/// An HNSW index.
pub struct HnswIndex {
    params: HnswParams,
    graph: RwLock<Graph>,
    /// `(level << 32) | node` of the entry point, or [`NO_ENTRY`].
    entry: AtomicU64,
    stripes: Box<[Mutex<()>]>,
    /// The first corruption a search ran into.
    bad: OnceLock<(PathBuf, String)>,
    /// Level draws: a counter mixed by SplitMix64 (seeded, reproducible).
    draws: AtomicU64,
    /// Searches walk the graph over the i8 codes (and re-score the beam
    /// with the f32 vectors); on by default.
    walk_codes: AtomicBool,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("params", &self.params)
            .field("len", &self.len())
            .finish()
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unpack(e: u64) -> (u32, u8) {
    (e as u32, (e >> 32) as u8)
}

impl HnswIndex {
    /// A new empty index sized for about `capacity` vectors.
    pub fn new(params: HnswParams, capacity: usize) -> Result<Self> {
        params.validate()?;
        let mut g = Graph::empty();
        g.docs.reserve(capacity);
        g.levels.reserve(capacity);
        Ok(Self::with_graph(params, g, NO_ENTRY))
    }

    fn with_graph(params: HnswParams, graph: Graph, entry: u64) -> Self {
        HnswIndex {
            params,
            graph: RwLock::new(graph),
            entry: AtomicU64::new(entry),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            bad: OnceLock::new(),
            draws: AtomicU64::new(0),
            walk_codes: AtomicBool::new(true),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Graph> {
        self.graph.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Graph> {
        self.graph.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self, node: u32) -> std::sync::MutexGuard<'_, ()> {
        self.stripes[node as usize % STRIPES]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the search beam width `ef` (at least 1).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    /// Whether searches walk the graph over i8 codes of the vectors (a
    /// quarter of the bytes an f32 walk reads; the beam's nodes are then
    /// re-scored with the f32 vectors, so scores stay exact) or over the
    /// f32 vectors. On by default; the benchmark compares both.
    pub fn set_quantized_walk(&self, on: bool) {
        self.walk_codes.store(on, Ordering::Relaxed);
    }

    /// The parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    fn m0(&self) -> usize {
        2 * self.params.m
    }

    // ------------------------------------------------------------ access

    /// The vector of `node`, `None` when its chunk failed its checksum.
    #[inline]
    fn vector<'g>(&self, g: &'g Graph, node: u32) -> Option<&'g [f32]> {
        let node = node as usize;
        let dim = g.dim;
        if node >= g.tail_first {
            let at = (node - g.tail_first) * dim;
            return Some(&g.tail[at..at + dim]);
        }
        let p = Self::part(g, node);
        let local = node - p.first;
        if !p.check(local / p.per_chunk, dim, &self.bad) {
            return None;
        }
        Some(&p.body()[local * dim..(local + 1) * dim])
    }

    /// The part holding `node` (which is below `g.tail_first`).
    #[inline]
    fn part(g: &Graph, node: usize) -> &Part {
        match g.parts.len() {
            1 => &g.parts[0],
            _ => &g.parts[g.parts.partition_point(|p| p.first <= node) - 1],
        }
    }

    /// Prefetches what the walk will read of `node`: its code row, or its
    /// vector (no checksum check: a prefetch reads nothing, the distance
    /// that follows checks the chunk).
    #[inline]
    fn prefetch(&self, g: &Graph, probe: &Probe<'_>, node: u32) {
        let node = node as usize;
        let dim = g.dim;
        let coded = probe.codes.is_some();
        if node >= g.tail_first {
            let i = node - g.tail_first;
            if coded {
                if let Some(r) = g.tail_code(i) {
                    crate::sys::prefetch(r);
                    return;
                }
            }
            if let Some(v) = g.tail.get(i * dim..i * dim + dim.min(HEAD)) {
                crate::sys::prefetch(v);
            }
            return;
        }
        let p = Self::part(g, node);
        let local = node - p.first;
        match &p.codes {
            Some(c) if coded => crate::sys::prefetch(c.row(local, dim)),
            _ => {
                if let Some(v) = p.body().get(local * dim..local * dim + dim.min(HEAD)) {
                    crate::sys::prefetch(v);
                }
            }
        }
    }

    /// Starts reading, all at once, the chunks of `nodes` that the walk (or
    /// the exact re-score, `exact`) will check for the first time; see
    /// `graph::will_need`.
    fn will_need(&self, g: &Graph, probe: &Probe<'_>, nodes: impl Iterator<Item = u32>) {
        for n in nodes {
            let n = n as usize;
            if n >= g.tail_first {
                continue;
            }
            let p = Self::part(g, n);
            let local = n - p.first;
            match &p.codes {
                Some(c) if probe.codes.is_some() => c.will_need(local / c.per_chunk, p.len, g.dim),
                _ => p.will_need(local / p.per_chunk, g.dim),
            }
        }
    }

    /// The walk's distance to `node`: over the codes when the probe has
    /// them and the node has a code row, else exact; `None` when the chunk
    /// read failed its checksum.
    #[inline]
    fn walk_dist(&self, g: &Graph, probe: &Probe<'_>, node: u32) -> Option<f32> {
        let Some(q) = &probe.codes else {
            return self.dist(g, probe.f, node);
        };
        let n = node as usize;
        let dim = g.dim;
        if n >= g.tail_first {
            let i = n - g.tail_first;
            return match g.tail_code(i) {
                Some(row) => Some(code_dist(q, row)),
                None => self.dist(g, probe.f, node),
            };
        }
        let p = Self::part(g, n);
        let Some(c) = &p.codes else {
            return self.dist(g, probe.f, node);
        };
        let local = n - p.first;
        if !c.check(local / c.per_chunk, p.len, dim, &self.bad) {
            return None;
        }
        Some(code_dist(q, c.row(local, dim)))
    }

    #[inline]
    fn dist(&self, g: &Graph, q: &[f32], node: u32) -> Option<f32> {
        self.vector(g, node).map(|v| 1.0 - dot_f32(q, v))
    }

    /// The list of `node` on `layer`: `[count, ids...]`, empty when the
    /// node does not reach that layer.
    fn slot<'g>(&self, g: &'g Graph, node: u32, layer: u8) -> &'g [AtomicU32] {
        if layer == 0 {
            let w = self.m0() + 1;
            g.layer0.get(node as usize * w..(node as usize + 1) * w)
        } else {
            let w = self.params.m + 1;
            let start = (layer as usize - 1) * w;
            g.upper
                .get(node as usize)
                .and_then(|b| b.get(start..start + w))
        }
        .unwrap_or(&[])
    }

    /// Copies the neighbours of `node` on `layer` into `out`.
    #[inline]
    fn neighbours(&self, g: &Graph, node: u32, layer: u8, out: &mut Vec<u32>) {
        out.clear();
        let slot = self.slot(g, node, layer);
        if slot.is_empty() {
            return;
        }
        let n = (slot[0].load(Ordering::Acquire) as usize).min(slot.len() - 1);
        out.extend(slot[1..=n].iter().map(|a| a.load(Ordering::Relaxed)));
    }
}

impl VectorIndex for HnswIndex {
    fn insert(&self, doc: DocId, vector: &[f32]) -> Result<()> {
        self.insert_many(&[(vector, doc)])
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<DocFilter<'_>>,
    ) -> Result<Vec<(DocId, f32)>> {
        self.search_ef(query, k, self.params.ef_search, filter)
    }

    fn len(&self) -> usize {
        self.read().len()
    }
}
