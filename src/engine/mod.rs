//! The front door: [`Engine`] wires the runtime, bundles, encoders and
//! collections together, so an app (and weft's own CLI and daemon) never
//! does it by hand.
//!
//! ```no_run
//! # fn main() -> weft::Result<()> {
//! let engine = weft::Engine::builder().models_dir(".weft/models").build()?;
//! let photos = engine.open_or_create("photos.weft", "starter-vl")?;
//! photos.index(&["photos/"], |_| {})?;
//! for hit in photos.search("a dog on the beach", &weft::SearchOptions::default())? {
//!     println!("{:.3} {}", hit.score, hit.id);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! An [`Engine`] is cheap to clone and `Send + Sync`: clones share one
//! runtime, the opened bundles, one dynamic batcher per bundle (concurrent
//! callers' inputs are encoded together) and one label cache.

mod batcher;
mod oneshot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::bundle::{self, Bundle};
use crate::cache::Lru;
use crate::classify::{
    Classification, Classifier, ClassifyOptions, LabelCache, TagOptions, TagReport,
};
use crate::encoder::{BundleEncoders, Encoded, EncoderOptions, Input};
use crate::error::{Error, Result};
use crate::index::HnswParams;
use crate::ingest::SyncReport;
use crate::modality::Modality;
use crate::runtime::{ActiveProvider, Device, Runtime, RuntimeOptions, SessionOptions};
use crate::search::{Hit, Query, SearchOptions, SearchScratch};
use crate::store::{
    self, CollectionConfig, CollectionInfo, CommitStats, NewItem, Snapshot, TokenDtype,
};

pub use batcher::{BatchStats, EncodeTicket, QUEUE_JOBS};

/// One input to encode, owned (it may wait in the batcher's queue).
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Natural-language text.
    Text(String),
    /// A molecule as SMILES.
    Smiles(String),
    /// An encoded image file (JPEG, PNG, ...); `name` names it in errors.
    ImageBytes {
        /// What errors call it (a file name, `request item 3`, ...).
        name: String,
        /// The file's bytes.
        bytes: Vec<u8>,
    },
    /// An image file on disk.
    ImagePath(PathBuf),
}

impl Content {
    /// What it is.
    pub fn modality(&self) -> Modality {
        match self {
            Content::Text(_) => Modality::Text,
            Content::Smiles(_) => Modality::Molecule,
            Content::ImageBytes { .. } | Content::ImagePath(_) => Modality::Image,
        }
    }

    /// Borrowed, as the encoders read it.
    pub fn as_input(&self) -> Input<'_> {
        match self {
            Content::Text(t) => Input::Text(t),
            Content::Smiles(s) => Input::Smiles(s),
            Content::ImageBytes { name, bytes } => Input::ImageBytes { name, bytes },
            Content::ImagePath(p) => Input::ImagePath(p),
        }
    }

    /// A source string for the store: the path of an image file, else empty.
    fn source(&self) -> String {
        match self {
            Content::ImagePath(p) => p.display().to_string(),
            _ => String::new(),
        }
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(text.to_string())
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(text)
    }
}

impl From<&Path> for Content {
    fn from(path: &Path) -> Self {
        Content::ImagePath(path.to_path_buf())
    }
}

impl From<PathBuf> for Content {
    fn from(path: PathBuf) -> Self {
        Content::ImagePath(path)
    }
}

/// An item to add: an id, what to encode, and a JSON payload.
#[derive(Debug, Clone)]
pub struct Item {
    /// The external id (unique in the collection).
    pub id: String,
    /// What is encoded.
    pub content: Content,
    /// Stored with the item, returned with hits, matched by filters.
    pub payload: serde_json::Value,
}

impl Item {
    /// An item without payload.
    pub fn new(id: impl Into<String>, content: impl Into<Content>) -> Self {
        Item {
            id: id.into(),
            content: content.into(),
            payload: serde_json::Value::Null,
        }
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }
}

/// What to search with.
#[derive(Debug, Clone)]
pub enum SearchQuery {
    /// Content, encoded by the collection's bundle (a SMILES is kept for the
    /// molecule scorers).
    Content(Content),
    /// The vectors of a stored item; the item itself is left out of the hits.
    Id(String),
    /// An already encoded query.
    Query(Query),
}

impl From<&str> for SearchQuery {
    fn from(text: &str) -> Self {
        SearchQuery::Content(Content::Text(text.to_string()))
    }
}

impl From<String> for SearchQuery {
    fn from(text: String) -> Self {
        SearchQuery::Content(Content::Text(text))
    }
}

impl From<Content> for SearchQuery {
    fn from(content: Content) -> Self {
        SearchQuery::Content(content)
    }
}

