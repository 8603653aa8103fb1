//! Routes, request parsing and handlers of the daemon.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State as Axs};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use weft::classify::{ClassifyOptions, MultiLabel};
use weft::index::HnswParams;
use weft::search::{Filter, Query, Scorer, SearchOptions};
use weft::store::TokenDtype;
use weft::{Content, CreateOptions, Engine, SearchQuery};

use super::once_map::blocking;
use super::{bump, ApiError, State};

type Shared = Arc<State>;
type ApiResult = Result<Response, ApiError>;

/// Every route: method, path, summary. The OpenAPI document is built from
/// this table and a test checks each entry answers.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("get", "/health", "Versions, execution providers in use, loaded models"),
    ("get", "/metrics", "Prometheus text metrics"),
    ("get", "/openapi.json", "This document"),
    ("get", "/collections", "List collections"),
    ("post", "/collections", "Create a collection {name, bundle?, token_dtype?, m?, ef_construction?}"),
    ("get", "/collections/{name}", "Collection info"),
    ("delete", "/collections/{name}", "Delete a collection"),
    ("post", "/collections/{name}/compact", "Reclaim deleted items, rebuild the index"),
    ("post", "/collections/{name}/items", "Add or upsert items {items: [{id, text|smiles|image_base64|path, payload?}], upsert?}"),
    ("get", "/collections/{name}/items/{id}", "Get an item"),
    ("delete", "/collections/{name}/items/{id}", "Delete an item"),
    ("post", "/collections/{name}/search", "Search {text|smiles|image_base64|path|id|vector, k?, scorer?, filter?, explain?}"),
    ("post", "/classify", "Zero-shot classify {bundle?, text|smiles|image_base64|path, labels, templates?, top_k?, abstain?, multi_label?}"),
    ("post", "/embed", "Embeddings and token matrices {bundle?, inputs: [{text|smiles|image_base64|path}]}"),
];

pub fn router(state: Shared) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route(
            "/collections",
            get(list_collections).post(create_collection),
        )
        .route(
            "/collections/{name}",
            get(collection_info).delete(delete_collection),
        )
        .route("/collections/{name}/compact", post(compact))
        .route("/collections/{name}/items", post(add_items))
        .route(
            "/collections/{name}/items/{id}",
            get(get_item).delete(delete_item),
        )
        .route("/collections/{name}/search", post(search_handler))
        .route("/classify", post(classify))
        .route("/embed", post(embed))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such endpoint (see /openapi.json)",
            )
        })
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Auth, per-request timeout and metrics around every handler.
/// Whether a request carried the right token (or none is required); /health
/// says more to an authorised caller.
#[derive(Clone, Copy)]
struct Authorised(bool);

async fn guard(Axs(state): Axs<Shared>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    bump(&state.metrics.requests);
    let public = req.uri().path() == "/health";
    let mut authorised = true;
    if let Some(token) = &state.config.token {
        let ok = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                // The scheme is case-insensitive (RFC 7235).
                let (scheme, t) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| t.trim_start())
            })
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
        authorised = ok;
        if !ok && !public {
            bump(&state.metrics.errors_4xx);
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token (Authorization: Bearer ...)",
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(Authorised(authorised));
    let resp = match tokio::time::timeout(state.config.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the request took longer than {:?}", state.config.timeout),
        )
        .into_response(),
    };
    let s = resp.status();
    if s.is_client_error() {
        bump(&state.metrics.errors_4xx);
    } else if s.is_server_error() {
        bump(&state.metrics.errors_5xx);
    }
    state
        .metrics
        .latency_us_sum
        .fetch_add(start.elapsed().as_micros() as u64, Relaxed);
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a JSON body; errors name the field.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                e.body_text(),
            )
        } else {
            ApiError::bad("bad_body", e.body_text())
        }
    })?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad(
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
            )
        } else if path == "." {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{inner}"),
            )
        } else {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("field `{path}`: {inner}"),
            )
        }
    })
}

fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

/// One input in a request: exactly one of the fields.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InputSpec {
    text: Option<String>,
    smiles: Option<String>,
    image_base64: Option<String>,
    path: Option<String>,
}

