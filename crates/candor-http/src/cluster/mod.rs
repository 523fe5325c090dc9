//! Several nodes on one database: a follower hands each write to the node that sequences the
//! log, over `POST /internal/v1/log/commit`.
//!
//! The route is authenticated with the node key (derived from the root key, which every node of
//! one deployment holds): an HMAC over the request's time, a fresh nonce and the body, carried in
//! `Candor-Node-Auth`. The sequencer refuses a stale time or a nonce it has seen, so a captured
//! request cannot be replayed to append twice. The body is a versioned batch of writes
//! ([`wire`]): already sealed by the follower, they hold ciphertexts, digests and commitments,
//! never plaintext.
//!
//! A follower batches as the writer does: the writes that queue while a batch is in flight go
//! in the next one, so under load one round trip carries many writes and the sequencer's
//! per-request cost is paid per batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_crypto::NodeKey;
use candor_store::{RequestOutcome, WriteRequest};
use candor_vault::{Completeness, Forwarder, Vault, WriterError};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::ApiError;
use crate::now;
use crate::wire::CompletenessProof;
use wire::{CommitBatch, CommitOutcomes, PROTOCOL_VERSION, WireError, WireOutcome, WireRequest};

pub mod wire;

/// The header that authenticates a request between nodes.
pub const NODE_AUTH_HEADER: &str = "candor-node-auth";

/// The internal route a follower's writes arrive on.
pub const COMMIT_PATH: &str = "/internal/v1/log/commit";

/// The most writes one batch carries.
const MAX_BATCH: usize = 512;

/// A batch stops growing past this many bytes of requests (one write alone stays far below:
/// client bodies are limited to [`crate::MAX_BODY_BYTES`]).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The internal route's body limit: a full batch and its last write.
pub(crate) const MAX_COMMIT_BODY: usize = 2 * MAX_BATCH_BYTES;

/// How many batches a follower has in flight at once: one being committed while the next
/// travels keeps the sequencer's writer busy.
const BATCHES_IN_FLIGHT: usize = 2;

/// The internal route a follower asks the sequencer's completeness proofs on.
pub const COMPLETENESS_PATH: &str = "/internal/v1/log/completeness";

/// The body of `POST /internal/v1/log/completeness`.
#[derive(Serialize, Deserialize)]
struct CompletenessQuery {
    /// The customer's directory label, base64.
    label: String,
    /// The witnessed checkpoint's size.
    size: u64,
}

/// `POST /internal/v1/log/completeness`: the completeness proof of a label against a witnessed
/// checkpoint, from the sequencer's directories (`null` if it has none for that size).
#[utoipa::path(post, path = "/internal/v1/log/completeness",
    request_body(content = String, content_type = "application/json",
        description = "`{label, size}`: a customer's directory label (base64) and a witnessed checkpoint's size"),
    responses((status = 200, content_type = "application/json", body = Option<CompletenessProof>),
        (status = "4XX", body = crate::ErrorBody)),
    security(("node" = [])))]
pub(crate) async fn completeness(
    State(vault): State<Arc<Vault>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Option<CompletenessProof>>, ApiError> {
    authenticate_peer(&vault, &headers, &body)?;
    let query: CompletenessQuery = serde_json::from_slice(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not a completeness query",
        )
    })?;
    let label = B64
        .decode(&query.label)
        .ok()
        .and_then(|l| <[u8; 32]>::try_from(l).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a label is 32 bytes",
            )
        })?;
    Ok(Json(
        vault
            .public_log()
            .witnessed_completeness(label, query.size)
            .as_ref()
            .map(CompletenessProof::from_domain),
    ))
}

fn authenticate_peer(vault: &Vault, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
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
    Ok(vault.nodes().authenticate(header, body, now())?)
}