impl From<Query> for SearchQuery {
    fn from(query: Query) -> Self {
        SearchQuery::Query(query)
    }
}

/// Settings of a new collection (see [`Engine::create`]).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// How token matrices are stored (default f16).
    pub token_dtype: Option<TokenDtype>,
    /// HNSW parameters.
    pub hnsw: Option<HnswParams>,
    /// Token pooling factor (1 keeps every token).
    pub pool_factor: Option<f32>,
    /// Items in the log before a checkpoint.
    pub checkpoint_items: Option<usize>,
}

/// Progress of [`Collection::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexProgress {
    /// Files done.
    pub files_done: usize,
    /// Files to do.
    pub files_total: usize,
    /// Items added so far.
    pub items: usize,
}

/// Builds an [`Engine`]. The library looks only where it is told: the ONNX
/// Runtime library comes from [`EngineBuilder::ort_library`], else
/// `WEFT_ORT_LIB` / `ORT_DYLIB_PATH`, else beside the executable; bundles
/// come from [`EngineBuilder::models_dir`] folders and `WEFT_MODELS`.
#[derive(Debug, Clone)]
pub struct EngineBuilder {
    runtime: RuntimeOptions,
    device: Device,
    cpu_fallback: bool,
    threads: Option<usize>,
    models_dirs: Vec<(PathBuf, String)>,
    fallback_models_dirs: Vec<(PathBuf, String)>,
    /// The project folder is for the library only (not for bundles).
    ort_only_project: bool,
    encoder: EncoderOptions,
    max_batch: usize,
    max_wait: Duration,
    label_cache_bytes: u64,
    query_cache_bytes: u64,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            runtime: RuntimeOptions::default(),
            device: Device::Cpu,
            cpu_fallback: false,
            threads: None,
            models_dirs: Vec::new(),
            fallback_models_dirs: Vec::new(),
            ort_only_project: false,
            encoder: EncoderOptions::default(),
            max_batch: 32,
            max_wait: Duration::from_millis(2),
            label_cache_bytes: 64 << 20,
            query_cache_bytes: DEFAULT_QUERY_CACHE_BYTES,
        }
    }
}

impl EngineBuilder {
    /// The ONNX Runtime library file, or a folder holding it.
    pub fn ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.runtime = self.runtime.with_ort_library(path);
        self
    }

    /// A `.weft` project folder: its `onnxruntime/` is searched for the
    /// library after the explicit path and the environment, its `models/`
    /// for bundles after the models folders and `WEFT_MODELS` (the CLI
    /// passes the one it finds by walking up; the library never walks up).
    pub fn project_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime = self.runtime.with_project_dir(dir);
        self.ort_only_project = false;
        self
    }

    /// A `.weft` folder searched only for the ONNX Runtime library (its
    /// `onnxruntime/`), not for bundles: for a caller that finds the two
    /// apart (the CLI takes the nearest `.weft` holding each).
    pub fn ort_project_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime = self.runtime.with_project_dir(dir);
        self.ort_only_project = true;
        self
    }

    /// The execution provider: CPU (default), CUDA or auto.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// With a CUDA device: run on the CPU (reported) when CUDA cannot run.
    pub fn allow_cpu_fallback(mut self, allow: bool) -> Self {
        self.cpu_fallback = allow;
        self
    }

    /// ONNX Runtime intra-op threads per session.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// A folder of model bundles (repeatable; searched in order, before
    /// `WEFT_MODELS`).
    pub fn models_dir(self, dir: impl Into<PathBuf>) -> Self {
        self.models_dir_from(dir, "engine config `models_dir`")
    }

    /// [`EngineBuilder::models_dir`], saying where the folder came from
    /// (`weft doctor` prints it; the CLI says `--models-dir`).
    pub fn models_dir_from(mut self, dir: impl Into<PathBuf>, origin: impl Into<String>) -> Self {
        self.models_dirs.push((dir.into(), origin.into()));
        self
    }

    /// A folder of model bundles searched after `WEFT_MODELS` (repeatable).
    pub fn fallback_models_dir(
        mut self,
        dir: impl Into<PathBuf>,
        origin: impl Into<String>,
    ) -> Self {
        self.fallback_models_dirs.push((dir.into(), origin.into()));
        self
    }

    /// Encoder batching, memory and image limits.
    pub fn encoder_options(mut self, options: EncoderOptions) -> Self {
        self.encoder = options;
        self
    }

    /// Dynamic batching of concurrent calls: most items per encoder call,
    /// and the longest wait for more.
    pub fn batching(mut self, max_batch: usize, max_wait: Duration) -> Self {
        self.max_batch = max_batch.max(1);
        self.max_wait = max_wait;
        self
    }

    /// Memory for cached label embeddings of zero-shot calls.
    pub fn label_cache_bytes(mut self, bytes: u64) -> Self {
        self.label_cache_bytes = bytes;
        self
    }

    /// Memory for the embeddings of recent query texts and SMILES (0 turns
    /// the query cache off).
    pub fn query_cache_bytes(mut self, bytes: u64) -> Self {
        self.query_cache_bytes = bytes;
        self
    }

    /// The engine. ONNX Runtime loads on first use (listing bundles or
    /// collections never loads it).
    pub fn build(self) -> Result<Engine> {
        let mut session = self.encoder.session.clone();
        session = session
            .with_device(self.device)
            .with_cpu_fallback(self.cpu_fallback);
        if let Some(t) = self.threads {
            if t == 0 {
                return Err(Error::InvalidConfig {
                    name: "threads".into(),
                    reason: "must be at least 1".into(),
                });
            }
            session = session.with_intra_threads(t);
        }
        let mut origins = self.models_dirs;
        if let Some(v) = std::env::var_os(bundle::MODELS_ENV) {
            origins.extend(
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(|p| (p, bundle::MODELS_ENV.to_string())),
            );
        }
        if let (Some(p), false) = (&self.runtime.project_dir, self.ort_only_project) {
            origins.push((p.join("models"), format!("project folder {}", p.display())));
        }
        origins.extend(self.fallback_models_dirs);
        let models_dirs = origins.iter().map(|(d, _)| d.clone()).collect();
        Ok(Engine {
            inner: Arc::new(Inner {
                runtime_options: self.runtime.with_prefer_gpu(self.device != Device::Cpu),
                runtime: OnceLock::new(),
                load: Mutex::new(()),
                encoder: EncoderOptions {
                    session,
                    ..self.encoder
                },
                models_dirs,
                models_dir_origins: origins,
                max_batch: self.max_batch,
                max_wait: self.max_wait,
                bundles: Mutex::new(HashMap::new()),
                batchers: Mutex::new(HashMap::new()),
                classifiers: Mutex::new(HashMap::new()),
                labels: Arc::new(LabelCache::with_capacity_bytes(self.label_cache_bytes)),
                queries: Mutex::new(QueryCache {
                    lru: Lru::new(self.query_cache_bytes),
                    hits: 0,
                    misses: 0,
                }),
                stats: Arc::new(BatchStats::default()),
            }),
        })
    }
}

