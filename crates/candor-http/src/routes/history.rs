//! The history slice's routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::routing::{MethodRouter, get};
use candor_vault::Vault;

use super::subject;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::wire::*;
use crate::{ADMIN, CUSTOMER, RouteSpec};
use serde::Serialize;
use utoipa::ToSchema;

/// A page of the customer's own events, oldest first, each with an inclusion proof against the
/// signed checkpoint; the cursor is a leaf index.
#[utoipa::path(get, path = "/v1/subjects/{id}/history",
    params(("id" = String, Path, description = "Subject id: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`", pattern = r"^[A-Za-z0-9_-]{1,64}$"), PageQuery),
    responses((status = 200, body = HistoryResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn history(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    Authenticated { principal: p, .. }: Authenticated,
) -> Result<Json<HistoryResponse>, ApiError> {
    let subject = subject(&id)?;
    let page = PageQuery::page(query)?;
    // A page means many proofs and reads: keep it off the async workers.
    let h = tokio::task::spawn_blocking(move || vault.histories().history(&p, &subject, page))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(Json(history_body(h)))
}

/// A page of the operator log (admin only): every key and session change (keys created,
/// rotated, revoked, the admin key replaced, delegated sessions minted), in the same form and
/// with the same proofs as a customer's history, under the subject `candor.operator`.
#[utoipa::path(get, path = "/v1/operator/history", params(PageQuery),
    responses((status = 200, body = HistoryResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn operator_history(
    State(vault): State<Arc<Vault>>,
    query: Result<Query<PageQuery>, QueryRejection>,
    Authenticated { principal: p, .. }: Authenticated,
) -> Result<Json<HistoryResponse>, ApiError> {
    let page = PageQuery::page(query)?;
    let h = tokio::task::spawn_blocking(move || vault.histories().operator_history(&p, page))
        .await
        .map_err(|_| ApiError::internal())?;
    match h {
        Ok(h) => Ok(Json(history_body(h))),
        // Before the first key change there is nothing to show, not nobody.
        Err(candor_vault::VaultError::SubjectNotFound) => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "operator_log_empty",
            "no key or session change has been logged yet",
        )),
        Err(e) => Err(e.into()),
    }
}

fn history_body(h: candor_vault::History) -> HistoryResponse {
    let events = h
        .entries
        .into_iter()
        .map(|e| HistoryEvent {
            leaf_index: e.opening.leaf_index.get(),
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
    HistoryResponse {
        checkpoint: h.checkpoint,
        tree_size: h.tree_size,
        events,
        next: h.next,
        total_events: h.total,
        pending_events: h.pending,
        completeness: h.completeness.as_ref().map(CompletenessProof::from_domain),
    }
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![
        (
            RouteSpec::new(Method::GET, "/v1/subjects/{id}/history", CUSTOMER),
            get(history),
        ),
        (
            RouteSpec::new(Method::GET, "/v1/operator/history", ADMIN),
            get(operator_history),
        ),
    ]
}

/// One event with its proof.
#[derive(Serialize, ToSchema)]
pub struct HistoryEvent {
    /// Position in the log.
    pub leaf_index: u64,
    /// RFC 6962 leaf hash, base64.
    pub leaf_hash: String,
    /// Inclusion proof against the checkpoint, base64 hashes.
    pub inclusion_proof: Vec<String>,
    /// The leaf's entry, base64: SHA-256(domain || nonce || canonical_event).
    pub commitment: String,
    /// The commitment's nonce, base64.
    pub nonce: String,
    /// The exact bytes committed to.
    pub canonical_event: String,
    /// The same event, parsed, for display.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// Index, proof and checkpoint as a C2SP tlog-proof: save it, and `candor verify --receipt`
    /// checks it offline.
    pub receipt: String,
}

/// A customer's history.
#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    /// The C2SP signed checkpoint note the proofs are against.
    pub checkpoint: String,
    /// Its tree size.
    pub tree_size: u64,
    /// This page of the events, oldest first.
    pub events: Vec<HistoryEvent>,
    /// Pass as `?after=` for the next page; `null` on the last.
    pub next: Option<u64>,
    /// How many events the checkpoint holds for this customer, on all pages together: the
    /// completeness proof's tree has exactly this many.
    pub total_events: u64,
    /// Further events already committed but not yet in the published (cosigned) checkpoint;
    /// they appear here once the witnesses have cosigned it.
    pub pending_events: usize,
    /// Proof that the pages' events are all the events the log attributes to this customer
    /// (`total_events` of them); absent while
    /// the checkpoint's directory is not at hand (briefly, after a restart under witnesses).
    pub completeness: Option<CompletenessProof>,
}
