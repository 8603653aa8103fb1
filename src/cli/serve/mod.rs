//! `weft serve`: the HTTP JSON daemon (axum on tokio).
//!
//! Every error is JSON `{"error": {"code", "message"}}` with a 4xx status
//! for bad input (malformed JSON, wrong field types, unknown collection,
//! bad base64, oversized bodies, missing token); 5xx only for faults of the
//! server itself. An add is acknowledged after its commit is durable.

mod api;
mod once_map;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use weft::bundle::Bundle;
use weft::{Collection, Engine};

use once_map::{blocking, OnceMap};

/// Settings of the daemon.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    pub token: Option<String>,
    /// The roots, canonical (the check that decides).
    pub roots: Vec<PathBuf>,
    /// The roots as the operator wrote them (a symlinked root matches the
    /// paths clients write under it in the first, by-name check).
    pub roots_as_given: Vec<PathBuf>,
    pub collections_dir: PathBuf,
    pub max_body_bytes: usize,
    pub timeout: Duration,
    pub default_bundle: String,
    /// Most labels in one /classify request.
    pub max_labels: usize,
    /// Longest text or SMILES in one input, in bytes.
    pub max_text_bytes: usize,
    /// Most decoded pixels of all images in one request.
    pub max_request_pixels: u64,
    /// Most decoded bytes (pixels x channels x bytes per channel) of all
    /// images in one request.
    pub max_request_decoded_bytes: u64,
}