type BundleStamp = Option<(u64, Option<std::time::SystemTime>)>;

struct Inner {
    runtime_options: RuntimeOptions,
    runtime: OnceLock<Arc<Runtime>>,
    /// Serialises the first load (a failed load is retried by the next call).
    load: Mutex<()>,
    encoder: EncoderOptions,
    models_dirs: Vec<PathBuf>,
    /// Each models folder with where it came from.
    models_dir_origins: Vec<(PathBuf, String)>,
    max_batch: usize,
    max_wait: Duration,
    /// Bundles opened (and hashed) once, by folder, with the manifest's
    /// size and mtime when opened.
    bundles: Mutex<HashMap<PathBuf, (BundleStamp, Bundle)>>,
    /// One batcher per bundle hash.
    batchers: Mutex<HashMap<String, Arc<batcher::Batcher>>>,
    /// One classifier per bundle hash (they share the label cache).
    classifiers: Mutex<HashMap<String, Arc<Mutex<Classifier>>>>,
    labels: Arc<LabelCache>,
    queries: Mutex<QueryCache>,
    stats: Arc<BatchStats>,
}

/// Default capacity of the query cache: 16 MiB (a text query of a FILIP
/// bundle holds about 40 KB).
pub const DEFAULT_QUERY_CACHE_BYTES: u64 = 16 << 20;

/// Bundle hash, modality, text.
type QueryKey = (String, Modality, String);

#[derive(Debug)]
struct QueryCache {
    lru: Lru<QueryKey, Arc<Encoded>>,
    hits: u64,
    misses: u64,
}

/// Counters of the query cache ([`Engine::query_cache_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueryCacheStats {
    /// Queries answered from the cache.
    pub hits: u64,
    /// Queries encoded (text and SMILES; images are never cached).
    pub misses: u64,
    /// Queries held now.
    pub entries: u64,
    /// Bytes they hold.
    pub bytes: u64,
    /// Queries dropped to stay within the capacity, least recently used first.
    pub evictions: u64,
}

