//! Approximate nearest-neighbour indexes over global embeddings.
//!
//! [`VectorIndex`] is the plug-in trait; [`FlatIndex`] (exact, the reference)
//! and [`HnswIndex`] (weft's HNSW, Malkov & Yashunin) implement it and run one
//! shared test suite. Vectors are L2-normalised, so similarity is the dot
//! product. Filters run inside the search (a rejected node is still walked
//! through, it is only kept out of the results), so k filtered results come
//! back when k exist within the search beam.

mod hnsw;

use std::sync::RwLock;

pub use hnsw::{HnswFiles, HnswIndex, HnswParams};

use crate::error::{Error, Result};

/// A document id inside a collection (dense, assigned at insert).
pub type DocId = u64;

/// A predicate on doc ids evaluated inside the search.
pub type DocFilter<'a> = &'a (dyn Fn(DocId) -> bool + Sync);

/// A nearest-neighbour index.
pub trait VectorIndex: Send + Sync {
    /// Adds a vector under `doc` (`vector` is L2-normalised). A vector
    /// whose length differs from the first one's is refused.
    fn insert(&self, doc: DocId, vector: &[f32]) -> Result<()>;
    /// The `k` most similar docs accepted by `filter` (`None`: all), best
    /// first, with their dot product. Fails on a query of the wrong length,
    /// or when stored vectors turn out corrupted.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<DocFilter<'_>>,
    ) -> Result<Vec<(DocId, f32)>>;
    /// Number of vectors inserted.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Exact search by scanning every vector: the reference for the other indexes.
#[derive(Debug, Default)]
pub struct FlatIndex {
    rows: RwLock<Vec<(DocId, Vec<f32>)>>,
}

impl FlatIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Dot product (SIMD where the CPU has it).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    crate::score::dot_f32(a, b)
}

/// Keeps the `k` best `(doc, score)` pairs, best first (ties by doc id).
pub fn top_k(mut scored: Vec<(DocId, f32)>, k: usize) -> Vec<(DocId, f32)> {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

impl VectorIndex for FlatIndex {
    fn insert(&self, doc: DocId, vector: &[f32]) -> Result<()> {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, first)) = rows.first() {
            if first.len() != vector.len() {
                return Err(Error::WrongDimension {
                    what: format!("vector of doc {doc}"),
                    expected: first.len(),
                    received: vector.len(),
                });
            }
        }
        rows.push((doc, vector.to_vec()));
        Ok(())
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<DocFilter<'_>>,
    ) -> Result<Vec<(DocId, f32)>> {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        if let Some((_, first)) = rows.first() {
            if first.len() != query.len() {
                return Err(Error::WrongDimension {
                    what: "query".into(),
                    expected: first.len(),
                    received: query.len(),
                });
            }
        }
        let scored = rows
            .iter()
            .filter(|(d, _)| filter.is_none_or(|f| f(*d)))
            .map(|(d, v)| (*d, dot(query, v)))
            .collect();
        Ok(top_k(scored, k))
    }

    fn len(&self) -> usize {
        self.rows.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Seeded test data and the suite every [`VectorIndex`] runs.
#[cfg(test)]
pub(crate) mod suite {
    use super::*;

    /// SplitMix64, so tests are reproducible from a printed seed.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        /// Uniform in [-1, 1).
        pub fn f32(&mut self) -> f32 {
            (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
    }

    pub fn normalise(v: &mut [f32]) {
        let n = dot(v, v).sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
    }

    /// `n` vectors around `clusters` random unit centres, each coordinate
    /// moved by up to `0.9/sqrt(dim)` (noise norm ~0.5 of the centre's; tighter clusters of near-duplicates are harder for HNSW), normalised.
    pub fn clustered(seed: u64, n: usize, dim: usize, clusters: usize) -> Vec<Vec<f32>> {
        let mut rng = Rng(seed);
        let centres: Vec<Vec<f32>> = (0..clusters)
            .map(|_| {
                let mut c: Vec<f32> = (0..dim).map(|_| rng.f32()).collect();
                normalise(&mut c);
                c
            })
            .collect();
        (0..n)
            .map(|i| {
                let c = &centres[i % clusters];
                let mut v: Vec<f32> = c
                    .iter()
                    .map(|x| x + 0.6 * rng.f32() / (dim as f32).sqrt())
                    .collect();
                normalise(&mut v);
                v
            })
            .collect()
    }

    /// Recall@10 against brute force, filter correctness and emptiness.
    pub fn run(index: &dyn VectorIndex, seed: u64, n: usize, dim: usize, min_recall: f64) {
        assert!(index.is_empty());
        assert!(index.search(&vec![0.1; dim], 5, None).unwrap().is_empty());
        // Queries are held-out points of the same clusters.
        let mut data = clustered(seed, n + 50, dim, 20);
        let queries = data.split_off(n);
        for (i, v) in data.iter().enumerate() {
            index.insert(i as DocId, v).unwrap();
        }
        assert_eq!(index.len(), n);
        let mut hits = 0usize;
        for q in &queries {
            let exact = top_k(
                data.iter()
                    .enumerate()
                    .map(|(i, v)| (i as DocId, dot(q, v)))
                    .collect(),
                10,
            );
            let got = index.search(q, 10, None).unwrap();
            assert_eq!(got.len(), 10, "seed {seed}");
            for w in got.windows(2) {
                assert!(w[0].1 >= w[1].1 - 1e-6, "seed {seed}: not sorted");
            }
            hits += got
                .iter()
                .filter(|(d, _)| exact.iter().any(|(e, _)| e == d))
                .count();
        }
        let recall = hits as f64 / (10.0 * queries.len() as f64);
        assert!(
            recall >= min_recall,
            "seed {seed}: recall@10 {recall:.3} < {min_recall}"
        );
        // Filters run inside the search: only even docs, still 10 results.
        let got = index
            .search(&queries[0], 10, Some(&|d| d % 2 == 0))
            .unwrap();
        assert_eq!(
            got.len(),
            10,
            "seed {seed}: filtered search returned {}",
            got.len()
        );
        assert!(got.iter().all(|(d, _)| d % 2 == 0));
    }

    #[test]
    fn flat_index_is_exact() {
        run(&FlatIndex::new(), 7, 2000, 32, 1.0);
    }
}
