//! The work behind each C function, with Rust types only: argument
//! checks that name the argument, and calls into [`weft::Engine`]. Nothing
//! here is `unsafe`; [`crate::ffi`] converts the pointers.

use std::ffi::CString;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use weft::classify::ClassifyOptions;
use weft::encoder::Encoded;
use weft::ingest::SyncReport;
use weft::runtime::Device;
use weft::search::{Filter, Scorer};
use weft::{
    Batch, Collection, Content, Engine, Error, ErrorKind, Item, SearchOptions, SearchQuery,
};

use crate::ffi::weft_status;

/// A failed call: the status C gets and the message `weft_last_error`
/// gives.
#[derive(Debug)]
pub struct Failure {
    /// The status code.
    pub status: weft_status,
    /// What went wrong, naming the input.
    pub message: String,
}

impl Failure {
    /// A bad argument (NULL, not UTF-8, malformed JSON, unknown option).
    pub fn argument(name: &str, reason: impl std::fmt::Display) -> Self {
        Failure {
            status: weft_status::WEFT_INVALID_ARGUMENT,
            message: format!("argument `{name}`: {reason}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match e.kind() {
            ErrorKind::InvalidConfig => weft_status::WEFT_INVALID_ARGUMENT,
            ErrorKind::InvalidInput => weft_status::WEFT_INVALID_INPUT,
            ErrorKind::NotFound => weft_status::WEFT_NOT_FOUND,
            ErrorKind::CorruptedData => weft_status::WEFT_CORRUPTED_DATA,
            ErrorKind::Bundle => weft_status::WEFT_BUNDLE_ERROR,
            ErrorKind::Io => weft_status::WEFT_IO_ERROR,
            ErrorKind::Locked => weft_status::WEFT_LOCKED,
            ErrorKind::Busy => weft_status::WEFT_BUSY,
            ErrorKind::Runtime => weft_status::WEFT_RUNTIME_ERROR,
            ErrorKind::ProviderUnavailable => weft_status::WEFT_PROVIDER_UNAVAILABLE,
            _ => weft_status::WEFT_INTERNAL,
        };
        Failure {
            status,
            message: e.to_string(),
        }
    }
}

/// The result of a call.
pub type Outcome<T> = Result<T, Failure>;

/// A C string for a Rust string (an interior NUL, which C cannot hold, is
/// dropped).
pub fn c_string(s: impl Into<String>) -> CString {
    let s: String = s.into();
    CString::new(s).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|b| *b != 0);
        CString::new(bytes).unwrap_or_default()
    })
}

/// What a query or input buffer holds (`WEFT_TEXT`, `WEFT_IMAGE`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// An encoded image file's bytes.
    Image,
    /// A SMILES string.
    Smiles,
    /// A stored item's id (searches only).
    Id,
    /// An image file's path (UTF-8).
    ImagePath,
}

impl Kind {
    /// The kind for a C constant.
    pub fn from_raw(kind: u32, arg: &str) -> Outcome<Kind> {
        Ok(match kind {
            crate::ffi::WEFT_TEXT => Kind::Text,
            crate::ffi::WEFT_IMAGE => Kind::Image,
            crate::ffi::WEFT_SMILES => Kind::Smiles,
            crate::ffi::WEFT_ID => Kind::Id,
            crate::ffi::WEFT_IMAGE_PATH => Kind::ImagePath,
            other => {
                return Err(Failure::argument(
                    arg,
                    format!(
                    "{other} is not WEFT_TEXT, WEFT_IMAGE, WEFT_SMILES, WEFT_ID or WEFT_IMAGE_PATH"
                ),
                ))
            }
        })
    }
}