/// An API error: status, stable code, message naming the field or input.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (503 when a queue is full).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 503: the encoder queue is full; the client should retry.
    pub fn busy() -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "the encoder queue is full ({} requests waiting); retry after a second",
                    weft::engine::QUEUE_JOBS
                ),
            )
        }
    }

    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<weft::Error> for ApiError {
    fn from(e: weft::Error) -> Self {
        use weft::Error as E;
        let (status, code) = match e.underlying() {
            E::NotFound { .. } | E::BundleNotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            E::InvalidInput { .. } | E::WrongDimension { .. } | E::MissingEncoder { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
            }
            E::InvalidConfig { .. } => (StatusCode::BAD_REQUEST, "invalid_option"),
            E::DuplicateId { .. } => (StatusCode::CONFLICT, "duplicate_id"),
            E::BundleMismatch { .. } => (StatusCode::CONFLICT, "bundle_mismatch"),
            E::Locked { .. } => (StatusCode::CONFLICT, "locked"),
            E::Corrupted { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "corrupted"),
            E::Busy { .. } => return ApiError::busy(),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// The server's own folders and what an error body says instead, set once
/// at start: error messages name files, but a client learns nothing about
/// where the daemon keeps them.
static REDACT: std::sync::OnceLock<Vec<(String, &'static str)>> = std::sync::OnceLock::new();

fn redact(message: &str) -> String {
    let mut out = message.to_string();
    for (dir, label) in REDACT.get().map(Vec::as_slice).unwrap_or_default() {
        if !dir.is_empty() {
            out = out.replace(dir.as_str(), label);
        }
    }
    out
}

fn set_redactions(config: &ServeConfig, models_dirs: &[PathBuf]) {
    let mut pairs: Vec<(String, &'static str)> = Vec::new();
    let mut add = |p: &std::path::Path, label: &'static str| {
        pairs.push((p.display().to_string(), label));
        if let Ok(c) = p.canonicalize() {
            pairs.push((c.display().to_string(), label));
        }
    };
    add(&config.collections_dir, "<collections>");
    for d in models_dirs {
        add(d, "<models>");
    }
    if let Ok(cwd) = std::env::current_dir() {
        add(&cwd, "<server>");
    }
    // Longest first, so a folder inside another is replaced whole.
    pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let _ = REDACT.set(pairs);
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = redact(&self.message);
        let body = json!({ "error": { "code": self.code, "message": message } });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        resp
    }
}

/// Request counters for /metrics.
#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub errors_4xx: AtomicU64,
    pub errors_5xx: AtomicU64,
    pub searches: AtomicU64,
    pub adds: AtomicU64,
    pub latency_us_sum: AtomicU64,
}

/// One open collection (this daemon holds its writer lock) and its bundle.
/// Each request writes through its own batch, so requests never commit or
/// discard each other's items.
pub struct Open {
    pub collection: Collection,
    pub bundle: Bundle,
}

/// Shared state of the handlers.
pub struct State {
    pub config: ServeConfig,
    /// Runtime, bundles, batching encoders, classifiers, collections.
    pub engine: Engine,
    /// Open collections by name (this daemon holds their writer locks).
    pub collections: OnceMap<Arc<Open>>,
    /// Bundles opened (and hashed) once, by the name requests use.
    pub bundles: OnceMap<Bundle>,
    pub metrics: Metrics,
}

impl State {
    /// Validates a collection name (a plain folder name).
    pub fn collection_name(name: &str) -> Result<(), ApiError> {
        if plain_name(name) {
            Ok(())
        } else {
            Err(ApiError::bad(
                "invalid_name",
                format!("collection name `{name}`: use 1-128 letters, digits, '-', '_' or '.'"),
            ))
        }
    }

    /// The open collection `name`, opening it on first use (off the async
    /// threads; see [`OnceMap`]).
    pub async fn collection(self: &Arc<Self>, name: &str) -> Result<Arc<Open>, ApiError> {
        Self::collection_name(name)?;
        let state = Arc::clone(self);
        let owned = name.to_string();
        self.collections
            .get_or_open(name, move || async move {
                let name = owned;
                let path = state.config.collections_dir.join(&name);
                let missing = format!("collection `{name}` does not exist");
                let engine = state.engine.clone();
                let collection = blocking(move || {
                    if !Engine::is_collection(&path) {
                        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", missing));
                    }
                    Ok(engine.open(&path)?)
                })
                .await?;
                // The bundle by the name the collection records, as a request would name it.
                let bundle = state.bundle(&collection.config().bundle_name).await?;
                let c = collection.clone();
                let checked = bundle.clone();
                blocking(move || Ok(c.use_bundle(checked)?)).await?;
                Ok(Arc::new(Open { collection, bundle }))
            })
            .await
    }

    /// The bundle a request names, or the daemon's default.
    pub async fn bundle_or_default(&self, name: Option<&str>) -> Result<Bundle, ApiError> {
        self.bundle(name.unwrap_or(&self.config.default_bundle))
            .await
    }

    /// A verified bundle by name: a bundle in the models folders (never a
    /// path), opened and hashed on first use only. The daemon's default
    /// bundle may be a folder, as its operator gave it.
    pub async fn bundle(&self, name: &str) -> Result<Bundle, ApiError> {
        if let Some(b) = self.bundles.get(name) {
            return Ok(b);
        }
        if name != self.config.default_bundle && !plain_name(name) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!(
                    "field `bundle`: `{name}` is not a bundle name (1-128 letters, digits, '-', '_' or '.'; paths are not accepted)"
                ),
            ));
        }
        // A request's name is looked up in the models folders only; the
        // operator's default may also be a folder.
        let found = if name == self.config.default_bundle {
            self.engine.resolve_bundle(name).ok()
        } else {
            self.engine.installed_bundle_dir(name)
        };
        let dir = found.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("bundle `{name}` is not installed (GET /health lists the bundles in use)"),
            )
        })?;
        let owned = name.to_string();
        let engine = self.engine.clone();
        self.bundles
            .get_or_open(name, move || {
                blocking(move || {
                    engine.bundle_at(&dir).map_err(|e| {
                        // The reason may quote the operator's files: it goes to the log.
                        eprintln!("weft serve: bundle `{owned}` does not open: {e}");
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "bundle_broken",
                            format!("bundle `{owned}` does not open (the server log says why)"),
                        )
                    })
                })
            })
            .await
    }

    /// Commits and checkpoints every open collection (shutdown).
    pub fn flush_all(&self) {
        for (name, open) in self.collections.opened() {
            if let Err(e) = open.collection.flush() {
                eprintln!("weft serve: flushing collection {name}: {e}");
            }
        }
    }
}

/// A plain folder name (collections, bundles): 1-128 ASCII letters, digits,
/// '-', '_' or '.', not starting with '.' (so never a path).
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub fn run(config: ServeConfig, engine: Engine) -> anyhow::Result<()> {
    if !config.bind.ip().is_loopback() && config.token.is_none() {
        anyhow::bail!(
            "refusing to listen on {} without a bearer token: pass --token (or WEFT_TOKEN), or bind 127.0.0.1",
            config.bind
        );
    }
    std::fs::create_dir_all(&config.collections_dir)?;
    set_redactions(&config, engine.models_dirs());
    // Fail at start, not at the first request, when ONNX Runtime is missing.
    engine.runtime()?;
    let state = Arc::new(State {
        engine,
        collections: OnceMap::default(),
        bundles: OnceMap::default(),
        metrics: Metrics::default(),
        config,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(state.config.bind).await?;
        let addr = listener.local_addr()?;
        println!("weft serve: listening on http://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let app = api::router(Arc::clone(&state));
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        anyhow::Ok(())
    })?;
    state.flush_all();
    println!("weft serve: stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}
