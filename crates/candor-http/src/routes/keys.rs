//! The keys-and-sessions slice's routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, delete, get, post};
use candor_core::KeyId;
use candor_vault::keys::{ApiKeyRow, AuthError, Delegation};
use candor_vault::{NewKeySpec, Vault};

use super::{Body, subject};
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::{ADMIN, RouteSpec, SERVICE};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Mint a short-lived delegated session for a customer (keys allowed to only): it acts for the
/// customer within the key's purposes, every event names the key, and it erases, exports or
/// grants consent only if the key's `sessions_may_*` allow it. Logged in the customer's history.
#[utoipa::path(post, path = "/v1/subjects/{id}/sessions",
    params(("id" = String, Path, description = "Subject id: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = SessionResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn mint_session(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
) -> Result<Json<SessionResponse>, ApiError> {
    let (token, expires_at) = vault.keys().mint_session(&p, &subject(&id)?, now).await?;
    Ok(Json(SessionResponse { token, expires_at }))
}

/// Create a service key bound to purposes (admin only).
#[utoipa::path(post, path = "/v1/keys", request_body = CreateKeyRequest,
    responses((status = 200, body = CreateKeyResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_key(
    State(vault): State<Arc<Vault>>,
    Authenticated { principal: p, now }: Authenticated,
    body: Body<CreateKeyRequest>,
) -> Result<Json<CreateKeyResponse>, ApiError> {
    let Json(req) = body?;
    let spec = NewKeySpec {
        name: req.name,
        purposes: req.purposes,
        recipient: req.recipient,
        can_mint_sessions: req.can_mint_sessions,
        can_erase: req.can_erase,
        expires_at: crate::wire::expiry(now, req.expires_in_secs)?,
        sessions: Delegation {
            sessions_may_erase: req.sessions_may_erase,
            sessions_may_export: req.sessions_may_export,
            sessions_may_grant_consent: req.sessions_may_grant_consent,
        },
    };
    let key = vault.keys().create_key(&p, spec, now).await?;
    Ok(Json(CreateKeyResponse {
        id: key.id.as_str().to_owned(),
        token: key.token.to_string(),
    }))
}

/// Every API key, without secrets (admin only).
#[utoipa::path(get, path = "/v1/keys",
    responses((status = 200, body = KeyList), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(vault): State<Arc<Vault>>,
    Authenticated { principal: p, .. }: Authenticated,
) -> Result<Json<KeyList>, ApiError> {
    let keys = vault.keys().list(&p)?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeySummary::from).collect(),
    }))
}

/// Revoke a service key (admin only): every node refuses it, and the sessions it minted, from
/// the moment this returns.
#[utoipa::path(delete, path = "/v1/keys/{id}",
    params(("id" = String, Path, description = "Key id: 1 to 32 of a-z, 0-9", pattern = r"^[a-z0-9]{1,32}$")),
    responses((status = 200, body = KeySummary), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
) -> Result<Json<KeySummary>, ApiError> {
    let id = KeyId::parse(&id)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "key_not_found", "no such key"))?;
    Ok(Json(vault.keys().revoke(&p, &id, now).await?.into()))
}

/// Rotate a service key (admin only): a successor with the same name, purposes and rights, its
/// token shown once; the key itself keeps working for `overlap_secs` (a day by default, never
/// past an expiry it had) so its holders can move over.
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", request_body = RotateKeyRequest,
    params(("id" = String, Path, description = "Key id: 1 to 32 of a-z, 0-9", pattern = r"^[a-z0-9]{1,32}$")),
    responses((status = 200, body = RotateKeyResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_key(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
    body: Body<RotateKeyRequest>,
) -> Result<Json<RotateKeyResponse>, ApiError> {
    let id = KeyId::parse(&id)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "key_not_found", "no such key"))?;
    let Json(req) = body?;
    let rotated = vault
        .keys()
        .rotate(
            &p,
            &id,
            req.overlap_secs,
            crate::wire::expiry(now, req.expires_in_secs)?,
            now,
        )
        .await?;
    Ok(Json(RotateKeyResponse {
        id: rotated.successor.id.as_str().to_owned(),
        token: rotated.successor.token.to_string(),
        rotated_key_expires_at: rotated.expires_at,
    }))
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![
        (
            RouteSpec::new(Method::POST, "/v1/subjects/{id}/sessions", SERVICE),
            post(mint_session),
        ),
        (
            RouteSpec::new(Method::POST, "/v1/keys", ADMIN),
            post(create_key),
        ),
        (
            RouteSpec::new(Method::GET, "/v1/keys", ADMIN),
            get(list_keys),
        ),
        (
            RouteSpec::new(Method::DELETE, "/v1/keys/{id}", ADMIN),
            delete(revoke_key),
        ),
        (
            RouteSpec::new(Method::POST, "/v1/keys/{id}/rotate", ADMIN),
            post(rotate_key),
        ),
    ]
}

