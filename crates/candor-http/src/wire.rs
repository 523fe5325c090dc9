//! The JSON shapes of the API. Only this crate serialises; domain types are converted by hand.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_log::Hash;
use candor_log::directory::{Head, NodeRef};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Standard base64, as in the C2SP and transparency-dev formats.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// `PUT /v1/subjects/{id}/data`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDataRequest {
    /// The purpose the data is collected for; it must need every field.
    pub purpose: String,
    /// Values by data category, e.g. `{"user.contact.email": "ada@example.com"}`.
    pub fields: BTreeMap<String, String>,
}

/// The collection's log position.
#[derive(Serialize, ToSchema)]
pub struct PutDataResponse {
    /// The `collected` event's leaf index.
    pub leaf_index: u64,
}

/// Evidence of how a consent choice was made.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBody {
    /// Where: `privacy_center`, `checkout`, `support_call`, ...
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
    /// Unix seconds when a grant lapses.
    pub expires_at: Option<i64>,
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
    /// Changes, applied in order.
    #[serde(default)]
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
    pub evidence: EvidenceBody,
}

/// A customer's consents.
#[derive(Serialize, ToSchema)]
pub struct ConsentsResponse {
    /// State in force per consent-based purpose.
    pub in_force: Vec<ConsentInForce>,
    /// Every record, oldest first.
    pub history: Vec<ConsentRecordBody>,
}

/// `POST /v1/access`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    /// The customer.
    pub subject: String,
    /// The purpose of this read; the key must be bound to it.
    pub purpose: String,
    /// Data categories wanted.
    pub fields: Vec<String>,
}

/// One field's decision.
#[derive(Serialize, ToSchema)]
pub struct FieldDecisionBody {
    /// The field.
    pub field: String,
    /// Whether it was released.
    pub allowed: bool,
    /// Why not: `not_needed_by_purpose`, `no_consent`, `consent_withdrawn`, `consent_expired`,
    /// `unknown_field` or `recipient_not_declared`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// What a read released.
#[derive(Serialize, ToSchema)]
pub struct AccessResponse {
    /// Per-field decisions, in request order.
    pub decisions: Vec<FieldDecisionBody>,
    /// Allowed values that exist, by field.
    pub data: BTreeMap<String, String>,
    /// The access event's leaf index; it was durable before this response.
    pub leaf_index: u64,
}

/// `POST /v1/lookup`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// The purpose of the lookup.
    pub purpose: String,
    /// A category declared `lookup = true`.
    pub category: String,
    /// The value to match.
    pub value: String,
}

/// Matching customers.
#[derive(Serialize, ToSchema)]
pub struct LookupResponse {
    /// Subject ids whose value matched and whose data this purpose may read.
    pub subjects: Vec<String>,
}

/// One event with its proof.
#[derive(Serialize, ToSchema)]
pub struct HistoryEvent {
    /// Position in the log.
    pub leaf_index: u64,
    /// RFC 6962 leaf hash, base64.
    pub leaf_hash: String,
    /// Inclusion proof against the checkpoint, base64 hashes.
    pub inclusion_proof: Vec<String>,
    /// The leaf's entry, base64: SHA-256(domain || nonce || canonical_event).
    pub commitment: String,
    /// The commitment's nonce, base64.
    pub nonce: String,
    /// The exact bytes committed to.
    pub canonical_event: String,
    /// The same event, parsed, for display.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// Index, proof and checkpoint as a C2SP tlog-proof: save it, and `candor verify --receipt`
    /// checks it offline.
    pub receipt: String,
}

/// A customer's history.
#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    /// The C2SP signed checkpoint note the proofs are against.
    pub checkpoint: String,
    /// Its tree size.
    pub tree_size: u64,
    /// Events, oldest first.
    pub events: Vec<HistoryEvent>,
    /// Further events already committed but not yet in the published (cosigned) checkpoint;
    /// they appear here once the witnesses have cosigned it.
    pub pending_events: usize,
    /// Proof that `events` are all the events the log attributes to this customer; absent while
    /// the checkpoint's directory is not at hand (briefly, after a restart under witnesses).
    pub completeness: Option<CompletenessProof>,
}

