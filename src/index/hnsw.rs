//! HNSW through `hnsw_rs` (`DistDot` on normalised vectors, SIMD distances).
//!
//! Pitfalls handled here: `max_nb_connection` above 256 makes `hnsw_rs` exit
//! the process, so it is validated first; dumps need `max_layer = 16`; a
//! reloaded index borrows its loader (owned together in `sys::LoadedHnsw`).

use std::path::Path;

use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::prelude::AnnT;
use hnsw_rs::prelude::DistDot;
use serde::{Deserialize, Serialize};

use super::{DocId, Filter, VectorIndex};
use crate::error::{Error, Result};
use crate::sys::LoadedHnsw;

/// HNSW parameters (names from Malkov & Yashunin, 2016).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HnswParams {
    /// `M`: neighbours kept per node and layer (2..=256). Default 16.
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

    /// Refuses values `hnsw_rs` would misbehave on.
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

/// `hnsw_rs` requires this many layers for `file_dump` to work.
const MAX_LAYER: usize = 16;

enum Inner {
    Fresh(Hnsw<'static, f32, DistDot>),
    Loaded(LoadedHnsw),
}

/// An HNSW index.
pub struct HnswIndex {
    inner: Inner,
    params: HnswParams,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("params", &self.params)
            .field("len", &self.len())
            .finish()
    }
}

impl HnswIndex {
    /// A new empty index sized for about `capacity` vectors.
    pub fn new(params: HnswParams, capacity: usize) -> Result<Self> {
        params.validate()?;
        let hnsw = Hnsw::new(
            params.m,
            capacity.max(1000),
            MAX_LAYER,
            params.ef_construction,
            DistDot,
        );
        Ok(HnswIndex {
            inner: Inner::Fresh(hnsw),
            params,
        })
    }

    /// Reloads a dump written by [`HnswIndex::dump`].
    pub fn load(dir: &Path, basename: &str, params: HnswParams) -> Result<Self> {
        params.validate()?;
        let loaded = LoadedHnsw::load(dir, basename).map_err(|reason| Error::Corrupted {
            path: dir.join(format!("{basename}.hnsw.graph")),
            reason: format!("cannot reload the HNSW index: {reason}"),
        })?;
        Ok(HnswIndex {
            inner: Inner::Loaded(loaded),
            params,
        })
    }

    fn hnsw(&self) -> &Hnsw<'static, f32, DistDot> {
        match &self.inner {
            Inner::Fresh(h) => h,
            Inner::Loaded(l) => l.get(),
        }
    }

    /// Changes the search beam width `ef` (at least 1).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    /// The parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Writes `dir/basename.hnsw.graph` and `.hnsw.data`; returns the basename used.
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<String> {
        self.hnsw().file_dump(dir, basename).map_err(|e| Error::Io {
            path: dir.join(format!("{basename}.hnsw.graph")),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Inserts many vectors using the available cores.
    pub fn insert_many(&self, rows: &[(&[f32], DocId)]) {
        let data: Vec<(&[f32], usize)> = rows.iter().map(|(v, d)| (*v, *d as usize)).collect();
        self.hnsw().parallel_insert_slice(&data);
    }

    /// [`VectorIndex::search`] with this query's beam width `ef` (raised to `k`).
    pub fn search_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<Filter<'_>>,
    ) -> Vec<(DocId, f32)> {
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let ef = ef.max(k);
        // hnsw_rs's filtered search explores far more of the graph: use it
        // only when there is something to filter.
        let found = match filter {
            None => self.hnsw().search(query, k, ef),
            Some(filter) => {
                let f = |id: &usize| filter(*id as DocId);
                self.hnsw().search_filter(query, k, ef, Some(&f))
            }
        };
        let mut out: Vec<(DocId, f32)> = found
            .into_iter()
            .map(|n| (n.d_id as DocId, 1.0 - n.distance))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

impl VectorIndex for HnswIndex {
    fn insert(&self, doc: DocId, vector: &[f32]) {
        self.hnsw().insert_slice((vector, doc as usize));
    }

    fn search(&self, query: &[f32], k: usize, filter: Option<Filter<'_>>) -> Vec<(DocId, f32)> {
        self.search_ef(query, k, self.params.ef_search, filter)
    }

    fn len(&self) -> usize {
        self.hnsw().get_nb_point()
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
        let rows: Vec<(&[f32], DocId)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (&v[..], i as DocId))
            .collect();
        index.insert_many(&rows);
        let flat = crate::index::FlatIndex::new();
        for (i, v) in data.iter().enumerate() {
            flat.insert(i as DocId, v);
        }
        let mut hits = 0;
        for q in &queries {
            let exact = flat.search(q, 10, None);
            let got = index.search(q, 10, None);
            hits += got
                .iter()
                .filter(|(d, _)| exact.iter().any(|(e, _)| e == d))
                .count();
        }
        let recall = hits as f64 / (10.0 * queries.len() as f64);
        eprintln!("hnsw recall@10 on {n} x {dim} clustered (seed {seed}, M 16, ef_c 200, ef 128): {recall:.4}");
        assert!(recall >= 0.95, "seed {seed}: recall@10 {recall:.4}");
    }

    #[test]
    fn dump_and_reload_give_the_same_answers() {
        let dir = std::env::temp_dir().join(format!("weft-hnsw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = suite::clustered(3, 500, 16, 5);
        let index = HnswIndex::new(HnswParams::default(), 500).unwrap();
        for (i, v) in data.iter().enumerate() {
            index.insert(i as DocId, v);
        }
        let base = index.dump(&dir, "idx").unwrap();
        let reloaded = HnswIndex::load(&dir, &base, HnswParams::default()).unwrap();
        assert_eq!(reloaded.len(), 500);
        for q in data.iter().take(10) {
            assert_eq!(index.search(q, 5, None), reloaded.search(q, 5, None));
        }
        // New inserts into a reloaded index work (no rebuild needed).
        reloaded.insert(10_000, &data[0]);
        assert_eq!(reloaded.len(), 501);
    }

    #[test]
    fn bad_parameters_are_refused_before_hnsw_rs_sees_them() {
        assert!(HnswIndex::new(HnswParams::default().with_m(300), 10).is_err());
        assert!(HnswIndex::new(HnswParams::default().with_ef_search(0), 10).is_err());
    }
}
