//! Route handlers and the OpenAPI document generated from their annotations.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use candor_core::{ConsentAction, ConsentState, Evidence, SubjectId};
use candor_vault::{ConsentChange, ConsentView, NewKeySpec, Vault};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use zeroize::Zeroizing;

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::wire::*;

type Body<T> = Result<Json<T>, JsonRejection>;

fn subject(raw: &str) -> Result<SubjectId, ApiError> {
    SubjectId::parse(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_subject_id", e.to_string()))
}

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
                purpose,
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
                evidence: EvidenceBody {
                    channel: r.evidence.channel,
                    notice_version: r.evidence.notice_version,
                },
            })
            .collect(),
    }
}

/// Store fields for a customer, collected for a purpose.
#[utoipa::path(put, path = "/v1/subjects/{id}/data", request_body = PutDataRequest,
    params(("id" = String, Path, description = "Subject id")),
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
    Ok(Json(PutDataResponse { leaf_index }))
}

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

/// A customer's consents: state in force and full history.
#[utoipa::path(get, path = "/v1/subjects/{id}/consents",
    params(("id" = String, Path, description = "Subject id")),
    responses((status = 200, body = ConsentsResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_consents(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
) -> Result<Json<ConsentsResponse>, ApiError> {
    Ok(Json(consents_body(vault.consents().view(
        &p,
        &subject(&id)?,
        now,
    )?)))
}

/// Grant or withdraw consent. `Sec-GPC: 1` withdraws every purpose that sells or shares data.
#[utoipa::path(post, path = "/v1/subjects/{id}/consents", request_body = PostConsentsRequest,
    params(("id" = String, Path, description = "Subject id"),
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
        .map(|c| ConsentChange {
            purpose: c.purpose,
            recipient: c.recipient,
            action: match c.action {
                ConsentActionBody::Grant => ConsentAction::Grant,
                ConsentActionBody::Withdraw => ConsentAction::Withdraw,
            },
            expires_at: c.expires_at,
            evidence: c.evidence.map(|e| Evidence {
                channel: e.channel,
                notice_version: e.notice_version,
            }),
        })
        .collect();
    let view = vault
        .consents()
        .record(&p, &subject(&id)?, changes, gpc, now)
        .await?;
    Ok(Json(consents_body(view)))
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

/// Erase a customer: destroy their key and data. The log stays verifiable.
#[utoipa::path(delete, path = "/v1/subjects/{id}",
    params(("id" = String, Path, description = "Subject id")),
    responses((status = 200, body = ErasureResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
) -> Result<Json<ErasureResponse>, ApiError> {
    let r = vault.erasure().erase(&p, &subject(&id)?, now).await?;
    Ok(Json(ErasureResponse {
        erased: true,
        leaf_index: r.leaf_index,
        commitment: b64(&r.commitment),
        nonce: b64(&r.nonce),
        canonical_event: r.canonical_event,
    }))
}

/// Mint a short-lived session token for a customer (trusted services only).
#[utoipa::path(post, path = "/v1/subjects/{id}/sessions",
    params(("id" = String, Path, description = "Subject id")),
    responses((status = 200, body = SessionResponse), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn mint_session(
    State(vault): State<Arc<Vault>>,
    Path(id): Path<String>,
    Authenticated { principal: p, now }: Authenticated,
) -> Result<Json<SessionResponse>, ApiError> {
    let (token, expires_at) = vault.keys().mint_session(&p, &subject(&id)?, now)?;
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
    };
    let key = vault.keys().create_key(&p, spec, now).await?;
    Ok(Json(CreateKeyResponse {
        id: key.id,
        token: key.token.to_string(),
    }))
}

async fn latest_checkpoint(vault: Arc<Vault>) -> Result<Option<(u64, String)>, ApiError> {
    tokio::task::spawn_blocking(move || vault.public_log().checkpoint())
        .await
        .map_err(|_| ApiError::internal())?
        .map(|cp| cp.map(|c| (c.size, c.note)))
        .map_err(ApiError::from)
}

/// The latest C2SP signed checkpoint (public).
#[utoipa::path(get, path = "/log/checkpoint",
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
pub async fn checkpoint(State(vault): State<Arc<Vault>>) -> Result<Response, ApiError> {
    let (_, note) = latest_checkpoint(vault).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "log_empty",
            "the log has no entries yet",
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        note,
    )
        .into_response())
}

/// Every tile path names bytes that never change: a full tile once the tree has passed it, and a
/// partial tile `.p/W` because its `W` hashes are final too. Caches may keep them for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A C2SP tlog-tiles hash tile or entry bundle (public). Entries are the 32-byte commitments,
/// never event bodies.
#[utoipa::path(get, path = "/log/tile/{path}",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn tile(
    State(vault): State<Arc<Vault>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let path = candor_log::parse_tile_path(&path)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_tile_path", e.to_string()))?;
    // A cached full tile is answered inline; anything else reads storage on the blocking pool.
    let bytes = match vault.public_log().cached_tile(&path) {
        Some(bytes) => bytes,
        None => tokio::task::spawn_blocking(move || vault.public_log().tile(path))
            .await
            .map_err(|_| ApiError::internal())??,
    };
    let bytes = axum::body::Bytes::from_owner(bytes);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        bytes,
    )
        .into_response())
}

/// A receipt for a leaf: its inclusion proof and the published checkpoint, as a C2SP tlog-proof
/// (public: it is made only of what the tiles already show).
#[utoipa::path(get, path = "/log/receipt/{index}",
    params(("index" = u64, Path, description = "Leaf index")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 400, body = ErrorBody)))]
pub async fn receipt(
    State(vault): State<Arc<Vault>>,
    Path(index): Path<String>,
) -> Result<Response, ApiError> {
    let index: u64 = index.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the leaf index is a decimal number",
        )
    })?;
    let receipt = tokio::task::spawn_blocking(move || vault.public_log().receipt(index))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        receipt.to_text(),
    )
        .into_response())
}

/// A consistency proof between two tree sizes (public), so anyone holding an older checkpoint
/// can check the newer one extends it.
#[utoipa::path(get, path = "/log/consistency", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyResponse), (status = 400, body = ErrorBody)))]
pub async fn consistency(
    State(vault): State<Arc<Vault>>,
    query: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConsistencyResponse>, ApiError> {
    let Query(q) = query.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "need ?from=N&to=M",
        )
    })?;
    let proof = tokio::task::spawn_blocking(move || vault.public_log().consistency(q.from, q.to))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(Json(ConsistencyResponse {
        from: q.from,
        to: q.to,
        proof: proof.iter().map(|h| b64(&h.0)).collect(),
    }))
}

/// Liveness and the log's size (public).
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn health(State(vault): State<Arc<Vault>>) -> Result<Json<Health>, ApiError> {
    let sequencer = vault.sequencing().is_sequencer();
    let tree_size = latest_checkpoint(vault).await?.map_or(0, |(s, _)| s);
    Ok(Json(Health {
        status: "ok",
        tree_size,
        sequencer,
    }))
}

/// This document (public).
#[utoipa::path(get, path = "/openapi.json",
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "node",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "Candor-Node-Auth",
                    "Between Candor's own nodes: time, nonce and an HMAC over the body under the node key",
                ))),
            );
    }
}

/// The OpenAPI 3.1 description of the API, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "Candor", description = "Purpose-bound personal-data vault with a verifiable access log."),
    paths(put_data, get_data, get_consents, post_consents, access, lookup, history, erase, mint_session,
          create_key, checkpoint, consistency, tile, receipt, health, openapi,
          crate::cluster::commit, crate::cluster::completeness),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;
