//! The nodes' internal protocol, version 1: the bytes that cross `POST /internal/v1/log/commit`.
//!
//! These types are the protocol, converted by hand from and to the store's types, so that a
//! change to a store type cannot silently change what nodes send each other, and a cluster can be
//! upgraded one node at a time: every body names its version, and a node refuses a version it
//! does not speak, before anything is committed. Golden files in `testdata/cluster` pin the bytes.
//! Byte strings are base64 (a third of the size of JSON's lists of numbers).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_store::{
    ApiKeyRow, Conflict, ConsentRow, LogEntry, Mutation, RequestOutcome, WriteRequest,
};
use serde::{Deserialize, Serialize};

/// The protocol version these types speak.
pub const PROTOCOL_VERSION: u32 = 1;

/// The body of `POST /internal/v1/log/commit`: a follower's writes, already sealed.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommitBatch {
    /// Always [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The writes, in the order the follower queued them.
    pub requests: Vec<WriteRequestV1>,
}

/// The answer to a [`CommitBatch`]: one outcome per write, in order.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommitOutcomes {
    /// Always [`PROTOCOL_VERSION`].
    pub v: u32,
    /// What became of each write.
    pub outcomes: Vec<CommittedV1>,
}

/// One write: it applies whole or not at all.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WriteRequestV1 {
    /// The customer who must exist, unerased, for the write to apply.
    pub requires_active: Option<String>,
    /// Changes, in order.
    pub mutations: Vec<MutationV1>,
    /// Log leaves, in order, after the changes.
    pub entries: Vec<LogEntryV1>,
}

/// One change of a write.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MutationV1 {
    /// A new customer and their wrapped key.
    CreateSubject {
        /// Customer id.
        subject: String,
        /// The wrapped data key, base64.
        wrapped_key: String,
        /// Unix seconds.
        at: i64,
    },
    /// One sealed field.
    PutField {
        /// Customer id.
        subject: String,
        /// Data category.
        category: String,
        /// The sealed value, base64.
        sealed: String,
    },
    /// A blind-index digest.
    PutBlindIndex {
        /// Customer id.
        subject: String,
        /// Data category.
        category: String,
        /// The digest, base64.
        digest: String,
    },
    /// A consent record.
    AddConsent {
        /// Customer id.
        subject: String,
        /// Purpose id.
        purpose: String,
        /// The recipient it is limited to.
        recipient: Option<String>,
        /// `grant` or `withdraw`.
        action: String,
        /// Unix seconds.
        at: i64,
        /// When a grant lapses.
        expires_at: Option<i64>,
        /// Evidence: where.
        channel: String,
        /// Evidence: which notice.
        notice_version: String,
    },
    /// The erasure of a customer.
    Erase {
        /// Customer id.
        subject: String,
        /// Unix seconds.
        at: i64,
    },
    /// A new API key (the hash of its secret, never the secret).
    InsertApiKey {
        /// Public id.
        id: String,
        /// SHA-256 of the secret, base64.
        secret_hash: String,
        /// `admin` or `service`.
        role: String,
        /// Display name.
        name: String,
        /// Purposes it may name.
        purposes: Vec<String>,
        /// The recipient it acts for.
        recipient: Option<String>,
        /// May mint customer sessions.
        can_mint_sessions: bool,
        /// May erase customers.
        can_erase: bool,
        /// Unix seconds.
        created_at: i64,
    },
}

/// A log leaf to append.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogEntryV1 {
    /// The customer it is about.
    pub subject: String,
    /// The 32-byte commitment, base64.
    pub commitment: String,
    /// Nonce and event sealed under the customer's key, base64; `null` for an erasure.
    pub sealed_body: Option<String>,
}

/// What became of one write of a batch.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommittedV1 {
    /// Committed, at these leaves.
    Committed {
        /// The leaf index of each entry, in order.
        leaves: Vec<u64>,
    },
    /// Not applied: the customer it needs is not active. Nothing of it was written.
    Conflict {
        /// `subject_unknown` or `subject_erased`.
        conflict: String,
    },
    /// Not committed: the node asked does not sequence the log (any more).
    NotSequencer,
    /// Certainly not committed (the writer stopped first): safe to hand to the next sequencer.
    Uncommitted,
    /// Failed, and may or may not have committed.
    Failed,
}

