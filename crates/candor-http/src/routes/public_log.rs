//! The public log's routes: checkpoints, tiles, receipts and consistency proofs, for anyone.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use candor_vault::Vault;
use candor_vault::public_log::PublicLogError;

use crate::error::{ApiError, ErrorBody};
use crate::wire::*;
use crate::{Access, RouteSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(crate) async fn latest_checkpoint(
    vault: Arc<Vault>,
) -> Result<Option<(u64, String)>, ApiError> {
    tokio::task::spawn_blocking(move || vault.public_log().checkpoint())
        .await
        .map_err(|_| ApiError::internal())?
        .map(|cp| cp.map(|c| (c.size, c.note)))
        .map_err(ApiError::from)
}

/// The latest C2SP signed checkpoint (public).
#[utoipa::path(get, path = "/log/checkpoint",
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
pub async fn checkpoint(State(vault): State<Arc<Vault>>) -> Result<Response, ApiError> {
    let (_, note) = latest_checkpoint(vault).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "log_empty",
            "the log has no entries yet",
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        note,
    )
        .into_response())
}

/// Every tile path names bytes that never change: a full tile once the tree has passed it, and a
/// partial tile `.p/W` because its `W` hashes are final too. Caches may keep them for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A C2SP tlog-tiles hash tile or entry bundle (public). Entries are the 32-byte commitments,
/// never event bodies.
#[utoipa::path(get, path = "/log/tile/{path}",
    params(("path" = String, Path,
        description = "`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`: level 0 to 7, the index in groups of three digits (`x001/x234/067`, no leading `x000`), a partial width 1 to 255",
        pattern = r"^(entries|[0-7])/((x([1-9][0-9]{2}|0[1-9][0-9]|00[1-9])/)(x[0-9]{3}/){0,4})?[0-9]{3}(\.p/([1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn tile(
    State(vault): State<Arc<Vault>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let path = candor_log::parse_tile_path(&path)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_tile_path", e.to_string()))?;
    // A cached full tile is answered inline; anything else reads storage on the blocking pool.
    let bytes = match vault.public_log().cached_tile(&path) {
        Some(bytes) => bytes,
        None => tokio::task::spawn_blocking(move || vault.public_log().tile(path))
            .await
            .map_err(|_| ApiError::internal())??,
    };
    let bytes = axum::body::Bytes::from_owner(bytes);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        bytes,
    )
        .into_response())
}

/// A receipt for a leaf: its inclusion proof and the published checkpoint, as a C2SP tlog-proof
/// (public: it is made only of what the tiles already show).
#[utoipa::path(get, path = "/log/receipt/{index}",
    params(("index" = String, Path, description = "Leaf index, a canonical decimal",
        pattern = r"^(0|[1-9][0-9]{0,18})$")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the leaf is not in the published checkpoint (yet)")))]
pub async fn receipt(
    State(vault): State<Arc<Vault>>,
    Path(index): Path<String>,
) -> Result<Response, ApiError> {
    let index = canonical_decimal(&index).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the leaf index is a decimal number, without sign or leading zeros",
        )
    })?;
    let receipt = tokio::task::spawn_blocking(move || vault.public_log().receipt(index))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        receipt.to_text(),
    )
        .into_response())
}

/// A consistency proof between two tree sizes (public), so anyone holding an older checkpoint
/// can check the newer one extends it.
#[utoipa::path(get, path = "/log/consistency", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no proof joins these sizes (from past to, or to past the checkpoint)")))]
pub async fn consistency(
    State(vault): State<Arc<Vault>>,
    query: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConsistencyResponse>, ApiError> {
    let Query(q) = query.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "need ?from=N&to=M, decimal numbers without sign or leading zeros",
        )
    })?;
    let proof = tokio::task::spawn_blocking(move || vault.public_log().consistency(q.from, q.to))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(Json(ConsistencyResponse {
        from: q.from,
        to: q.to,
        proof: proof.iter().map(|h| b64(&h.0)).collect(),
    }))
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![
        (
            RouteSpec::new(Method::GET, "/log/checkpoint", Access::Public),
            get(checkpoint),
        ),
        (
            RouteSpec::new(Method::GET, "/log/consistency", Access::Public),
            get(consistency),
        ),
        (
            RouteSpec::new(Method::GET, "/log/tile/{*path}", Access::Public),
            get(tile),
        ),
        (
            RouteSpec::new(Method::GET, "/log/receipt/{index}", Access::Public),
            get(receipt),
        ),
    ]
}

/// `GET /log/consistency` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The earlier tree size (at least 1).
    #[serde(deserialize_with = "canonical_u64")]
    #[param(minimum = 1, maximum = 9223372036854775807_u64)]
    pub from: u64,
    /// The later tree size (at most the latest checkpoint's).
    #[serde(deserialize_with = "canonical_u64")]
    #[param(minimum = 1, maximum = 9223372036854775807_u64)]
    pub to: u64,
}

/// An RFC 9162 consistency proof.
#[derive(Serialize, ToSchema)]
pub struct ConsistencyResponse {
    /// The earlier size.
    pub from: u64,
    /// The later size.
    pub to: u64,
    /// The proof's hashes, base64.
    pub proof: Vec<String>,
}

/// A tile beyond the tree is a 404; anything else is the shared mapping.
impl From<PublicLogError> for ApiError {
    fn from(e: PublicLogError) -> ApiError {
        match e {
            PublicLogError::TileNotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "tile_not_found", e.to_string())
            }
            PublicLogError::LeafNotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "leaf_not_found", e.to_string())
            }
            PublicLogError::ProofNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "proof_not_found", e.to_string())
            }
            PublicLogError::Vault(e) => e.into(),
        }
    }
}
