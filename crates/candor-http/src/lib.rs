//! Candor's HTTP API on axum.
//!
//! Handlers are thin: they authenticate the bearer token, parse the body into a wire type, run the
//! vault use case and turn the domain result into JSON. Authentication always runs before the body
//! is looked at. Use cases that log await the group commit; their SQLite reads (tens of
//! microseconds) run inline, which costs less than a hand-off to another thread. Only history, whose
//! cost grows with the customer's events, runs on the blocking pool.
//!
//! `POST /internal/v1/log/commit` and `/internal/v1/log/completeness` are how the nodes of a
//! cluster hand writes to the one that sequences the log and ask it for completeness proofs;
//! they take the node key, not a bearer token (see [`cluster`]).
//!
//! `GET /log/checkpoint`, `/log/consistency`, `/log/tile/…`, `/log/receipt/…`, `/healthz` and
//! `/openapi.json` are deliberately public: they hold no personal data (tiles carry only hashes
//! and salted commitments), and auditors must fetch them without an account.

pub mod cluster;
mod error;
mod routes;
pub mod wire;
pub mod witness;
pub mod witnessing;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use candor_vault::Vault;

pub use error::{ApiError, ErrorBody};
pub use routes::ApiDoc;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole API as a router, ready to serve or to call in tests with `oneshot`.
pub fn app(vault: Arc<Vault>) -> Router {
    Router::new()
        .route(
            "/v1/subjects/{id}/data",
            axum::routing::put(routes::put_data).get(routes::get_data),
        )
        .route(
            "/v1/subjects/{id}/consents",
            get(routes::get_consents).post(routes::post_consents),
        )
        .route("/v1/subjects/{id}/history", get(routes::history))
        .route("/v1/subjects/{id}", axum::routing::delete(routes::erase))
        .route("/v1/subjects/{id}/sessions", post(routes::mint_session))
        .route("/v1/access", post(routes::access))
        .route("/v1/lookup", post(routes::lookup))
        .route("/v1/keys", post(routes::create_key))
        .route("/log/checkpoint", get(routes::checkpoint))
        .route("/log/consistency", get(routes::consistency))
        .route("/log/tile/{*path}", get(routes::tile))
        .route("/log/receipt/{index}", get(routes::receipt))
        .route(
            cluster::COMMIT_PATH,
            post(cluster::commit).layer(DefaultBodyLimit::max(cluster::MAX_COMMIT_BODY)),
        )
        .route(cluster::COMPLETENESS_PATH, post(cluster::completeness))
        .route("/healthz", get(routes::health))
        .route("/openapi.json", get(routes::openapi))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(vault)
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    vault: Arc<Vault>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(vault))
        .with_graceful_shutdown(shutdown)
        .await
}
