//! The node arrays, memory-mapped vector parts and the visited set.

use std::ops::Range;

use super::*;

/// A memory-mapped vector part holding nodes `first..first+len`.
pub(super) struct Part {
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) first: usize,
    pub(super) len: usize,
    pub(super) per_chunk: usize,
    pub(super) crcs: Vec<u32>,
    /// Per chunk: 0 unchecked, 1 good, 2 bad.
    pub(super) state: Vec<AtomicU8>,
    pub(super) map: Mapped,
    /// The i8 codes of these nodes (absent for a part written before
    /// codes existed, until the next dump adds them).
    pub(super) codes: Option<Codes>,
}

/// A memory-mapped code file (`HNSQ`): per node of its part, `dim` i8
/// codes and the f32 scale (little-endian), `dim + 4` bytes a row. The
/// graph walk reads these (a quarter of the f32 bytes); the answers are
/// re-scored with the f32 vectors. Its chunk checksums are in the file
/// itself, read at open; each chunk is checked the first time a search
/// touches it, as vector chunks are.
pub(super) struct Codes {
    pub(super) name: String,
    pub(super) path: PathBuf,
    /// Byte offset of the first row in `map`.
    pub(super) rows_at: usize,
    pub(super) per_chunk: usize,
    pub(super) crcs: Vec<u32>,
    /// Per chunk: 0 unchecked, 1 good, 2 bad.
    pub(super) state: Vec<AtomicU8>,
    pub(super) map: Mapped,
}

/// Bytes of one code row: `dim` i8 codes, then the f32 scale.
#[inline]
pub(super) fn code_row_len(dim: usize) -> usize {
    dim + 4
}

impl Codes {
    /// The code row (codes, then the scale's 4 bytes) of local node `i`.
    #[inline]
    pub(super) fn row(&self, i: usize, dim: usize) -> &[u8] {
        let w = code_row_len(dim);
        let at = self.rows_at + i * w;
        &self.map[at..at + w]
    }

    /// Chunk `c` of a code file of `len` rows: its first and end row, and
    /// its bytes' range in `map`.
    fn chunk(&self, c: usize, len: usize, dim: usize) -> (usize, usize, Range<usize>) {
        let start = c * self.per_chunk;
        let end = (start + self.per_chunk).min(len);
        let w = code_row_len(dim);
        (start, end, self.rows_at + start * w..self.rows_at + end * w)
    }

    /// Asks the kernel to start reading chunk `c` if no search checked it
    /// yet (see `will_need`).
    #[inline]
    pub(super) fn will_need(&self, c: usize, len: usize, dim: usize) {
        if self.state[c].load(Ordering::Relaxed) == 0 {
            will_need(&self.map, self.chunk(c, len, dim).2);
        }
    }

    /// Checks chunk `c` once; true when good.
    pub(super) fn check(
        &self,
        c: usize,
        len: usize,
        dim: usize,
        bad: &OnceLock<(PathBuf, String)>,
    ) -> bool {
        check_chunk(
            &self.state[c],
            self.crcs[c],
            || {
                let (start, end, bytes) = self.chunk(c, len, dim);
                let got = format::crc32(&self.map[bytes]);
                (got, &self.path, format!("codes {start}..{end}"))
            },
            bad,
        )
    }
}

/// Starts the read of `len` bytes at `at` of `map` without waiting
/// (`MADV_WILLNEED`). A search asks this for every unchecked chunk it is
/// about to read, before reading the first: after a cold open the chunks
/// of one hop (or of the re-scored beam) then come from the device in
/// parallel instead of one fault after another (1M items, first query
/// after dropping the page cache: see BENCHMARKS.md). A checked chunk is
/// never advised again, so a warm search makes no system call.
fn will_need(map: &Mapped, bytes: Range<usize>) {
    #[cfg(unix)]
    let _ = map.advise_range(memmap2::Advice::WillNeed, bytes.start, bytes.len());
    #[cfg(not(unix))]
    let _ = (map, bytes);
}

/// The once-per-chunk check of vector parts and code files: `state` is 0
/// unchecked, 1 good, 2 bad; `compute` gives the chunk's crc32, its file
/// and what it holds; a mismatch is recorded in `bad` (the first one wins).
fn check_chunk<'a>(
    state: &AtomicU8,
    stored: u32,
    compute: impl FnOnce() -> (u32, &'a PathBuf, String),
    bad: &OnceLock<(PathBuf, String)>,
) -> bool {
    match state.load(Ordering::Acquire) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let (got, path, what) = compute();
    let ok = got == stored;
    state.store(if ok { 1 } else { 2 }, Ordering::Release);
    if !ok {
        let _ = bad.set((
            path.clone(),
            format!("checksum mismatch in {what} (stored {stored:08x}, computed {got:08x})"),
        ));
    }
    ok
}