impl InputSpec {
    fn given(&self) -> usize {
        [
            self.text.is_some(),
            self.smiles.is_some(),
            self.image_base64.is_some(),
            self.path.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }

    /// The owned input, charged to the request's `budget`; `at` names it in errors.
    fn resolve(
        self,
        state: &State,
        at: &str,
        budget: &mut Budget,
    ) -> Result<(Content, Option<String>), ApiError> {
        let (input, smiles) = self.resolve_unchecked(state, at)?;
        budget.charge(state, &input, at)?;
        Ok((input, smiles))
    }

    fn resolve_unchecked(
        self,
        state: &State,
        at: &str,
    ) -> Result<(Content, Option<String>), ApiError> {
        if self.given() != 1 {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{at}: give exactly one of `text`, `smiles`, `image_base64`, `path`"),
            ));
        }
        if let Some(t) = self.text {
            return Ok((Content::Text(t), None));
        }
        if let Some(s) = self.smiles {
            return Ok((Content::Smiles(s.clone()), Some(s)));
        }
        if let Some(b) = self.image_base64 {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "bad_base64",
                        format!("{at}.image_base64: not valid base64: {e}"),
                    )
                })?;
            return Ok((
                Content::ImageBytes {
                    name: format!("{at}.image_base64"),
                    bytes,
                },
                None,
            ));
        }
        let p = self.path.unwrap_or_default();
        let path = allowed_path(state, &p, at)?;
        let bytes = std::fs::read(&path).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable_path",
                format!("{at}.path `{p}`: {e}"),
            )
        })?;
        let kind = weft::ingest::SourceKind::of(&path);
        match kind {
            Some(weft::ingest::SourceKind::Image) => {
                Ok((Content::ImageBytes { name: p, bytes }, None))
            }
            Some(weft::ingest::SourceKind::Text) => Ok((
                Content::Text(String::from_utf8_lossy(&bytes).into_owned()),
                None,
            )),
            _ => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{at}.path `{p}`: only image and text files can be given by path"),
            )),
        }
    }
}

/// What one request may still cost: decoded image pixels and bytes, over
/// all its inputs.
struct Budget {
    pixels: u64,
    bytes: u64,
}

impl Budget {
    fn new(state: &State) -> Self {
        Budget {
            pixels: state.config.max_request_pixels,
            bytes: state.config.max_request_decoded_bytes,
        }
    }

    /// Refuses (413) an input over the text limit or past the pixel budget,
    /// before anything is tokenized or decoded.
    fn charge(&mut self, state: &State, input: &Content, at: &str) -> Result<(), ApiError> {
        let too_large =
            |msg: String| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", msg);
        match input {
            Content::Text(t) | Content::Smiles(t) => {
                let max = state.config.max_text_bytes;
                if t.len() > max {
                    return Err(too_large(format!(
                        "{at}: {} bytes of text, over the limit of {max} (--max-text-bytes)",
                        t.len()
                    )));
                }
            }
            Content::ImageBytes { bytes, .. } => {
                // Only the header is read; a file that does not parse is
                // left to the decoder, which names the problem.
                if let Some(info) = weft::encoder::image::header_info(bytes) {
                    let (w, h, px) = (info.width, info.height, info.pixels());
                    if px > self.pixels {
                        return Err(too_large(format!(
                            "{at}: {w}x{h} pixels; the images of one request may hold {} pixels in all (--max-request-pixels)",
                            state.config.max_request_pixels
                        )));
                    }
                    if info.decoded_bytes > self.bytes {
                        return Err(too_large(format!(
                            "{at}: {w}x{h} pixels x {} channels x {} bits decode to {} bytes; the images of one request may decode to {} bytes in all (--max-request-decoded-mib)",
                            info.channels,
                            info.bits_per_channel,
                            info.decoded_bytes,
                            state.config.max_request_decoded_bytes
                        )));
                    }
                    self.pixels -= px;
                    self.bytes -= info.decoded_bytes;
                }
            }
            // Paths are read into bytes (under the roots) before they are
            // charged; one that reached here would skip the budget.
            Content::ImagePath(_) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("{at}: an image path reached the budget unread"),
                ))
            }
        }
        Ok(())
    }
}

