//! Snapshots: the consistent, immutable view a reader holds.

use super::*;

/// A consistent, immutable view of a collection.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(super) dir: PathBuf,
    pub(super) config: Arc<CollectionConfig>,
    pub(super) generation: u64,
    pub(super) segments: Vec<Arc<Segment>>,
    pub(super) mem: Vec<Arc<StoredItem>>,
    /// Bytes of `mem`'s items (embeddings, token blocks, meta): what the
    /// log holds since the last checkpoint.
    pub(super) mem_bytes: u64,
    /// The committed part of the write-ahead log, mapped: where `mem`'s
    /// logged token blocks are read (`None` while none is logged).
    pub(super) wal: Option<Arc<crate::sys::Mapped>>,
    pub(super) mem_first: DocId,
    pub(super) mem_ids: HashMap<String, DocId>,
    pub(super) next_doc: DocId,
    pub(super) deleted: Arc<HashSet<DocId>>,
    /// Payloads updated in place: they win over the stored item's.
    pub(super) payloads: Arc<HashMap<DocId, Arc<str>>>,
    pub(super) index: Arc<HnswIndex>,
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

    pub(super) fn locate(&self, doc: DocId) -> Result<Loc<'_>> {
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
                .view(self.mem_block(i)?, i.meta.n_tokens, self.config.dim)
                .ok_or_else(|| {
                    corrupt(
                        &self.dir,
                        "token block of an uncheckpointed item has a wrong length",
                    )
                }),
            Loc::Seg(s, l) => s.tokens(l),
        }
    }

    /// The token block of an item of `mem`, wherever it is.
    fn mem_block<'a>(&'a self, item: &'a StoredItem) -> Result<&'a [u8]> {
        match &item.tok_block {
            TokBlock::Owned(words) => Ok(bytemuck::cast_slice(words)),
            TokBlock::Logged(logged) => {
                let Some(wal) = &self.wal else {
                    return Err(corrupt(
                        &self.dir,
                        format!(
                            "the tokens of item `{}` are in a write-ahead log that is not mapped",
                            item.meta.id
                        ),
                    ));
                };
                self.explained(logged.bytes(wal, wal.path()))
            }
        }
    }

    /// Checks the record of every logged token block again (a deep verify).
    pub(super) fn verify_logged(&self) -> Result<()> {
        for item in &self.mem {
            if let (TokBlock::Logged(logged), Some(wal)) = (&item.tok_block, &self.wal) {
                logged.verify(wal, wal.path())?;
            }
        }
        Ok(())
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
    pub(super) fn explained<T>(&self, r: Result<T>) -> Result<T> {
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

    pub(super) fn check_cut(&self, stat: bool) -> Result<()> {
        let cut = self
            .segments
            .iter()
            .find_map(|s| s.truncated(stat))
            .or_else(|| self.index.truncated(stat))
            .or_else(|| {
                (self.wal.as_ref())
                    .filter(|m| m.truncated(stat))
                    .map(|m| m.path().to_path_buf())
            });
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

    pub(super) fn stored(&self, doc: DocId) -> Result<StoredItem> {
        let mut item = self.explained(self.stored_as_written(doc))?;
        if let Some(p) = self.payloads.get(&doc) {
            item.meta.payload = p.to_string();
        }
        Ok(item)
    }

    pub(super) fn stored_as_written(&self, doc: DocId) -> Result<StoredItem> {
        match self.locate(doc)? {
            Loc::Mem(i) => Ok(StoredItem {
                meta: i.meta.clone(),
                embedding: i.embedding.clone(),
                tok_block: match &i.tok_block {
                    TokBlock::Owned(words) => TokBlock::Owned(words.clone()),
                    TokBlock::Logged(_) => TokBlock::from_bytes(self.mem_block(i)?),
                },
            }),
            Loc::Seg(s, l) => {
                let block = s.tokens(l)?;
                let bytes: Vec<u8> = match block {
                    TokensRef::F32(v) => bytemuck::cast_slice(v).to_vec(),
                    TokensRef::F16(v) | TokensRef::Bf16(v) => bytemuck::cast_slice(v).to_vec(),
                    TokensRef::I8 { data, scales } => {
                        let mut b: Vec<u8> = bytemuck::cast_slice(scales).to_vec();
                        b.extend_from_slice(bytemuck::cast_slice(data));
                        b
                    }
                };
                Ok(StoredItem {
                    meta: s.meta(l)?,
                    embedding: s.embedding(l)?.to_vec(),
                    tok_block: TokBlock::from_bytes(&bytes),
                })
            }
        }
    }

    /// Applies a committed batch: its items go into the index too.
    pub(super) fn apply(&mut self, ops: &[Op], next_doc: DocId) -> Result<()> {
        self.apply_inner(ops, next_doc, true)
    }

    /// [`Snapshot::apply`] for a batch whose items the index already holds.
    pub(super) fn apply_linked(&mut self, ops: &[Op], next_doc: DocId) -> Result<()> {
        self.apply_inner(ops, next_doc, false)
    }

    fn apply_inner(&mut self, ops: &[Op], next_doc: DocId, link: bool) -> Result<()> {
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
                    self.mem_bytes += (4 * item.embedding.len()
                        + item.tok_block.len()
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
        if link {
            self.index.insert_many(&rows)?;
        }
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

pub(super) enum Loc<'a> {
    Mem(&'a Arc<StoredItem>),
    Seg(&'a Arc<Segment>, usize),
}
