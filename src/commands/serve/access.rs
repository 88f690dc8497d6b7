//! Who may call: with `--api-key-file`, callers send `Authorization:
//! Bearer <key>`, compared in constant time (the SHA-256 digests, so that
//! not even the key's length shows in the time taken).
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::errors::ApiError;
use crate::settings::Access;

/// Passes a request on if `access` lets it in; 401 otherwise.
pub async fn require_key(State(access): State<Access>, request: Request, next: Next) -> Response {
    let Access::Key(key) = &access else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match given {
        Some(given) if same_in_constant_time(given.trim().as_bytes(), key.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => unauthorized("the API key is wrong"),
        None => unauthorized("this server needs an API key: send Authorization: Bearer <key>"),
    }
}

/// The token of `Bearer <token>`; the scheme's name is case-insensitive
/// (RFC 9110, 11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        "Bearer".parse().expect("a header value"),
    );
    response
}

/// Whether `a` and `b` are equal, in a time that depends on neither.
fn same_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}
