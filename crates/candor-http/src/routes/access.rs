//! The access slice's routes: the customer's own data, purpose-bound reads and lookups.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::{MethodRouter, get, post};
use candor_vault::Vault;
use zeroize::Zeroizing;

use super::{Body, subject};
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::{CUSTOMER, RouteSpec, SERVICE};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Everything held about the customer, for the customer themself (right of access). Logged.
#[utoipa::path(get, path = "/v1/subjects/{id}/data",
    params(("id" = String, Path, description = "Subject id: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = OwnDataResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_data(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
) -> Result<Json<OwnDataResponse>, ApiError> {
    let (values, leaf_index) = vault.access().own_data(&p, &subject(&id)?, now).await?;
    Ok(Json(OwnDataResponse {
        data: values
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect(),
        leaf_index: leaf_index.get(),
    }))
}

/// Read fields for a purpose. Each field is allowed or denied with a reason; the access is
/// logged durably before any value is returned.
#[utoipa::path(post, path = "/v1/access", request_body = AccessRequest,
    responses((status = 200, body = AccessResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn access(
    State(vault): State<Arc<Vault>>,
    Authenticated { principal: p, now }: Authenticated,
    body: Body<AccessRequest>,
) -> Result<Json<AccessResponse>, ApiError> {
    let Json(req) = body?;
    let out = vault
        .access()
        .access(&p, &subject(&req.subject)?, &req.purpose, &req.fields, now)
        .await?;
    Ok(Json(AccessResponse {
        decisions: out
            .decisions
            .into_iter()
            .map(|d| FieldDecisionBody {
                field: d.field,
                allowed: d.denial.is_none(),
                reason: d.denial.map(|r| r.code()),
            })
            .collect(),
        data: out
            .values
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect(),
        leaf_index: out.leaf_index.get(),
    }))
}

/// Find customers by an exact value of a lookup category, through the blind index.
#[utoipa::path(post, path = "/v1/lookup", request_body = LookupRequest,
    responses((status = 200, body = LookupResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn lookup(
    State(vault): State<Arc<Vault>>,
    Authenticated { principal: p, now }: Authenticated,
    body: Body<LookupRequest>,
) -> Result<Json<LookupResponse>, ApiError> {
    let Json(req) = body?;
    let value = Zeroizing::new(req.value);
    let found = vault
        .access()
        .lookup(&p, &req.purpose, &req.category, &value, now)
        .await?;
    Ok(Json(LookupResponse {
        subjects: found.into_iter().map(|s| s.as_str().to_owned()).collect(),
    }))
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![
        (
            RouteSpec::new(Method::GET, "/v1/subjects/{id}/data", CUSTOMER),
            get(get_data),
        ),
        (
            RouteSpec::new(Method::POST, "/v1/access", SERVICE),
            post(access),
        ),
        (
            RouteSpec::new(Method::POST, "/v1/lookup", SERVICE),
            post(lookup),
        ),
    ]
}

/// `POST /v1/access`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    /// The customer.
    pub subject: String,
    /// The purpose of this read; the key must be bound to it.
    pub purpose: String,
    /// Data categories wanted.
    pub fields: Vec<String>,
}

/// One field's decision.
#[derive(Serialize, ToSchema)]
pub struct FieldDecisionBody {
    /// The field.
    pub field: String,
    /// Whether it was released.
    pub allowed: bool,
    /// Why not: `not_needed_by_purpose`, `no_consent`, `consent_withdrawn`, `consent_expired`,
    /// `unknown_field` or `recipient_not_declared`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// What a read released.
#[derive(Serialize, ToSchema)]
pub struct AccessResponse {
    /// Per-field decisions, in request order.
    pub decisions: Vec<FieldDecisionBody>,
    /// Allowed values that exist, by field.
    pub data: BTreeMap<String, String>,
    /// The access event's leaf index; it was durable before this response.
    pub leaf_index: u64,
}

/// `POST /v1/lookup`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// The purpose of the lookup.
    pub purpose: String,
    /// A category declared `lookup = true`.
    pub category: String,
    /// The value to match.
    pub value: String,
}

/// Matching customers.
#[derive(Serialize, ToSchema)]
pub struct LookupResponse {
    /// Subject ids whose value matched and whose data this purpose may read.
    pub subjects: Vec<String>,
}

/// Everything held about the customer (`GET /v1/subjects/{id}/data`).
#[derive(Serialize, ToSchema)]
pub struct OwnDataResponse {
    /// Values by data category.
    pub data: BTreeMap<String, String>,
    /// The access event's leaf index; it was durable before this response.
    pub leaf_index: u64,
}
