//! The collection: snapshots for readers, one writer with a WAL, checkpoints
//! and compaction. See the module docs of `store` for the files.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::segment::{self, Segment, SegmentWriter};
use super::tokens::TokenDtype;
use super::wal::{self, Op, WalWriter};
use super::{ItemMeta, NewItem, StoredItem};
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::format::{self, corrupt};
use crate::index::{DocFilter, DocId, HnswFiles, HnswIndex, HnswParams, VectorIndex};
use crate::score::TokensRef;

const CONFIG_FILE: &str = "collection.cfg";
const MANIFEST_FILE: &str = "MANIFEST";
const LOCK_FILE: &str = "LOCK";

/// Settings fixed when a collection is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CollectionConfig {
    /// Name of the bundle whose encoders made the vectors.
    pub bundle_name: String,
    /// That bundle's hash ([`Bundle::hash`]).
    pub bundle_hash: String,
    /// Embedding dimension.
    pub dim: usize,
    /// How token matrices are stored.
    pub token_dtype: TokenDtype,
    /// HNSW parameters.
    pub hnsw: HnswParams,
    /// Committed items kept in the WAL before a checkpoint writes a segment
    /// (at least this many, or a tenth of the collection if larger). Default 4096.
    pub checkpoint_items: usize,
    /// ... unless they hold this many bytes first (embeddings, tokens,
    /// payloads), so that the memory a writer holds stays bounded however
    /// large the collection grows. Default 256 MiB.
    #[serde(default = "default_checkpoint_bytes")]
    pub checkpoint_bytes: u64,
    /// Token pooling at ingest (Clavié et al. 2024): each item's tokens are
    /// merged by average-linkage clustering down to `ceil(n / pool_factor)`.
    /// 1 = off (default). Pooled image tokens lose their patch positions.
    #[serde(default = "one")]
    pub pool_factor: f32,
}

fn one() -> f32 {
    1.0
}

fn default_checkpoint_bytes() -> u64 {
    256 << 20
}

impl CollectionConfig {
    /// Settings for vectors made by `bundle`.
    pub fn for_bundle(bundle: &Bundle) -> Self {
        Self::new(bundle.name(), bundle.hash(), bundle.dim())
    }

    /// Settings for vectors of `dim` from the named bundle.
    pub fn new(bundle_name: impl Into<String>, bundle_hash: impl Into<String>, dim: usize) -> Self {
        CollectionConfig {
            bundle_name: bundle_name.into(),
            bundle_hash: bundle_hash.into(),
            dim,
            token_dtype: TokenDtype::default(),
            hnsw: HnswParams::default(),
            checkpoint_items: 4096,
            checkpoint_bytes: default_checkpoint_bytes(),
            pool_factor: 1.0,
        }
    }

    /// Sets the token dtype.
    pub fn with_token_dtype(mut self, dtype: TokenDtype) -> Self {
        self.token_dtype = dtype;
        self
    }

    /// Sets the HNSW parameters.
    pub fn with_hnsw(mut self, hnsw: HnswParams) -> Self {
        self.hnsw = hnsw;
        self
    }

    /// Sets the token pooling factor (1 = off).
    pub fn with_pool_factor(mut self, f: f32) -> Self {
        self.pool_factor = f;
        self
    }

    /// Sets the checkpoint threshold.
    pub fn with_checkpoint_items(mut self, n: usize) -> Self {
        self.checkpoint_items = n;
        self
    }

    /// Sets the checkpoint threshold in bytes of committed, not yet checkpointed items.
    pub fn with_checkpoint_bytes(mut self, n: u64) -> Self {
        self.checkpoint_bytes = n;
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SegmentRef {
    name: String,
    first_doc: DocId,
    len: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    generation: u64,
    next_doc: DocId,
    next_segment: u64,
    segments: Vec<SegmentRef>,
    deletes: Option<String>,
    /// Payloads updated in place since the last compaction (`pay-N.bin`);
    /// absent until the first update, so older manifests read unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payloads: Option<String>,
    hnsw: Option<HnswFiles>,
    wal: String,
}

impl Manifest {
    /// Every file this manifest needs.
    fn files(&self) -> HashSet<String> {
        let mut f: HashSet<String> = [CONFIG_FILE, MANIFEST_FILE, LOCK_FILE, self.wal.as_str()]
            .into_iter()
            .map(String::from)
            .collect();
        for s in &self.segments {
            f.extend(segment::file_names(&s.name));
        }
        f.extend(self.deletes.clone());
        f.extend(self.payloads.clone());
        if let Some(h) = &self.hnsw {
            f.insert(h.graph.clone());
            f.extend(h.parts.iter().cloned());
        }
        f
    }
}

/// A consistent, immutable view of a collection.
#[derive(Debug, Clone)]
pub struct Snapshot {
    dir: PathBuf,
    config: Arc<CollectionConfig>,
    generation: u64,
    segments: Vec<Arc<Segment>>,
    mem: Vec<Arc<StoredItem>>,
    /// Bytes held by `mem` (embeddings, token blocks, meta).
    mem_bytes: u64,
    mem_first: DocId,
    mem_ids: HashMap<String, DocId>,
    next_doc: DocId,
    deleted: Arc<HashSet<DocId>>,
    /// Payloads updated in place: they win over the stored item's.
    payloads: Arc<HashMap<DocId, Arc<str>>>,
    index: Arc<HnswIndex>,
}

/// A summary of a collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionInfo {
    /// The folder.
    pub path: PathBuf,
    /// Settings.
    pub config: CollectionConfig,
    /// Live items.
    pub items: usize,
    /// Deleted items whose space compaction would reclaim.
    pub deleted: usize,
    /// Immutable segments.
    pub segments: usize,
    /// Committed items not yet in a segment.
    pub wal_items: usize,
    /// Bytes of all files.
    pub disk_bytes: u64,
    /// Checkpoint generation.
    pub generation: u64,
    /// Set when the write-ahead log is damaged: what and where. The items
    /// counted are those before the damage; no writer opens until
    /// `weft collections repair` (see [`Collection::repair`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// Result of [`Collection::repair`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// The log that was cut.
    pub wal: PathBuf,
    /// The copy of the log as it was, kept beside it; `None` when nothing was damaged.
    pub copy: Option<PathBuf>,
    /// Bytes cut from the log.
    pub bytes_cut: u64,
    /// Items readable after the repair.
    pub items: usize,
}

impl Snapshot {
    /// The settings.
    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// Live items.
    pub fn len(&self) -> usize {
        self.next_doc as usize - self.deleted.len()
    }