/// The entry point of the library: see the [module docs](self).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("models_dirs", &self.inner.models_dirs)
            .field("device", &self.inner.encoder.session.device)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// A builder with the defaults: CPU, no extra models folder.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The ONNX Runtime in use, loaded on first call.
    pub fn runtime(&self) -> Result<Arc<Runtime>> {
        if let Some(r) = self.inner.runtime.get() {
            return Ok(Arc::clone(r));
        }
        let _one = lock(&self.inner.load);
        if let Some(r) = self.inner.runtime.get() {
            return Ok(Arc::clone(r));
        }
        let r = Runtime::load(&self.inner.runtime_options)?;
        Ok(Arc::clone(self.inner.runtime.get_or_init(|| r)))
    }

    /// The runtime options the engine loads ONNX Runtime with.
    pub fn runtime_options(&self) -> &RuntimeOptions {
        &self.inner.runtime_options
    }

    /// Session and encoder settings.
    pub fn encoder_options(&self) -> &EncoderOptions {
        &self.inner.encoder
    }

    /// Session settings (device, fallback, threads).
    pub fn session_options(&self) -> &SessionOptions {
        &self.inner.encoder.session
    }

    /// The health report of `weft doctor`: the library, providers, CPU
    /// features and bundles (`verify` hashes every bundle file).
    pub fn doctor(&self, verify: bool) -> crate::doctor::DoctorReport {
        crate::doctor::run(
            &self.inner.runtime_options,
            &self.inner.models_dir_origins,
            verify,
        )
    }

    /// The folders searched for bundles, in order.
    pub fn models_dirs(&self) -> &[PathBuf] {
        &self.inner.models_dirs
    }

    /// Every bundle folder in the models folders, with its problems
    /// (`deep` also hashes every file).
    pub fn bundles(&self, deep: bool) -> Vec<bundle::BundleStatus> {
        bundle::scan(&self.inner.models_dirs, deep)
    }

    /// Where bundle `name` would be found: a folder holding a bundle, or a
    /// folder of that name in the models folders.
    pub fn resolve_bundle(&self, name_or_path: &str) -> Result<PathBuf> {
        bundle::resolve(name_or_path, &self.inner.models_dirs)
    }

    /// A bundle by name (in the models folders) or folder, opened and
    /// verified once per engine.
    pub fn bundle(&self, name_or_path: &str) -> Result<Bundle> {
        let dir = self.resolve_bundle(name_or_path)?;
        self.bundle_at(&dir)
    }

    /// A bundle by name in the models folders only (never a path: what a
    /// daemon accepts from clients).
    pub fn installed_bundle(&self, name: &str) -> Result<Bundle> {
        let dir = self
            .installed_bundle_dir(name)
            .ok_or_else(|| Error::BundleNotFound {
                name: name.to_string(),
                searched: self
                    .inner
                    .models_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect(),
            })?;
        self.bundle_at(&dir)
    }

    /// The folder of bundle `name` in the models folders, if one holds it.
    pub fn installed_bundle_dir(&self, name: &str) -> Option<PathBuf> {
        self.inner
            .models_dirs
            .iter()
            .map(|d| d.join(name))
            .find(|d| d.join(bundle::MANIFEST_FILE).is_file())
    }

    /// The bundle in folder `dir`, opened and verified once per engine.
    pub fn bundle_at(&self, dir: &Path) -> Result<Bundle> {
        // The manifest lists every file's sha256, so a bundle changed on
        // disk (re-imported, quantized) has a new manifest: opened afresh.
        let stamp = std::fs::metadata(dir.join(bundle::MANIFEST_FILE))
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if let Some((s, b)) = lock(&self.inner.bundles).get(&key) {
            if *s == stamp {
                return Ok(b.clone());
            }
        }
        let b = Bundle::open(dir)?;
        lock(&self.inner.bundles).insert(key, (stamp, b.clone()));
        Ok(b)
    }

    /// Fresh encoders of a bundle for one caller's exclusive use (bulk
    /// work such as [`Collection::index`]; concurrent small calls go
    /// through [`Engine::submit`]).
    pub fn encoders(&self, bundle: &Bundle) -> Result<BundleEncoders> {
        BundleEncoders::new(self.runtime()?, bundle.clone(), self.inner.encoder.clone())
    }

    fn batcher(&self, bundle: &Bundle) -> Result<Arc<batcher::Batcher>> {
        if let Some(b) = lock(&self.inner.batchers).get(bundle.hash()) {
            return Ok(Arc::clone(b));
        }
        let runtime = self.runtime()?;
        let make = || {
            BundleEncoders::new(
                Arc::clone(&runtime),
                bundle.clone(),
                self.inner.encoder.clone(),
            )
        };
        let started = Arc::new(batcher::Batcher::start(
            make,
            self.inner.max_batch,
            self.inner.max_wait,
            Arc::clone(&self.inner.stats),
        )?);
        let mut map = lock(&self.inner.batchers);
        Ok(Arc::clone(
            map.entry(bundle.hash().to_string()).or_insert(started),
        ))
    }

    /// Queues `inputs` for the bundle's shared, batching encoders and
    /// returns at once; `.await` the ticket or [`EncodeTicket::wait`] on
    /// it. A full queue is [`Error::Busy`]. Dropping the ticket cancels what
    /// is not yet encoded.
    pub fn submit(&self, bundle: &Bundle, inputs: Vec<Content>) -> Result<EncodeTicket> {
        self.batcher(bundle)?.submit(inputs)
    }

    /// Encodes `inputs` with the bundle (batched with concurrent callers);
    /// one result per input, in order.
    pub fn embed(&self, bundle: &Bundle, inputs: Vec<Content>) -> Result<Vec<Result<Encoded>>> {
        Ok(self.submit(bundle, inputs)?.wait())
    }

    /// Encodes one input.
    pub fn embed_one(&self, bundle: &Bundle, input: impl Into<Content>) -> Result<Encoded> {
        let mut out = self.embed(bundle, vec![input.into()])?;
        out.pop().expect("one result per input")
    }

    /// Encodes a search query. A text or SMILES encoded recently with the
    /// same bundle comes from the query cache; images are always encoded.
    pub fn embed_query(&self, bundle: &Bundle, content: Content) -> Result<Encoded> {
        let key = match &content {
            Content::Text(t) => (bundle.hash().to_string(), Modality::Text, t.clone()),
            // The exact string: the tokenizer sees it untrimmed.
            Content::Smiles(s) => (bundle.hash().to_string(), Modality::Molecule, s.clone()),
            _ => return self.embed_one(bundle, content),
        };
        if let Some(hit) = {
            let mut c = lock(&self.inner.queries);
            let hit = c.lru.get(&key);
            if hit.is_some() {
                c.hits += 1;
            }
            hit
        } {
            return Ok(Encoded::clone(&hit));
        }
        let encoded = self.embed_one(bundle, content)?;
        let bytes = ((encoded.embedding.len() + encoded.tokens.len()) * 4
            + key.0.len()
            + key.2.len()
            + 128) as u64;
        let mut c = lock(&self.inner.queries);
        c.misses += 1;
        c.lru.insert(key, Arc::new(encoded.clone()), bytes);
        Ok(encoded)
    }

    /// Counters of the query cache.
    pub fn query_cache_stats(&self) -> QueryCacheStats {
        let c = lock(&self.inner.queries);
        QueryCacheStats {
            hits: c.hits,
            misses: c.misses,
            entries: c.lru.len() as u64,
            bytes: c.lru.bytes(),
            evictions: c.lru.evictions(),
        }
    }

    /// The execution providers the bundle's shared encoders ran on so far.
    pub fn providers(&self, bundle: &Bundle) -> Vec<(Modality, ActiveProvider)> {
        lock(&self.inner.batchers)
            .get(bundle.hash())
            .map(|b| b.providers())
            .unwrap_or_default()
    }

    /// Counters of the dynamic batcher (every bundle).
    pub fn batch_stats(&self) -> &BatchStats {
        &self.inner.stats
    }

    /// Zero-shot classification of `input` with the bundle.
    pub fn classify(
        &self,
        bundle: &Bundle,
        input: impl Into<Content>,
        labels: &[String],
        options: &ClassifyOptions,
    ) -> Result<Classification> {
        // The classifier's own encoders (they encode the label prompts)
        // take the input too: one model load, not one per lane as well.
        let input = input.into();
        let classifier = self.classifier(bundle)?;
        let mut c = lock(&classifier);
        c.classify(input.as_input(), labels, options)
    }

    /// Zero-shot classification of an encoded input.
    pub fn classify_query(
        &self,
        bundle: &Bundle,
        query: &Query,
        labels: &[String],
        options: &ClassifyOptions,
    ) -> Result<Classification> {
        let classifier = self.classifier(bundle)?;
        let mut c = lock(&classifier);
        c.classify_query(query, labels, options)
    }

    fn classifier(&self, bundle: &Bundle) -> Result<Arc<Mutex<Classifier>>> {
        if let Some(c) = lock(&self.inner.classifiers).get(bundle.hash()) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(Mutex::new(Classifier::with_cache(
            self.encoders(bundle)?,
            Arc::clone(&self.inner.labels),
        )));
        let mut map = lock(&self.inner.classifiers);
        Ok(Arc::clone(
            map.entry(bundle.hash().to_string()).or_insert(c),
        ))
    }

    /// Whether `dir` holds a collection.
    pub fn is_collection(dir: impl AsRef<Path>) -> bool {
        store::Collection::exists(dir.as_ref())
    }

    /// Opens the collection in `dir` for writing, or creates it for
    /// `bundle` (a name or folder). An existing collection must have been
    /// made with this bundle.
    pub fn open_or_create(&self, dir: impl AsRef<Path>, bundle: &str) -> Result<Collection> {
        let dir = dir.as_ref();
        if Self::is_collection(dir) {
            let c = self.open(dir)?;
            let wanted = self.bundle(bundle)?;
            c.store.check_bundle(&wanted)?;
            Ok(c)
        } else {
            self.create(dir, bundle, &CreateOptions::default())
        }
    }

    /// Creates a collection in `dir` for `bundle` and opens it for writing.
    pub fn create(
        &self,
        dir: impl AsRef<Path>,
        bundle: &str,
        options: &CreateOptions,
    ) -> Result<Collection> {
        let bundle = self.bundle(bundle)?;
        self.create_for(dir, bundle, options)
    }

    /// Creates a collection in `dir` for an opened bundle.
    pub fn create_for(
        &self,
        dir: impl AsRef<Path>,
        bundle: Bundle,
        options: &CreateOptions,
    ) -> Result<Collection> {
        let mut config = CollectionConfig::for_bundle(&bundle);
        if let Some(d) = options.token_dtype {
            config = config.with_token_dtype(d);
        }
        if let Some(h) = options.hnsw {
            config = config.with_hnsw(h);
        }
        if let Some(f) = options.pool_factor {
            config = config.with_pool_factor(f);
        }
        if let Some(n) = options.checkpoint_items {
            config = config.with_checkpoint_items(n);
        }
        let store = store::Collection::create(dir, config)?;
        Ok(self.handle(store, Some(bundle)))
    }

    /// Creates a collection with explicit settings (no bundle needed: for
    /// vectors an app computes itself).
    pub fn create_with_config(
        &self,
        dir: impl AsRef<Path>,
        config: CollectionConfig,
    ) -> Result<Collection> {
        Ok(self.handle(store::Collection::create(dir, config)?, None))
    }

    /// Opens the collection in `dir` for writing (one writer at a time:
    /// [`Error::Locked`]).
    pub fn open(&self, dir: impl AsRef<Path>) -> Result<Collection> {
        Ok(self.handle(store::Collection::open_writer(dir)?, None))
    }

    /// Opens the collection in `dir` for reading (any number of readers,
    /// beside one writer).
    pub fn open_read_only(&self, dir: impl AsRef<Path>) -> Result<Collection> {
        Ok(self.handle(store::Collection::open(dir)?, None))
    }

    /// Cuts a damaged write-ahead log at the last whole commit, keeping a
    /// copy (see [`store::Collection::repair`]).
    pub fn repair(&self, dir: impl AsRef<Path>) -> Result<store::RepairReport> {
        store::Collection::repair(dir)
    }

    fn handle(&self, store: store::Collection, bundle: Option<Bundle>) -> Collection {
        Collection {
            engine: self.clone(),
            store: Arc::new(store),
            bundle: bundle.map(OnceLock::from).unwrap_or_default(),
            bulk: Arc::new(Mutex::new(())),
        }
    }
}

