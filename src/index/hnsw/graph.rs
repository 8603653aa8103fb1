//! The node arrays, memory-mapped vector parts and the visited set.

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
}

impl Part {
    pub(super) fn body(&self) -> &[f32] {
        let bytes = &self.map[format::HEADER_LEN..self.map.len() - format::FOOTER_LEN];
        bytemuck::cast_slice(bytes)
    }

    /// Checks chunk `c` once; true when good.
    pub(super) fn check(&self, c: usize, dim: usize, bad: &OnceLock<(PathBuf, String)>) -> bool {
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
        }
    }

    pub(super) fn len(&self) -> usize {
        self.docs.len()
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