/// A write's outcome on the wire, from the sequencer's result.
fn committed(result: Result<RequestOutcome, WriterError>) -> WireOutcome {
    match result {
        Ok(outcome) => WireOutcome::of_outcome(outcome),
        Err(WriterError::NotSequencer) => WireOutcome::NotSequencer,
        Err(e) if e.never_committed() => WireOutcome::Uncommitted,
        Err(_) => WireOutcome::Failed,
    }
}

/// The sequencer's result, from a write's outcome on the wire.
fn result(committed: WireOutcome) -> Result<RequestOutcome, WriterError> {
    if let Some(outcome) = committed.outcome() {
        return outcome.map_err(|e| {
            tracing::error!(error = %e, "the sequencer's answer does not parse");
            WriterError::CommitFailed
        });
    }
    match committed {
        WireOutcome::NotSequencer => Err(WriterError::NotSequencer),
        WireOutcome::Uncommitted => Err(WriterError::Stopped),
        _ => Err(WriterError::CommitFailed),
    }
}

/// `POST /internal/v1/log/commit`: commits a peer's batch of writes, if this node sequences
/// the log, and answers each write's outcome in order.
#[utoipa::path(post, path = "/internal/v1/log/commit",
    request_body(content = String, content_type = "application/json",
        description = "A batch of sealed write requests from a follower node"),
    responses((status = 200, content_type = "application/json", body = String,
            description = "Each write's outcome, in order"),
        (status = "4XX", body = crate::ErrorBody), (status = 503, body = crate::ErrorBody)),
    security(("node" = [])))]
pub(crate) async fn commit(
    State(vault): State<Arc<Vault>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CommitOutcomes>, ApiError> {
    authenticate_peer(&vault, &headers, &body)?;
    let batch: CommitBatch = serde_json::from_slice(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not a batch of write requests",
        )
    })?;
    // The answer speaks the version it was asked in.
    let version = batch.v;
    let requests = batch.into_requests().map_err(|e| match e {
        WireError::Version(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_protocol_version",
            e.to_string(),
        ),
        WireError::Malformed(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
        }
    })?;
    if !vault.sequencing().is_sequencer() {
        return Err(candor_vault::VaultError::NotSequencer.into());
    }
    // Every write is queued at once, so they share the writer's next group.
    let pending: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let vault = vault.clone();
            tokio::spawn(async move { vault.sequencing().submit_here(request).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(pending.len());
    for task in pending {
        outcomes.push(committed(
            task.await.unwrap_or(Err(WriterError::CommitFailed)),
        ));
    }
    Ok(Json(CommitOutcomes {
        v: version,
        outcomes,
    }))
}

struct Pending {
    holder: String,
    // The request as JSON, serialised by the caller so a batch's size is known as it grows.
    request: Vec<u8>,
    reply: oneshot::Sender<Result<RequestOutcome, WriterError>>,
}

/// Hands writes to the sequencer over HTTP, in batches.
pub struct HttpForwarder {
    client: reqwest::Client,
    key: Arc<NodeKey>,
    // Started on first use, on the runtime that uses it.
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
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
            key: Arc::new(key),
            queue: OnceLock::new(),
        }
    }

    fn queue(&self) -> &mpsc::UnboundedSender<Pending> {
        self.queue.get_or_init(|| {
            let (queue, pending) = mpsc::unbounded_channel();
            tokio::spawn(send_batches(self.client.clone(), self.key.clone(), pending));
            queue
        })
    }
}

/// Drains the queue into batches, each sent once a slot is free.
async fn send_batches(
    client: reqwest::Client,
    key: Arc<NodeKey>,
    mut queue: mpsc::UnboundedReceiver<Pending>,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut bytes = first.request.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                // A batch goes to one holder; the sequencer changed under a write for another,
                // which the caller hands on.
                Ok(next) if next.holder == batch[0].holder => {
                    bytes += next.request.len();
                    batch.push(next);
                }
                Ok(next) => {
                    let _ = next.reply.send(Err(WriterError::NotSequencer));
                }
                Err(_) => break,
            }
        }
        let (client, key) = (client.clone(), key.clone());
        tokio::spawn(async move {
            let holder = batch[0].holder.clone();
            let (requests, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.request, p.reply)).unzip();
            let results = send(&client, &key, &holder, requests).await;
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            drop(slot);
        });
    }
}