/// An open collection: search it, add to it, index folders into it.
/// Cheap to clone; clones share the open collection (and its writer lock).
#[derive(Clone)]
pub struct Collection {
    engine: Engine,
    store: Arc<store::Collection>,
    /// The collection's bundle, opened and checked on first need.
    bundle: OnceLock<Bundle>,
    /// Held by `index`, `tag` and `flush`, which stage on the store's own
    /// batch: two of them on clones of one handle never commit each
    /// other's half-done work. [`Batch`]es do not take it.
    bulk: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("dir", &self.store.dir())
            .finish()
    }
}

impl Collection {
    /// The folder.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// The settings it was created with.
    pub fn config(&self) -> &CollectionConfig {
        self.store.config()
    }

    /// Counts, sizes and settings.
    pub fn info(&self) -> CollectionInfo {
        self.store.info()
    }

    /// The current snapshot (what searches see).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.store.snapshot()
    }

    /// The store underneath, for what the facade does not cover.
    pub fn store(&self) -> &store::Collection {
        &self.store
    }

    /// The bundle it was created with, verified (name and hash).
    pub fn bundle(&self) -> Result<&Bundle> {
        if let Some(b) = self.bundle.get() {
            return Ok(b);
        }
        let name = &self.store.config().bundle_name;
        let b = self.engine.bundle(name).map_err(|e| match e {
            Error::BundleNotFound { searched, .. } => Error::BundleNotFound {
                name: format!(
                    "{name} (collection {} was made with it)",
                    self.store.dir().display()
                ),
                searched,
            },
            e => e,
        })?;
        self.store.check_bundle(&b)?;
        Ok(self.bundle.get_or_init(|| b))
    }

    /// Uses `bundle` for this collection's encoding, after checking it is
    /// the one the collection was made with (name and hash).
    pub fn use_bundle(&self, bundle: Bundle) -> Result<()> {
        self.store.check_bundle(&bundle)?;
        let _ = self.bundle.set(bundle);
        Ok(())
    }

    /// Encodes with the collection's bundle (batched with concurrent
    /// callers); see [`Engine::submit`].
    pub fn submit(&self, inputs: Vec<Content>) -> Result<EncodeTicket> {
        self.engine.submit(self.bundle()?, inputs)
    }

    /// Encodes one input with the collection's bundle.
    pub fn embed_one(&self, input: impl Into<Content>) -> Result<Encoded> {
        self.engine.embed_one(self.bundle()?, input)
    }

    /// Indexes files and folders (images, text files, JSONL, molecule
    /// files) incrementally: unchanged files are skipped, changed ones
    /// replaced, removed ones deleted. `progress` hears after each batch.
    pub fn index<P: AsRef<Path>>(
        &self,
        paths: &[P],
        progress: impl FnMut(IndexProgress),
    ) -> Result<SyncReport> {
        let inputs: Vec<String> = paths
            .iter()
            .map(|p| p.as_ref().display().to_string())
            .collect();
        self.index_with_batch(&inputs, crate::ingest::DEFAULT_BATCH, progress)
    }

    /// Like [`Collection::index`] with the encoder batch size given.
    pub fn index_with_batch(
        &self,
        inputs: &[String],
        batch: usize,
        mut progress: impl FnMut(IndexProgress),
    ) -> Result<SyncReport> {
        let _bulk = lock(&self.bulk);
        let mut encoders = self.engine.encoders(self.bundle()?)?;
        crate::ingest::sync(
            &self.store,
            &mut encoders,
            inputs,
            batch,
            |files_done, files_total, items| {
                progress(IndexProgress {
                    files_done,
                    files_total,
                    items,
                })
            },
        )
    }

    /// A new write batch: its changes are seen by no one (another batch
    /// included) until [`Batch::commit`]; dropping it discards them.
    pub fn batch(&self) -> Batch {
        Batch {
            collection: self.clone(),
            inner: self.store.batch(),
        }
    }

    /// Encodes and adds `items` in one durable commit (all or nothing).
    pub fn add(&self, items: Vec<Item>) -> Result<CommitStats> {
        let mut b = self.batch();
        b.add_all(items)?;
        b.commit()
    }

    /// Deletes `ids` in one durable commit; returns how many existed.
    pub fn delete<S: AsRef<str>>(&self, ids: &[S]) -> Result<usize> {
        let mut b = self.batch();
        let mut found = 0;
        for id in ids {
            found += usize::from(b.delete(id.as_ref())?);
        }
        b.commit()?;
        Ok(found)
    }

    /// The top hits for `query`.
    pub fn search(
        &self,
        query: impl Into<SearchQuery>,
        options: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        let snap = self.store.snapshot();
        let (query, exclude) = match query.into() {
            SearchQuery::Id(id) => {
                let (q, doc) = Query::from_item(&snap, &id)?;
                (q, Some(doc))
            }
            SearchQuery::Query(q) => (q, None),
            SearchQuery::Content(c) => (self.encode_query(c)?, None),
        };
        let excluding;
        let options = match exclude {
            Some(doc) => {
                excluding = options.clone().with_exclude(Some(doc));
                &excluding
            }
            None => options,
        };
        crate::search::search(&snap, &query, options, &mut SearchScratch::new())
    }

    /// Encodes a query; a SMILES is kept for the molecule scorers.
    pub fn encode_query(&self, content: Content) -> Result<Query> {
        let smiles = match &content {
            Content::Smiles(s) => Some(s.trim().to_string()),
            _ => None,
        };
        let q = Query::from_encoded(self.engine.embed_query(self.bundle()?, content)?);
        Ok(match smiles {
            Some(s) => q.with_smiles(s),
            None => q,
        })
    }

    /// Zero-shot classifies every item and stores the labels in its payload
    /// (see [`crate::classify::tag_collection`]).
    pub fn tag(
        &self,
        labels: &[String],
        options: &TagOptions,
        on_item: impl FnMut(&str, Option<&Classification>, usize, usize),
    ) -> Result<TagReport> {
        let _bulk = lock(&self.bulk);
        let classifier = self.engine.classifier(self.bundle()?)?;
        let mut c = lock(&classifier);
        crate::classify::tag_collection(&mut c, &self.store, labels, options, on_item)
    }

    /// Zero-shot classification with the collection's bundle.
    pub fn classify(
        &self,
        input: impl Into<Content>,
        labels: &[String],
        options: &ClassifyOptions,
    ) -> Result<Classification> {
        self.engine.classify(self.bundle()?, input, labels, options)
    }

    /// Writes the log's items as a segment now (commits do it when due).
    pub fn checkpoint(&self) -> Result<()> {
        self.store.checkpoint()
    }

    /// Commits what the collection's own staging holds and checkpoints
    /// (before a clean shutdown).
    pub fn flush(&self) -> Result<()> {
        let _bulk = lock(&self.bulk);
        self.store.commit()?;
        self.store.checkpoint()
    }

    /// Rewrites the segments without deleted items.
    pub fn compact(&self) -> Result<()> {
        self.store.compact()
    }

    /// Verifies every checksum of every file.
    pub fn verify(&self) -> Result<()> {
        self.store.verify()
    }
}