/// Appends the code row of `v` (codes, then the scale) to `out`.
pub(super) fn push_code_row(v: &[f32], out: &mut Vec<u8>) {
    let at = out.len();
    out.resize(at + v.len() + 4, 0);
    let (codes, scale) = out[at..].split_at_mut(v.len());
    let s = crate::score::quantize_vector(v, bytemuck::cast_slice_mut(codes));
    scale.copy_from_slice(&s.to_le_bytes());
}

/// `1 - dot` between a quantized query and a code row.
#[inline]
pub(super) fn code_dist(q: &(Vec<i8>, f32), row: &[u8]) -> f32 {
    let dim = q.0.len();
    let scale = f32::from_le_bytes(row[dim..dim + 4].try_into().expect("4 bytes"));
    let dot = crate::score::dot_i8(&q.0, bytemuck::cast_slice(&row[..dim]));
    1.0 - q.1 * scale * dot as f32
}

/// A query as the walk sees it: the f32 vector, and its i8 codes and scale
/// when the walk reads codes.
pub(super) struct Probe<'q> {
    pub(super) f: &'q [f32],
    pub(super) codes: Option<(Vec<i8>, f32)>,
}

impl<'q> Probe<'q> {
    /// A probe that computes exact f32 distances (inserts).
    pub(super) fn exact(f: &'q [f32]) -> Self {
        Probe { f, codes: None }
    }

    /// A probe that walks over the codes where the nodes have them.
    pub(super) fn quantized(f: &'q [f32]) -> Self {
        let mut c = vec![0i8; f.len()];
        let s = crate::score::quantize_vector(f, &mut c);
        Probe {
            f,
            codes: Some((c, s)),
        }
    }
}

impl Part {
    pub(super) fn body(&self) -> &[f32] {
        let bytes = &self.map[format::HEADER_LEN..self.map.len() - format::FOOTER_LEN];
        bytemuck::cast_slice(bytes)
    }

    /// Chunk `c`: its first and end node, and its bytes' range in `map`.
    fn chunk(&self, c: usize, dim: usize) -> (usize, usize, Range<usize>) {
        let start = c * self.per_chunk;
        let end = (start + self.per_chunk).min(self.len);
        let at = |node: usize| format::HEADER_LEN + node * dim * 4;
        (start, end, at(start)..at(end))
    }

    /// Asks the kernel to start reading chunk `c` if no search checked it yet.
    #[inline]
    pub(super) fn will_need(&self, c: usize, dim: usize) {
        if self.state[c].load(Ordering::Relaxed) == 0 {
            will_need(&self.map, self.chunk(c, dim).2);
        }
    }

    /// Checks chunk `c` once; true when good.
    pub(super) fn check(&self, c: usize, dim: usize, bad: &OnceLock<(PathBuf, String)>) -> bool {
        check_chunk(
            &self.state[c],
            self.crcs[c],
            || {
                let (start, end, bytes) = self.chunk(c, dim);
                (
                    format::crc32(&self.map[bytes]),
                    &self.path,
                    format!("vectors {start}..{end}"),
                )
            },
            bad,
        )
    }
}

/// The node arrays.
pub(super) struct Graph {
    /// 0 until the first insert.
    pub(super) dim: usize,
    pub(super) docs: Vec<DocId>,
    pub(super) levels: Vec<u8>,
    /// `n * (2M + 1)`: per node `[count, ids...]` on layer 0.
    pub(super) layer0: Vec<AtomicU32>,
    /// Per node: `level * (M + 1)` for layers 1..=level.
    pub(super) upper: Vec<Box<[AtomicU32]>>,
    pub(super) parts: Vec<Part>,
    /// Vectors of nodes `tail_first..` (not yet in a part).
    pub(super) tail_first: usize,
    pub(super) tail: Vec<f32>,
    /// Code rows (`dim + 4` bytes each) of the tail's nodes.
    pub(super) tail_codes: Vec<u8>,
}

impl Graph {
    pub(super) fn empty() -> Self {
        Graph {
            dim: 0,
            docs: Vec::new(),
            levels: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            parts: Vec::new(),
            tail_first: 0,
            tail: Vec::new(),
            tail_codes: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.docs.len()
    }

    /// The code row of tail node `i` (node `tail_first + i`).
    #[inline]
    pub(super) fn tail_code(&self, i: usize) -> Option<&[u8]> {
        let w = code_row_len(self.dim);
        self.tail_codes.get(i * w..(i + 1) * w)
    }
}

/// Generation-stamped visited set, one per thread.
#[derive(Default)]
pub(super) struct Visited {
    pub(super) marks: Vec<u32>,
    pub(super) stamp: u32,
}

impl Visited {
    pub(super) fn reset(&mut self, n: usize) {
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
    pub(super) fn insert(&mut self, i: u32) -> bool {
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
    pub(super) static SCRATCH: RefCell<(Visited, Vec<u32>)> = RefCell::new((Visited::default(), Vec::new()));
}

/// A distance that orders totally (NaN never occurs for finite vectors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct D(pub(super) f32);
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
