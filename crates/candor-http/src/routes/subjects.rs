//! The subjects-and-fields slice's routes: collecting fields.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, put};
use candor_vault::Vault;
use candor_vault::subjects::CollectError;
use zeroize::Zeroizing;

use super::{Body, subject};
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::{RouteSpec, SERVICE};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Store fields for a customer, collected for a purpose.
#[utoipa::path(put, path = "/v1/subjects/{id}/data", request_body = PutDataRequest,
    params(("id" = String, Path, description = "Subject id: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = PutDataResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_data(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
    body: Body<PutDataRequest>,
) -> Result<Json<PutDataResponse>, ApiError> {
    let Json(req) = body?;
    let fields = req
        .fields
        .into_iter()
        .map(|(k, v)| (k, Zeroizing::new(v)))
        .collect();
    let leaf_index = vault
        .collection()
        .collect(&p, &subject(&id)?, &req.purpose, fields, now)
        .await?;
    Ok(Json(PutDataResponse {
        leaf_index: leaf_index.get(),
    }))
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![(
        RouteSpec::new(Method::PUT, "/v1/subjects/{id}/data", SERVICE),
        put(put_data),
    )]
}

/// `PUT /v1/subjects/{id}/data`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDataRequest {
    /// The purpose the data is collected for; it must need every field.
    pub purpose: String,
    /// Values by data category, e.g. `{"user.contact.email": "ada@example.com"}`; each
    /// category once.
    #[serde(deserialize_with = "crate::wire::unique_keys")]
    pub fields: BTreeMap<String, String>,
}

/// The collection's log position.
#[derive(Serialize, ToSchema)]
pub struct PutDataResponse {
    /// The `collected` event's leaf index.
    pub leaf_index: u64,
}

/// Collection's own refusals: an undeclared field is a bad request, a field the purpose does not
/// need is unprocessable, missing consent is forbidden; anything else is the shared mapping.
impl From<CollectError> for ApiError {
    fn from(e: CollectError) -> ApiError {
        let message = e.to_string();
        match e {
            CollectError::UnknownField(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_field", message)
            }
            CollectError::FieldNotNeeded { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "field_not_needed_by_purpose",
                message,
            ),
            CollectError::ConsentRequired(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "consent_required", message)
            }
            CollectError::Vault(e) => e.into(),
        }
    }
}