/// An input error of an item being added, named by the item's id (the
/// encoder names inputs by their place in the batch: `item 3 ("CC(")`).
fn name_item(e: Error, id: &str) -> Error {
    match e {
        Error::InvalidInput { item, reason } if !item.contains(&format!("`{id}`")) => {
            let rest = item
                .strip_prefix("item ")
                .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
                .filter(|r| r.is_empty() || r.starts_with(' '))
                .map(str::to_string)
                .unwrap_or_else(|| format!(" ({item})"));
            Error::InvalidInput {
                item: format!("item `{id}`{rest}"),
                reason,
            }
        }
        e => e,
    }
}

/// Changes staged by one caller; see [`Collection::batch`]. `Send`, so a
/// batch may be filled on one thread and committed on another.
#[derive(Debug)]
pub struct Batch {
    collection: Collection,
    inner: store::WriteBatch,
}

impl Batch {
    /// Encodes and stages new items (an id that exists is
    /// [`Error::DuplicateId`]); on an error nothing of this call is staged.
    pub fn add_all(&mut self, items: Vec<Item>) -> Result<()> {
        // What the store keeps of each item besides its vectors; the
        // contents themselves (image bytes) move into the encoder queue.
        let mut kept = Vec::with_capacity(items.len());
        let mut contents = Vec::with_capacity(items.len());
        for item in items {
            let mut payload = item.payload;
            // The molecule scorers (motif OT, multi-grained) read an item's
            // SMILES from its payload, as `index` stores it.
            if let Content::Smiles(s) = &item.content {
                if payload.is_null() {
                    payload = serde_json::Value::Object(Default::default());
                }
                if let Some(map) = payload.as_object_mut() {
                    map.entry("smiles")
                        .or_insert_with(|| serde_json::Value::String(s.trim().to_string()));
                }
            }
            kept.push((
                item.id,
                item.content.modality(),
                item.content.source(),
                payload,
            ));
            contents.push(item.content);
        }
        let encoded = self.collection.submit(contents)?.wait();
        let mut ready = Vec::with_capacity(kept.len());
        for ((id, modality, source, payload), e) in kept.into_iter().zip(encoded) {
            ready.push(
                e.map_err(|e| name_item(e, &id))?
                    .into_item(id, modality)
                    .with_source(source)
                    .with_payload(payload),
            );
        }
        let snap = self.collection.store.snapshot();
        self.inner.add_many(&snap, ready)
    }

    /// Encodes and stages one new item.
    pub fn add(&mut self, item: Item) -> Result<()> {
        self.add_all(vec![item])
    }

    /// Stages an item whose vectors the caller computed (an id that exists
    /// is [`Error::DuplicateId`]).
    pub fn add_item(&mut self, item: NewItem) -> Result<()> {
        let snap = self.collection.store.snapshot();
        self.inner.add(&snap, item)
    }

    /// Stages an item that replaces any item with the same id.
    pub fn upsert_item(&mut self, item: NewItem) -> Result<()> {
        self.inner.upsert(item)
    }

    /// Stages the deletion of `id`; returns whether it exists.
    pub fn delete(&mut self, id: &str) -> Result<bool> {
        let snap = self.collection.store.snapshot();
        self.inner.delete(&snap, id)
    }

    /// Stages a new payload for `id`; returns whether it exists.
    pub fn set_payload(&mut self, id: &str, payload: &serde_json::Value) -> Result<bool> {
        let snap = self.collection.store.snapshot();
        self.inner.set_payload(&snap, id, payload)
    }

    /// Changes staged.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Makes the changes durable and visible, all or nothing.
    pub fn commit(self) -> Result<CommitStats> {
        self.collection.store.commit_batch(self.inner)
    }
}
