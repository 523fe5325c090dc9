//! The sign-in slice's routes: public, since whoever calls them is not signed in yet; what they
//! take is the proof (an ID token from the business's identity provider, bound to a nonce
//! Candor issued).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, post};
use axum::{Extension, Json};
use candor_vault::Vault;
use candor_vault::signin::{SignedIn, SigninError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Body;
use crate::auth::Access;
use crate::error::{ApiError, ErrorBody};
use crate::{RouteSpec, SigninMethods, now};

/// A nonce to send the customer to the identity provider with (public). The ID token it returns
/// must carry it; each is good for one sign-in, for ten minutes.
#[utoipa::path(post, path = "/v1/signin/oidc/nonce",
    responses((status = 200, body = NonceResponse), (status = "4XX", body = ErrorBody)))]
pub async fn oidc_nonce(
    State(vault): State<Arc<Vault>>,
    Extension(methods): Extension<Arc<SigninMethods>>,
) -> Result<Json<NonceResponse>, ApiError> {
    if methods.oidc.is_none() {
        return Err(not_configured());
    }
    let (nonce, expires_at) = vault.signin().nonce(now());
    Ok(Json(NonceResponse { nonce, expires_at }))
}

/// Sign in with an ID token from the business's identity provider (public): a session of the
/// customer's own, whose start is in their history. Every refusal is the same 401
/// `signin_failed`.
#[utoipa::path(post, path = "/v1/signin/oidc", request_body = OidcSigninRequest,
    responses((status = 200, body = SigninResponse), (status = "4XX", body = ErrorBody)))]
pub async fn oidc_signin(
    State(vault): State<Arc<Vault>>,
    Extension(methods): Extension<Arc<SigninMethods>>,
    body: Body<OidcSigninRequest>,
) -> Result<Json<SigninResponse>, ApiError> {
    let Json(req) = body?;
    let provider = methods.oidc.as_ref().ok_or_else(not_configured)?;
    let verified = provider.verify(&req.id_token).await.map_err(|e| {
        tracing::info!(error = %e, "sign-in refused");
        failed()
    })?;
    let session = vault
        .signin()
        .with_verified_id_token(&verified.customer, &verified.nonce, now())
        .await?;
    Ok(Json(session.into()))
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![
        (
            RouteSpec::new(Method::POST, "/v1/signin/oidc/nonce", Access::Public),
            post(oidc_nonce),
        ),
        (
            RouteSpec::new(Method::POST, "/v1/signin/oidc", Access::Public),
            post(oidc_signin),
        ),
    ]
}

fn failed() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "signin_failed",
        "the sign-in could not be verified",
    )
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "signin_not_configured",
        "this deployment does not offer this way of signing in",
    )
}

impl From<SigninError> for ApiError {
    fn from(e: SigninError) -> ApiError {
        match e {
            SigninError::Failed => failed(),
            SigninError::Vault(e) => e.into(),
        }
    }
}

/// `POST /v1/signin/oidc/nonce`.
#[derive(Serialize, ToSchema)]
pub struct NonceResponse {
    /// Put this in the authentication request's `nonce`.
    pub nonce: String,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

/// `POST /v1/signin/oidc`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcSigninRequest {
    /// The ID token (a JWS in compact form) the identity provider issued.
    pub id_token: String,
}

/// A session of the customer's own.
#[derive(Serialize, ToSchema)]
pub struct SigninResponse {
    /// The customer signed in.
    pub subject: String,
    /// Bearer token for the customer's routes.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl From<SignedIn> for SigninResponse {
    fn from(s: SignedIn) -> SigninResponse {
        SigninResponse {
            subject: s.subject.as_str().to_owned(),
            token: s.token,
            expires_at: s.expires_at,
        }
    }
}