/// A server-side path must lie inside a configured root.
fn allowed_path(state: &State, p: &str, at: &str) -> Result<PathBuf, ApiError> {
    let forbidden = |why: String| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "path_not_allowed",
            format!("{at}.path `{p}`: {why}"),
        )
    };
    if state.config.roots.is_empty() {
        return Err(forbidden(
            "server-side paths are disabled (start weft serve with --root DIR)".into(),
        ));
    }
    // A path outside every root is refused before the file system is asked,
    // so the answer says nothing about what exists there.
    let lexical = lexical_absolute(Path::new(p));
    let by_name = state.config.roots.iter().any(|r| lexical.starts_with(r))
        || state
            .config
            .roots_as_given
            .iter()
            .any(|r| lexical.starts_with(lexical_absolute(r)));
    if !by_name {
        return Err(forbidden("outside the configured roots".into()));
    }
    let canon = Path::new(p).canonicalize().map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable_path",
            format!("{at}.path `{p}`: {e}"),
        )
    })?;
    if state.config.roots.iter().any(|r| canon.starts_with(r)) {
        Ok(canon)
    } else {
        Err(forbidden("outside the configured roots".into()))
    }
}

/// `p` made absolute (against the working folder) with `.` and `..`
/// resolved by name only, without following links.
fn lexical_absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

async fn encode_one(
    state: &State,
    bundle: &weft::bundle::Bundle,
    input: Content,
) -> Result<weft::encoder::Encoded, ApiError> {
    let mut out = state.engine.submit(bundle, vec![input])?.await;
    Ok(out.pop().expect("one result per input")?)
}

// ---------------------------------------------------------------- handlers

async fn health(
    Axs(state): Axs<Shared>,
    axum::Extension(Authorised(authorised)): axum::Extension<Authorised>,
) -> ApiResult {
    if !authorised {
        // Without the token: alive or not, nothing about the server.
        return ok(StatusCode::OK, json!({ "status": "ok" }));
    }
    let models: Vec<Value> = {
        state
            .bundles
            .opened()
            .into_iter()
            .flat_map(|(_, b)| {
                state
                    .engine
                    .providers(&b)
                    .iter()
                    .map(|(m, prov)| json!({"modality": m, "provider": prov.to_string()}))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut open: Vec<String> = state
        .collections
        .opened()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    open.sort();
    let runtime = state.engine.runtime()?;
    ok(
        StatusCode::OK,
        json!({
            "status": "ok",
            "weft_version": env!("CARGO_PKG_VERSION"),
            "onnxruntime": { "version": runtime.version(), "library": runtime.library(), "available_providers": runtime.available_providers() },
            "device": format!("{:?}", state.engine.session_options().device),
            "models_loaded": models,
            "collections_open": open,
        }),
    )
}

async fn metrics(Axs(state): Axs<Shared>) -> Response {
    let m = &state.metrics;
    let batch = state.engine.batch_stats();
    let body = format!(
        "# HELP weft_requests_total HTTP requests.\n# TYPE weft_requests_total counter\nweft_requests_total {}\n\
         # HELP weft_errors_total HTTP error responses by class.\n# TYPE weft_errors_total counter\nweft_errors_total{{class=\"4xx\"}} {}\nweft_errors_total{{class=\"5xx\"}} {}\n\
         # HELP weft_searches_total Searches.\n# TYPE weft_searches_total counter\nweft_searches_total {}\n\
         # HELP weft_items_added_total Items added (acknowledged).\n# TYPE weft_items_added_total counter\nweft_items_added_total {}\n\
         # HELP weft_request_seconds_sum Total request time.\n# TYPE weft_request_seconds_sum counter\nweft_request_seconds_sum {:.6}\n\
         # HELP weft_encode_batches_total Encoder calls made by the dynamic batcher.\n# TYPE weft_encode_batches_total counter\nweft_encode_batches_total {}\n\
         # HELP weft_encode_items_total Items encoded by the dynamic batcher.\n# TYPE weft_encode_items_total counter\nweft_encode_items_total {}\n\
         # HELP weft_encode_cancelled_total Inputs never encoded because their request had gone (timeout or disconnect).\n# TYPE weft_encode_cancelled_total counter\nweft_encode_cancelled_total {}\n",
        m.requests.load(Relaxed),
        m.errors_4xx.load(Relaxed),
        m.errors_5xx.load(Relaxed),
        m.searches.load(Relaxed),
        m.adds.load(Relaxed),
        m.latency_us_sum.load(Relaxed) as f64 / 1e6,
        batch.batches.load(Relaxed),
        batch.items.load(Relaxed),
        batch.cancelled.load(Relaxed),
    );
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

async fn openapi() -> Response {
    let mut paths = serde_json::Map::new();
    for (method, path, summary) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "success"},
                "4XX": {"description": "bad input: {\"error\": {\"code\", \"message\"}}"}
            }
        });
        if *method == "post" {
            op["requestBody"] =
                json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        entry[*method] = op;
    }
    Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "weft", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }))
    .into_response()
}

