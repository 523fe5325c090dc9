//! The history slice's routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::{MethodRouter, get};
use candor_vault::Vault;

use super::subject;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::wire::*;
use crate::{CUSTOMER, RouteSpec};

/// The customer's own events, each with an inclusion proof against the signed checkpoint.
#[utoipa::path(get, path = "/v1/subjects/{id}/history",
    params(("id" = String, Path, description = "Subject id")),
    responses((status = 200, body = HistoryResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn history(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, .. }: Authenticated,
) -> Result<Json<HistoryResponse>, ApiError> {
    let subject = subject(&id)?;
    // A long history means many proofs and reads: keep it off the async workers.
    let h = tokio::task::spawn_blocking(move || vault.histories().history(&p, &subject))
        .await
        .map_err(|_| ApiError::internal())??;
    let events = h
        .entries
        .into_iter()
        .map(|e| HistoryEvent {
            leaf_index: e.opening.leaf_index,
            leaf_hash: b64(&e.leaf_hash.0),
            receipt: e.receipt.to_text(),
            inclusion_proof: e.inclusion_proof.iter().map(|h| b64(&h.0)).collect(),
            commitment: b64(&e.opening.commitment),
            nonce: b64(&e.opening.nonce),
            event: serde_json::from_str(&e.opening.canonical_event)
                .unwrap_or(serde_json::Value::Null),
            canonical_event: e.opening.canonical_event,
        })
        .collect();
    Ok(Json(HistoryResponse {
        checkpoint: h.checkpoint,
        tree_size: h.tree_size,
        events,
        pending_events: h.pending,
        completeness: h.completeness.as_ref().map(CompletenessProof::from_domain),
    }))
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![(
        RouteSpec::new(Method::GET, "/v1/subjects/{id}/history", CUSTOMER),
        get(history),
    )]
}