    /// True when no live item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the largest doc id.
    pub fn next_doc(&self) -> DocId {
        self.next_doc
    }

    /// Whether `doc` is visible in this snapshot.
    pub fn is_live(&self, doc: DocId) -> bool {
        doc < self.next_doc && !self.deleted.contains(&doc)
    }

    /// Live doc ids, ascending.
    pub fn live_docs(&self) -> impl Iterator<Item = DocId> + '_ {
        (0..self.next_doc).filter(|d| !self.deleted.contains(d))
    }

    fn locate(&self, doc: DocId) -> Result<Loc<'_>> {
        if doc >= self.mem_first {
            return self
                .mem
                .get((doc - self.mem_first) as usize)
                .map(Loc::Mem)
                .ok_or_else(|| Error::NotFound {
                    what: "document",
                    name: doc.to_string(),
                });
        }
        let pos = self.segments.partition_point(|s| s.first_doc() <= doc);
        let seg = pos
            .checked_sub(1)
            .map(|p| &self.segments[p])
            .filter(|s| doc < s.first_doc() + s.len() as u64);
        seg.map(|s| Loc::Seg(s, (doc - s.first_doc()) as usize))
            .ok_or_else(|| Error::NotFound {
                what: "document",
                name: doc.to_string(),
            })
    }

    /// Global embedding of `doc` (checksum-verified).
    pub fn embedding(&self, doc: DocId) -> Result<&[f32]> {
        match self.locate(doc)? {
            Loc::Mem(i) => Ok(&i.embedding),
            Loc::Seg(s, l) => s.embedding(l),
        }
    }

    /// Token matrix of `doc` (checksum-verified on first read).
    pub fn tokens(&self, doc: DocId) -> Result<TokensRef<'_>> {
        match self.locate(doc)? {
            Loc::Mem(i) => self
                .config
                .token_dtype
                .view(
                    bytemuck::cast_slice(&i.tok_block),
                    i.meta.n_tokens,
                    self.config.dim,
                )
                .ok_or_else(|| {
                    corrupt(
                        &self.dir,
                        "token block of an uncheckpointed item has a wrong length",
                    )
                }),
            Loc::Seg(s, l) => s.tokens(l),
        }
    }

    /// Id, source, payload and shape of `doc`.
    pub fn meta(&self, doc: DocId) -> Result<ItemMeta> {
        let mut meta = match self.locate(doc)? {
            Loc::Mem(i) => i.meta.clone(),
            Loc::Seg(s, l) => self.explained(s.meta(l))?,
        };
        if let Some(p) = self.payloads.get(&doc) {
            meta.payload = p.to_string();
        }
        Ok(meta)
    }

    /// The live doc with external id `id`.
    pub fn doc_of(&self, id: &str) -> Result<Option<DocId>> {
        if let Some(doc) = self.mem_ids.get(id) {
            return Ok(self.is_live(*doc).then_some(*doc));
        }
        for s in self.segments.iter().rev() {
            if let Some(local) = self.explained(s.find(id))? {
                let doc = s.first_doc() + local as u64;
                if self.is_live(doc) {
                    return Ok(Some(doc));
                }
            }
        }
        // Not found: unless the id table read as zeros off a cut file.
        self.check_mapped()?;
        Ok(None)
    }

    /// `r`, or the cut file that explains its error.
    fn explained<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.check_mapped().err().unwrap_or(e))
    }

    /// Fails, naming the file, when a file of this snapshot was cut short
    /// by another program while mapped: reads past its new end saw zeros
    /// (with [`crate::handle_sigbus`] installed; without it the process
    /// would have stopped).
    /// Cheap (atomic loads): run after every search.
    pub fn check_mapped(&self) -> Result<()> {
        self.check_cut(false)
    }

    /// [`Snapshot::check_mapped`], and also compares each mapped file's
    /// size with its mapping (a cut inside a file's last page reads zeros
    /// without a fault): a system call per file, run before writes.
    pub fn check_file_sizes(&self) -> Result<()> {
        self.check_cut(true)
    }

    fn check_cut(&self, stat: bool) -> Result<()> {
        let cut = self
            .segments
            .iter()
            .find_map(|s| s.truncated(stat))
            .or_else(|| self.index.truncated(stat));
        match cut {
            Some(path) => Err(Error::Corrupted {
                path,
                reason: "truncated or replaced by another program while open (reads past its \
                         new end saw zeros); reopen the collection, then run `weft collections \
                         verify`"
                    .into(),
            }),
            None => Ok(()),
        }
    }

    /// The ANN index over global embeddings (filtered to this snapshot by [`Snapshot::ann`]).
    pub fn index(&self) -> &HnswIndex {
        &self.index
    }

    /// The `k` live docs nearest to `query` that pass `filter` (`None`: all),
    /// best first. Fails on a query of the wrong length, or when the index
    /// finds a damaged vector chunk.
    pub fn ann(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<DocFilter<'_>>,
    ) -> Result<Vec<(DocId, f32)>> {
        self.ann_ef(query, k, self.index.params().ef_search, filter)
    }

    /// [`Snapshot::ann`] with this query's HNSW beam width `ef`.
    pub fn ann_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<DocFilter<'_>>,
    ) -> Result<Vec<(DocId, f32)>> {
        // The shared index may hold docs of later commits, and deleted ones:
        // filter only when this snapshot needs it (the unfiltered search is faster).
        let all_visible = self.deleted.is_empty() && self.index.len() as u64 <= self.next_doc;
        match (filter, all_visible) {
            (None, true) => {
                let hits = self.index.search_ef(query, k, ef, None)?;
                // A writer may have inserted newer docs since the check above.
                if hits.iter().all(|(d, _)| *d < self.next_doc) {
                    Ok(hits)
                } else {
                    self.index
                        .search_ef(query, k, ef, Some(&|d| self.is_live(d)))
                }
            }
            (None, false) => self
                .index
                .search_ef(query, k, ef, Some(&|d| self.is_live(d))),
            (Some(f), _) => self
                .index
                .search_ef(query, k, ef, Some(&|d| self.is_live(d) && f(d))),
        }
    }

    fn stored(&self, doc: DocId) -> Result<StoredItem> {
        let mut item = self.explained(self.stored_as_written(doc))?;
        if let Some(p) = self.payloads.get(&doc) {
            item.meta.payload = p.to_string();
        }
        Ok(item)
    }

    fn stored_as_written(&self, doc: DocId) -> Result<StoredItem> {
        match self.locate(doc)? {
            Loc::Mem(i) => Ok((**i).clone()),
            Loc::Seg(s, l) => {
                let block = s.tokens(l)?;
                let bytes: Vec<u8> = match block {
                    TokensRef::F32(v) => bytemuck::cast_slice(v).to_vec(),
                    TokensRef::F16(v) => bytemuck::cast_slice(v).to_vec(),
                    TokensRef::I8 { data, scales } => {
                        let mut b: Vec<u8> = bytemuck::cast_slice(scales).to_vec();
                        b.extend_from_slice(bytemuck::cast_slice(data));
                        b
                    }
                };
                let mut words = vec![0u32; bytes.len().div_ceil(4)];
                bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()]
                    .copy_from_slice(&bytes);
                Ok(StoredItem {
                    meta: s.meta(l)?,
                    embedding: s.embedding(l)?.to_vec(),
                    tok_block: words,
                })
            }
        }
    }

    fn apply(&mut self, ops: &[Op], next_doc: DocId) -> Result<()> {
        let mut deleted: Option<HashSet<DocId>> = None;
        let mut payloads: Option<HashMap<DocId, Arc<str>>> = None;
        let mut rows: Vec<(&[f32], DocId)> = Vec::new();
        for op in ops {
            match op {
                Op::Add(doc, item) => {
                    if *doc != self.mem_first + self.mem.len() as u64 {
                        return Err(corrupt(
                            &self.dir,
                            format!("doc id {doc} out of sequence in the log"),
                        ));
                    }
                    self.mem_ids.insert(item.meta.id.clone(), *doc);
                    rows.push((&item.embedding, *doc));
                    self.mem_bytes += (4 * (item.embedding.len() + item.tok_block.len())
                        + item.meta.id.len()
                        + item.meta.source.len()
                        + item.meta.payload.len()) as u64;
                    self.mem.push(Arc::clone(item));
                }
                Op::Delete(doc) => {
                    deleted
                        .get_or_insert_with(|| (*self.deleted).clone())
                        .insert(*doc);
                }
                Op::Payload(doc, payload) => {
                    if *doc >= self.mem_first + self.mem.len() as u64 {
                        return Err(corrupt(
                            &self.dir,
                            format!("a payload update for doc {doc}, which the log never added"),
                        ));
                    }
                    self.mem_bytes += payload.len() as u64;
                    payloads
                        .get_or_insert_with(|| (*self.payloads).clone())
                        .insert(*doc, Arc::clone(payload));
                }
            }
        }
        // One batch, linked on every core.
        self.index.insert_many(&rows)?;
        if let Some(d) = deleted {
            self.deleted = Arc::new(d);
        }
        if let Some(p) = payloads {
            self.payloads = Arc::new(p);
        }
        self.next_doc = next_doc;
        Ok(())
    }
}