/// Why a body is not a version-1 message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The sender speaks another version.
    #[error("protocol version {0} is not spoken here (this node speaks {PROTOCOL_VERSION})")]
    Version(u32),
    /// A field is malformed; the message names the field, never its value.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

fn bytes(text: &str, what: &'static str) -> Result<Vec<u8>, WireError> {
    B64.decode(text).map_err(|_| WireError::Malformed(what))
}

fn digest(text: &str, what: &'static str) -> Result<[u8; 32], WireError> {
    bytes(text, what)?
        .try_into()
        .map_err(|_| WireError::Malformed(what))
}

impl CommitBatch {
    /// The batch of already-encoded requests: the follower encodes each write as it queues, so a
    /// batch's size is known as it grows.
    pub fn assemble(requests: &[Vec<u8>]) -> Vec<u8> {
        let mut body = format!("{{\"v\":{PROTOCOL_VERSION},\"requests\":[").into_bytes();
        for (i, request) in requests.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(request);
        }
        body.extend_from_slice(b"]}");
        body
    }

    /// The store's requests, once the version and every field check out.
    pub fn into_requests(self) -> Result<Vec<WriteRequest>, WireError> {
        if self.v != PROTOCOL_VERSION {
            return Err(WireError::Version(self.v));
        }
        self.requests
            .into_iter()
            .map(WriteRequestV1::into_store)
            .collect()
    }
}

impl WriteRequestV1 {
    /// The wire form of a store request.
    pub fn from_store(request: &WriteRequest) -> WriteRequestV1 {
        WriteRequestV1 {
            requires_active: request.requires_active.clone(),
            mutations: request
                .mutations
                .iter()
                .map(MutationV1::from_store)
                .collect(),
            entries: request
                .entries
                .iter()
                .map(|e| LogEntryV1 {
                    subject: e.subject.clone(),
                    commitment: B64.encode(e.commitment),
                    sealed_body: e.sealed_body.as_ref().map(|b| B64.encode(b)),
                })
                .collect(),
        }
    }

    fn into_store(self) -> Result<WriteRequest, WireError> {
        Ok(WriteRequest {
            requires_active: self.requires_active,
            mutations: self
                .mutations
                .into_iter()
                .map(MutationV1::into_store)
                .collect::<Result<_, _>>()?,
            entries: self
                .entries
                .into_iter()
                .map(|e| {
                    Ok(LogEntry {
                        subject: e.subject,
                        commitment: digest(&e.commitment, "commitment")?,
                        sealed_body: e
                            .sealed_body
                            .map(|b| bytes(&b, "sealed_body"))
                            .transpose()?,
                    })
                })
                .collect::<Result<_, WireError>>()?,
        })
    }
}

impl MutationV1 {
    fn from_store(mutation: &Mutation) -> MutationV1 {
        match mutation {
            Mutation::CreateSubject {
                subject,
                wrapped_key,
                at,
            } => MutationV1::CreateSubject {
                subject: subject.clone(),
                wrapped_key: B64.encode(wrapped_key),
                at: *at,
            },
            Mutation::PutField {
                subject,
                category,
                sealed,
            } => MutationV1::PutField {
                subject: subject.clone(),
                category: category.clone(),
                sealed: B64.encode(sealed),
            },
            Mutation::PutBlindIndex {
                subject,
                category,
                digest,
            } => MutationV1::PutBlindIndex {
                subject: subject.clone(),
                category: category.clone(),
                digest: B64.encode(digest),
            },
            Mutation::AddConsent { subject, row } => MutationV1::AddConsent {
                subject: subject.clone(),
                purpose: row.purpose.clone(),
                recipient: row.recipient.clone(),
                action: row.action.clone(),
                at: row.at,
                expires_at: row.expires_at,
                channel: row.channel.clone(),
                notice_version: row.notice_version.clone(),
            },
            Mutation::Erase { subject, at } => MutationV1::Erase {
                subject: subject.clone(),
                at: *at,
            },
            Mutation::InsertApiKey(key) => MutationV1::InsertApiKey {
                id: key.id.clone(),
                secret_hash: B64.encode(key.secret_hash),
                role: key.role.clone(),
                name: key.name.clone(),
                purposes: key.purposes.clone(),
                recipient: key.recipient.clone(),
                can_mint_sessions: key.can_mint_sessions,
                can_erase: key.can_erase,
                created_at: key.created_at,
            },
        }
    }

