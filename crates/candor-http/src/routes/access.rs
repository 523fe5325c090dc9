//! The access slice's routes: the customer's own data, purpose-bound reads and lookups.

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
use crate::wire::*;
use crate::{CUSTOMER, RouteSpec, SERVICE};

/// Everything held about the customer, for the customer themself (right of access). Logged.
#[utoipa::path(get, path = "/v1/subjects/{id}/data",
    params(("id" = String, Path, description = "Subject id")),
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
        leaf_index,
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
        leaf_index: out.leaf_index,
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