enum Loc<'a> {
    Mem(&'a Arc<StoredItem>),
    Seg(&'a Arc<Segment>, usize),
}

/// Checks an item against the collection's settings and converts it to
/// what the log and segments hold.
fn prepare(config: &CollectionConfig, item: NewItem) -> Result<StoredItem> {
    let dim = config.dim;
    let what = |s: &str| format!("item `{}` {s}", item.id);
    if item.id.is_empty() {
        return Err(Error::InvalidInput {
            item: "item".into(),
            reason: "empty id".into(),
        });
    }
    if item.embedding.len() != dim {
        return Err(Error::WrongDimension {
            what: what("embedding"),
            expected: dim,
            received: item.embedding.len(),
        });
    }
    if !item.tokens.len().is_multiple_of(dim) {
        return Err(Error::WrongDimension {
            what: what("tokens"),
            expected: dim,
            received: item.tokens.len() % dim,
        });
    }
    if item
        .embedding
        .iter()
        .chain(&item.tokens)
        .any(|x| !x.is_finite())
    {
        return Err(Error::InvalidInput {
            item: item.id.clone(),
            reason: "embedding or tokens hold NaN or infinity".into(),
        });
    }
    let n_tokens = item.tokens.len() / dim;
    if let Some([r, c]) = item.grid {
        if r * c != n_tokens || r > u16::MAX as usize || c > u16::MAX as usize {
            return Err(Error::InvalidInput {
                item: item.id.clone(),
                reason: format!("patch grid {r}x{c} does not match {n_tokens} tokens"),
            });
        }
    }
    let (tokens, n_tokens, grid) = if config.pool_factor > 1.0 && n_tokens > 1 {
        let (pooled, n) =
            crate::score::pool::pool_tokens(&item.tokens, n_tokens, dim, config.pool_factor);
        (pooled, n, None)
    } else {
        (item.tokens, n_tokens, item.grid)
    };
    let mut embedding = item.embedding;
    let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return Err(Error::InvalidInput {
            item: item.id,
            reason: "embedding is all zeros".into(),
        });
    }
    embedding.iter_mut().for_each(|x| *x /= norm);
    let block = config.token_dtype.encode(&tokens, dim);
    let mut tok_block = vec![0u32; block.len() / 4];
    bytemuck::cast_slice_mut::<u32, u8>(&mut tok_block).copy_from_slice(&block);
    Ok(StoredItem {
        meta: ItemMeta {
            id: item.id,
            source: item.source,
            payload: serde_json::to_string(&item.payload).expect("json value serialises"),
            modality: item.modality,
            n_tokens,
            grid,
        },
        embedding,
        tok_block,
    })
}