/// A subtree of the directory: how many entries it attributes, and its hash.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DirectoryNode {
    /// Entries attributed below this node.
    pub sum: u64,
    /// Its hash, base64.
    pub hash: String,
}

/// The customer's entry in the checkpoint's directory. Check it by rebuilding your tree (RFC 6962
/// over the events' commitments, in log order), hashing the leaf
/// `SHA-256(0x00 || label || size (u64 BE) || root)` and folding the siblings, root first, by the
/// label's bits: `SHA-256(0x01 || left sum (u64 BE) || left || right sum || right)`. The result
/// must be the checkpoint's `candor-directory <sum> <hash>` line, and its sum the tree size.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CompletenessProof {
    /// Your private directory label, base64.
    pub label: String,
    /// How many of the log's entries are yours: exactly the events shown.
    pub size: u64,
    /// The root of your tree over those events' commitments, base64.
    pub root: String,
    /// Siblings from the directory's root down to your leaf.
    pub proof: Vec<DirectoryNode>,
    /// The directory root the checkpoint commits to.
    pub directory: DirectoryNode,
}

impl CompletenessProof {
    /// The wire form of a completeness proof.
    pub fn from_domain(c: &candor_vault::Completeness) -> CompletenessProof {
        let node = |n: &NodeRef| DirectoryNode {
            sum: n.sum,
            hash: b64(&n.hash.0),
        };
        CompletenessProof {
            label: b64(&c.label),
            size: c.head.size,
            root: b64(&c.head.root.0),
            proof: c.proof.iter().map(node).collect(),
            directory: node(&c.directory),
        }
    }

    /// Back to the domain form; `None` if a field does not decode.
    pub fn to_domain(&self) -> Option<candor_vault::Completeness> {
        let hash = |text: &str| Hash::from_slice(&B64.decode(text).ok()?);
        let node = |n: &DirectoryNode| {
            Some(NodeRef {
                sum: n.sum,
                hash: hash(&n.hash)?,
            })
        };
        Some(candor_vault::Completeness {
            label: B64.decode(&self.label).ok()?.try_into().ok()?,
            head: Head {
                size: self.size,
                root: hash(&self.root)?,
            },
            proof: self.proof.iter().map(node).collect::<Option<_>>()?,
            directory: node(&self.directory)?,
        })
    }
}

/// An erasure's receipt: keep it to open the erasure event's commitment later.
#[derive(Serialize, ToSchema)]
pub struct ErasureResponse {
    /// Always true.
    pub erased: bool,
    /// Leaf index of the erasure event.
    pub leaf_index: u64,
    /// Its commitment, base64.
    pub commitment: String,
    /// Its nonce, base64 (Candor kept no copy).
    pub nonce: String,
    /// The canonical erasure event.
    pub canonical_event: String,
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
}

/// A new key; the token is shown only now.
#[derive(Serialize, ToSchema)]
pub struct CreateKeyResponse {
    /// Public id.
    pub id: String,
    /// Bearer token.
    pub token: String,
}

/// A customer session.
#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    /// Bearer token for the customer.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// Current log size.
    pub tree_size: u64,
    /// Whether this node sequences the log (in a cluster, exactly one does).
    pub sequencer: bool,
}

/// `GET /log/consistency` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The earlier tree size (at least 1).
    pub from: u64,
    /// The later tree size (at most the latest checkpoint's).
    pub to: u64,
}

/// An RFC 9162 consistency proof.
#[derive(Serialize, ToSchema)]
pub struct ConsistencyResponse {
    /// The earlier size.
    pub from: u64,
    /// The later size.
    pub to: u64,
    /// The proof's hashes, base64.
    pub proof: Vec<String>,
}

/// Everything held about the customer (`GET /v1/subjects/{id}/data`).
#[derive(Serialize, ToSchema)]
pub struct OwnDataResponse {
    /// Values by data category.
    pub data: BTreeMap<String, String>,
    /// The access event's leaf index; it was durable before this response.
    pub leaf_index: u64,
}
