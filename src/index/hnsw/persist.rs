//! Dump and load: the graph file and the memory-mapped vector parts.

use super::*;

/// The files of one dump: the graph file and every vector part it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswFiles {
    /// The graph file's name.
    pub graph: String,
    /// The vector parts' names, oldest first.
    pub parts: Vec<String>,
    /// Per part, its code file (`HNSQ`: the i8 codes the graph walk reads),
    /// `None` for a part written before code files existed. Empty in
    /// manifests written before them, which read unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<Option<String>>,
}

impl HnswIndex {
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
        // Code files: kept, or written for a part that has none yet (its
        // vectors are read once; a part that fails its checks gets none,
        // and the next search that reads it reports the damage).
        let mut codes: Vec<Option<String>> = Vec::with_capacity(parts.len() + 1);
        let mut added: Vec<(usize, String)> = Vec::new();
        for (i, p) in g.parts.iter().enumerate() {
            if let Some(c) = &p.codes {
                codes.push(Some(c.name.clone()));
                continue;
            }
            if !(0..p.state.len()).all(|c| p.check(c, dim, &self.bad)) {
                codes.push(None);
                continue;
            }
            let name = format!("{}.q8", p.name);
            let body = p.body();
            write_codes(&dir.join(&name), dim, p.len, |i, out| {
                push_code_row(&body[i * dim..(i + 1) * dim], out)
            })?;
            codes.push(Some(name.clone()));
            added.push((i, name));
        }
        let fresh = n - g.tail_first;
        let per_chunk = (CHUNK_BYTES / (dim.max(1) * 4)).max(1);
        if fresh > 0 {
            // A checkpoint that failed after this index adopted its part
            // is retried with the same basename: never reuse a part's name.
            let mut name = format!("{basename}.vec");
            if g.parts.iter().any(|p| p.name == name) {
                name = format!("{basename}-{}.vec", g.tail_first);
            }
            let crcs: Vec<u32> = g
                .tail
                .chunks(per_chunk * dim)
                .map(|c| format::crc32(bytemuck::cast_slice(c)))
                .collect();
            format::write_framed(&dir.join(&name), PART_KIND, bytemuck::cast_slice(&g.tail))?;
            let code_name = format!("{name}.q8");
            write_codes(&dir.join(&code_name), dim, fresh, |i, out| {
                out.extend_from_slice(g.tail_code(i).expect("a code row per tail node"))
            })?;
            codes.push(Some(code_name));
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
        let mut opened = Vec::with_capacity(added.len());
        for (i, name) in added {
            opened.push((i, open_codes(dir, name, parts[i].2, dim)?));
        }
        if !opened.is_empty() {
            let mut g = self.write();
            for (i, c) in opened {
                g.parts[i].codes = Some(c);
            }
        }
        if fresh > 0 {
            // Serve the dumped vectors from the new part, not from memory.
            let (name, first, len, per, crcs) = parts.pop().expect("pushed above");
            let mut part = open_part(dir, name, first, len, dim, per, crcs)?;
            let code_name = codes.last().cloned().flatten().expect("pushed above");
            part.codes = Some(open_codes(dir, code_name, len, dim)?);
            let mut g = self.write();
            if g.tail_first == first && g.len() == n {
                g.parts.push(part);
                g.tail_first = n;
                g.tail = Vec::new();
                g.tail_codes = Vec::new();
            }
        }
        Ok(HnswFiles {
            graph,
            parts: names,
            codes,
        })
    }

