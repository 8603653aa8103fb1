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
//! Why not `hnsw_rs` (used until 2026-11-29): it built 20,000 x 384-d in
//! 61 s on this 2-core machine (faiss: 18.5 s), answered 0.21-0.44x the
//! queries/s of faiss and hnswlib, and reloads by deserialising the whole
//! graph, so neither a 1,000,000-item build nor a sub-second open was in reach.

use std::cell::RefCell;
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use crate::sys::Mapped;
use serde::{Deserialize, Serialize};

use super::{DocId, Filter, VectorIndex};
use crate::error::{Error, Result};
use crate::store::format::{self, corrupt, Dec, Enc};
use crate::sys::dot_f32;

/// HNSW parameters (names from Malkov & Yashunin, 2016).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HnswParams {
    /// `M`: neighbours kept per node and layer (2..=256; layer 0 keeps `2M`). Default 16.
    pub m: usize,
    /// `ef_construction`: beam width while inserting. Default 200.
    pub ef_construction: usize,
    /// `ef`: beam width while searching (raised to k when smaller). Default 128.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 128,
        }
    }
}

impl HnswParams {
    /// Sets `M`.
    pub fn with_m(mut self, m: usize) -> Self {
        self.m = m;
        self
    }
    /// Sets `ef_construction`.
    pub fn with_ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef;
        self
    }
    /// Sets `ef` for searches.
    pub fn with_ef_search(mut self, ef: usize) -> Self {
        self.ef_search = ef;
        self
    }

    /// Refuses values outside what the index supports.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, reason: String| {
            Err(Error::InvalidConfig {
                name: name.into(),
                reason,
            })
        };
        if !(2..=256).contains(&self.m) {
            return bad("hnsw.m", format!("{} is outside 2..=256", self.m));
        }
        if self.ef_construction < self.m {
            return bad(
                "hnsw.ef_construction",
                format!("{} is below m = {}", self.ef_construction, self.m),
            );
        }
        if self.ef_search == 0 {
            return bad("hnsw.ef_search", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Highest layer a node can get (levels are drawn with `mL = 1/ln M`; 16 is
/// out of reach below 16^16 nodes).
const MAX_LEVEL: u8 = 16;
/// Vector parts are checked in chunks of about this many bytes. A search
/// touches nodes all over the graph, so the first searches after an open
/// read (and check) every chunk they touch. At 1,000,000 items with the
/// files in the page cache, the first search after an open took ~110 ms with
/// 1 MiB chunks and ~30 ms with 64 KiB ones (a crc table of 92 KB per
/// million 384-d vectors). With a cold page cache it takes ~1.1 s either
/// way: the random reads of the vectors dominate.
const CHUNK_BYTES: usize = 64 << 10;
/// Number of writer mutexes guarding neighbour-list updates.
const STRIPES: usize = 1024;
/// `entry` when the index is empty.
const NO_ENTRY: u64 = u64::MAX;
/// Graph file kind and vector part kind.
const GRAPH_KIND: &[u8; 4] = b"HNSG";
const PART_KIND: &[u8; 4] = b"HNSV";

/// The files of one dump: the graph file and every vector part it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswFiles {
    /// The graph file's name.
    pub graph: String,
    /// The vector parts' names, oldest first.
    pub parts: Vec<String>,
}

/// A memory-mapped vector part holding nodes `first..first+len`.
struct Part {
    name: String,
    path: PathBuf,
    first: usize,
    len: usize,
    per_chunk: usize,
    crcs: Vec<u32>,
    /// Per chunk: 0 unchecked, 1 good, 2 bad.
    state: Vec<AtomicU8>,
    map: Mapped,
}

impl Part {
    fn body(&self) -> &[f32] {
        let bytes = &self.map[format::HEADER_LEN..self.map.len() - format::FOOTER_LEN];
        bytemuck::cast_slice(bytes)
    }

    /// Checks chunk `c` once; true when good.
    fn check(&self, c: usize, dim: usize, bad: &OnceLock<(PathBuf, String)>) -> bool {
        match self.state[c].load(Ordering::Acquire) {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let start = c * self.per_chunk;
        let end = (start + self.per_chunk).min(self.len);
        let bytes: &[u8] = bytemuck::cast_slice(&self.body()[start * dim..end * dim]);
        let got = format::crc32(bytes);
        let ok = got == self.crcs[c];
        self.state[c].store(if ok { 1 } else { 2 }, Ordering::Release);
        if !ok {
            let _ = bad.set((
                self.path.clone(),
                format!(
                    "checksum mismatch in vectors {start}..{end} (stored {:08x}, computed {got:08x})",
                    self.crcs[c]
                ),
            ));
        }
        ok
    }
}

/// The node arrays.
struct Graph {
    /// 0 until the first insert.
    dim: usize,
    docs: Vec<DocId>,
    levels: Vec<u8>,
    /// `n * (2M + 1)`: per node `[count, ids...]` on layer 0.
    layer0: Vec<AtomicU32>,
    /// Per node: `level * (M + 1)` for layers 1..=level.
    upper: Vec<Box<[AtomicU32]>>,
    parts: Vec<Part>,
    /// Vectors of nodes `tail_first..` (not yet in a part).
    tail_first: usize,
    tail: Vec<f32>,
}

impl Graph {
    fn empty() -> Self {
        Graph {
            dim: 0,
            docs: Vec::new(),
            levels: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            parts: Vec::new(),
            tail_first: 0,
            tail: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.docs.len()
    }
}

/// Generation-stamped visited set, one per thread.
#[derive(Default)]
struct Visited {
    marks: Vec<u32>,
    stamp: u32,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.stamp = 1;
        }
    }

    /// True the first time `i` is seen since `reset`.
    #[inline]
    fn insert(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        if *m == self.stamp {
            false
        } else {
            *m = self.stamp;
            true
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<(Visited, Vec<u32>)> = RefCell::new((Visited::default(), Vec::new()));
}

/// A distance that orders totally (NaN never occurs for finite vectors).
#[derive(Debug, Clone, Copy, PartialEq)]
struct D(f32);
impl Eq for D {}
impl PartialOrd for D {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for D {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.0.total_cmp(&other.0)
    }
}

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
        let p = match g.parts.len() {
            1 => &g.parts[0],
            _ => &g.parts[g.parts.partition_point(|p| p.first <= node) - 1],
        };
        let local = node - p.first;
        if !p.check(local / p.per_chunk, dim, &self.bad) {
            return None;
        }
        Some(&p.body()[local * dim..(local + 1) * dim])
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

    // ------------------------------------------------------------ search

    /// Greedy walk on one layer from `ep` to a local minimum.
    fn greedy(
        &self,
        g: &Graph,
        q: &[f32],
        mut ep: (f32, u32),
        layer: u8,
        nb: &mut Vec<u32>,
    ) -> (f32, u32) {
        loop {
            let mut moved = false;
            self.neighbours(g, ep.1, layer, nb);
            for &c in nb.iter() {
                if let Some(d) = self.dist(g, q, c) {
                    if d < ep.0 {
                        ep = (d, c);
                        moved = true;
                    }
                }
            }
            if !moved {
                return ep;
            }
        }
    }

    /// Beam search on one layer; the `ef` best accepted nodes, nearest first.
    #[allow(clippy::too_many_arguments)]
    fn search_layer(
        &self,
        g: &Graph,
        q: &[f32],
        eps: &[(f32, u32)],
        ef: usize,
        layer: u8,
        accept: Option<&dyn Fn(u32) -> bool>,
        visited: &mut Visited,
        nb: &mut Vec<u32>,
    ) -> Vec<(f32, u32)> {
        visited.reset(g.len());
        let mut cand: BinaryHeap<Reverse<(D, u32)>> = BinaryHeap::with_capacity(ef * 2);
        let mut best: BinaryHeap<(D, u32)> = BinaryHeap::with_capacity(ef + 1);
        let ok = |n: u32| accept.is_none_or(|f| f(n));
        for &(d, n) in eps {
            if visited.insert(n) {
                cand.push(Reverse((D(d), n)));
                if ok(n) {
                    best.push((D(d), n));
                }
            }
        }
        while best.len() > ef {
            best.pop();
        }
        while let Some(Reverse((D(d), c))) = cand.pop() {
            if best.len() >= ef && best.peek().is_some_and(|w| d > w.0 .0) {
                break;
            }
            self.neighbours(g, c, layer, nb);
            for &n in nb.iter() {
                if !visited.insert(n) {
                    continue;
                }
                let Some(dn) = self.dist(g, q, n) else {
                    continue;
                };
                if best.len() < ef || best.peek().is_some_and(|w| dn < w.0 .0) {
                    cand.push(Reverse((D(dn), n)));
                    if ok(n) {
                        best.push((D(dn), n));
                        if best.len() > ef {
                            best.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<(f32, u32)> = best.into_iter().map(|(D(d), n)| (d, n)).collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out
    }

    /// [`VectorIndex::search`] with this query's beam width `ef` (raised to `k`).
    pub fn search_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<Filter<'_>>,
    ) -> Result<Vec<(DocId, f32)>> {
        self.check_bad()?;
        let g = self.read();
        let entry = self.entry.load(Ordering::Acquire);
        if k == 0 || entry == NO_ENTRY {
            return Ok(Vec::new());
        }
        if query.len() != g.dim {
            return Err(Error::WrongDimension {
                what: "HNSW query".into(),
                expected: g.dim,
                received: query.len(),
            });
        }
        let (node, top) = unpack(entry);
        let found = SCRATCH.with(|s| {
            let (visited, nb) = &mut *s.borrow_mut();
            let d = self.dist(&g, query, node).unwrap_or(f32::INFINITY);
            let mut ep = (d, node);
            for l in (1..=top).rev() {
                ep = self.greedy(&g, query, ep, l, nb);
            }
            let docs = &g.docs;
            let accept = filter.map(|f| move |n: u32| f(docs[n as usize]));
            self.search_layer(
                &g,
                query,
                &[ep],
                ef.max(k),
                0,
                accept.as_ref().map(|a| a as &dyn Fn(u32) -> bool),
                visited,
                nb,
            )
        });
        self.check_bad()?;
        Ok(found
            .into_iter()
            .take(k)
            .map(|(d, n)| (g.docs[n as usize], 1.0 - d))
            .collect())
    }

    fn check_bad(&self) -> Result<()> {
        match self.bad.get() {
            Some((path, reason)) => Err(corrupt(path, reason.clone())),
            None => Ok(()),
        }
    }

    // ------------------------------------------------------------ insert

    fn draw_level(&self) -> u8 {
        let r = splitmix(self.draws.fetch_add(1, Ordering::Relaxed) ^ 0x5eed);
        let u = ((r >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let ml = 1.0 / (self.params.m as f64).ln();
        ((-u.ln() * ml).floor() as u64).min(u64::from(MAX_LEVEL)) as u8
    }

    /// Adds nodes for `rows` (no links yet); returns the first new node.
    fn allocate(&self, rows: &[(&[f32], DocId)]) -> Result<u32> {
        let mut g = self.write();
        let dim = if g.dim == 0 { rows[0].0.len() } else { g.dim };
        if dim == 0 {
            return Err(Error::WrongDimension {
                what: "HNSW vector".into(),
                expected: 1,
                received: 0,
            });
        }
        for (v, doc) in rows {
            if v.len() != dim {
                return Err(Error::WrongDimension {
                    what: format!("HNSW vector of doc {doc}"),
                    expected: dim,
                    received: v.len(),
                });
            }
        }
        let first = g.len();
        if first + rows.len() > u32::MAX as usize {
            return Err(Error::InvalidInput {
                item: "HNSW index".into(),
                reason: format!("more than {} vectors", u32::MAX),
            });
        }
        g.dim = dim;
        let w0 = self.m0() + 1;
        let wu = self.params.m + 1;
        g.tail.reserve(rows.len() * dim);
        g.layer0.reserve(rows.len() * w0);
        for (v, doc) in rows {
            let level = self.draw_level();
            g.docs.push(*doc);
            g.levels.push(level);
            g.tail.extend_from_slice(v);
            g.layer0.extend((0..w0).map(|_| AtomicU32::new(0)));
            g.upper.push(
                (0..level as usize * wu)
                    .map(|_| AtomicU32::new(0))
                    .collect(),
            );
        }
        Ok(first as u32)
    }

    /// Links an allocated node into the graph.
    fn link(&self, g: &Graph, node: u32, visited: &mut Visited, nb: &mut Vec<u32>) {
        let level = g.levels[node as usize];
        // New nodes live in the tail, or in a part a concurrent dump just
        // wrote; a part that fails its check is reported by the next search.
        let Some(q) = self.vector(g, node) else {
            return;
        };
        let entry = loop {
            let e = self.entry.load(Ordering::Acquire);
            if e != NO_ENTRY {
                break e;
            }
            let mine = (u64::from(level) << 32) | u64::from(node);
            if self
                .entry
                .compare_exchange(NO_ENTRY, mine, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        };
        let (ep_node, top) = unpack(entry);
        let mut ep = (self.dist(g, q, ep_node).unwrap_or(f32::INFINITY), ep_node);
        for l in (level.saturating_add(1)..=top).rev() {
            ep = self.greedy(g, q, ep, l, nb);
        }
        // Choose the neighbours on every layer first (top down, each layer's
        // beam seeding the next), then publish bottom up: once a search can
        // reach this node on a layer, its lists on the layers below are
        // already in place (publishing top down let a concurrent search
        // descend into a node with an empty layer-0 list and return 1 hit).
        let mut eps = vec![ep];
        let mut plan: Vec<(u8, Vec<(f32, u32)>)> = Vec::with_capacity(level as usize + 1);
        for l in (0..=level.min(top)).rev() {
            let mut found = self.search_layer(
                g,
                q,
                &eps,
                self.params.ef_construction,
                l,
                None,
                visited,
                nb,
            );
            // Another thread may already link to this node: no self-loops.
            found.retain(|&(_, n)| n != node);
            plan.push((l, self.select(g, &found, self.params.m)));
            if !found.is_empty() {
                eps = found;
            }
        }
        for (l, chosen) in plan.iter().rev() {
            let l = *l;
            {
                let _guard = self.lock(node);
                let slot = self.slot(g, node, l);
                debug_assert!(!slot.is_empty(), "node {node} has layer {l}");
                for (i, &(_, n)) in chosen.iter().enumerate() {
                    slot[i + 1].store(n, Ordering::Relaxed);
                }
                slot[0].store(chosen.len() as u32, Ordering::Release);
            }
            let cap = if l == 0 { self.m0() } else { self.params.m };
            for &(d, n) in chosen {
                self.add_link(g, n, node, d, l, cap, nb);
            }
        }
        if level > top {
            let mine = (u64::from(level) << 32) | u64::from(node);
            let mut cur = self.entry.load(Ordering::Acquire);
            while unpack(cur).1 < level {
                match self
                    .entry
                    .compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
    }

    /// The neighbour-selection heuristic (Malkov & Yashunin, algorithm 4):
    /// walking `cands` nearest first, keep one unless it is nearer to an
    /// already kept node than to the base; at most `m`.
    fn select(&self, g: &Graph, cands: &[(f32, u32)], m: usize) -> Vec<(f32, u32)> {
        let mut kept: Vec<(f32, u32)> = Vec::with_capacity(m);
        for &(d, c) in cands {
            if kept.len() >= m {
                break;
            }
            let Some(cv) = self.vector(g, c) else {
                continue;
            };
            let diverse = kept.iter().all(|&(_, k)| {
                self.vector(g, k)
                    .is_some_and(|kv| 1.0 - dot_f32(cv, kv) > d)
            });
            if diverse {
                kept.push((d, c));
            }
        }
        kept
    }

    /// Adds `new` (at distance `d`) to the list of `node` on `layer`,
    /// re-selecting when the list is full.
    #[allow(clippy::too_many_arguments)]
    fn add_link(
        &self,
        g: &Graph,
        node: u32,
        new: u32,
        d: f32,
        layer: u8,
        cap: usize,
        nb: &mut Vec<u32>,
    ) {
        let _guard = self.lock(node);
        let slot = self.slot(g, node, layer);
        if slot.is_empty() {
            return;
        }
        let n = (slot[0].load(Ordering::Acquire) as usize).min(slot.len() - 1);
        if slot[1..=n].iter().any(|a| a.load(Ordering::Relaxed) == new) {
            return;
        }
        if n < cap {
            slot[n + 1].store(new, Ordering::Relaxed);
            slot[0].store(n as u32 + 1, Ordering::Release);
            return;
        }
        let Some(base) = self.vector(g, node) else {
            return;
        };
        self.neighbours(g, node, layer, nb);
        let mut cands: Vec<(f32, u32)> = nb
            .iter()
            .filter_map(|&c| self.dist(g, base, c).map(|dc| (dc, c)))
            .collect();
        cands.push((d, new));
        cands.sort_by(|a, b| a.0.total_cmp(&b.0));
        let kept = self.select(g, &cands, cap);
        for (i, &(_, c)) in kept.iter().enumerate() {
            slot[i + 1].store(c, Ordering::Relaxed);
        }
        slot[0].store(kept.len() as u32, Ordering::Release);
    }

    /// Inserts many vectors, linking them on all available cores.
    pub fn insert_many(&self, rows: &[(&[f32], DocId)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let first = self.allocate(rows)?;
        let g = self.read();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(rows.len().div_ceil(256));
        let next = AtomicUsize::new(0);
        let work = || {
            SCRATCH.with(|s| {
                let (visited, nb) = &mut *s.borrow_mut();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= rows.len() {
                        break;
                    }
                    self.link(&g, first + i as u32, visited, nb);
                }
            })
        };
        if threads <= 1 {
            work();
        } else {
            std::thread::scope(|s| {
                for _ in 1..threads {
                    s.spawn(work);
                }
                work();
            });
        }
        Ok(())
    }

    // ------------------------------------------------------------ files

    /// Writes the graph as `dir/{basename}.graph`, and the vectors added
    /// since the last dump as `dir/{basename}.vec`; returns the files the
    /// dump needs (earlier parts included). Inserts must not run meanwhile
    /// (the collection holds its writer lock).
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<HnswFiles> {
        let g = self.read();
        let n = g.len();
        let dim = g.dim;
        let mut parts: Vec<(String, usize, usize, usize, Vec<u32>)> = g
            .parts
            .iter()
            .map(|p| (p.name.clone(), p.first, p.len, p.per_chunk, p.crcs.clone()))
            .collect();
        let fresh = n - g.tail_first;
        let per_chunk = (CHUNK_BYTES / (dim.max(1) * 4)).max(1);
        if fresh > 0 {
            let name = format!("{basename}.vec");
            let crcs: Vec<u32> = g
                .tail
                .chunks(per_chunk * dim)
                .map(|c| format::crc32(bytemuck::cast_slice(c)))
                .collect();
            format::write_framed(&dir.join(&name), PART_KIND, bytemuck::cast_slice(&g.tail))?;
            parts.push((name, g.tail_first, fresh, per_chunk, crcs));
        }
        let mut e = Enc::default();
        e.u32(dim as u32);
        e.u32(self.params.m as u32);
        e.u64(n as u64);
        e.u64(self.entry.load(Ordering::Acquire));
        e.u32(parts.len() as u32);
        for (name, first, len, per, crcs) in &parts {
            e.str(name);
            e.u64(*first as u64);
            e.u64(*len as u64);
            e.u64(*per as u64);
            e.u32(crcs.len() as u32);
            for c in crcs {
                e.u32(*c);
            }
        }
        e.0.extend_from_slice(bytemuck::cast_slice(&g.docs));
        e.0.extend_from_slice(&g.levels);
        let lists: Vec<u32> = g.layer0.iter().map(|a| a.load(Ordering::Acquire)).collect();
        e.0.extend_from_slice(bytemuck::cast_slice(&lists));
        let upper: Vec<u32> = g
            .upper
            .iter()
            .flat_map(|b| b.iter().map(|a| a.load(Ordering::Acquire)))
            .collect();
        e.0.extend_from_slice(bytemuck::cast_slice(&upper));
        let graph = format!("{basename}.graph");
        format::write_framed(&dir.join(&graph), GRAPH_KIND, &e.0)?;
        let names = parts.iter().map(|p| p.0.clone()).collect();
        drop(g);
        if fresh > 0 {
            // Serve the dumped vectors from the new part, not from memory.
            let (name, first, len, per, crcs) = parts.pop().expect("pushed above");
            let part = open_part(dir, name, first, len, dim, per, crcs)?;
            let mut g = self.write();
            if g.tail_first == first && g.len() == n {
                g.parts.push(part);
                g.tail_first = n;
                g.tail = Vec::new();
            }
        }
        Ok(HnswFiles {
            graph,
            parts: names,
        })
    }

    /// Opens a dump written by [`HnswIndex::dump`]: reads and verifies the
    /// graph file, maps the vector parts (checked chunk by chunk when used).
    pub fn load(dir: &Path, files: &HnswFiles, params: HnswParams) -> Result<Self> {
        params.validate()?;
        let path = dir.join(&files.graph);
        let body = format::read_framed(&path, GRAPH_KIND)?;
        let bad = |what: &str| corrupt(&path, format!("bad graph file: {what}"));
        let mut d = Dec::new(&body);
        let dim = d.u32().ok_or_else(|| bad("header"))? as usize;
        let m = d.u32().ok_or_else(|| bad("header"))? as usize;
        let n = d.u64().ok_or_else(|| bad("header"))? as usize;
        let entry = d.u64().ok_or_else(|| bad("header"))?;
        if m != params.m {
            return Err(corrupt(
                &path,
                format!("written with M = {m}, the collection says {}", params.m),
            ));
        }
        let nparts = d.u32().ok_or_else(|| bad("part list"))? as usize;
        let mut parts = Vec::with_capacity(nparts);
        let mut covered = 0usize;
        for i in 0..nparts {
            let name = d.str().ok_or_else(|| bad("part list"))?.to_string();
            let first = d.u64().ok_or_else(|| bad("part list"))? as usize;
            let len = d.u64().ok_or_else(|| bad("part list"))? as usize;
            let per = d.u64().ok_or_else(|| bad("part list"))? as usize;
            let nc = d.u32().ok_or_else(|| bad("part list"))? as usize;
            let crcs: Option<Vec<u32>> = (0..nc).map(|_| d.u32()).collect();
            let crcs = crcs.ok_or_else(|| bad("part list"))?;
            if first != covered || per == 0 || nc != len.div_ceil(per) {
                return Err(bad(&format!(
                    "part {i} ({name}) does not continue the nodes"
                )));
            }
            if files.parts.get(i) != Some(&name) {
                return Err(bad(&format!(
                    "part {i} is {name}, the manifest says otherwise"
                )));
            }
            covered += len;
            parts.push(open_part(dir, name, first, len, dim, per, crcs)?);
        }
        if covered != n {
            return Err(bad(&format!("parts hold {covered} vectors, graph has {n}")));
        }
        let docs: Vec<DocId> = d
            .take(n * 8)
            .map(|b| {
                b.chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
                    .collect()
            })
            .ok_or_else(|| bad("doc ids"))?;
        let levels = d.take(n).ok_or_else(|| bad("levels"))?.to_vec();
        let w0 = 2 * m + 1;
        let wu = m + 1;
        let words = |b: &[u8]| -> Vec<AtomicU32> {
            b.chunks_exact(4)
                .map(|c| AtomicU32::new(u32::from_le_bytes(c.try_into().expect("4"))))
                .collect()
        };
        let layer0 = words(d.take(n * w0 * 4).ok_or_else(|| bad("layer 0"))?);
        let total_upper: usize = levels.iter().map(|&l| l as usize * wu).sum();
        let mut upper_words =
            words(d.take(total_upper * 4).ok_or_else(|| bad("upper layers"))?).into_iter();
        if d.remaining() != 0 {
            return Err(bad("trailing bytes"));
        }
        let upper: Vec<Box<[AtomicU32]>> = levels
            .iter()
            .map(|&l| (&mut upper_words).take(l as usize * wu).collect())
            .collect();
        // Every list stays inside its slot and names existing nodes.
        let check = |slot: &[AtomicU32]| {
            let c = slot[0].load(Ordering::Relaxed) as usize;
            c < slot.len()
                && slot[1..=c]
                    .iter()
                    .all(|a| (a.load(Ordering::Relaxed) as usize) < n)
        };
        let lists_ok = layer0.chunks_exact(w0).all(check)
            && upper.iter().all(|b| b.chunks_exact(wu).all(check));
        let entry_ok = if n == 0 {
            entry == NO_ENTRY
        } else {
            let (node, level) = unpack(entry);
            (node as usize) < n && levels[node as usize] == level
        };
        if !lists_ok || !entry_ok || levels.iter().any(|&l| l > MAX_LEVEL) {
            return Err(bad("a neighbour list or the entry point is out of range"));
        }
        let graph = Graph {
            dim,
            docs,
            levels,
            layer0,
            upper,
            parts,
            tail_first: n,
            tail: Vec::new(),
        };
        let index = Self::with_graph(params, graph, entry);
        index.draws.store(n as u64, Ordering::Relaxed);
        Ok(index)
    }

    /// The first vector part found cut short under its mapping (`stat`:
    /// also by its size, a system call per part).
    pub fn truncated(&self, stat: bool) -> Option<PathBuf> {
        let g = self.read();
        g.parts
            .iter()
            .find(|p| p.map.truncated(stat))
            .map(|p| p.map.path().to_path_buf())
    }

    /// Checks every vector chunk (what a search would check lazily) and
    /// each part's whole-file checksum in its footer.
    pub fn verify(&self) -> Result<()> {
        let g = self.read();
        for p in &g.parts {
            for c in 0..p.state.len() {
                p.check(c, g.dim, &self.bad);
            }
            format::open_framed(&p.map, PART_KIND, &p.path, true)?;
        }
        drop(g);
        self.check_bad()
    }
}

fn open_part(
    dir: &Path,
    name: String,
    first: usize,
    len: usize,
    dim: usize,
    per_chunk: usize,
    crcs: Vec<u32>,
) -> Result<Part> {
    let path = dir.join(&name);
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let map = crate::sys::map_readonly(&file, &path).map_err(|e| Error::io(&path, e))?;
    let body = format::open_framed(&map, PART_KIND, &path, false)?;
    if body.len() != len * dim * 4 {
        return Err(corrupt(
            &path,
            format!(
                "{} body bytes, expected {} for {len} vectors",
                body.len(),
                len * dim * 4
            ),
        ));
    }
    Ok(Part {
        state: (0..crcs.len()).map(|_| AtomicU8::new(0)).collect(),
        name,
        path,
        first,
        len,
        per_chunk,
        crcs,
        map,
    })
}

impl VectorIndex for HnswIndex {
    fn insert(&self, doc: DocId, vector: &[f32]) -> Result<()> {
        self.insert_many(&[(vector, doc)])
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<Filter<'_>>,
    ) -> Result<Vec<(DocId, f32)>> {
        self.search_ef(query, k, self.params.ef_search, filter)
    }

    fn len(&self) -> usize {
        self.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::suite;

    #[test]
    fn hnsw_passes_the_shared_suite() {
        let seed = 42;
        let index = HnswIndex::new(HnswParams::default(), 3000).unwrap();
        suite::run(&index, seed, 3000, 32, 0.95);
    }

    fn insert_all(index: &HnswIndex, data: &[Vec<f32>]) {
        let rows: Vec<(&[f32], DocId)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (&v[..], i as DocId))
            .collect();
        index.insert_many(&rows).unwrap();
    }

    fn recall(index: &HnswIndex, data: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
        let flat = crate::index::FlatIndex::new();
        for (i, v) in data.iter().enumerate() {
            flat.insert(i as DocId, v).unwrap();
        }
        let mut hits = 0;
        for q in queries {
            let exact = flat.search(q, 10, None).unwrap();
            let got = index.search(q, 10, None).unwrap();
            hits += got
                .iter()
                .filter(|(d, _)| exact.iter().any(|(e, _)| e == d))
                .count();
        }
        hits as f64 / (10.0 * queries.len() as f64)
    }

    /// The bar: recall@10 >= 0.95 against exact search on a seeded
    /// clustered set of 100,000 vectors.
    #[test]
    fn recall_at_10_on_100k_clustered_vectors() {
        let seed = 100_000;
        let (n, dim) = (100_000, 64);
        // 100 held-out points of the same clusters are the queries.
        let mut data = suite::clustered(seed, n + 100, dim, 500);
        let queries = data.split_off(n);
        let params = HnswParams::default().with_ef_search(128);
        let index = HnswIndex::new(params, n).unwrap();
        insert_all(&index, &data);
        let recall = recall(&index, &data, &queries);
        eprintln!("hnsw recall@10 on {n} x {dim} clustered (seed {seed}, M 16, ef_c 200, ef 128): {recall:.4}");
        assert!(recall >= 0.95, "seed {seed}: recall@10 {recall:.4}");
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-hnsw-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn dump_and_reload_give_the_same_answers_and_take_more_inserts() {
        let dir = tempdir("reload");
        let data = suite::clustered(3, 1500, 16, 5);
        let index = HnswIndex::new(HnswParams::default(), 500).unwrap();
        insert_all(&index, &data[..500]);
        let first = index.dump(&dir, "g1").unwrap();
        assert_eq!(first.parts, vec!["g1.vec".to_string()]);
        let reloaded = HnswIndex::load(&dir, &first, HnswParams::default()).unwrap();
        assert_eq!(reloaded.len(), 500);
        for q in data.iter().take(20) {
            assert_eq!(
                index.search(q, 5, None).unwrap(),
                reloaded.search(q, 5, None).unwrap()
            );
        }
        // New inserts into a reloaded index work (no rebuild), and a second
        // dump writes only the new vectors as a second part.
        let rows: Vec<(&[f32], DocId)> = data[500..]
            .iter()
            .enumerate()
            .map(|(i, v)| (&v[..], 500 + i as DocId))
            .collect();
        reloaded.insert_many(&rows).unwrap();
        let second = reloaded.dump(&dir, "g2").unwrap();
        assert_eq!(
            second.parts,
            vec!["g1.vec".to_string(), "g2.vec".to_string()]
        );
        let part2 = std::fs::metadata(dir.join("g2.vec")).unwrap().len() as usize;
        assert_eq!(part2, 1000 * 16 * 4 + 32);
        let again = HnswIndex::load(&dir, &second, HnswParams::default()).unwrap();
        assert_eq!(again.len(), 1500);
        let r = recall(&again, &data, &data[..50]);
        assert!(r >= 0.95, "recall after reload + inserts {r}");
        again.verify().unwrap();
    }

    #[test]
    fn a_bad_vector_chunk_fails_the_search_that_reads_it_and_names_the_part() {
        let dir = tempdir("corrupt");
        let data = suite::clustered(5, 300, 8, 3);
        let index = HnswIndex::new(HnswParams::default(), 300).unwrap();
        insert_all(&index, &data);
        let files = index.dump(&dir, "g").unwrap();
        let path = dir.join("g.vec");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        // Opening does not read the vectors ...
        let loaded = HnswIndex::load(&dir, &files, HnswParams::default()).unwrap();
        // ... the first search does, and it and every later one fail.
        for _ in 0..2 {
            let err = loaded.search(&data[0], 5, None).unwrap_err().to_string();
            assert!(err.contains("g.vec"), "{err}");
        }
        assert!(loaded.verify().is_err());
        // A flipped byte in the graph file is found at load.
        let gpath = dir.join("g.graph");
        let mut bytes = std::fs::read(&gpath).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&gpath, &bytes).unwrap();
        let err = HnswIndex::load(&dir, &files, HnswParams::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("g.graph"), "{err}");
    }

    /// Searches need no lock against inserts: they run while batches are
    /// linked, never fail, and the finished index has full recall.
    #[test]
    fn searches_run_while_inserts_link() {
        let data = suite::clustered(9, 6000, 24, 30);
        let index = HnswIndex::new(HnswParams::default(), 6000).unwrap();
        insert_all(&index, &data[..500]);
        let done = std::sync::atomic::AtomicBool::new(false);
        let searched = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut n = 0usize;
                while !done.load(Ordering::Relaxed) {
                    let q = &data[n % 500];
                    let hits = index.search(q, 5, None).unwrap();
                    assert_eq!(hits.len(), 5);
                    assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
                    n += 1;
                }
                n
            });
            for (b, batch) in data[500..].chunks(500).enumerate() {
                let offset = 500 * (b + 1);
                let rows: Vec<(&[f32], DocId)> = batch
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (&v[..], (offset + i) as DocId))
                    .collect();
                index.insert_many(&rows).unwrap();
            }
            done.store(true, Ordering::Relaxed);
            reader.join().unwrap()
        });
        assert!(searched > 0);
        assert_eq!(index.len(), 6000);
        let r = recall(&index, &data, &data[..100]);
        assert!(
            r >= 0.95,
            "recall after concurrent inserts and searches {r}"
        );
    }

    #[test]
    fn wrong_dimensions_are_errors_not_panics() {
        let index = HnswIndex::new(HnswParams::default(), 10).unwrap();
        index.insert(0, &[1.0, 0.0, 0.0]).unwrap();
        assert!(index.insert(1, &[1.0, 0.0]).is_err());
        assert!(index.search(&[1.0, 0.0], 1, None).is_err());
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(HnswIndex::new(HnswParams::default().with_m(300), 10).is_err());
        assert!(HnswIndex::new(HnswParams::default().with_ef_search(0), 10).is_err());
    }
}
