//! Writing: caller-owned write batches, the collection's own staging,
//! and commit (WAL + fsync, then a new snapshot).

use super::*;

/// Checks an item against the collection's settings and converts it to
/// what the log and segments hold.
pub(super) fn prepare(config: &CollectionConfig, item: NewItem) -> Result<StoredItem> {
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
    let tok_block = TokBlock::from_bytes(&config.token_dtype.encode(&tokens, dim));
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

pub(super) enum Staged {
    Add(StoredItem),
    Upsert(StoredItem),
    Delete(String),
    /// A new payload (JSON text) for the item with this id.
    Payload(String, Arc<str>),
}

pub(super) struct WriterState {
    pub(super) _lock: File,
    pub(super) wal: WalWriter,
    pub(super) manifest: Manifest,
    /// What `add`/`delete`/... stage on the collection itself (a caller
    /// that wants its own uses [`Collection::batch`]).
    pub(super) staged: WriteBatch,
    /// Set when a commit failed after the index took its items: the index
    /// then holds docs that the log may not, so this handle writes no more
    /// (a reopen rebuilds both from disk).
    pub(super) failed: Option<String>,
}

impl WriterState {
    /// `r`, and on an error this handle stops writing (see `failed`).
    pub(super) fn check<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    /// Fails once a commit failed part-way (see `failed`).
    pub(super) fn usable(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(Error::Io {
                path: self.wal.path().to_path_buf(),
                source: std::io::Error::other(format!(
                    "an earlier commit or checkpoint failed part-way ({why}); this handle \
                     writes no more: reopen the collection (what is on disk holds every commit \
                     that returned, and may hold the one that failed)"
                )),
            }),
        }
    }
}

/// Changes one caller staged, invisible to every other batch and to
/// readers until [`Collection::commit_batch`] makes them durable; dropping
/// it discards them. Items are validated (dimension, finite, non-zero) when
/// staged.
pub struct WriteBatch {
    pub(super) config: Arc<CollectionConfig>,
    pub(super) staged: Vec<Staged>,
    pub(super) ids: HashSet<String>,
    /// Ids whose last staged change is a delete.
    pub(super) deletes: HashSet<String>,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("staged", &self.staged.len())
            .finish()
    }
}

impl WriteBatch {
    pub(super) fn new(config: Arc<CollectionConfig>) -> Self {
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
    pub(super) fn exists(&self, snap: &Snapshot, id: &str) -> Result<bool> {
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
    pub(super) fn writer(&self) -> Result<std::sync::MutexGuard<'_, WriterState>> {
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

    pub(super) fn commit_locked(
        &self,
        w: &mut WriterState,
        batch: WriteBatch,
    ) -> Result<CommitStats> {
        w.usable()?;
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
        // The index links the new items while the log is written and
        // fsynced (CPU work beside a wait for the disk). Readers do not see
        // them until the snapshot below is published; if the commit fails,
        // the index holds docs the log does not, and this handle stops.
        let rows: Vec<(&[f32], DocId)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Add(doc, item) => Some((&item.embedding[..], *doc)),
                _ => None,
            })
            .collect();
        // Set until the commit is published: a panic below (caught by the
        // caller) leaves this handle stopped too.
        w.failed = Some("a commit did not finish".into());
        let (logged, linked) = std::thread::scope(|scope| {
            let index = &snap.index;
            let link = std::thread::Builder::new()
                .name("weft-link".into())
                .spawn_scoped(scope, || index.insert_many(&rows))
                .ok();
            let logged = w.wal.commit(&ops, next);
            let linked = match link {
                Some(h) => h
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                // No thread (the system refused one): link after.
                None => logged.as_ref().map_or(Ok(()), |_| index.insert_many(&rows)),
            };
            (logged, linked)
        });
        drop(rows);
        let logged = w.check(match (logged, linked) {
            (Ok(logged), Ok(())) => Ok(logged),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        })?;
        let mut fresh = (*snap).clone();
        // The staged token blocks go once they are in the log: the snapshot
        // reads them there. If the log cannot be mapped, they stay in
        // memory (the commit is durable: it must be published).
        let mapped = match ops.iter().any(|op| matches!(op, Op::Add(..))) {
            true => w.wal.map().ok().map(Arc::new),
            false => None,
        };
        let ops = match mapped {
            Some(map) => {
                fresh.wal = Some(map);
                drop(ops);
                logged
            }
            None => ops,
        };
        w.check(fresh.apply_linked(&ops, next))?;
        w.failed = None;
        let threshold = self.config.checkpoint_items.max(fresh.len() / 10).max(1);
        let due = fresh.mem.len() >= threshold || fresh.mem_bytes >= self.config.checkpoint_bytes;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        if due {
            self.checkpoint_locked(w)?;
            stats.checkpointed = true;
        }
        Ok(stats)
    }
}