/// `POST /v1/keys/{id}/rotate`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// Seconds the rotated key keeps working beside its successor, 0 to 2592000 (30 days).
    #[serde(
        default = "default_overlap",
        deserialize_with = "crate::wire::json_i64"
    )]
    #[schema(minimum = 0, maximum = 2592000, default = 86400)]
    pub overlap_secs: i64,
    /// Seconds from now until the successor is refused, if it should expire: 1 to 315360000
    /// (ten years).
    #[serde(default, deserialize_with = "crate::wire::json_i64_opt")]
    #[schema(minimum = 1, maximum = 315360000)]
    pub expires_in_secs: Option<i64>,
}

fn default_overlap() -> i64 {
    24 * 60 * 60
}

/// A rotated key's successor.
#[derive(Serialize, ToSchema)]
pub struct RotateKeyResponse {
    /// The successor's id.
    pub id: String,
    /// The successor's bearer token; shown once, not stored.
    pub token: String,
    /// Unix seconds from when the rotated key is refused.
    pub rotated_key_expires_at: i64,
}

/// `POST /v1/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Display name, shown to customers as who read their data.
    pub name: String,
    /// Purposes the key may name.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// The recipient the key acts for (processors, third parties).
    pub recipient: Option<String>,
    /// May mint customer session tokens.
    #[serde(default)]
    pub can_mint_sessions: bool,
    /// May erase customers.
    #[serde(default)]
    pub can_erase: bool,
    /// Seconds from now until the key is refused, if it should expire: 1 to 315360000 (ten
    /// years). A relative time, so no clock skew can make a new key expired already.
    #[serde(default, deserialize_with = "crate::wire::json_i64_opt")]
    #[schema(minimum = 1, maximum = 315360000)]
    pub expires_in_secs: Option<i64>,
    /// The sessions it mints may erase the customer.
    #[serde(default)]
    pub sessions_may_erase: bool,
    /// The sessions it mints may read all the customer's data and history, not only what the
    /// key's purposes use.
    #[serde(default)]
    pub sessions_may_export: bool,
    /// The sessions it mints may grant consent (for the key's purposes).
    #[serde(default)]
    pub sessions_may_grant_consent: bool,
}

/// A new key; the token is shown only now.
#[derive(Serialize, ToSchema)]
pub struct CreateKeyResponse {
    /// Public id.
    pub id: String,
    /// Bearer token.
    pub token: String,
}

/// `GET /v1/keys`.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Oldest first.
    pub keys: Vec<KeySummary>,
}

/// A key as the admin sees it: what it may do, never its secret.
#[derive(Serialize, ToSchema)]
pub struct KeySummary {
    /// Public id.
    pub id: String,
    /// `admin` or `service`.
    pub role: &'static str,
    /// Display name.
    pub name: String,
    /// Purposes it may name.
    pub purposes: Vec<String>,
    /// The recipient it acts for.
    pub recipient: Option<String>,
    /// May mint delegated sessions.
    pub can_mint_sessions: bool,
    /// May erase customers.
    pub can_erase: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds from when it is refused, if it expires.
    pub expires_at: Option<i64>,
    /// Unix seconds from when it was refused, once revoked.
    pub revoked_at: Option<i64>,
}

impl From<ApiKeyRow> for KeySummary {
    fn from(k: ApiKeyRow) -> KeySummary {
        KeySummary {
            id: k.id.as_str().to_owned(),
            role: k.role.as_str(),
            name: k.name,
            purposes: k.purposes,
            recipient: k.recipient,
            can_mint_sessions: k.can_mint_sessions,
            can_erase: k.can_erase,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A customer session.
#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    /// Bearer token for the customer.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Authentication's own refusal is a 401; anything else is the shared mapping.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Unauthenticated => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            AuthError::Vault(e) => e.into(),
        }
    }
}