fn utf8(data: &[u8], arg: &str) -> Outcome<String> {
    String::from_utf8(data.to_vec()).map_err(|e| {
        Failure::argument(
            arg,
            format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// The content a buffer of `kind` holds; `arg` names it in errors.
pub fn content(kind: Kind, data: &[u8], arg: &str) -> Outcome<Content> {
    Ok(match kind {
        Kind::Text => Content::Text(utf8(data, arg)?),
        Kind::Smiles => Content::Smiles(utf8(data, arg)?),
        Kind::Image => Content::ImageBytes {
            name: arg.to_string(),
            bytes: data.to_vec(),
        },
        Kind::ImagePath => Content::ImagePath(utf8(data, arg)?.into()),
        Kind::Id => {
            return Err(Failure::argument(
                arg,
                "WEFT_ID names a stored item: it is a search query, not content to encode",
            ))
        }
    })
}

/// A JSON argument, or `None` for NULL.
pub fn json(text: Option<&str>, arg: &str) -> Outcome<Option<Value>> {
    text.map(|t| {
        serde_json::from_str(t).map_err(|e| Failure::argument(arg, format!("not JSON: {e}")))
    })
    .transpose()
}

/// Builds an engine: `project_dir` holds `onnxruntime/` and `models/`;
/// `options` is a JSON object (see `weft_engine_new`).
pub fn engine_new(project_dir: Option<&str>, options: Option<&str>) -> Outcome<Engine> {
    let mut b = Engine::builder();
    if let Some(dir) = project_dir {
        b = b.project_dir(dir);
    }
    let Some(options) = json(options, "options_json")? else {
        return Ok(b.build()?);
    };
    let Value::Object(map) = options else {
        return Err(Failure::argument("options_json", "not a JSON object"));
    };
    for (key, v) in &map {
        let field = format!("options_json.{key}");
        let text = || {
            v.as_str()
                .ok_or_else(|| Failure::argument(&field, "not a string"))
        };
        b = match key.as_str() {
            "models_dir" => b.models_dir(text()?),
            "ort_library" => b.ort_library(text()?),
            "device" => b.device(text()?.parse::<Device>()?),
            "allow_cpu_fallback" => b.allow_cpu_fallback(
                v.as_bool()
                    .ok_or_else(|| Failure::argument(&field, "not true or false"))?,
            ),
            "threads" => b.threads(
                v.as_u64()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or_else(|| Failure::argument(&field, "not a whole number in 1..=1024"))?
                    as usize,
            ),
            _ => {
                return Err(Failure::argument(
                    &field,
                    "unknown option (models_dir, ort_library, device, allow_cpu_fallback, threads)",
                ))
            }
        };
    }
    Ok(b.build()?)
}

/// ONNX Runtime's version, loading it if no call has yet.
pub fn ort_version(engine: &Engine) -> Outcome<String> {
    Ok(engine.runtime()?.version().to_string())
}

/// The execution providers that ran the bundle's encoders so far, as a
/// JSON object `{"image": "CPUExecutionProvider", ...}`.
pub fn providers(engine: &Engine, bundle: &str) -> Outcome<String> {
    let bundle = engine.bundle(bundle)?;
    let map: serde_json::Map<String, Value> = engine
        .providers(&bundle)
        .into_iter()
        .map(|(m, p)| (m.to_string(), Value::String(p.to_string())))
        .collect();
    Ok(Value::Object(map).to_string())
}

/// An open collection and the changes staged on it for the next commit.
#[derive(Debug)]
pub struct CollectionHandle {
    /// The collection.
    pub collection: Collection,
    staged: Mutex<Option<Batch>>,
}

impl CollectionHandle {
    /// Opens the collection in `dir`; with a bundle, creates it if it does
    /// not exist (and checks an existing one was made with that bundle).
    pub fn open(
        engine: &Engine,
        dir: &str,
        bundle: Option<&str>,
        read_only: bool,
    ) -> Outcome<Self> {
        let collection = match (bundle, read_only) {
            (_, true) => engine.open_read_only(dir)?,
            (Some(b), false) => engine.open_or_create(dir, b)?,
            (None, false) => engine.open(dir)?,
        };
        Ok(CollectionHandle {
            collection,
            staged: Mutex::new(None),
        })
    }

    fn staged(&self) -> MutexGuard<'_, Option<Batch>> {
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Indexes a file or folder (incremental; commits as it goes).
    pub fn index(&self, path: &str) -> Outcome<SyncReport> {
        Ok(self.collection.index(&[path], |_| {})?)
    }

    /// Encodes and stages one item for the next commit.
    pub fn add(&self, id: &str, content: Content, payload: Option<&str>) -> Outcome<()> {
        let arg = format!("payload_json (item `{id}`)");
        let payload = json(payload, &arg)?.unwrap_or(Value::Null);
        if !(payload.is_null() || payload.is_object()) {
            return Err(Failure::argument(&arg, "not a JSON object"));
        }
        let item = Item::new(id, content).with_payload(payload);
        let mut staged = self.staged();
        staged
            .get_or_insert_with(|| self.collection.batch())
            .add(item)?;
        Ok(())
    }

    /// Stages the deletion of `id`; whether it exists.
    pub fn delete(&self, id: &str) -> Outcome<bool> {
        let mut staged = self.staged();
        Ok(staged
            .get_or_insert_with(|| self.collection.batch())
            .delete(id)?)
    }

    /// Commits what is staged (all or nothing); the number of changes.
    pub fn commit(&self) -> Outcome<usize> {
        let Some(batch) = self.staged().take() else {
            return Ok(0);
        };
        let n = batch.len();
        batch.commit()?;
        Ok(n)
    }

    /// Searches with a query of `kind`.
    pub fn search(
        &self,
        kind: Kind,
        data: &[u8],
        k: usize,
        scorer: Option<&str>,
        filter: Option<&str>,
    ) -> Outcome<Results> {
        let query = match kind {
            Kind::Id => SearchQuery::Id(utf8(data, "query")?),
            _ => SearchQuery::Content(content(kind, data, "query")?),
        };
        if k == 0 {
            return Err(Failure::argument("k", "must be at least 1"));
        }
        let mut options = SearchOptions::default().with_k(k);
        if let Some(s) = scorer {
            options = options.with_scorer(s.parse::<Scorer>()?);
        }
        if let Some(f) = filter {
            options = options.with_filter(Some(Filter::parse(f)?));
        }
        let hits = self.collection.search(query, &options)?;
        Ok(Results {
            hits: hits
                .into_iter()
                .map(|h| ResultHit {
                    id: c_string(h.id),
                    source: c_string(h.source),
                    payload: c_string(h.payload.to_string()),
                    score: h.score,
                })
                .collect(),
        })
    }
}

/// One hit, with its strings ready for C.
#[derive(Debug)]
pub struct ResultHit {
    /// The item's id.
    pub id: CString,
    /// The item's source file ("" when none).
    pub source: CString,
    /// The payload as JSON (`null` when none).
    pub payload: CString,
    /// The score.
    pub score: f32,
}

/// The hits of a search, best first.
#[derive(Debug)]
pub struct Results {
    /// The hits.
    pub hits: Vec<ResultHit>,
}

/// One label of a classification.
#[derive(Debug)]
pub struct LabelResult {
    /// The label.
    pub label: CString,
    /// Its probability.
    pub probability: f32,
    /// Its cosine (or FILIP) score.
    pub score: f32,
}

/// A classification, every label, best first.
#[derive(Debug)]
pub struct ClassResult {
    /// The labels.
    pub labels: Vec<LabelResult>,
    /// The best label, `None` when abstaining.
    pub best: Option<CString>,
}

/// Zero-shot classification of `input` with `bundle` over `labels`.
pub fn classify(
    engine: &Engine,
    bundle: &str,
    input: Content,
    labels: Vec<String>,
) -> Outcome<ClassResult> {
    if labels.is_empty() {
        return Err(Failure::argument("labels", "no labels given"));
    }
    let bundle = engine.bundle(bundle)?;
    let options = ClassifyOptions::default().with_top_k(labels.len());
    let c = engine.classify(&bundle, input, &labels, &options)?;
    Ok(ClassResult {
        labels: c
            .labels
            .into_iter()
            .map(|l| LabelResult {
                label: c_string(l.label),
                probability: l.probability,
                score: l.score,
            })
            .collect(),
        best: c.best.map(c_string),
    })
}

/// Encodes one input with `bundle`.
pub fn embed(engine: &Engine, bundle: &str, input: Content) -> Outcome<Encoded> {
    let bundle = engine.bundle(bundle)?;
    Ok(engine.embed_one(&bundle, input)?)
}
