//! The consent slice's routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::routing::{MethodRouter, get, post};
use candor_core::{ConsentAction, ConsentState, Evidence};
use candor_vault::{ConsentChange, ConsentView, Vault};

use super::{Body, subject};
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::wire::PageQuery;
use crate::{CUSTOMER_OR_SERVICE, RouteSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn consent_state(s: ConsentState) -> &'static str {
    match s {
        ConsentState::Absent => "absent",
        ConsentState::Granted => "granted",
        ConsentState::Withdrawn => "withdrawn",
        ConsentState::Expired => "expired",
    }
}

fn consents_body(view: ConsentView) -> ConsentsResponse {
    ConsentsResponse {
        in_force: view
            .in_force
            .into_iter()
            .map(|(purpose, s)| ConsentInForce {
                purpose: purpose.as_str().to_owned(),
                state: consent_state(s),
            })
            .collect(),
        history: view
            .history
            .into_iter()
            .map(|r| ConsentRecordBody {
                purpose: r.purpose,
                recipient: r.recipient,
                action: r.action.as_str(),
                at: r.at,
                expires_at: r.expires_at,
                evidence: RecordedEvidence {
                    channel: r.evidence.channel,
                    notice_version: r.evidence.notice_version,
                },
            })
            .collect(),
        next: view.next,
    }
}

/// A customer's consents: the state in force, and a page of the records, oldest first.
#[utoipa::path(get, path = "/v1/subjects/{id}/consents",
    params(("id" = String, Path, description = "Subject id: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`", pattern = r"^[A-Za-z0-9_-]{1,64}$"), PageQuery),
    responses((status = 200, body = ConsentsResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_consents(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    Authenticated { principal: p, now }: Authenticated,
) -> Result<Json<ConsentsResponse>, ApiError> {
    let page = PageQuery::page(query)?;
    Ok(Json(consents_body(vault.consents().view(
        &p,
        &subject(&id)?,
        now,
        page,
    )?)))
}

/// Grant or withdraw consent. `Sec-GPC: 1` withdraws every purpose that sells or shares data.
#[utoipa::path(post, path = "/v1/subjects/{id}/consents", request_body = PostConsentsRequest,
    params(("id" = String, Path, description = "Subject id: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`", pattern = r"^[A-Za-z0-9_-]{1,64}$"),
           ("Sec-GPC" = Option<String>, Header, description = "Global Privacy Control; exactly `1` to opt out of sale and sharing")),
    responses((status = 200, body = ConsentsResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_consents(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Authenticated { principal: p, now }: Authenticated,
    body: Body<PostConsentsRequest>,
) -> Result<Json<ConsentsResponse>, ApiError> {
    // GPC is `Sec-GPC: 1` exactly; any other value is no signal.
    let gpc = headers.get("sec-gpc").is_some_and(|v| v.as_bytes() == b"1");
    let Json(req) = body?;
    let changes = req
        .changes
        .into_iter()
        .map(|c| {
            Ok(ConsentChange {
                purpose: c.purpose,
                recipient: c.recipient,
                action: match c.action {
                    ConsentActionBody::Grant => ConsentAction::Grant,
                    ConsentActionBody::Withdraw => ConsentAction::Withdraw,
                },
                expires_at: crate::wire::expiry(now, c.expires_in_secs)?,
                evidence: c.evidence.map(|e| Evidence {
                    channel: e.channel,
                    notice_version: e.notice_version,
                }),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let view = vault
        .consents()
        .record(&p, &subject(&id)?, changes, gpc, now)
        .await?;
    Ok(Json(consents_body(view)))
}

/// This slice's part of the route table.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    vec![
        (
            RouteSpec::new(
                Method::GET,
                "/v1/subjects/{id}/consents",
                CUSTOMER_OR_SERVICE,
            ),
            get(get_consents),
        ),
        (
            RouteSpec::new(
                Method::POST,
                "/v1/subjects/{id}/consents",
                CUSTOMER_OR_SERVICE,
            ),
            post(post_consents),
        ),
    ]
}

/// Evidence a caller gives of how a consent choice was made.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBody {
    /// Where: `privacy_center`, `checkout`, `support_call`, ...
    pub channel: String,
    /// The notice version shown.
    pub notice_version: String,
}

/// The evidence a consent record holds: what its caller gave, or Candor's own channels
/// (`privacy_center`, `gpc`).
#[derive(Serialize, ToSchema)]
pub struct RecordedEvidence {
    /// Where: `privacy_center`, `gpc`, `checkout`, `support_call`, ...
    pub channel: String,
    /// The notice version shown.
    pub notice_version: String,
}

/// One consent change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChangeBody {
    /// The purpose id.
    pub purpose: String,
    /// `grant` or `withdraw`.
    pub action: ConsentActionBody,
    /// Limit to one recipient of the purpose.
    pub recipient: Option<String>,
    /// Seconds from now until a grant lapses: 1 to 315360000 (ten years). Relative, so no
    /// clock skew makes a new grant lapsed already; the record shows the instant.
    #[serde(default, deserialize_with = "crate::wire::json_i64_opt")]
    #[schema(minimum = 1, maximum = 315360000)]
    pub expires_in_secs: Option<i64>,
    /// Required from services; customers default to the privacy center and current notice.
    pub evidence: Option<EvidenceBody>,
}

/// Grant or withdraw.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ConsentActionBody {
    /// Agree.
    Grant,
    /// Take agreement back.
    Withdraw,
}

/// `POST /v1/subjects/{id}/consents`. A `Sec-GPC: 1` header also withdraws every purpose that
/// sells or shares data.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostConsentsRequest {
    /// Changes, applied in order (at most 100).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub changes: Vec<ConsentChangeBody>,
}

/// A consent-based purpose and its state.
#[derive(Serialize, ToSchema)]
pub struct ConsentInForce {
    /// Purpose id.
    pub purpose: String,
    /// `granted`, `withdrawn`, `expired` or `absent`.
    pub state: &'static str,
}

/// A consent record.
#[derive(Serialize, ToSchema)]
pub struct ConsentRecordBody {
    /// Purpose id.
    pub purpose: String,
    /// Recipient it is limited to.
    pub recipient: Option<String>,
    /// `grant` or `withdraw`.
    pub action: &'static str,
    /// Unix seconds.
    pub at: i64,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// How it was given.
    pub evidence: RecordedEvidence,
}

/// A customer's consents.
#[derive(Serialize, ToSchema)]
pub struct ConsentsResponse {
    /// State in force per consent-based purpose.
    pub in_force: Vec<ConsentInForce>,
    /// Records, oldest first: on `GET` the page asked for, on `POST` the ones just made.
    pub history: Vec<ConsentRecordBody>,
    /// Pass as `?after=` for the next page; `null` on the last.
    pub next: Option<u64>,
}