    fn into_store(self) -> Result<Mutation, WireError> {
        Ok(match self {
            MutationV1::CreateSubject {
                subject,
                wrapped_key,
                at,
            } => Mutation::CreateSubject {
                subject,
                wrapped_key: bytes(&wrapped_key, "wrapped_key")?,
                at,
            },
            MutationV1::PutField {
                subject,
                category,
                sealed,
            } => Mutation::PutField {
                subject,
                category,
                sealed: bytes(&sealed, "sealed")?,
            },
            MutationV1::PutBlindIndex {
                subject,
                category,
                digest,
            } => Mutation::PutBlindIndex {
                subject,
                category,
                digest: bytes(&digest, "digest")?,
            },
            MutationV1::AddConsent {
                subject,
                purpose,
                recipient,
                action,
                at,
                expires_at,
                channel,
                notice_version,
            } => Mutation::AddConsent {
                subject,
                row: ConsentRow {
                    purpose,
                    recipient,
                    action,
                    at,
                    expires_at,
                    channel,
                    notice_version,
                },
            },
            MutationV1::Erase { subject, at } => Mutation::Erase { subject, at },
            MutationV1::InsertApiKey {
                id,
                secret_hash,
                role,
                name,
                purposes,
                recipient,
                can_mint_sessions,
                can_erase,
                created_at,
            } => Mutation::InsertApiKey(ApiKeyRow {
                id,
                secret_hash: digest(&secret_hash, "secret_hash")?,
                role,
                name,
                purposes,
                recipient,
                can_mint_sessions,
                can_erase,
                created_at,
            }),
        })
    }
}

impl CommittedV1 {
    /// The wire form of a committed outcome.
    pub fn of_outcome(outcome: RequestOutcome) -> CommittedV1 {
        match outcome {
            Ok(leaves) => CommittedV1::Committed { leaves },
            Err(conflict) => CommittedV1::Conflict {
                conflict: match conflict {
                    Conflict::SubjectUnknown => "subject_unknown",
                    Conflict::SubjectErased => "subject_erased",
                }
                .to_owned(),
            },
        }
    }