async fn list_collections(Axs(state): Axs<Shared>) -> ApiResult {
    let dir = &state.config.collections_dir;
    let mut out = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| Engine::is_collection(e.path()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    // Collections this daemon has open answer from memory; the others are
    // read without their writer lock (a listing must not lock a CLI out).
    let open: HashMap<String, Arc<super::Open>> = state.collections.opened().into_iter().collect();
    let dir = dir.clone();
    let engine = state.engine.clone();
    let listed = tokio::task::spawn_blocking(move || {
        for name in names {
            let info = match open.get(&name) {
                Some(o) => Ok(o.collection.info()),
                None => engine.open_read_only(dir.join(&name)).map(|c| c.info()),
            };
            match info {
                Ok(info) => out.push(json!({
                    "name": name,
                    "items": info.items,
                    "bundle": info.config.bundle_name,
                    "damaged": info.damaged.is_some(),
                })),
                Err(e) => out.push(json!({"name": name, "error": ApiError::from(e).message})),
            }
        }
        out
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    ok(StatusCode::OK, json!({ "collections": listed }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateReq {
    name: String,
    bundle: Option<String>,
    token_dtype: Option<String>,
    m: Option<usize>,
    ef_construction: Option<usize>,
    ef_search: Option<usize>,
}

async fn create_collection(
    Axs(state): Axs<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: CreateReq = parse(body)?;
    State::collection_name(&req.name)?;
    let path = state.config.collections_dir.join(&req.name);
    if Engine::is_collection(&path) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("collection `{}` already exists", req.name),
        ));
    }
    let bundle = state.bundle_or_default(req.bundle.as_deref()).await?;
    let dtype: TokenDtype = req.token_dtype.as_deref().unwrap_or("f16").parse()?;
    let d = HnswParams::default();
    let hnsw = HnswParams::default()
        .with_m(req.m.unwrap_or(d.m))
        .with_ef_construction(req.ef_construction.unwrap_or(d.ef_construction))
        .with_ef_search(req.ef_search.unwrap_or(d.ef_search));
    let options = CreateOptions {
        token_dtype: Some(dtype),
        hnsw: Some(hnsw),
        ..Default::default()
    };
    let (engine, b) = (state.engine.clone(), bundle.clone());
    let collection = blocking(move || Ok(engine.create_for(&path, b, &options)?)).await?;
    let info = collection.info();
    state
        .collections
        .insert(&req.name, Arc::new(super::Open { collection, bundle }));
    ok(
        StatusCode::CREATED,
        json!({ "name": req.name, "info": info }),
    )
}

async fn collection_info(Axs(state): Axs<Shared>, UrlPath(name): UrlPath<String>) -> ApiResult {
    let open = state.collection(&name).await?;
    ok(
        StatusCode::OK,
        serde_json::to_value(open.collection.info()).unwrap_or(Value::Null),
    )
}

async fn delete_collection(Axs(state): Axs<Shared>, UrlPath(name): UrlPath<String>) -> ApiResult {
    let open = state.collection(&name).await?;
    state.collections.remove(&name);
    let dir = open.collection.dir().to_path_buf();
    drop(open);
    blocking(move || {
        std::fs::remove_dir_all(&dir).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("deleting {}: {e}", dir.display()),
            )
        })
    })
    .await?;
    ok(StatusCode::OK, json!({ "deleted": name }))
}

