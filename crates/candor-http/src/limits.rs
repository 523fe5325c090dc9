//! Limits on a request's head, and the rule that every error is the documented JSON.
//!
//! The HTTP parser's own refusals are bare responses with no body, so it is given room
//! (`PARSER_*`) well past the limits here, which answer in JSON with a stable code. The outermost
//! layer also turns any error response that is not yet JSON (an extractor's plain-text rejection,
//! say) into the documented body, so no route can leak a bare error.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::{Either, Ready, ready};

use crate::error::ApiError;

/// The longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most header lines a request may carry.
pub const MAX_HEADERS: usize = 100;

/// What the HTTP parser itself tolerates before it answers a bare 431: far past the limits
/// above, so that they, not it, refuse any head a client plausibly sends.
pub(crate) const PARSER_MAX_HEADER_BYTES: usize = 256 * 1024;
pub(crate) const PARSER_MAX_HEADERS: usize = 1000;

/// The layer: refuses heads past the limits and paths that are not UTF-8 once percent-decoded,
/// and makes every error the documented JSON. A service of its own rather than
/// `middleware::from_fn`, which boxes a clone of everything inside it for every request.
#[derive(Clone, Copy)]
pub(crate) struct RequestLimitsLayer;

impl<S> tower::Layer<S> for RequestLimitsLayer {
    type Service = RequestLimits<S>;

    fn layer(&self, inner: S) -> RequestLimits<S> {
        RequestLimits { inner }
    }
}

/// [`RequestLimitsLayer`]'s service around `S`.
#[derive(Clone)]
pub(crate) struct RequestLimits<S> {
    inner: S,
}

type Documented<F> =
    futures_util::future::Map<F, fn(Result<Response, Infallible>) -> Result<Response, Infallible>>;

impl<S> tower::Service<Request> for RequestLimits<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, Documented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Some(refusal) = refusal(&request) {
            return Either::Left(ready(Ok(refusal.into_response())));
        }
        let documented: fn(Result<Response, Infallible>) -> Result<Response, Infallible> =
            |answer| answer.map(as_documented_error);
        Either::Right(self.inner.call(request).map(documented))
    }
}

fn refusal(request: &Request) -> Option<ApiError> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("request targets are limited to {MAX_URI_BYTES} bytes"),
        ));
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "requests are limited to {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in all"
            ),
        ));
    }
    let path = request.uri().path();
    // A path without escapes is the URI's own text, which is UTF-8 already.
    if path.contains('%') && std::str::from_utf8(&percent_decoded(path)).is_err() {
        return Some(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "the path is not UTF-8 once percent-decoded",
        ));
    }
    None
}

/// `%XX` sequences decoded; a `%` not followed by two hex digits stays as it is, as the router
/// reads it.
fn percent_decoded(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    decoded
}

/// An error response whose body is not JSON becomes the documented body for its status.
fn as_documented_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind == HeaderValue::from_static("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not accept that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large"),
        StatusCode::REQUEST_TIMEOUT => ("body_timeout", "the request body did not arrive in time"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        status if status.is_server_error() => return ApiError::internal().into_response(),
        _ => ("bad_request", "the request could not be read"),
    };
    let mut documented = ApiError::new(status, code, message).into_response();
    // Headers such as `Allow` and `Connection` still apply.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            documented.headers_mut().insert(name.clone(), value.clone());
        }
    }
    documented
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_reads_paths_as_the_router_does() {
        assert_eq!(percent_decoded("/v1/subjects/a%20b"), b"/v1/subjects/a b");
        assert_eq!(percent_decoded("/x/%FF"), b"/x/\xff");
        assert_eq!(percent_decoded("/x/%C3%A9"), "/x/é".as_bytes());
        assert_eq!(percent_decoded("/x/%G1%4"), b"/x/%G1%4");
        assert_eq!(percent_decoded("%"), b"%");
    }

    #[test]
    fn a_bare_error_becomes_the_documented_body() {
        let bare = (StatusCode::BAD_REQUEST, "Invalid URL").into_response();
        let documented = as_documented_error(bare);
        assert_eq!(documented.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            documented.headers()[header::CONTENT_TYPE],
            "application/json"
        );
        let fine = (StatusCode::OK, "plain").into_response();
        assert_eq!(
            as_documented_error(fine).headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
