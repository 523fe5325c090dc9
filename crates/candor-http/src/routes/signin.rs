//! The sign-in slice's routes: public, since whoever calls them is not signed in yet; what they
//! take is the proof (an ID token from the business's identity provider, bound to a nonce
//! Candor issued).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, post, put};
use axum::{Extension, Json};
use candor_vault::Vault;
use candor_vault::signin::{SignedIn, SigninError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Body, subject};
use crate::auth::{Access, Authenticated};
use crate::error::{ApiError, ErrorBody};
use crate::{ADMIN_OR_CUSTOMER, RouteSpec, SigninMethods, now};

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

/// Set the address the customer signs in with (the customer signed in, or the admin). Candor
/// sends it a link; the address counts once that link is used.
#[utoipa::path(put, path = "/v1/subjects/{id}/signin-email", request_body = EmailRequest,
    params(("id" = String, Path, description = "Subject id: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`", pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 202, body = Accepted), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_signin_email(
    State(vault): State<Arc<Vault>>,
    Extension(methods): Extension<Arc<SigninMethods>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
    body: Body<EmailRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let Json(req) = body?;
    let mailer = methods.email.as_ref().ok_or_else(not_configured)?;
    let mail = vault
        .signin()
        .set_email(&p, &subject(&id)?, &req.email, now)
        .await?;
    mailer.send_later(mail);
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true })))
}

/// Ask for a sign-in link (public). The answer is the same whether or not the address is a
/// customer's verified sign-in address; only then is a link sent, and logged in their history.
#[utoipa::path(post, path = "/v1/signin/email", request_body = EmailRequest,
    responses((status = 202, body = Accepted), (status = "4XX", body = ErrorBody)))]
pub async fn request_email_link(
    State(vault): State<Arc<Vault>>,
    Extension(methods): Extension<Arc<SigninMethods>>,
    body: Body<EmailRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let Json(req) = body?;
    let mailer = methods.email.as_ref().ok_or_else(not_configured)?;
    if let Some(mail) = vault.signin().email_link(&req.email, now()).await? {
        mailer.send_later(mail);
    }
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true })))
}

/// Sign in with the secret of a link Candor sent (public): once, within 15 minutes.
#[utoipa::path(post, path = "/v1/signin/email/redeem", request_body = LinkRequest,
    responses((status = 200, body = SigninResponse), (status = "4XX", body = ErrorBody)))]
pub async fn redeem_email_link(
    State(vault): State<Arc<Vault>>,
    body: Body<LinkRequest>,
) -> Result<Json<SigninResponse>, ApiError> {
    let Json(req) = body?;
    let session = vault.signin().with_link(&req.token, now()).await?;
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
        (
            RouteSpec::new(
                Method::PUT,
                "/v1/subjects/{id}/signin-email",
                ADMIN_OR_CUSTOMER,
            ),
            put(set_signin_email),
        ),
        (
            RouteSpec::new(Method::POST, "/v1/signin/email", Access::Public),
            post(request_email_link),
        ),
        (
            RouteSpec::new(Method::POST, "/v1/signin/email/redeem", Access::Public),
            post(redeem_email_link),
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

/// `PUT /v1/subjects/{id}/signin-email`, `POST /v1/signin/email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    /// An email address.
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
}

/// `POST /v1/signin/email/redeem`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The `token` of the link.
    pub token: String,
}

/// Taken; what follows goes by mail.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    /// Always true.
    pub accepted: bool,
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