async fn compact(Axs(state): Axs<Shared>, UrlPath(name): UrlPath<String>) -> ApiResult {
    let open = state.collection(&name).await?;
    let before = open.collection.info();
    tokio::task::spawn_blocking(move || {
        open.collection.compact().map(|_| open.collection.info())
    })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(ApiError::from)
        .and_then(|after| ok(StatusCode::OK, json!({"reclaimed_items": before.deleted, "bytes_before": before.disk_bytes, "bytes_after": after.disk_bytes})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemReq {
    id: String,
    text: Option<String>,
    smiles: Option<String>,
    image_base64: Option<String>,
    path: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddReq {
    items: Vec<ItemReq>,
    #[serde(default)]
    upsert: bool,
}

async fn add_items(
    Axs(state): Axs<Shared>,
    UrlPath(name): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: AddReq = parse(body)?;
    let open = state.collection(&name).await?;
    if req.items.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "field `items`: empty list",
        ));
    }
    let mut inputs = Vec::with_capacity(req.items.len());
    let mut metas = Vec::with_capacity(req.items.len());
    let mut budget = Budget::new(&state);
    for (i, item) in req.items.into_iter().enumerate() {
        let at = format!("items[{i}]");
        if item.id.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{at}.id: empty"),
            ));
        }
        let payload = match item.payload {
            None | Some(Value::Null) => json!({}),
            Some(Value::Object(o)) => Value::Object(o),
            Some(other) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    format!("{at}.payload: must be an object, got {other}"),
                ))
            }
        };
        let spec = InputSpec {
            text: item.text,
            smiles: item.smiles,
            image_base64: item.image_base64,
            path: item.path,
        };
        let source = spec.path.clone().unwrap_or_default();
        let (input, smiles) = spec.resolve(&state, &at, &mut budget)?;
        let modality = input.modality();
        inputs.push(input);
        metas.push((item.id, modality, payload, smiles, source));
    }
    let encoded = state.engine.submit(&open.bundle, inputs)?.await;
    // All or nothing: one bad item fails the request and nothing is added.
    let mut items = Vec::with_capacity(encoded.len());
    for (i, (r, (id, modality, mut payload, smiles, source))) in
        encoded.into_iter().zip(metas).enumerate()
    {
        let e = r.map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                format!("items[{i}] (`{id}`): {e}"),
            )
        })?;
        if let Some(s) = smiles {
            payload["smiles"] = Value::String(s);
        }
        items.push(
            e.into_item(id, modality)
                .with_payload(payload)
                .with_source(source),
        );
    }
    let n = items.len();
    let upsert = req.upsert;
    let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    let collection = open.collection.clone();
    let result = tokio::task::spawn_blocking(move || -> weft::Result<()> {
        // This request's own batch: an error drops it, and no other
        // request's staged items with it.
        let mut batch = collection.batch();
        for item in items {
            if upsert {
                batch.upsert_item(item)?;
            } else {
                batch.add_item(item)?;
            }
        }
        batch.commit().map(|_| ())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    result?;
    state.metrics.adds.fetch_add(n as u64, Relaxed);
    ok(StatusCode::OK, json!({ "added": n, "ids": ids }))
}

async fn get_item(
    Axs(state): Axs<Shared>,
    UrlPath((name, id)): UrlPath<(String, String)>,
) -> ApiResult {
    let open = state.collection(&name).await?;
    let snap = open.collection.snapshot();
    let doc = snap.doc_of(&id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("item `{id}` not found in `{name}`"),
        )
    })?;
    let meta = snap.meta(doc)?;
    let payload: Value = serde_json::from_str(&meta.payload).unwrap_or(Value::Null);
    ok(
        StatusCode::OK,
        json!({"id": meta.id, "modality": meta.modality, "source": meta.source, "payload": payload, "n_tokens": meta.n_tokens, "grid": meta.grid}),
    )
}

