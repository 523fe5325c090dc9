//! The erasure slice's routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::{MethodRouter, delete};
use candor_vault::Vault;

use super::subject;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::wire::*;
use crate::{ERASER, RouteSpec};
use serde::Serialize;
use utoipa::ToSchema;

/// Erase a customer: destroy their key and data. The log stays verifiable.
#[utoipa::path(delete, path = "/v1/subjects/{id}",
    params(("id" = String, Path, description = "Subject id: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = ErasureResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
) -> Result<Json<ErasureResponse>, ApiError> {
    let r = vault.erasure().erase(&p, &subject(&id)?, now).await?;
    Ok(Json(ErasureResponse {
        erased: true,
        leaf_index: r.leaf_index.get(),
        commitment: b64(&r.commitment),
        nonce: b64(&r.nonce),
        canonical_event: r.canonical_event,
    }))
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![(
        RouteSpec::new(Method::DELETE, "/v1/subjects/{id}", ERASER),
        delete(erase),
    )]
}

/// An erasure's receipt: keep it to open the erasure event's commitment later.
#[derive(Serialize, ToSchema)]
pub struct ErasureResponse {
    /// Always true.
    pub erased: bool,
    /// Leaf index of the erasure event.
    pub leaf_index: u64,
    /// Its commitment, base64.
    pub commitment: String,
    /// Its nonce, base64 (Candor kept no copy).
    pub nonce: String,
    /// The canonical erasure event.
    pub canonical_event: String,
}