    /// Opens a dump written by [`HnswIndex::dump`]: verifies the graph file
    /// and copies its node arrays out of a mapping of it (read into a
    /// buffer, its 145 MB at 1M items were zeroed and copied once more),
    /// maps the vector parts (checked chunk by chunk when used).
    pub fn load(dir: &Path, files: &HnswFiles, params: HnswParams) -> Result<Self> {
        params.validate()?;
        let path = dir.join(&files.graph);
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let map = crate::sys::map_readonly(&file, &path).map_err(|e| Error::io(&path, e))?;
        let body = format::open_framed(&map, GRAPH_KIND, &path, true)?;
        let bad = |what: &str| corrupt(&path, format!("bad graph file: {what}"));
        let mut d = Dec::new(body);
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
        if !files.codes.is_empty() && files.codes.len() != nparts {
            return Err(bad(&format!(
                "{} parts, the manifest names {} code files",
                nparts,
                files.codes.len()
            )));
        }
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
            let mut part = open_part(dir, name, first, len, dim, per, crcs)?;
            if let Some(Some(code_name)) = files.codes.get(i) {
                // Codes are derived from the vectors: a missing code file
                // (removed by an older weft that did not know them) means
                // an f32 walk over this part until the next dump rewrites it.
                if dir.join(code_name).exists() {
                    part.codes = Some(open_codes(dir, code_name.clone(), len, dim)?);
                }
            }
            parts.push(part);
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
            let mut v = crate::sys::vec_for_bulk(b.len() / 4);
            v.extend(
                b.chunks_exact(4)
                    .map(|c| AtomicU32::new(u32::from_le_bytes(c.try_into().expect("4")))),
            );
            v
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
        // Cut short while it was read (another program truncating it; the
        // SIGBUS handler read zeros): what was copied is not the file.
        if map.truncated(true) {
            return Err(bad("the file was cut short while it was read"));
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
            tail_codes: Vec::new(),
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
            .flat_map(|p| std::iter::once(&p.map).chain(p.codes.as_ref().map(|c| &c.map)))
            .find(|m| m.truncated(stat))
            .map(|m| m.path().to_path_buf())
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
            if let Some(c) = &p.codes {
                for i in 0..c.state.len() {
                    c.check(i, p.len, g.dim, &self.bad);
                }
                format::open_framed(&c.map, CODES_KIND, &c.path, true)?;
            }
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
        codes: None,
    })
}

/// Code rows per checksum chunk for `dim`.
fn code_chunk(dim: usize) -> usize {
    (CHUNK_BYTES / code_row_len(dim)).max(1)
}

/// Writes a code file (`HNSQ`) for `len` nodes of `dim`, streamed one
/// checksum chunk at a time; `row(i, out)` appends node `i`'s code row.
/// Body: `dim u32 | len u64 | per_chunk u64 | rows (len x (dim + 4)
/// bytes) | crc32 per chunk | chunk count u32`.
fn write_codes(
    path: &Path,
    dim: usize,
    len: usize,
    mut row: impl FnMut(usize, &mut Vec<u8>),
) -> Result<()> {
    let per = code_chunk(dim);
    let mut w = format::FramedWriter::create(path, CODES_KIND)?;
    let mut e = Enc::default();
    e.u32(dim as u32);
    e.u64(len as u64);
    e.u64(per as u64);
    w.write(&e.0)?;
    let mut crcs = Enc::default();
    let mut chunks = 0u32;
    let width = code_row_len(dim);
    let mut chunk = Vec::with_capacity(per * width);
    for start in (0..len).step_by(per) {
        chunk.clear();
        for i in start..(start + per).min(len) {
            row(i, &mut chunk);
        }
        debug_assert_eq!(chunk.len(), ((start + per).min(len) - start) * width);
        w.write(&chunk)?;
        crcs.u32(format::crc32(&chunk));
        chunks += 1;
    }
    crcs.u32(chunks);
    w.write(&crcs.0)?;
    w.finish()?;
    format::sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(|e| Error::io(path, e))
}

/// Maps a code file and checks its header against its part (`len` nodes of
/// `dim`); the rows are checked per chunk when first read.
fn open_codes(dir: &Path, name: String, len: usize, dim: usize) -> Result<Codes> {
    let path = dir.join(&name);
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let map = crate::sys::map_readonly(&file, &path).map_err(|e| Error::io(&path, e))?;
    let body = format::open_framed(&map, CODES_KIND, &path, false)?;
    let bad = |what: String| corrupt(&path, format!("bad code file: {what}"));
    let mut d = Dec::new(body);
    let (Some(fdim), Some(flen), Some(per)) = (d.u32(), d.u64(), d.u64()) else {
        return Err(bad("header".into()));
    };
    let (fdim, flen, per) = (fdim as usize, flen as usize, per as usize);
    if fdim != dim || flen != len || per == 0 {
        return Err(bad(format!(
            "{flen} rows of {fdim} (chunks of {per}), its part has {len} of {dim}"
        )));
    }
    let chunks = len.div_ceil(per);
    let rows = len * code_row_len(dim);
    if body.len() != 20 + rows + 4 * chunks + 4 {
        return Err(bad(format!("{} body bytes for {len} rows", body.len())));
    }
    let tail = &body[20 + rows..];
    let stored = u32::from_le_bytes(tail[4 * chunks..].try_into().expect("4 bytes")) as usize;
    if stored != chunks {
        return Err(bad(format!("{stored} chunk checksums, {chunks} chunks")));
    }
    let crcs = tail[..4 * chunks]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok(Codes {
        name,
        path,
        rows_at: format::HEADER_LEN + 20,
        per_chunk: per,
        crcs,
        state: (0..chunks).map(|_| AtomicU8::new(0)).collect(),
        map,
    })
}