async fn delete_item(
    Axs(state): Axs<Shared>,
    UrlPath((name, id)): UrlPath<(String, String)>,
) -> ApiResult {
    let open = state.collection(&name).await?;
    let found = tokio::task::spawn_blocking(move || -> weft::Result<bool> {
        Ok(open.collection.delete(&[id])? > 0)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    if found {
        ok(StatusCode::OK, json!({ "deleted": true }))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such item",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchReq {
    text: Option<String>,
    smiles: Option<String>,
    image_base64: Option<String>,
    path: Option<String>,
    id: Option<String>,
    vector: Option<Vec<f32>>,
    tokens: Option<Vec<Vec<f32>>>,
    k: Option<usize>,
    scorer: Option<String>,
    filter: Option<Value>,
    #[serde(default)]
    explain: bool,
}

async fn search_handler(
    Axs(state): Axs<Shared>,
    UrlPath(name): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: SearchReq = parse(body)?;
    let open = state.collection(&name).await?;
    let k = req.k.unwrap_or(10);
    if k == 0 || k > 10_000 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("field `k`: {k} is outside 1..=10000"),
        ));
    }
    let scorer: Scorer = req.scorer.as_deref().unwrap_or("global").parse()?;
    let filter = req.filter.as_ref().map(Filter::from_json).transpose()?;
    let spec = InputSpec {
        text: req.text,
        smiles: req.smiles,
        image_base64: req.image_base64,
        path: req.path,
    };
    let modes = spec.given() + usize::from(req.id.is_some()) + usize::from(req.vector.is_some());
    if modes != 1 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "give exactly one query: `text`, `smiles`, `image_base64`, `path`, `id` or `vector`",
        ));
    }
    let query = if let Some(id) = req.id {
        SearchQuery::Id(id)
    } else if let Some(v) = req.vector {
        let tokens: Vec<f32> = req
            .tokens
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect();
        SearchQuery::Query(Query::new(v, tokens))
    } else {
        let (input, smiles) = spec.resolve(&state, "query", &mut Budget::new(&state))?;
        let mut q = Query::from_encoded(encode_one(&state, &open.bundle, input).await?);
        if let Some(s) = smiles {
            q = q.with_smiles(s);
        }
        SearchQuery::Query(q)
    };
    let opts = SearchOptions::default()
        .with_k(k)
        .with_scorer(scorer)
        .with_filter(filter)
        .with_explain(req.explain);
    let collection = open.collection.clone();
    let hits = tokio::task::spawn_blocking(move || collection.search(query, &opts))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    bump(&state.metrics.searches);
    ok(StatusCode::OK, json!({ "hits": hits }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyReq {
    bundle: Option<String>,
    text: Option<String>,
    smiles: Option<String>,
    image_base64: Option<String>,
    path: Option<String>,
    labels: Vec<String>,
    templates: Option<Vec<String>>,
    top_k: Option<usize>,
    abstain: Option<f32>,
    multi_label: Option<f32>,
}

async fn classify(Axs(state): Axs<Shared>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let req: ClassifyReq = parse(body)?;
    let bundle = state.bundle_or_default(req.bundle.as_deref()).await?;
    let spec = InputSpec {
        text: req.text,
        smiles: req.smiles,
        image_base64: req.image_base64,
        path: req.path,
    };
    let (input, _) = spec.resolve(&state, "input", &mut Budget::new(&state))?;
    let mut opts = ClassifyOptions::default()
        .with_top_k(req.top_k.unwrap_or(5))
        .with_abstain_below(req.abstain);
    if let Some(t) = req.templates {
        opts = opts.with_templates(t);
    }
    if let Some(t) = req.multi_label {
        opts = opts.with_multi_label(Some(MultiLabel {
            default_threshold: t,
            ..Default::default()
        }));
    }
    // Validate before encoding anything.
    let templates = opts
        .templates
        .clone()
        .unwrap_or_else(|| bundle.manifest().zero_shot.templates.clone());
    if req.labels.len() > state.config.max_labels {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "field `labels`: {} labels, over the limit of {} (--max-labels)",
                req.labels.len(),
                state.config.max_labels
            ),
        ));
    }
    if let Some((i, l)) = req
        .labels
        .iter()
        .enumerate()
        .find(|(_, l)| l.len() > state.config.max_text_bytes)
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "field `labels[{i}]`: {} bytes, over the limit of {} (--max-text-bytes)",
                l.len(),
                state.config.max_text_bytes
            ),
        ));
    }
    check_prompts(&state, &req.labels, &templates)?;
    weft::classify::validate(&req.labels, &templates)?;
    let query = Query::from_encoded(encode_one(&state, &bundle, input).await?);
    let labels = req.labels;
    let engine = state.engine.clone();
    let result =
        tokio::task::spawn_blocking(move || engine.classify_query(&bundle, &query, &labels, &opts))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })??;
    ok(
        StatusCode::OK,
        serde_json::to_value(result).unwrap_or(Value::Null),
    )
}