/// Sends one batch to `holder`; one result per request, in order.
async fn send(
    client: &reqwest::Client,
    key: &NodeKey,
    holder: &str,
    requests: Vec<Vec<u8>>,
) -> Vec<Result<RequestOutcome, WriterError>> {
    let n = requests.len();
    let all = |e: fn() -> WriterError| (0..n).map(|_| Err(e())).collect();
    let body = CommitBatch::assemble(&requests);
    let auth = key.authorize(now(), &body);
    let sent = client
        .post(format!("{}{COMMIT_PATH}", holder_url(holder)))
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
            return all(|| WriterError::SequencerUnreachable);
        }
        Err(e) => {
            tracing::error!(error = %e, "handing writes to the sequencer failed");
            return all(|| WriterError::CommitFailed);
        }
    };
    let status = response.status();
    let Ok(body) = response.bytes().await else {
        tracing::error!("the sequencer's answer was lost");
        return all(|| WriterError::CommitFailed);
    };
    if status.is_success() {
        return match serde_json::from_slice::<CommitOutcomes>(&body) {
            Ok(answer) if answer.v == PROTOCOL_VERSION && answer.outcomes.len() == n => {
                answer.outcomes.into_iter().map(result).collect()
            }
            _ => {
                tracing::error!("the sequencer's answer does not parse");
                all(|| WriterError::CommitFailed)
            }
        };
    }
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if error["error"]["code"] == "not_sequencer" {
        return all(|| WriterError::NotSequencer);
    }
    tracing::error!(%status, "the sequencer refused a batch of writes");
    all(|| WriterError::CommitFailed)
}

/// The base URL in a holder's name in the claim: its URL, then a suffix after a space.
fn holder_url(holder: &str) -> &str {
    holder
        .split(' ')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
}

impl HttpForwarder {
    async fn ask_completeness(
        &self,
        holder: &str,
        label: [u8; 32],
        size: u64,
    ) -> Option<Completeness> {
        let body = serde_json::to_vec(&CompletenessQuery {
            label: B64.encode(label),
            size,
        })
        .expect("a query serialises");
        let response = self
            .client
            .post(format!("{}{COMPLETENESS_PATH}", holder_url(holder)))
            .header(NODE_AUTH_HEADER, self.key.authorize(now(), &body))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            // A history waits on this; without an answer it goes without the proof.
            .timeout(Duration::from_secs(5))
            .body(body)
            .send()
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "asking the sequencer for a proof failed"))
            .ok()?;
        let proof: Option<CompletenessProof> = response.json().await.ok()?;
        proof?.to_domain()
    }
}

impl Forwarder for HttpForwarder {
    fn completeness<'a>(
        &'a self,
        holder: &'a str,
        label: [u8; 32],
        size: u64,
    ) -> Pin<Box<dyn Future<Output = Option<Completeness>> + Send + 'a>> {
        Box::pin(self.ask_completeness(holder, label, size))
    }

    fn forward<'a>(
        &'a self,
        holder: &'a str,
        request: &'a WriteRequest,
    ) -> Pin<Box<dyn Future<Output = Result<RequestOutcome, WriterError>> + Send + 'a>> {
        let (reply, answer) = oneshot::channel();
        let queued = self.queue().send(Pending {
            holder: holder.to_owned(),
            request: serde_json::to_vec(&WireRequest::from_store(request))
                .expect("a write request serialises"),
            reply,
        });
        Box::pin(async move {
            if queued.is_err() {
                return Err(WriterError::Stopped);
            }
            answer.await.unwrap_or(Err(WriterError::Stopped))
        })
    }
}
