//! Bearer token, per-request timeout and metrics around every handler.

use super::*;

/// Auth, per-request timeout and metrics around every handler.
/// Whether a request carried the right token (or none is required); /health
/// says more to an authorised caller.
#[derive(Clone, Copy)]
pub(super) struct Authorised(pub(super) bool);

pub(super) async fn guard(Axs(state): Axs<Shared>, mut req: Request, next: Next) -> Response {
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

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
