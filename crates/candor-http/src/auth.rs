//! Who may call each route, checked before its handler runs.
//!
//! Every route of the table in `lib.rs` declares its [`Access`]. For a bearer route a layer built
//! from that declaration authenticates the token and checks the caller's kind before the body is
//! read, then hands the handler an [`Authenticated`] caller: a handler has no other way to get a
//! principal, so none can forget to authenticate. The use cases still check what only they can
//! (a service's purposes, its right to mint sessions or to erase).

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use candor_core::SubjectId;
use candor_vault::{Principal, Vault};

use crate::error::{ApiError, ErrorCode};
use crate::now;

/// A kind of bearer-token caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The business's administrator key.
    Admin,
    /// A service key.
    Service,
    /// A customer session, and only for the customer the route's `{id}` names.
    Customer,
}

impl Caller {
    /// The name used in the OpenAPI document.
    pub fn name(self) -> &'static str {
        match self {
            Caller::Admin => "admin",
            Caller::Service => "service",
            Caller::Customer => "customer",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the route holds no personal data (see the crate docs for the list).
    Public,
    /// Candor's own nodes, with the node key over the body (checked by the handler, which needs
    /// the body for it).
    Node,
    /// A bearer token of one of these kinds.
    Bearer(&'static [Caller]),
}

/// An authenticated caller whose kind the route admits, with the time of authentication.
#[derive(Clone)]
pub struct Authenticated {
    /// Who is calling.
    pub principal: Principal,
    /// Unix seconds when the token was checked; the use case's "now".
    pub now: i64,
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Authenticated, ApiError> {
        parts.extensions.remove::<Authenticated>().ok_or_else(|| {
            // Only a route declared with bearer access gets the layer that puts it there.
            tracing::error!(path = %parts.uri.path(), "a handler needs a caller its route does not authenticate");
            ApiError::internal()
        })
    }
}

fn bearer_token(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The layer of a bearer route: authenticates the token and admits only `callers`. The token is
/// checked inline: a key is read from the store at every request (so a revocation holds on every
/// node at once), and a SQLite read of tens of microseconds
/// costs less than handing the request to another thread.
pub(crate) async fn authorise(
    State((vault, callers)): State<(Arc<Vault>, &'static [Caller])>,
    params: RawPathParams,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer_token(&request).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send Authorization: Bearer <token>",
        )
    })?;
    let now = now();
    let principal = vault.keys().authenticate(token, now)?;
    let subject_in_path = params.iter().find(|(k, _)| *k == "id").map(|(_, v)| v);
    let attempt = attempt_on_customer(&request, subject_in_path);
    let admitted = callers.iter().any(|caller| match (caller, &principal) {
        (Caller::Admin, Principal::Admin { .. }) | (Caller::Service, Principal::Service(_)) => true,
        (Caller::Customer, Principal::Subject(s))
        | (Caller::Customer, Principal::Delegated { subject: s, .. }) => {
            subject_in_path == Some(s.as_str())
        }
        _ => false,
    });
    if !admitted {
        let message = match principal {
            Principal::Subject(_) | Principal::Delegated { .. }
                if callers.contains(&Caller::Customer) =>
            {
                "not your subject"
            }
            _ => "this route is not open to this caller",
        };
        if let Some((subject, action)) = attempt {
            vault
                .refusals()
                .record(&principal, &subject, action, "forbidden", now)
                .await?;
        }
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message));
    }
    // Kept only where a refusal would be logged: on the customer's routes.
    let attempt = attempt.map(|attempt| (attempt, principal.clone()));
    request
        .extensions_mut()
        .insert(Authenticated { principal, now });
    let response = next.run(request).await;
    let refused = response
        .extensions()
        .get::<ErrorCode>()
        .and_then(|code| REFUSALS.iter().find(|refusal| **refusal == code.0));
    if let (Some(reason), Some(((subject, action), principal))) = (refused, attempt) {
        vault
            .refusals()
            .record(&principal, &subject, action, reason, now)
            .await?;
    }
    Ok(response)
}

/// The codes of a refusal to act: the caller may not do this (or not without the customer's
/// consent), as opposed to asking for something malformed or absent.
const REFUSALS: [&str; 4] = [
    "forbidden",
    "purpose_not_permitted",
    "recipient_not_declared",
    "consent_required",
];

/// The customer a route under `/v1/subjects/{id}` acts on, and what the call tries to do there.
fn attempt_on_customer(request: &Request, id: Option<&str>) -> Option<(SubjectId, String)> {
    let route = request.extensions().get::<MatchedPath>()?.as_str();
    let rest = route.strip_prefix("/v1/subjects/{id}")?;
    let subject = SubjectId::parse(id?).ok()?;
    let action = match (request.method().as_str(), rest) {
        ("DELETE", "") => "erase",
        ("GET", "/data") => "read_data",
        ("PUT", "/data") => "collect",
        ("GET", "/history") => "read_history",
        ("GET", "/consents") => "read_consents",
        ("POST", "/consents") => "change_consents",
        ("POST", "/sessions") => "start_session",
        ("PUT", "/signin-email") => "set_signin_email",
        (method, rest) => return Some((subject, format!("{method} {rest}"))),
    };
    Some((subject, action.to_owned()))
}
