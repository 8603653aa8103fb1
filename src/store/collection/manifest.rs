//! The MANIFEST (the current generation's files) and the files a
//! checkpoint writes and an open reads: tombstones, payload overlay, HNSW
//! dump; prefetch, snapshot loading and clean-up of files no manifest names.

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SegmentRef {
    pub(super) name: String,
    pub(super) first_doc: DocId,
    pub(super) len: usize,
    /// Its token blocks are in a `.tlog`, the log they were committed to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) tok_log: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub(super) generation: u64,
    pub(super) next_doc: DocId,
    pub(super) next_segment: u64,
    pub(super) segments: Vec<SegmentRef>,
    pub(super) deletes: Option<String>,
    /// Payloads updated in place since the last compaction (`pay-N.bin`);
    /// absent until the first update, so older manifests read unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) payloads: Option<String>,
    pub(super) hnsw: Option<HnswFiles>,
    pub(super) wal: String,
}

impl Manifest {
    /// Every file this manifest needs.
    pub(super) fn files(&self) -> HashSet<String> {
        let mut f: HashSet<String> = [CONFIG_FILE, MANIFEST_FILE, LOCK_FILE, self.wal.as_str()]
            .into_iter()
            .map(String::from)
            .collect();
        for s in &self.segments {
            f.extend(segment::file_names(&s.name, s.tok_log));
        }
        f.extend(self.deletes.clone());
        f.extend(self.payloads.clone());
        if let Some(h) = &self.hnsw {
            f.insert(h.graph.clone());
            f.extend(h.parts.iter().cloned());
            f.extend(h.codes.iter().flatten().cloned());
        }
        f
    }
}

pub(super) fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    serde_json::from_slice(&format::read_framed(&path, b"MANI")?)
        .map_err(|e| corrupt(&path, e.to_string()))
}

pub(super) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let body = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    format::write_framed(&dir.join(MANIFEST_FILE), b"MANI", &body)
}

pub(super) fn write_deletes(
    dir: &Path,
    gen: u64,
    deleted: &HashSet<DocId>,
) -> Result<Option<String>> {
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
pub(super) fn write_payloads(dir: &Path, gen: u64, snap: &Snapshot) -> Result<Option<String>> {
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

pub(super) fn read_payloads(path: &Path, next_doc: DocId) -> Result<HashMap<DocId, Arc<str>>> {
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

pub(super) const PAYLOADS_KIND: &[u8; 4] = b"PAYL";

pub(super) fn dump_index(dir: &Path, gen: u64, index: &HnswIndex) -> Result<Option<HnswFiles>> {
    if index.is_empty() {
        return Ok(None);
    }
    index.dump(dir, &format!("hnsw-{gen}")).map(Some)
}

/// Starts the reads of an open all at once: the files verified whole (segment
/// `.idx`/`.ids`, the delete list, the HNSW graph) and the header and footer
/// pages of the others (segment vectors, tokens, meta; HNSW vector parts).
pub(super) fn prefetch(dir: &Path, manifest: &Manifest) {
    use format::Prefetch;
    let mut files: Vec<(String, Prefetch)> = manifest
        .segments
        .iter()
        .flat_map(|s| segment::open_reads(&s.name, s.tok_log))
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
        files.extend(
            h.parts
                .iter()
                .chain(h.codes.iter().flatten())
                .map(|p| (p.clone(), Prefetch::Ends)),
        );
    }
    for (name, what) in files {
        format::prefetch(&dir.join(name), what);
    }
}

pub(super) fn load_snapshot(
    dir: &Path,
    config: &Arc<CollectionConfig>,
    manifest: &Manifest,
) -> Result<Snapshot> {
    prefetch(dir, manifest);
    // The graph loads on a second thread while the segments open: each is
    // about half of the open's time (1M items: 145 MB of graph to read and
    // check; 55 segments whose index files are checked whole).
    let load_index = || match &manifest.hnsw {
        Some(h) => HnswIndex::load(dir, h, config.hnsw),
        None => HnswIndex::new(config.hnsw, 1000),
    };
    let open_segments = || -> Result<Vec<Arc<Segment>>> {
        manifest
            .segments
            .iter()
            .map(|s| {
                Segment::open(
                    dir,
                    &s.name,
                    s.first_doc,
                    s.len,
                    config.dim,
                    config.token_dtype,
                    s.tok_log,
                )
                .map(Arc::new)
            })
            .collect()
    };
    let (segments, index) = std::thread::scope(|scope| {
        // Without a thread (the system refused one) the graph loads after.
        let index = std::thread::Builder::new()
            .name("weft-open-graph".into())
            .spawn_scoped(scope, load_index)
            .ok();
        let segments = open_segments();
        let index = match index {
            Some(h) => h
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => load_index(),
        };
        (segments, index)
    });
    let (segments, index) = (segments?, index?);
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
        wal: None,
        mem_first,
        mem_ids: HashMap::new(),
        next_doc: mem_first,
        deleted: Arc::new(deleted),
        payloads: Arc::new(payloads),
        index: Arc::new(index),
    })
}

/// Removes files of ours that the manifest does not name (left by a crash or superseded).
pub(super) fn cleanup(dir: &Path, manifest: &Manifest) -> Result<()> {
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