/// Most prompt templates in one /classify request.
const MAX_TEMPLATES: usize = 256;
/// Most prompts (labels x templates) one /classify request may encode.
const MAX_PROMPTS: usize = 65_536;

/// Bounds what the prompts of a /classify call cost before any is built:
/// the template count, labels x templates, and each prompt's bytes (a
/// template repeats the label once per `{}`).
fn check_prompts(state: &State, labels: &[String], templates: &[String]) -> Result<(), ApiError> {
    let too_large = |msg: String| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", msg);
    if templates.len() > MAX_TEMPLATES {
        return Err(too_large(format!(
            "field `templates`: {} templates, over the limit of {MAX_TEMPLATES}",
            templates.len()
        )));
    }
    if labels.len().saturating_mul(templates.len()) > MAX_PROMPTS {
        return Err(too_large(format!(
            "fields `labels` x `templates`: {} x {} prompts, over the limit of {MAX_PROMPTS}",
            labels.len(),
            templates.len()
        )));
    }
    let longest = labels.iter().map(|l| l.trim().len()).max().unwrap_or(0);
    let max = state.config.max_text_bytes;
    for (i, t) in templates.iter().enumerate() {
        let bytes = t
            .len()
            .saturating_add(t.matches("{}").count().saturating_mul(longest));
        if bytes > max {
            return Err(too_large(format!(
                "field `templates[{i}]`: its prompts reach {bytes} bytes, over the limit of {max} (--max-text-bytes)"
            )));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedReq {
    bundle: Option<String>,
    inputs: Vec<InputSpec>,
}

async fn embed(Axs(state): Axs<Shared>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let req: EmbedReq = parse(body)?;
    if req.inputs.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "field `inputs`: empty list",
        ));
    }
    let bundle = state.bundle_or_default(req.bundle.as_deref()).await?;
    let mut inputs = Vec::new();
    let mut budget = Budget::new(&state);
    for (i, spec) in req.inputs.into_iter().enumerate() {
        inputs.push(
            spec.resolve(&state, &format!("inputs[{i}]"), &mut budget)?
                .0,
        );
    }
    let encoded = state.engine.submit(&bundle, inputs)?.await;
    let dim = bundle.dim();
    let mut items = Vec::new();
    for (i, r) in encoded.into_iter().enumerate() {
        let e = r.map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                format!("inputs[{i}]: {e}"),
            )
        })?;
        let tokens: Vec<&[f32]> = e.tokens.chunks(dim.max(1)).collect();
        items.push(json!({"embedding": e.embedding, "tokens": tokens, "grid": e.grid, "truncated": e.truncated}));
    }
    ok(
        StatusCode::OK,
        json!({ "bundle": bundle.name(), "dim": dim, "items": items }),
    )
}
