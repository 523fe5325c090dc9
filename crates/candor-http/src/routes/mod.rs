//! Route handlers, one module per feature slice, each with its part of the route table, and the
//! OpenAPI document generated from their annotations.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::MethodRouter;
use candor_core::SubjectId;
use candor_vault::Vault;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::RouteSpec;
use crate::error::ApiError;
use crate::wire::*;

pub(crate) mod access;
pub(crate) mod consent;
pub(crate) mod erasure;
pub(crate) mod history;
pub(crate) mod key_epochs;
pub(crate) mod keys;
pub(crate) mod public_log;
pub(crate) mod signin;
pub(crate) mod subjects;

/// Every slice's part of the route table; a new slice's routes module adds its line here.
pub(crate) fn table() -> Vec<(RouteSpec, MethodRouter<Arc<Vault>>)> {
    [
        subjects::table(),
        access::table(),
        consent::table(),
        history::table(),
        erasure::table(),
        keys::table(),
        key_epochs::table(),
        signin::table(),
        public_log::table(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub(crate) type Body<T> = Result<Json<T>, JsonRejection>;

pub(crate) fn subject(raw: &str) -> Result<SubjectId, ApiError> {
    SubjectId::parse(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_subject_id", e.to_string()))
}

/// Liveness and the log's size (public).
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn health(State(vault): State<Arc<Vault>>) -> Result<Json<Health>, ApiError> {
    let sequencer = vault.sequencing().is_sequencer();
    let tree_size = public_log::latest_checkpoint(vault)
        .await?
        .map_or(0, |(s, _)| s);
    Ok(Json(Health {
        status: "ok",
        tree_size,
        sequencer,
    }))
}

/// This document (public), with the deployment's data map in it: the purposes, categories and
/// recipients a request may name are enumerated, so a schema-driven client (or fuzzer) sends
/// only what the server takes.
#[utoipa::path(get, path = "/openapi.json",
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi(State(vault): State<Arc<Vault>>) -> Json<serde_json::Value> {
    Json(document(vault.data_map()))
}

/// The OpenAPI document with every limit the server enforces that depends on the data map, or
/// that utoipa's attributes cannot state (patterns held in constants).
pub fn document(map: &candor_core::DataMap) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    let purposes: Vec<&str> = map.purposes().map(|p| p.id().as_str()).collect();
    let consent_purposes: Vec<&str> = map
        .purposes()
        .filter(|p| p.legal_basis().needs_consent())
        .map(|p| p.id().as_str())
        .collect();
    let categories: Vec<&str> = map.categories().map(|c| c.key().as_str()).collect();
    let lookups: Vec<&str> = map
        .categories()
        .filter(|c| c.lookup())
        .map(|c| c.key().as_str())
        .collect();
    let mut recipients: Vec<Value> = map.recipients().map(|r| json!(r.id().as_str())).collect();
    recipients.push(Value::Null);
    // What a purpose needs and whom it shares with depend on the purpose: one branch each.
    let collected: Vec<Value> = map
        .purposes()
        .map(|p| {
            let needs: Vec<&str> = p.categories().map(|c| c.as_str()).collect();
            json!({ "properties": { "purpose": { "const": p.id().as_str() },
                "fields": { "propertyNames": { "enum": needs } } } })
        })
        .collect();
    let consented: Vec<Value> = map
        .purposes()
        .filter(|p| p.legal_basis().needs_consent())
        .map(|p| {
            let mut shares: Vec<Value> = p.recipients().map(|r| json!(r.as_str())).collect();
            shares.push(Value::Null);
            json!({ "properties": { "purpose": { "const": p.id().as_str() },
                "recipient": { "enum": shares } } })
        })
        .collect();
    let label = json!({ "type": "string", "minLength": 1, "maxLength": 64,
        "pattern": crate::wire::LABEL_PATTERN });
    let max_fields = candor_vault::MAX_FIELDS;
    let patches: [(&str, Value); 14] = [
        (
            "AccessRequest/properties/subject",
            json!({ "type": "string",
            "pattern": "^[A-Za-z0-9_-]{1,64}$" }),
        ),
        ("CreateKeyRequest/properties/name", label.clone()),
        (
            "CreateKeyRequest/properties/purposes",
            json!({ "type": "array", "uniqueItems": true,
            "items": { "type": "string", "enum": purposes } }),
        ),
        (
            "CreateKeyRequest/properties/recipient",
            json!({ "enum": recipients }),
        ),
        (
            "EvidenceBody/properties/channel",
            json!({ "allOf": [label.clone(),
            { "not": { "enum": candor_vault::consent::CANDOR_CHANNELS } }] }),
        ),
        ("EvidenceBody/properties/notice_version", label),
        (
            "PutDataRequest/properties/purpose",
            json!({ "type": "string", "enum": purposes }),
        ),
        (
            "PutDataRequest/properties/fields",
            json!({ "type": "object", "minProperties": 1,
            "maxProperties": max_fields, "propertyNames": { "enum": categories },
            "additionalProperties": { "type": "string",
                "maxLength": candor_vault::MAX_VALUE_LEN } }),
        ),
        (
            "AccessRequest/properties/purpose",
            json!({ "type": "string", "enum": purposes }),
        ),
        (
            "AccessRequest/properties/fields",
            json!({ "type": "array", "minItems": 1,
            "maxItems": max_fields, "items": { "type": "string", "enum": categories } }),
        ),
        (
            "LookupRequest/properties/purpose",
            json!({ "type": "string", "enum": purposes }),
        ),
        (
            "LookupRequest/properties/category",
            json!({ "type": "string", "enum": lookups }),
        ),
        (
            "ConsentChangeBody/properties/purpose",
            json!({ "type": "string",
            "enum": consent_purposes }),
        ),
        (
            "ConsentChangeBody/properties/recipient",
            json!({ "enum": recipients }),
        ),
    ];
    for (at, schema) in patches {
        *slot(&mut doc, at) = schema;
    }
    slot(&mut doc, "PutDataRequest")["oneOf"] = Value::Array(collected);
    slot(&mut doc, "ConsentChangeBody")["oneOf"] = Value::Array(consented);
    doc
}

fn slot<'a>(doc: &'a mut serde_json::Value, at: &str) -> &'a mut serde_json::Value {
    let pointer = format!("/components/schemas/{at}");
    doc.pointer_mut(&pointer)
        .unwrap_or_else(|| panic!("the document has {pointer}"))
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

/// States the limits every request is held to, from the constants that enforce them.
struct RequestLimits;

impl utoipa::Modify for RequestLimits {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let limits = format!(
            "\n\nEvery request: a request target of at most {uri} bytes (414 `uri_too_long`), at \
             most {headers} header lines of {header_bytes} bytes in all (431 \
             `headers_too_large`), a path that is UTF-8 once percent-decoded (400 \
             `invalid_path`), and a body of at most {body} bytes (413 `payload_too_large`) that \
             arrives within the deployment's body deadline (408 `body_timeout`, 30 s by \
             default). Connections idle past the header deadline (30 s by default) are closed. \
             Numbers in paths and queries are canonical decimals. Every error is an \
             `ErrorBody`.",
            uri = crate::MAX_URI_BYTES,
            headers = crate::MAX_HEADERS,
            header_bytes = crate::MAX_HEADER_BYTES,
            body = crate::MAX_BODY_BYTES,
        );
        api.info
            .description
            .get_or_insert_with(String::new)
            .push_str(&limits);
    }
}

/// The OpenAPI 3.1 description of the API, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "Candor", description = "Purpose-bound personal-data vault with a verifiable access log."),
    paths(subjects::put_data, access::get_data, consent::get_consents, consent::post_consents,
          access::access, access::lookup, history::history, erasure::erase, keys::mint_session,
          keys::create_key, keys::list_keys, keys::revoke_key, keys::rotate_key, history::operator_history,
          key_epochs::key_epochs, key_epochs::roll_key_epoch, signin::oidc_nonce, signin::oidc_signin, signin::set_signin_email,
          signin::request_email_link, signin::redeem_email_link, public_log::checkpoint, public_log::consistency, public_log::tile,
          public_log::receipt, health, openapi, crate::cluster::commit, crate::cluster::completeness),
    modifiers(&BearerScheme, &RequestLimits)
)]
pub struct ApiDoc;