    /// The outcome it reports, if the write was committed or refused for its precondition.
    pub fn outcome(&self) -> Option<Result<RequestOutcome, WireError>> {
        match self {
            CommittedV1::Committed { leaves } => Some(Ok(Ok(leaves.clone()))),
            CommittedV1::Conflict { conflict } => Some(match conflict.as_str() {
                "subject_unknown" => Ok(Err(Conflict::SubjectUnknown)),
                "subject_erased" => Ok(Err(Conflict::SubjectErased)),
                _ => Err(WireError::Malformed("conflict")),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_requests() -> Vec<WriteRequest> {
        vec![
            WriteRequest {
                requires_active: Some("cus_1".into()),
                mutations: vec![
                    Mutation::CreateSubject {
                        subject: "cus_1".into(),
                        wrapped_key: vec![0, 1, 255],
                        at: 1_700_000_000,
                    },
                    Mutation::PutField {
                        subject: "cus_1".into(),
                        category: "user.name".into(),
                        sealed: vec![9; 4],
                    },
                    Mutation::PutBlindIndex {
                        subject: "cus_1".into(),
                        category: "user.contact.email".into(),
                        digest: vec![7; 8],
                    },
                    Mutation::AddConsent {
                        subject: "cus_1".into(),
                        row: ConsentRow {
                            purpose: "marketing.communications.email".into(),
                            recipient: None,
                            action: "grant".into(),
                            at: 1_700_000_001,
                            expires_at: Some(1_800_000_000),
                            channel: "privacy_center".into(),
                            notice_version: "2026-11".into(),
                        },
                    },
                ],
                entries: vec![LogEntry {
                    subject: "cus_1".into(),
                    commitment: [7; 32],
                    sealed_body: Some(vec![1, 2]),
                }],
            },
            WriteRequest {
                requires_active: Some("cus_2".into()),
                mutations: vec![Mutation::Erase {
                    subject: "cus_2".into(),
                    at: 1_700_000_002,
                }],
                entries: vec![LogEntry {
                    subject: "cus_2".into(),
                    commitment: [8; 32],
                    sealed_body: None,
                }],
            },
            WriteRequest {
                requires_active: None,
                mutations: vec![Mutation::InsertApiKey(ApiKeyRow {
                    id: "k1".into(),
                    secret_hash: [3; 32],
                    role: "service".into(),
                    name: "checkout".into(),
                    purposes: vec!["essential.service.operations".into()],
                    recipient: None,
                    can_mint_sessions: true,
                    can_erase: false,
                    created_at: 1_700_000_003,
                })],
                entries: vec![],
            },
        ]
    }

    fn golden(name: &str) -> String {
        let path = format!("{}/testdata/cluster/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn encoded(requests: &[WriteRequest]) -> Vec<u8> {
        let each: Vec<Vec<u8>> = requests
            .iter()
            .map(|r| serde_json::to_vec(&WriteRequestV1::from_store(r)).unwrap())
            .collect();
        CommitBatch::assemble(&each)
    }

    #[test]
    fn a_commit_batch_holds_exactly_the_pinned_fields() {
        let body = encoded(&sample_requests());
        let pretty: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            serde_json::to_string_pretty(&pretty).unwrap() + "\n",
            golden("commit_batch_v1.json")
        );
        // And it parses back to the same requests, field for field.
        let batch: CommitBatch = serde_json::from_slice(&body).unwrap();
        let back = batch.into_requests().unwrap();
        assert_eq!(encoded(&back), body);
    }

    #[test]
    fn commit_outcomes_are_exactly_the_pinned_bytes() {
        let answer = CommitOutcomes {
            v: PROTOCOL_VERSION,
            outcomes: vec![
                CommittedV1::of_outcome(Ok(vec![41, 42])),
                CommittedV1::of_outcome(Err(Conflict::SubjectErased)),
                CommittedV1::of_outcome(Err(Conflict::SubjectUnknown)),
                CommittedV1::NotSequencer,
                CommittedV1::Uncommitted,
                CommittedV1::Failed,
            ],
        };
        assert_eq!(
            serde_json::to_string_pretty(&answer).unwrap() + "\n",
            golden("commit_outcomes_v1.json")
        );
        let back: CommitOutcomes =
            serde_json::from_str(&golden("commit_outcomes_v1.json")).unwrap();
        assert_eq!(back, answer);
        assert_eq!(
            back.outcomes[1].outcome(),
            Some(Ok(Err(Conflict::SubjectErased)))
        );
    }

    #[test]
    fn another_version_or_a_malformed_field_is_refused() {
        let mut batch: serde_json::Value =
            serde_json::from_str(&golden("commit_batch_v1.json")).unwrap();
        batch["v"] = 2.into();
        let parsed: CommitBatch = serde_json::from_value(batch.clone()).unwrap();
        assert_eq!(parsed.into_requests().unwrap_err(), WireError::Version(2));

        batch["v"] = 1.into();
        batch["requests"][0]["entries"][0]["commitment"] = "AQI=".into();
        let parsed: CommitBatch = serde_json::from_value(batch.clone()).unwrap();
        assert_eq!(
            parsed.into_requests().unwrap_err(),
            WireError::Malformed("commitment")
        );

        batch["requests"][0]["surprise"] = true.into();
        assert!(serde_json::from_value::<CommitBatch>(batch).is_err());
    }
}
