//! The daemon's HTTP API: the route table and router here; `auth.rs`
//! (bearer token, timeout, metrics around every handler), `dto.rs` (request
//! bodies, parsing that names fields, inputs and their budget, server-side
//! paths under the roots), `handlers.rs` (one function per route).

mod auth;
mod dto;
mod handlers;

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
use super::{bump, ApiError, Open, State};
use auth::*;
use dto::*;
use handlers::*;

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
