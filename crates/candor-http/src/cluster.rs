//! Several nodes on one database: a follower hands each write to the node that sequences the
//! log, over `POST /internal/v1/log/commit`.
//!
//! The route is authenticated with the node key (derived from the root key, which every node of
//! one deployment holds): an HMAC over the request's time, a fresh nonce and the body, carried in
//! `Candor-Node-Auth`. The sequencer refuses a stale time or a nonce it has seen, so a captured
//! request cannot be replayed to append twice. The body is the [`WriteRequest`] as JSON: already
//! sealed by the follower, it holds ciphertexts, digests and commitments, never plaintext.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use candor_crypto::NodeKey;
use candor_store::{RequestOutcome, WriteRequest};
use candor_vault::{Forwarder, Vault, WriterError};

use crate::error::ApiError;

/// The header that authenticates a request between nodes.
pub const NODE_AUTH_HEADER: &str = "candor-node-auth";

/// The internal route a follower's writes arrive on.
pub const COMMIT_PATH: &str = "/internal/v1/log/commit";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `POST /internal/v1/log/commit`: commits a peer's write, if this node sequences the log.
pub async fn commit(
    State(vault): State<Arc<Vault>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RequestOutcome>, ApiError> {
    let header = headers
        .get(NODE_AUTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "this route is for Candor's own nodes",
            )
        })?;
    vault.authenticate_node(header, &body, now())?;
    let request: WriteRequest = serde_json::from_slice(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not a write request",
        )
    })?;
    let outcome = vault
        .commit_forwarded(request)
        .await
        .map_err(candor_vault::VaultError::from)?;
    Ok(Json(outcome))
}

/// Hands writes to the sequencer over HTTP.
pub struct HttpForwarder {
    client: reqwest::Client,
    key: NodeKey,
}

impl HttpForwarder {
    /// A forwarder authenticating with `key` (the root key's node key).
    pub fn new(key: NodeKey) -> HttpForwarder {
        HttpForwarder {
            client: reqwest::Client::builder()
                // A dead sequencer is found out fast; a live one may take a while to commit
                // under load, and its answer must not be given up on lightly (the write
                // would then be reported as failed although it may have committed).
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
            key,
        }
    }

    async fn send(
        &self,
        holder: &str,
        request: &WriteRequest,
    ) -> Result<RequestOutcome, WriterError> {
        let body = serde_json::to_vec(request).expect("a write request serialises");
        let auth = self.key.authorize(now(), &body);
        // The holder's name in the claim is its URL and a suffix after a space.
        let url = holder.split(' ').next().unwrap_or_default();
        let sent = self
            .client
            .post(format!("{}{COMMIT_PATH}", url.trim_end_matches('/')))
            .header(NODE_AUTH_HEADER, auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // No connection was made, so nothing was sent.
            Err(e) if e.is_connect() => {
                tracing::warn!(error = %e, "the sequencer could not be reached");
                return Err(WriterError::SequencerUnreachable);
            }
            Err(e) => {
                tracing::error!(error = %e, "handing a write to the sequencer failed");
                return Err(WriterError::CommitFailed);
            }
        };
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            tracing::error!(error = %e, "the sequencer's answer was lost");
            WriterError::CommitFailed
        })?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|_| {
                tracing::error!("the sequencer's answer does not parse");
                WriterError::CommitFailed
            });
        }
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let code = error["error"]["code"].as_str().unwrap_or_default();
        Err(match code {
            "not_sequencer" => WriterError::NotSequencer,
            // It stopped being the sequencer while the write was queued there, uncommitted.
            "log_unavailable" => WriterError::Stopped,
            _ => {
                tracing::error!(%status, code, "the sequencer refused a write");
                WriterError::CommitFailed
            }
        })
    }
}

impl Forwarder for HttpForwarder {
    fn forward<'a>(
        &'a self,
        holder: &'a str,
        request: &'a WriteRequest,
    ) -> Pin<Box<dyn Future<Output = Result<RequestOutcome, WriterError>> + Send + 'a>> {
        Box::pin(self.send(holder, request))
    }
}
