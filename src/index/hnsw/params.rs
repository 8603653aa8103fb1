//! HNSW parameters.

use super::*;

/// HNSW parameters (names from Malkov & Yashunin, 2016).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HnswParams {
    /// `M`: neighbours kept per node and layer (2..=256; layer 0 keeps `2M`). Default 16.
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

    /// Refuses values outside what the index supports.
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
