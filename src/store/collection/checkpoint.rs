//! Checkpoints (the log's items as a segment, tombstones, payloads, the
//! HNSW dump, then a new MANIFEST) and compaction.

use super::*;

impl Collection {
    /// Writes the WAL's items as a segment, dumps the index and swaps the manifest.
    pub fn checkpoint(&self) -> Result<()> {
        let mut w = self.writer()?;
        self.checkpoint_locked(&mut w)
    }

    pub(super) fn checkpoint_locked(&self, w: &mut WriterState) -> Result<()> {
        w.usable()?;
        let snap = self.snapshot();
        snap.check_file_sizes()?;
        let mut manifest = w.manifest.clone();
        manifest.generation += 1;
        let gen = manifest.generation;
        let mut new_segment = None;
        if !snap.mem.is_empty() {
            let name = format!("seg-{:06}", manifest.next_segment);
            manifest.next_segment += 1;
            let wal_path = w.wal.path().to_path_buf();
            let logged: Option<Vec<&wal::Logged>> = snap
                .mem
                .iter()
                .map(|item| match &item.tok_block {
                    TokBlock::Logged(l) => Some(l),
                    TokBlock::Owned(_) => None,
                })
                .collect();
            // Every token block is in the log: the log becomes the segment's
            // `.tlog`, and no token byte is written again. Where that fails
            // (a file system without hard links, a name that cannot be
            // replaced), the blocks are copied instead; an I/O error that is
            // not about the link fails the copy too, and is returned there.
            let tok_log = match logged {
                Some(logged) if w.wal.aligned() => (|| -> Result<()> {
                    let mut out =
                        SegmentWriter::over_log(&self.dir, &name, self.config.dim, &wal_path)?;
                    for (item, l) in snap.mem.iter().zip(logged) {
                        out.push_logged(
                            &item.meta,
                            &item.embedding,
                            l.tok_offset(),
                            l.tok_len,
                            l.tok_crc,
                        )?;
                    }
                    out.finish().map(drop)
                })()
                .is_ok(),
                _ => false,
            };
            if !tok_log {
                // Logged token blocks are read back from the log one at a
                // time (a positional read, its record checked): not through
                // the snapshot's mapping, whose pages would stay resident.
                let log = std::fs::File::open(&wal_path).map_err(|e| Error::io(&wal_path, e))?;
                let mut buf = Vec::new();
                let mut out = SegmentWriter::create(&self.dir, &name, self.config.dim)?;
                for item in &snap.mem {
                    let tokens = match &item.tok_block {
                        TokBlock::Owned(words) => bytemuck::cast_slice(words),
                        TokBlock::Logged(logged) => logged.read(&log, &wal_path, &mut buf)?,
                    };
                    out.push(&item.meta, &item.embedding, tokens)?;
                }
                out.finish()?;
            }
            manifest.segments.push(SegmentRef {
                name: name.clone(),
                first_doc: snap.mem_first,
                len: snap.mem.len(),
                tok_log,
            });
            new_segment = Some((name, snap.mem_first, snap.mem.len(), tok_log));
        }
        manifest.deletes = write_deletes(&self.dir, gen, &snap.deleted)?;
        manifest.payloads = write_payloads(&self.dir, gen, &snap)?;
        manifest.hnsw = dump_index(&self.dir, gen, &snap.index)?;
        manifest.next_doc = snap.next_doc;
        manifest.wal = format!("wal-{gen}.log");
        wal::create(&self.dir.join(&manifest.wal))?;
        // From the manifest on, a failure may leave this handle behind the
        // disk (its log may now be a segment's): it stops writing.
        w.check(write_manifest(&self.dir, &manifest))?;
        // The new state is durable; publish it and drop what it no longer needs.
        let mut fresh = (*snap).clone();
        if let Some((name, first, len, tok_log)) = new_segment {
            let seg = w.check(Segment::open(
                &self.dir,
                &name,
                first,
                len,
                self.config.dim,
                self.config.token_dtype,
                tok_log,
            ))?;
            fresh.segments.push(Arc::new(seg));
        }
        fresh.mem.clear();
        fresh.wal = None;
        fresh.mem_bytes = 0;
        fresh.mem_ids.clear();
        fresh.mem_first = snap.next_doc;
        fresh.generation = gen;
        w.wal = w.check(WalWriter::open(
            &self.dir.join(&manifest.wal),
            format::HEADER_LEN as u64,
        ))?;
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
        w.usable()?;
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
                // stored() reads a logged block into memory
                let tokens = item.tok_block.owned().ok_or_else(|| {
                    corrupt(&self.dir, format!("item `{}` was not read", item.meta.id))
                })?;
                out.push(&item.meta, &item.embedding, tokens)?;
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
                tok_log: false,
            });
            segments.push(Arc::new(Segment::open(
                &self.dir,
                &name,
                0,
                len,
                self.config.dim,
                self.config.token_dtype,
                false,
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
        w.check(write_manifest(&self.dir, &manifest))?;
        let fresh = Snapshot {
            dir: self.dir.clone(),
            config: Arc::clone(&self.config),
            generation: gen,
            segments,
            mem: Vec::new(),
            mem_bytes: 0,
            wal: None,
            mem_first: live.len() as u64,
            mem_ids: HashMap::new(),
            next_doc: live.len() as u64,
            deleted: Arc::new(HashSet::new()),
            payloads: Arc::new(HashMap::new()),
            index,
        };
        w.wal = w.check(WalWriter::open(
            &self.dir.join(&manifest.wal),
            format::HEADER_LEN as u64,
        ))?;
        w.manifest = manifest;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        cleanup(&self.dir, &w.manifest)
    }
}

#[cfg(test)]
mod tests {
    use crate::bundle::Modality;
    use crate::format::io::rec;
    use crate::store::{Collection, CollectionConfig, NewItem};

    /// Where the log cannot become the segment's `.tlog` (no hard links),
    /// a checkpoint copies the token blocks into a `.tok` file, and every
    /// item reads back the same, before and after a reopen.
    #[test]
    fn a_checkpoint_copies_the_token_blocks_when_links_fail() {
        let dir = std::env::temp_dir().join(format!("weft-nolink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = Collection::create(&dir, CollectionConfig::new("t", "h", 4)).unwrap();
        let ids: Vec<String> = (0..5).map(|i| format!("i{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let x = i as f32;
            let toks: Vec<f32> = (0..12).map(|j| x + j as f32 / 16.0).collect();
            c.add(NewItem::new(id, Modality::Text, vec![1.0, x, 0.0, 0.0]).with_tokens(toks, None))
                .unwrap();
        }
        c.commit().unwrap();
        let tokens = |c: &Collection| -> Vec<Vec<f32>> {
            let snap = c.snapshot();
            ids.iter()
                .map(|id| {
                    snap.tokens(snap.doc_of(id).unwrap().unwrap())
                        .unwrap()
                        .to_f32()
                })
                .collect()
        };
        let before = tokens(&c);
        rec::refuse_links_under(Some(&dir));
        let done = c.checkpoint();
        rec::refuse_links_under(None);
        done.unwrap();
        assert!(dir.join("seg-000000.tok").is_file());
        assert!(!dir.join("seg-000000.tlog").exists());
        c.verify().unwrap();
        assert_eq!(tokens(&c), before);
        drop(c);
        let c = Collection::open(&dir).unwrap();
        assert_eq!(tokens(&c), before);
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