enum Staged {
    Add(StoredItem),
    Upsert(StoredItem),
    Delete(String),
    /// A new payload (JSON text) for the item with this id.
    Payload(String, Arc<str>),
}

struct WriterState {
    _lock: File,
    wal: WalWriter,
    manifest: Manifest,
    /// What `add`/`delete`/... stage on the collection itself (a caller
    /// that wants its own uses [`Collection::batch`]).
    staged: WriteBatch,
}

/// Changes one caller staged, invisible to every other batch and to
/// readers until [`Collection::commit_batch`] makes them durable; dropping
/// it discards them. Items are validated (dimension, finite, non-zero) when
/// staged.
pub struct WriteBatch {
    config: Arc<CollectionConfig>,
    staged: Vec<Staged>,
    ids: HashSet<String>,
    /// Ids whose last staged change is a delete.
    deletes: HashSet<String>,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("staged", &self.staged.len())
            .finish()
    }
}

impl WriteBatch {
    fn new(config: Arc<CollectionConfig>) -> Self {
        WriteBatch {
            config,
            staged: Vec::new(),
            ids: HashSet::new(),
            deletes: HashSet::new(),
        }
    }

    /// Number of staged changes.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Whether `id` exists in `snap` once this batch's changes are applied.
    fn exists(&self, snap: &Snapshot, id: &str) -> Result<bool> {
        if self.ids.contains(id) {
            return Ok(true);
        }
        if self.deletes.contains(id) {
            return Ok(false);
        }
        Ok(snap.doc_of(id)?.is_some())
    }

    /// Stages a new item; an id that exists in `snap` or in this batch is
    /// [`Error::DuplicateId`] (checked again at commit, against what other
    /// batches committed meanwhile).
    pub fn add(&mut self, snap: &Snapshot, item: NewItem) -> Result<()> {
        let stored = prepare(&self.config, item)?;
        let id = &stored.meta.id;
        if self.exists(snap, id)? {
            return Err(Error::DuplicateId { id: id.clone() });
        }
        self.ids.insert(id.clone());
        self.deletes.remove(id);
        self.staged.push(Staged::Add(stored));
        Ok(())
    }

    /// Stages new items, all or none: every item is checked (settings,
    /// and an id that exists in `snap`, in this batch or earlier in `items`
    /// is [`Error::DuplicateId`]) before any is staged.
    pub fn add_many(&mut self, snap: &Snapshot, items: Vec<NewItem>) -> Result<()> {
        let mut ready = Vec::with_capacity(items.len());
        let mut seen = HashSet::new();
        for item in items {
            let stored = prepare(&self.config, item)?;
            let id = &stored.meta.id;
            if !seen.insert(id.clone()) || self.exists(snap, id)? {
                return Err(Error::DuplicateId { id: id.clone() });
            }
            ready.push(stored);
        }
        for stored in ready {
            self.ids.insert(stored.meta.id.clone());
            self.deletes.remove(&stored.meta.id);
            self.staged.push(Staged::Add(stored));
        }
        Ok(())
    }

    /// Stages an item that replaces any item with the same id.
    pub fn upsert(&mut self, item: NewItem) -> Result<()> {
        let stored = prepare(&self.config, item)?;
        self.ids.insert(stored.meta.id.clone());
        self.deletes.remove(&stored.meta.id);
        self.staged.push(Staged::Upsert(stored));
        Ok(())
    }

    /// Stages a new payload for the item `id`; returns whether it exists
    /// in `snap` or in this batch.
    pub fn set_payload(
        &mut self,
        snap: &Snapshot,
        id: &str,
        payload: &serde_json::Value,
    ) -> Result<bool> {
        if !self.exists(snap, id)? {
            return Ok(false);
        }
        let payload = serde_json::to_string(payload).expect("json value serialises");
        self.staged
            .push(Staged::Payload(id.to_string(), payload.into()));
        Ok(true)
    }

    /// Stages the deletion of `id`; returns whether it exists in `snap` or
    /// in this batch.
    pub fn delete(&mut self, snap: &Snapshot, id: &str) -> Result<bool> {
        let exists = self.exists(snap, id)?;
        if exists {
            self.ids.remove(id);
            self.deletes.insert(id.to_string());
            self.staged.push(Staged::Delete(id.to_string()));
        }
        Ok(exists)
    }
}

/// A collection folder, open for reading, or for reading and writing.
pub struct Collection {
    dir: PathBuf,
    config: Arc<CollectionConfig>,
    current: RwLock<Arc<Snapshot>>,
    writer: Option<Mutex<WriterState>>,
    /// The write-ahead log's damage, when a read-only open found some.
    damage: Option<String>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("dir", &self.dir)
            .field("writable", &self.writer.is_some())
            .finish()
    }
}

/// Result of [`Collection::commit`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CommitStats {
    /// Items added (upserts included).
    pub added: usize,
    /// Items deleted (upserts included).
    pub deleted: usize,
    /// Payloads updated in place.
    pub updated: usize,
    /// Whether a checkpoint ran after the commit.
    pub checkpointed: bool,
}

