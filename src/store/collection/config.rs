//! Settings fixed when a collection is created (`collection.cfg`).

use super::*;

/// Settings fixed when a collection is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CollectionConfig {
    /// Name of the bundle whose encoders made the vectors.
    pub bundle_name: String,
    /// That bundle's hash ([`Bundle::hash`]).
    pub bundle_hash: String,
    /// Embedding dimension.
    pub dim: usize,
    /// How token matrices are stored.
    pub token_dtype: TokenDtype,
    /// HNSW parameters.
    pub hnsw: HnswParams,
    /// Committed items kept in the WAL before a checkpoint writes a segment
    /// (at least this many, or a tenth of the collection if larger). Default 4096.
    pub checkpoint_items: usize,
    /// ... unless they hold this many bytes first (embeddings, tokens,
    /// payloads), so that the memory a writer holds stays bounded however
    /// large the collection grows. Default 256 MiB.
    #[serde(default = "default_checkpoint_bytes")]
    pub checkpoint_bytes: u64,
    /// Token pooling at ingest (Clavié et al. 2024): each item's tokens are
    /// merged by average-linkage clustering down to `ceil(n / pool_factor)`.
    /// 1 = off (default). Pooled image tokens lose their patch positions.
    #[serde(default = "one")]
    pub pool_factor: f32,
}

pub(super) fn one() -> f32 {
    1.0
}

pub(super) fn default_checkpoint_bytes() -> u64 {
    256 << 20
}

impl CollectionConfig {
    /// Settings for vectors made by `bundle`.
    pub fn for_bundle(bundle: &Bundle) -> Self {
        Self::new(bundle.name(), bundle.hash(), bundle.dim())
    }

    /// Settings for vectors of `dim` from the named bundle.
    pub fn new(bundle_name: impl Into<String>, bundle_hash: impl Into<String>, dim: usize) -> Self {
        CollectionConfig {
            bundle_name: bundle_name.into(),
            bundle_hash: bundle_hash.into(),
            dim,
            token_dtype: TokenDtype::default(),
            hnsw: HnswParams::default(),
            checkpoint_items: 4096,
            checkpoint_bytes: default_checkpoint_bytes(),
            pool_factor: 1.0,
        }
    }

    /// Sets the token dtype.
    pub fn with_token_dtype(mut self, dtype: TokenDtype) -> Self {
        self.token_dtype = dtype;
        self
    }

    /// Sets the HNSW parameters.
    pub fn with_hnsw(mut self, hnsw: HnswParams) -> Self {
        self.hnsw = hnsw;
        self
    }

    /// Sets the token pooling factor (1 = off).
    pub fn with_pool_factor(mut self, f: f32) -> Self {
        self.pool_factor = f;
        self
    }

    /// Sets the checkpoint threshold.
    pub fn with_checkpoint_items(mut self, n: usize) -> Self {
        self.checkpoint_items = n;
        self
    }

    /// Sets the checkpoint threshold in bytes of committed, not yet checkpointed items.
    pub fn with_checkpoint_bytes(mut self, n: u64) -> Self {
        self.checkpoint_bytes = n;
        self
    }
}
