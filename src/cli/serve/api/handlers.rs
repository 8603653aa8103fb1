//! One function per route.

use super::*;

pub(super) async fn encode_one(
    state: &State,
    bundle: &weft::bundle::Bundle,
    input: Content,
) -> Result<weft::encoder::Encoded, ApiError> {
    let mut out = state.engine.submit(bundle, vec![input])?.await;
    Ok(out.pop().expect("one result per input")?)
}

pub(super) async fn health(
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

pub(super) async fn metrics(Axs(state): Axs<Shared>) -> Response {
    let m = &state.metrics;
    let batch = state.engine.batch_stats();
    let queries = state.engine.query_cache_stats();
    let body = format!(
        "# HELP weft_requests_total HTTP requests.\n# TYPE weft_requests_total counter\nweft_requests_total {}\n\
         # HELP weft_errors_total HTTP error responses by class.\n# TYPE weft_errors_total counter\nweft_errors_total{{class=\"4xx\"}} {}\nweft_errors_total{{class=\"5xx\"}} {}\n\
         # HELP weft_searches_total Searches.\n# TYPE weft_searches_total counter\nweft_searches_total {}\n\
         # HELP weft_items_added_total Items added (acknowledged).\n# TYPE weft_items_added_total counter\nweft_items_added_total {}\n\
         # HELP weft_request_seconds_sum Total request time.\n# TYPE weft_request_seconds_sum counter\nweft_request_seconds_sum {:.6}\n\
         # HELP weft_encode_batches_total Encoder calls made by the dynamic batcher.\n# TYPE weft_encode_batches_total counter\nweft_encode_batches_total {}\n\
         # HELP weft_encode_items_total Items encoded by the dynamic batcher.\n# TYPE weft_encode_items_total counter\nweft_encode_items_total {}\n\
         # HELP weft_encode_cancelled_total Inputs never encoded because their request had gone (timeout or disconnect).\n# TYPE weft_encode_cancelled_total counter\nweft_encode_cancelled_total {}\n\
         # HELP weft_query_cache_hits_total Query texts and SMILES answered from the query cache.\n# TYPE weft_query_cache_hits_total counter\nweft_query_cache_hits_total {}\n\
         # HELP weft_query_cache_misses_total Query texts and SMILES encoded.\n# TYPE weft_query_cache_misses_total counter\nweft_query_cache_misses_total {}\n",
        m.requests.load(Relaxed),
        m.errors_4xx.load(Relaxed),
        m.errors_5xx.load(Relaxed),
        m.searches.load(Relaxed),
        m.adds.load(Relaxed),
        m.latency_us_sum.load(Relaxed) as f64 / 1e6,
        batch.batches.load(Relaxed),
        batch.items.load(Relaxed),
        batch.cancelled.load(Relaxed),
        queries.hits,
        queries.misses,
    );
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

pub(super) async fn openapi() -> Response {
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

pub(super) async fn list_collections(Axs(state): Axs<Shared>) -> ApiResult {
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
    let open: HashMap<String, Arc<Open>> = state.collections.opened().into_iter().collect();
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

pub(super) async fn create_collection(
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
        .insert(&req.name, Arc::new(Open { collection, bundle }));
    ok(
        StatusCode::CREATED,
        json!({ "name": req.name, "info": info }),
    )
}

pub(super) async fn collection_info(
    Axs(state): Axs<Shared>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult {
    let open = state.collection(&name).await?;
    ok(
        StatusCode::OK,
        serde_json::to_value(open.collection.info()).unwrap_or(Value::Null),
    )
}

pub(super) async fn delete_collection(
    Axs(state): Axs<Shared>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult {
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

pub(super) async fn compact(Axs(state): Axs<Shared>, UrlPath(name): UrlPath<String>) -> ApiResult {
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

pub(super) async fn add_items(
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

pub(super) async fn get_item(
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

pub(super) async fn delete_item(
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

pub(super) async fn search_handler(
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

pub(super) async fn classify(
    Axs(state): Axs<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
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
pub(super) const MAX_TEMPLATES: usize = 256;
/// Most prompts (labels x templates) one /classify request may encode.
pub(super) const MAX_PROMPTS: usize = 65_536;

/// Bounds what the prompts of a /classify call cost before any is built:
/// the template count, labels x templates, and each prompt's bytes (a
/// template repeats the label once per `{}`).
pub(super) fn check_prompts(
    state: &State,
    labels: &[String],
    templates: &[String],
) -> Result<(), ApiError> {
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

pub(super) async fn embed(
    Axs(state): Axs<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
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