impl Collection {
    /// Creates a collection in `dir` (which must not hold one) and opens it for writing.
    pub fn create(dir: impl AsRef<Path>, config: CollectionConfig) -> Result<Collection> {
        let dir = dir.as_ref();
        config.hnsw.validate()?;
        if config.dim == 0 {
            return Err(Error::InvalidConfig {
                name: "dim".into(),
                reason: "must be > 0".into(),
            });
        }
        if config.pool_factor.is_nan() || config.pool_factor < 1.0 {
            return Err(Error::InvalidConfig {
                name: "pool_factor".into(),
                reason: format!("{} must be >= 1 (1 = no pooling)", config.pool_factor),
            });
        }
        if dir.join(MANIFEST_FILE).exists() {
            return Err(Error::InvalidConfig {
                name: "collection".into(),
                reason: format!("{} already holds a collection", dir.display()),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let body = serde_json::to_vec_pretty(&config).expect("config serialises");
        format::write_framed(&dir.join(CONFIG_FILE), b"CCFG", &body)?;
        let manifest = Manifest {
            generation: 0,
            next_doc: 0,
            next_segment: 0,
            segments: Vec::new(),
            deletes: None,
            payloads: None,
            hnsw: None,
            wal: "wal-0.log".into(),
        };
        wal::create(&dir.join(&manifest.wal))?;
        write_manifest(dir, &manifest)?;
        Self::open_inner(dir, true)
    }

    /// Opens an existing collection read-only (no lock; many readers may open it).
    pub fn open(dir: impl AsRef<Path>) -> Result<Collection> {
        Self::open_inner(dir.as_ref(), false)
    }

    /// Whether `dir` holds a collection (its `MANIFEST`).
    pub fn exists(dir: &Path) -> bool {
        dir.join(MANIFEST_FILE).is_file()
    }

    /// Opens an existing collection for writing; a second writer gets [`Error::Locked`].
    pub fn open_writer(dir: impl AsRef<Path>) -> Result<Collection> {
        Self::open_inner(dir.as_ref(), true)
    }

    fn open_inner(dir: &Path, write: bool) -> Result<Collection> {
        if !dir.join(MANIFEST_FILE).is_file() {
            return Err(Error::NotFound {
                what: "collection",
                name: dir.display().to_string(),
            });
        }
        let cfg_path = dir.join(CONFIG_FILE);
        let config: CollectionConfig =
            serde_json::from_slice(&format::read_framed(&cfg_path, b"CCFG")?)
                .map_err(|e| corrupt(&cfg_path, e.to_string()))?;
        let lock = if write { Some(lock_writer(dir)?) } else { None };
        let config = Arc::new(config);
        let manifest = read_manifest(dir)?;
        let snapshot = load_snapshot(dir, &config, &manifest)?;
        let wal_path = dir.join(&manifest.wal);
        let mut replayed = wal::replay(&wal_path, config.dim)?;
        let damage = replayed.damage.take();
        if let (Some(err), true) = (&damage, lock.is_some()) {
            // Never write past (or truncate) a damaged log: a writer would
            // cut acknowledged items for good. Readers see what precedes it.
            return Err(Error::Corrupted {
                path: wal_path.clone(),
                reason: format!(
                    "{}; the collection opens read-only until it is repaired",
                    damage_reason(err)
                ),
            });
        }
        let mut snapshot = snapshot;
        for (ops, next) in &replayed.batches {
            snapshot.apply(ops, *next)?;
        }
        let writer = match lock {
            Some(lock) => {
                cleanup(dir, &manifest)?;
                let wal = WalWriter::open(&wal_path, replayed.valid_len)?;
                Some(Mutex::new(WriterState {
                    _lock: lock,
                    wal,
                    manifest,
                    staged: WriteBatch::new(Arc::clone(&config)),
                }))
            }
            None => None,
        };
        Ok(Collection {
            dir: dir.to_path_buf(),
            config,
            current: RwLock::new(Arc::new(snapshot)),
            writer,
            damage: damage.as_ref().map(damage_reason),
        })
    }

    /// Repairs a collection whose write-ahead log is damaged: keeps a copy
    /// of the log beside it (`damaged-wal-N.log.UNIXTIME`), then cuts the log
    /// at the last commit before the damage. Items committed after that point
    /// are lost from the collection (they stay in the copy); the report says
    /// how many bytes went. Takes the writer lock; a collection with an
    /// intact log is left as it is.
    pub fn repair(dir: impl AsRef<Path>) -> Result<RepairReport> {
        let dir = dir.as_ref();
        let _lock = lock_writer(dir)?;
        let manifest = read_manifest(dir)?;
        let cfg_path = dir.join(CONFIG_FILE);
        let config: CollectionConfig =
            serde_json::from_slice(&format::read_framed(&cfg_path, b"CCFG")?)
                .map_err(|e| corrupt(&cfg_path, e.to_string()))?;
        let wal_path = dir.join(&manifest.wal);
        let replayed = wal::replay(&wal_path, config.dim)?;
        let mut report = RepairReport {
            wal: wal_path.clone(),
            copy: None,
            bytes_cut: 0,
            items: 0,
        };
        if replayed.damage.is_some() {
            let len = std::fs::metadata(&wal_path)
                .map_err(|e| Error::io(&wal_path, e))?
                .len();
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            // Not named `wal-*`: cleanup() removes those that the manifest does not name.
            let copy = dir.join(format!("damaged-{}.{stamp}", manifest.wal));
            std::fs::copy(&wal_path, &copy).map_err(|e| Error::io(&copy, e))?;
            std::fs::File::open(&copy)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&copy, e))?;
            format::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
            drop(WalWriter::open(&wal_path, replayed.valid_len)?);
            report.copy = Some(copy);
            report.bytes_cut = len - replayed.valid_len;
        }
        drop(_lock);
        report.items = Self::open(dir)?.snapshot().len();
        Ok(report)
    }

    /// What is wrong with the write-ahead log, when a read-only open found
    /// it damaged (see [`CollectionInfo::damaged`]).
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings.
    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// Refuses a bundle other than the one the collection was made with.
    pub fn check_bundle(&self, bundle: &Bundle) -> Result<()> {
        if bundle.name() != self.config.bundle_name || bundle.hash() != self.config.bundle_hash {
            return Err(Error::BundleMismatch {
                path: self.dir.clone(),
                expected: format!(
                    "{} ({})",
                    self.config.bundle_name,
                    short(&self.config.bundle_hash)
                ),
                found: format!("{} ({})", bundle.name(), short(bundle.hash())),
            });
        }
        if bundle.dim() != self.config.dim {
            return Err(Error::WrongDimension {
                what: format!("bundle {}", bundle.name()),
                expected: self.config.dim,
                received: bundle.dim(),
            });
        }
        Ok(())
    }

    /// The current snapshot; it never changes, later commits publish new ones.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the collection from disk (for a read-only handle that wants the writer's latest commits).
    pub fn reload(&self) -> Result<()> {
        let fresh = Self::open_inner(&self.dir, false)?;
        let snap = fresh.snapshot();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snap;
        Ok(())
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, WriterState>> {
        self.writer
            .as_ref()
            .ok_or_else(|| Error::InvalidConfig {
                name: "collection".into(),
                reason: format!("{} is open read-only", self.dir.display()),
            })
            .map(|w| w.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A new, empty write batch of this collection (see [`WriteBatch`]).
    pub fn batch(&self) -> WriteBatch {
        WriteBatch::new(Arc::clone(&self.config))
    }

    /// Stages a new item on the collection's own batch; an id that exists
    /// (committed or staged) is [`Error::DuplicateId`].
    pub fn add(&self, item: NewItem) -> Result<()> {
        let mut w = self.writer()?;
        w.staged.add(&self.snapshot(), item)
    }

    /// Stages an item that replaces any item with the same id.
    pub fn upsert(&self, item: NewItem) -> Result<()> {
        self.writer()?.staged.upsert(item)
    }

    /// Stages a new payload for the item `id` (committed or staged); returns
    /// whether the item exists. The item keeps its doc id, vectors and place
    /// in the index: only the payload is logged, and it stays in an overlay
    /// (`pay-N.bin` at checkpoints) until compaction folds it into a segment.
    pub fn update_payload(&self, id: &str, payload: serde_json::Value) -> Result<bool> {
        let mut w = self.writer()?;
        w.staged.set_payload(&self.snapshot(), id, &payload)
    }

    /// Stages the deletion of `id`; returns whether it exists (committed or staged).
    pub fn delete(&self, id: &str) -> Result<bool> {
        let mut w = self.writer()?;
        w.staged.delete(&self.snapshot(), id)
    }

    /// Drops every change staged on the collection's own batch.
    pub fn discard_staged(&self) -> Result<usize> {
        let mut w = self.writer()?;
        let fresh = self.batch();
        Ok(std::mem::replace(&mut w.staged, fresh).len())
    }

    /// Number of changes staged on the collection's own batch.
    pub fn staged(&self) -> usize {
        self.writer().map_or(0, |w| w.staged.len())
    }

    /// Makes every change staged on the collection's own batch durable
    /// (WAL + fsync) and visible; may checkpoint.
    pub fn commit(&self) -> Result<CommitStats> {
        let mut w = self.writer()?;
        let fresh = self.batch();
        let batch = std::mem::replace(&mut w.staged, fresh);
        self.commit_locked(&mut w, batch)
    }

    /// Makes a caller's batch durable (WAL + fsync) and visible; may
    /// checkpoint. All or nothing: an added id that another batch committed
    /// meanwhile is [`Error::DuplicateId`] and nothing of the batch is
    /// written.
    pub fn commit_batch(&self, batch: WriteBatch) -> Result<CommitStats> {
        if !Arc::ptr_eq(&batch.config, &self.config) {
            return Err(Error::InvalidConfig {
                name: "batch".into(),
                reason: format!(
                    "the batch was made by another collection than {}",
                    self.dir.display()
                ),
            });
        }
        let mut w = self.writer()?;
        self.commit_locked(&mut w, batch)
    }

    fn commit_locked(&self, w: &mut WriterState, batch: WriteBatch) -> Result<CommitStats> {
        let staged = batch.staged;
        if staged.is_empty() {
            return Ok(CommitStats::default());
        }
        let snap = self.snapshot();
        let mut next = snap.next_doc;
        let mut overlay: HashMap<String, Option<DocId>> = HashMap::new();
        let lookup =
            |overlay: &HashMap<String, Option<DocId>>, id: &str| -> Result<Option<DocId>> {
                match overlay.get(id) {
                    Some(v) => Ok(*v),
                    None => snap.doc_of(id),
                }
            };
        let mut ops = Vec::with_capacity(staged.len());
        let mut stats = CommitStats::default();
        for s in staged {
            let fresh_id = matches!(s, Staged::Add(_));
            match s {
                Staged::Add(item) | Staged::Upsert(item) => {
                    let old = lookup(&overlay, &item.meta.id)?;
                    if fresh_id && old.is_some() {
                        // Another batch committed this id after it was staged.
                        return Err(Error::DuplicateId { id: item.meta.id });
                    }
                    if let Some(old) = old {
                        ops.push(Op::Delete(old));
                        stats.deleted += 1;
                    }
                    overlay.insert(item.meta.id.clone(), Some(next));
                    ops.push(Op::Add(next, Arc::new(item)));
                    next += 1;
                    stats.added += 1;
                }
                Staged::Delete(id) => {
                    if let Some(old) = lookup(&overlay, &id)? {
                        ops.push(Op::Delete(old));
                        stats.deleted += 1;
                    }
                    overlay.insert(id, None);
                }
                Staged::Payload(id, payload) => {
                    // An item deleted earlier in this batch has nothing to update.
                    if let Some(doc) = lookup(&overlay, &id)? {
                        ops.push(Op::Payload(doc, payload));
                        stats.updated += 1;
                    }
                }
            }
        }
        // Ids resolved above off a file cut under its mapping (zeros) must
        // not become log records.
        snap.check_file_sizes()?;
        w.wal.commit(&ops, next)?;
        let mut fresh = (*snap).clone();
        fresh.apply(&ops, next)?;
        let threshold = self.config.checkpoint_items.max(fresh.len() / 10).max(1);
        let due = fresh.mem.len() >= threshold || fresh.mem_bytes >= self.config.checkpoint_bytes;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        if due {
            self.checkpoint_locked(w)?;
            stats.checkpointed = true;
        }
        Ok(stats)
    }

    /// Writes the WAL's items as a segment, dumps the index and swaps the manifest.
    pub fn checkpoint(&self) -> Result<()> {
        let mut w = self.writer()?;
        self.checkpoint_locked(&mut w)
    }

    fn checkpoint_locked(&self, w: &mut WriterState) -> Result<()> {
        let snap = self.snapshot();
        snap.check_file_sizes()?;
        let mut manifest = w.manifest.clone();
        manifest.generation += 1;
        let gen = manifest.generation;
        let mut new_segment = None;
        if !snap.mem.is_empty() {
            let name = format!("seg-{:06}", manifest.next_segment);
            manifest.next_segment += 1;
            let items: Vec<&StoredItem> = snap.mem.iter().map(|a| a.as_ref()).collect();
            segment::write(&self.dir, &name, &items, self.config.dim)?;
            manifest.segments.push(SegmentRef {
                name: name.clone(),
                first_doc: snap.mem_first,
                len: snap.mem.len(),
            });
            new_segment = Some((name, snap.mem_first, snap.mem.len()));
        }
        manifest.deletes = write_deletes(&self.dir, gen, &snap.deleted)?;
        manifest.payloads = write_payloads(&self.dir, gen, &snap)?;
        manifest.hnsw = dump_index(&self.dir, gen, &snap.index)?;
        manifest.next_doc = snap.next_doc;
        manifest.wal = format!("wal-{gen}.log");
        wal::create(&self.dir.join(&manifest.wal))?;
        write_manifest(&self.dir, &manifest)?;
        // The new state is durable; publish it and drop what it no longer needs.
        let mut fresh = (*snap).clone();
        if let Some((name, first, len)) = new_segment {
            let seg = Segment::open(
                &self.dir,
                &name,
                first,
                len,
                self.config.dim,
                self.config.token_dtype,
            )?;
            fresh.segments.push(Arc::new(seg));
        }
        fresh.mem.clear();
        fresh.mem_bytes = 0;
        fresh.mem_ids.clear();
        fresh.mem_first = snap.next_doc;
        fresh.generation = gen;
        w.wal = WalWriter::open(&self.dir.join(&manifest.wal), format::HEADER_LEN as u64)?;
        w.manifest = manifest;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        cleanup(&self.dir, &w.manifest)
    }

    /// Rewrites the live items into one segment (renumbered), rebuilds the
    /// index without deleted items and reclaims their space. Staged changes
    /// are committed first.
    pub fn compact(&self) -> Result<()> {
        self.commit()?;
        let mut w = self.writer()?;
        let snap = self.snapshot();
        let live: Vec<DocId> = snap.live_docs().collect();
        let index = HnswIndex::new(self.config.hnsw, live.len())?;
        let mut manifest = w.manifest.clone();
        manifest.generation += 1;
        let gen = manifest.generation;
        manifest.segments.clear();
        let mut segments = Vec::new();
        if !live.is_empty() {
            // Streamed: one item in memory at a time, plus the embeddings of
            // one index batch (the index itself holds every vector until it
            // is dumped).
            const BATCH: usize = 8192;
            let name = format!("seg-{:06}", manifest.next_segment);
            manifest.next_segment += 1;
            let mut out = SegmentWriter::create(&self.dir, &name, self.config.dim)?;
            let mut batch: Vec<(Vec<f32>, DocId)> = Vec::with_capacity(BATCH);
            let insert = |batch: &mut Vec<(Vec<f32>, DocId)>| -> Result<()> {
                let rows: Vec<(&[f32], DocId)> = batch.iter().map(|(e, d)| (&e[..], *d)).collect();
                index.insert_many(&rows)?;
                batch.clear();
                Ok(())
            };
            for (new_doc, doc) in live.iter().enumerate() {
                let item = snap.stored(*doc)?;
                out.push(&item)?;
                batch.push((item.embedding, new_doc as DocId));
                if batch.len() == BATCH {
                    insert(&mut batch)?;
                }
            }
            insert(&mut batch)?;
            let len = out.finish()?;
            manifest.segments.push(SegmentRef {
                name: name.clone(),
                first_doc: 0,
                len,
            });
            segments.push(Arc::new(Segment::open(
                &self.dir,
                &name,
                0,
                len,
                self.config.dim,
                self.config.token_dtype,
            )?));
        }
        // Never publish a segment built from zeros read off a cut file.
        snap.check_file_sizes()?;
        let index = Arc::new(index);
        manifest.deletes = None;
        manifest.payloads = None;
        manifest.hnsw = dump_index(&self.dir, gen, &index)?;
        manifest.next_doc = live.len() as u64;
        manifest.wal = format!("wal-{gen}.log");
        wal::create(&self.dir.join(&manifest.wal))?;
        write_manifest(&self.dir, &manifest)?;
        let fresh = Snapshot {
            dir: self.dir.clone(),
            config: Arc::clone(&self.config),
            generation: gen,
            segments,
            mem: Vec::new(),
            mem_bytes: 0,
            mem_first: live.len() as u64,
            mem_ids: HashMap::new(),
            next_doc: live.len() as u64,
            deleted: Arc::new(HashSet::new()),
            payloads: Arc::new(HashMap::new()),
            index,
        };
        w.wal = WalWriter::open(&self.dir.join(&manifest.wal), format::HEADER_LEN as u64)?;
        w.manifest = manifest;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        cleanup(&self.dir, &w.manifest)
    }

    /// Reads every byte of every file and checks every checksum; a damaged
    /// write-ahead log is an error too.
    pub fn verify(&self) -> Result<()> {
        if let Some(reason) = &self.damage {
            return Err(Error::Corrupted {
                path: self.dir.join(read_manifest(&self.dir)?.wal),
                reason: reason.clone(),
            });
        }
        let snap = self.snapshot();
        let checked = snap
            .segments
            .iter()
            .try_for_each(|s| s.verify_all())
            .and_then(|()| snap.index.verify());
        // A file cut under its mapping explains whatever else failed.
        snap.check_file_sizes()?;
        checked
    }

    /// A summary.
    pub fn info(&self) -> CollectionInfo {
        let snap = self.snapshot();
        let disk_bytes = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        CollectionInfo {
            path: self.dir.clone(),
            config: (*self.config).clone(),
            items: snap.len(),
            deleted: snap.deleted.len(),
            segments: snap.segments.len(),
            wal_items: snap.mem.len(),
            disk_bytes,
            generation: snap.generation,
            damaged: self.damage.clone(),
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Takes the collection's writer lock (a second writer gets [`Error::Locked`]).
fn lock_writer(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            path: dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// The reason of a `Corrupted` error (the path is said separately).
fn damage_reason(err: &Error) -> String {
    match err {
        Error::Corrupted { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    serde_json::from_slice(&format::read_framed(&path, b"MANI")?)
        .map_err(|e| corrupt(&path, e.to_string()))
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let body = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    format::write_framed(&dir.join(MANIFEST_FILE), b"MANI", &body)
}

fn write_deletes(dir: &Path, gen: u64, deleted: &HashSet<DocId>) -> Result<Option<String>> {
    if deleted.is_empty() {
        return Ok(None);
    }
    let mut docs: Vec<DocId> = deleted.iter().copied().collect();
    docs.sort_unstable();
    let name = format!("del-{gen}.bin");
    format::write_framed(&dir.join(&name), b"DELS", bytemuck::cast_slice(&docs))?;
    Ok(Some(name))
}

/// The payload overlay of the live docs as `pay-GEN.bin`:
/// `(doc u64 | payload string)*`, sorted by doc.
fn write_payloads(dir: &Path, gen: u64, snap: &Snapshot) -> Result<Option<String>> {
    let mut docs: Vec<DocId> = snap
        .payloads
        .keys()
        .copied()
        .filter(|d| snap.is_live(*d))
        .collect();
    if docs.is_empty() {
        return Ok(None);
    }
    docs.sort_unstable();
    let mut e = format::Enc::default();
    for doc in docs {
        e.u64(doc);
        e.str(&snap.payloads[&doc]);
    }
    let name = format!("pay-{gen}.bin");
    format::write_framed(&dir.join(&name), PAYLOADS_KIND, &e.0)?;
    Ok(Some(name))
}

fn read_payloads(path: &Path, next_doc: DocId) -> Result<HashMap<DocId, Arc<str>>> {
    let body = format::read_framed(path, PAYLOADS_KIND)?;
    let mut d = format::Dec::new(&body);
    let mut out = HashMap::new();
    while d.remaining() > 0 {
        let entry = d.u64().and_then(|doc| Some((doc, d.str()?)));
        match entry {
            Some((doc, payload)) if doc < next_doc => {
                out.insert(doc, Arc::from(payload));
            }
            _ => {
                return Err(corrupt(
                    path,
                    format!("payload entry {} is malformed", out.len()),
                ))
            }
        }
    }
    Ok(out)
}

const PAYLOADS_KIND: &[u8; 4] = b"PAYL";

fn dump_index(dir: &Path, gen: u64, index: &HnswIndex) -> Result<Option<HnswFiles>> {
    if index.is_empty() {
        return Ok(None);
    }
    index.dump(dir, &format!("hnsw-{gen}")).map(Some)
}

/// Starts the reads of an open all at once: the files verified whole (segment
/// `.idx`/`.ids`, the delete list, the HNSW graph) and the header and footer
/// pages of the others (segment vectors, tokens, meta; HNSW vector parts).
fn prefetch(dir: &Path, manifest: &Manifest) {
    use format::Prefetch;
    let mut files: Vec<(String, Prefetch)> = manifest
        .segments
        .iter()
        .flat_map(|s| segment::open_reads(&s.name))
        .collect();
    files.extend(
        manifest
            .deletes
            .iter()
            .chain(&manifest.payloads)
            .map(|d| (d.clone(), Prefetch::Whole)),
    );
    if let Some(h) = &manifest.hnsw {
        files.push((h.graph.clone(), Prefetch::Whole));
        files.extend(h.parts.iter().map(|p| (p.clone(), Prefetch::Ends)));
    }
    for (name, what) in files {
        format::prefetch(&dir.join(name), what);
    }
}

fn load_snapshot(
    dir: &Path,
    config: &Arc<CollectionConfig>,
    manifest: &Manifest,
) -> Result<Snapshot> {
    prefetch(dir, manifest);
    let mut segments = Vec::with_capacity(manifest.segments.len());
    for s in &manifest.segments {
        segments.push(Arc::new(Segment::open(
            dir,
            &s.name,
            s.first_doc,
            s.len,
            config.dim,
            config.token_dtype,
        )?));
    }
    let deleted: HashSet<DocId> = match &manifest.deletes {
        Some(name) => {
            let path = dir.join(name);
            let body = format::read_framed(&path, b"DELS")?;
            if body.len() % 8 != 0 {
                return Err(corrupt(&path, "length is not a multiple of 8"));
            }
            body.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
                .collect()
        }
        None => HashSet::new(),
    };
    let payloads = match &manifest.payloads {
        Some(name) => read_payloads(&dir.join(name), manifest.next_doc)?,
        None => HashMap::new(),
    };
    let index = match &manifest.hnsw {
        Some(h) => HnswIndex::load(dir, h, config.hnsw)?,
        None => HnswIndex::new(config.hnsw, 1000)?,
    };
    let mem_first = manifest
        .segments
        .last()
        .map_or(0, |s| s.first_doc + s.len as u64)
        .max(manifest.next_doc);
    Ok(Snapshot {
        dir: dir.to_path_buf(),
        config: Arc::clone(config),
        generation: manifest.generation,
        segments,
        mem: Vec::new(),
        mem_bytes: 0,
        mem_first,
        mem_ids: HashMap::new(),
        next_doc: mem_first,
        deleted: Arc::new(deleted),
        payloads: Arc::new(payloads),
        index: Arc::new(index),
    })
}

/// Removes files of ours that the manifest does not name (left by a crash or superseded).
fn cleanup(dir: &Path, manifest: &Manifest) -> Result<()> {
    let keep = manifest.files();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = ["seg-", "wal-", "del-", "pay-", "hnsw-"]
            .iter()
            .any(|p| name.starts_with(p))
            || name.ends_with(".tmp");
        if ours && !keep.contains(&name) {
            let path = entry.path();
            crate::format::io::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    format::sync_dir(dir).map_err(|e| Error::io(dir, e))
}
