//! Route handlers, one module per feature slice, each with its part of the route table, and the
//! OpenAPI document generated from their annotations.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::MethodRouter;
use candor_core::SubjectId;
use candor_vault::Vault;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::RouteSpec;
use crate::error::ApiError;
use crate::wire::*;

pub(crate) mod access;
pub(crate) mod consent;
pub(crate) mod erasure;
pub(crate) mod history;
pub(crate) mod keys;
pub(crate) mod public_log;
pub(crate) mod signin;
pub(crate) mod subjects;

/// Every slice's part of the route table; a new slice's routes module adds its line here.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    [
        subjects::table(),
        access::table(),
        consent::table(),
        history::table(),
        erasure::table(),
        keys::table(),
        signin::table(),
        public_log::table(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub(crate) type Body<T> = Result<Json<T>, JsonRejection>;

pub(crate) fn subject(raw: &str) -> Result<SubjectId, ApiError> {
    SubjectId::parse(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_subject_id", e.to_string()))
}

/// Liveness and the log's size (public).
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn health(State(vault): State<Arc<Vault>>) -> Result<Json<Health>, ApiError> {
    let sequencer = vault.sequencing().is_sequencer();
    let tree_size = public_log::latest_checkpoint(vault)
        .await?
        .map_or(0, |(s, _)| s);
    Ok(Json(Health {
        status: "ok",
        tree_size,
        sequencer,
    }))
}

/// This document (public).
#[utoipa::path(get, path = "/openapi.json",
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "node",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "Candor-Node-Auth",
                    "Between Candor's own nodes: time, nonce and an HMAC over the body under the node key",
                ))),
            );
    }
}

/// States the limits every request is held to, from the constants that enforce them.
struct RequestLimits;

impl utoipa::Modify for RequestLimits {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let limits = format!(
            "\n\nEvery request: a request target of at most {uri} bytes (414 `uri_too_long`), at \
             most {headers} header lines of {header_bytes} bytes in all (431 \
             `headers_too_large`), a path that is UTF-8 once percent-decoded (400 \
             `invalid_path`), and a body of at most {body} bytes (413 `payload_too_large`) that \
             arrives within the deployment's body deadline (408 `body_timeout`, 30 s by \
             default). Connections idle past the header deadline (30 s by default) are closed. \
             Numbers in paths and queries are canonical decimals. Every error is an \
             `ErrorBody`.",
            uri = crate::MAX_URI_BYTES,
            headers = crate::MAX_HEADERS,
            header_bytes = crate::MAX_HEADER_BYTES,
            body = crate::MAX_BODY_BYTES,
        );
        api.info
            .description
            .get_or_insert_with(String::new)
            .push_str(&limits);
    }
}

/// The OpenAPI 3.1 description of the API, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "Candor", description = "Purpose-bound personal-data vault with a verifiable access log."),
    paths(subjects::put_data, access::get_data, consent::get_consents, consent::post_consents,
          access::access, access::lookup, history::history, erasure::erase, keys::mint_session,
          keys::create_key, keys::list_keys, keys::revoke_key, keys::rotate_key, history::operator_history, signin::oidc_nonce, signin::oidc_signin, signin::set_signin_email,
          signin::request_email_link, signin::redeem_email_link, public_log::checkpoint, public_log::consistency, public_log::tile,
          public_log::receipt, health, openapi, crate::cluster::commit, crate::cluster::completeness),
    modifiers(&BearerScheme, &RequestLimits)
)]
pub struct ApiDoc;
