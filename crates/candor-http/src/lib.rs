//! Candor's HTTP API on axum.
//!
//! Every route is one row of a table that says who may call it ([`route_table`]); the router is
//! built from that table, and a layer authenticates the bearer token and checks the caller's kind
//! before the handler or its body is looked at (see [`Authenticated`]). Handlers are thin: they
//! parse the body into a wire type, run the vault use case and turn the domain result into JSON.
//! Use cases that log await the group commit; their SQLite reads (tens of microseconds) run
//! inline, which costs less than a hand-off to another thread. Only history, whose cost grows
//! with the customer's events, runs on the blocking pool.
//!
//! `POST /internal/v1/log/commit` and `/internal/v1/log/completeness` are how the nodes of a
//! cluster hand writes to the one that sequences the log and ask it for completeness proofs;
//! they take the node key, not a bearer token (see [`cluster`]).
//!
//! `GET /log/checkpoint`, `/log/consistency`, `/log/tile/…`, `/log/receipt/…`, `/healthz` and
//! `/openapi.json` are deliberately public: they hold no personal data (tiles carry only hashes
//! and salted commitments), and auditors must fetch them without an account.

mod auth;
pub mod cluster;
pub mod epoch_checks;
mod error;
mod limits;
pub mod mail;
pub mod oidc;
mod routes;
pub mod server;
pub mod wire;
pub mod witness;
pub mod witnessing;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, get, post};
use candor_vault::Vault;

pub use auth::{Access, Authenticated, Caller};
pub use error::{ApiError, ErrorBody};
pub use limits::{MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_BYTES};
pub use routes::ApiDoc;
pub use server::ConnectionLimits;

/// Unix seconds now: the time a request is authenticated at and a peer's request is signed at.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One route of the API: where it is and who may call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The HTTP method.
    pub method: Method,
    /// The path pattern, in axum's syntax (`{id}`, `{*path}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

pub(crate) const SERVICE: Access = Access::Bearer(&[Caller::Service]);
pub(crate) const CUSTOMER: Access = Access::Bearer(&[Caller::Customer]);
pub(crate) const ADMIN: Access = Access::Bearer(&[Caller::Admin]);
pub(crate) const ADMIN_OR_CUSTOMER: Access = Access::Bearer(&[Caller::Customer, Caller::Admin]);
pub(crate) const CUSTOMER_OR_SERVICE: Access = Access::Bearer(&[Caller::Customer, Caller::Service]);
pub(crate) const ERASER: Access =
    Access::Bearer(&[Caller::Customer, Caller::Admin, Caller::Service]);

impl RouteSpec {
    pub(crate) const fn new(method: Method, path: &'static str, access: Access) -> RouteSpec {
        RouteSpec {
            method,
            path,
            access,
        }
    }
}

/// Every route with its handler: the router is built from this table alone, so the table the
/// tests and the OpenAPI check read is the router. Each slice's routes module owns its part.
fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    let mut table = routes::table();
    table.extend([
        (
            RouteSpec::new(Method::POST, cluster::COMMIT_PATH, Access::Node),
            post(cluster::commit).layer(DefaultBodyLimit::max(cluster::MAX_COMMIT_BODY)),
        ),
        (
            RouteSpec::new(Method::POST, cluster::COMPLETENESS_PATH, Access::Node),
            post(cluster::completeness),
        ),
        (
            RouteSpec::new(Method::GET, "/healthz", Access::Public),
            get(routes::health),
        ),
        (
            RouteSpec::new(Method::GET, "/openapi.json", Access::Public),
            get(routes::openapi),
        ),
    ]);
    table
}

/// Every route of the API and who may call it.
pub fn route_table() -> Vec<RouteSpec> {
    table().into_iter().map(|(spec, _)| spec).collect()
}

/// The ways customers may sign in, as this deployment configured them.
#[derive(Default)]
pub struct SigninMethods {
    /// The business's OpenID Connect provider.
    pub oidc: Option<oidc::OidcProvider>,
    /// The mail server one-time sign-in links go out through.
    pub email: Option<Arc<mail::Mailer>>,
}

/// The whole API as a router, with no sign-in method configured.
pub fn app(vault: Arc<Vault>) -> Router {
    app_with(vault, SigninMethods::default())
}

/// The whole API as a router, ready to serve or to call in tests with `oneshot`.
pub fn app_with(vault: Arc<Vault>, signin: SigninMethods) -> Router {
    let mut router = Router::new();
    for (spec, handler) in table() {
        let handler = match spec.access {
            Access::Bearer(callers) => handler.route_layer(axum::middleware::from_fn_with_state(
                (vault.clone(), callers),
                auth::authorise,
            )),
            Access::Public | Access::Node => handler,
        };
        router = router.route(spec.path, handler);
    }
    router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(Arc::new(signin)))
        .layer(limits::RequestLimitsLayer)
        .with_state(vault)
}

#[cfg(test)]
mod access_tests;

/// Serves the API on `listener`, within `limits`, until `shutdown` completes, then drains
/// in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    vault: Arc<Vault>,
    signin: SigninMethods,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, app_with(vault, signin), limits, shutdown).await
}
