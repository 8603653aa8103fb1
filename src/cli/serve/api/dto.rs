//! Request bodies and what checks them: JSON parsing that names the
//! field, inputs and their per-request budget, server-side paths.

use super::*;

/// Parses a JSON body; errors name the field.
pub(super) fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
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

pub(super) fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

/// One input in a request: exactly one of the fields.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct InputSpec {
    pub(super) text: Option<String>,
    pub(super) smiles: Option<String>,
    pub(super) image_base64: Option<String>,
    pub(super) path: Option<String>,
}

impl InputSpec {
    pub(super) fn given(&self) -> usize {
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
    pub(super) fn resolve(
        self,
        state: &State,
        at: &str,
        budget: &mut Budget,
    ) -> Result<(Content, Option<String>), ApiError> {
        let (input, smiles) = self.resolve_unchecked(state, at)?;
        budget.charge(state, &input, at)?;
        Ok((input, smiles))
    }

    pub(super) fn resolve_unchecked(
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
pub(super) struct Budget {
    pub(super) pixels: u64,
    pub(super) bytes: u64,
}

impl Budget {
    pub(super) fn new(state: &State) -> Self {
        Budget {
            pixels: state.config.max_request_pixels,
            bytes: state.config.max_request_decoded_bytes,
        }
    }

    /// Refuses (413) an input over the text limit or past the pixel budget,
    /// before anything is tokenized or decoded.
    pub(super) fn charge(
        &mut self,
        state: &State,
        input: &Content,
        at: &str,
    ) -> Result<(), ApiError> {
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
pub(super) fn allowed_path(state: &State, p: &str, at: &str) -> Result<PathBuf, ApiError> {
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
pub(super) fn lexical_absolute(p: &Path) -> PathBuf {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateReq {
    pub(super) name: String,
    pub(super) bundle: Option<String>,
    pub(super) token_dtype: Option<String>,
    pub(super) m: Option<usize>,
    pub(super) ef_construction: Option<usize>,
    pub(super) ef_search: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ItemReq {
    pub(super) id: String,
    pub(super) text: Option<String>,
    pub(super) smiles: Option<String>,
    pub(super) image_base64: Option<String>,
    pub(super) path: Option<String>,
    #[serde(default)]
    pub(super) payload: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddReq {
    pub(super) items: Vec<ItemReq>,
    #[serde(default)]
    pub(super) upsert: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchReq {
    pub(super) text: Option<String>,
    pub(super) smiles: Option<String>,
    pub(super) image_base64: Option<String>,
    pub(super) path: Option<String>,
    pub(super) id: Option<String>,
    pub(super) vector: Option<Vec<f32>>,
    pub(super) tokens: Option<Vec<Vec<f32>>>,
    pub(super) k: Option<usize>,
    pub(super) scorer: Option<String>,
    pub(super) filter: Option<Value>,
    #[serde(default)]
    pub(super) explain: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClassifyReq {
    pub(super) bundle: Option<String>,
    pub(super) text: Option<String>,
    pub(super) smiles: Option<String>,
    pub(super) image_base64: Option<String>,
    pub(super) path: Option<String>,
    pub(super) labels: Vec<String>,
    pub(super) templates: Option<Vec<String>>,
    pub(super) top_k: Option<usize>,
    pub(super) abstain: Option<f32>,
    pub(super) multi_label: Option<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EmbedReq {
    pub(super) bundle: Option<String>,
    pub(super) inputs: Vec<InputSpec>,
}
