//! The nodes' internal protocol, version 3: the bytes that cross `POST /internal/v1/log/commit`.
//!
//! These types are the protocol's envelope, converted by hand from and to the store's types, so
//! that a change to a store type cannot silently change what nodes send each other, and a cluster
//! can be upgraded one node at a time: every body names its version, and a node refuses a version
//! it does not speak, before anything is committed.
//!
//! Version 2 added a write's `decided_on` (the customer's revision its decisions were made on)
//! and the `stale` conflict; version 3 a write's one-time claim (`once`) and the `claimed`
//! conflict. A node sends version 3 and still takes versions 1 and 2 (which cannot carry what
//! came later), answering in the version it was asked in, so followers of the earlier builds
//! keep writing through an upgraded sequencer. Each change inside is in the form its slice
//! gives it (`{"type": …, …}`, see `candor_vault::wire`). Golden files in `testdata/cluster` pin
//! the bytes of every kind. Byte strings are base64 (a third of the size of JSON's lists of
//! numbers).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_store::{Conflict, LogEntry, OnceClaim, RequestOutcome, WriteRequest};
use serde::{Deserialize, Serialize};

/// The protocol version these types speak.
pub const PROTOCOL_VERSION: u32 = 3;

/// The earliest version still taken.
const OLDEST_VERSION: u32 = 1;

/// The body of `POST /internal/v1/log/commit`: a follower's writes, already sealed.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommitBatch {
    /// Always [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The writes, in the order the follower queued them.
    pub requests: Vec<WireRequest>,
}

/// The answer to a [`CommitBatch`]: one outcome per write, in order.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommitOutcomes {
    /// Always [`PROTOCOL_VERSION`].
    pub v: u32,
    /// What became of each write.
    pub outcomes: Vec<WireOutcome>,
}

/// One write: it applies whole or not at all.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WireRequest {
    /// The customer who must exist, unerased, for the write to apply.
    pub requires_active: Option<String>,
    /// That customer's revision the write's decisions were made on (since version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_on: Option<u64>,
    /// The one-time claim the write makes (since version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once: Option<WireOnce>,
    /// The slices' changes, in order, each in its slice's wire form.
    pub mutations: Vec<serde_json::Value>,
    /// Log leaves, in order, after the changes.
    pub entries: Vec<WireEntry>,
}

/// A one-time claim: the digest of a one-time secret and when it expires.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WireOnce {
    /// The 32-byte digest, base64.
    pub digest: String,
    /// Unix seconds after which the secret is refused anyway.
    pub expires_at: i64,
    /// Unix seconds when the claim was made.
    pub now: i64,
}

/// A log leaf to append.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WireEntry {
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
pub enum WireOutcome {
    /// Committed, at these leaves.
    Committed {
        /// The leaf index of each entry, in order.
        leaves: Vec<u64>,
    },
    /// Not applied: the customer it needs is not active, or its decision is stale. Nothing of
    /// it was written.
    Conflict {
        /// `subject_unknown`, `subject_erased`, (since version 2) `stale` or (since version 3)
        /// `claimed`.
        conflict: String,
    },
    /// Not committed: the node asked does not sequence the log (any more).
    NotSequencer,
    /// Certainly not committed (the writer stopped first): safe to hand to the next sequencer.
    Uncommitted,
    /// Failed, and may or may not have committed.
    Failed,
}

/// Why a body is not a message of a version this node speaks.
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
        if !(OLDEST_VERSION..=PROTOCOL_VERSION).contains(&self.v) {
            return Err(WireError::Version(self.v));
        }
        if self.v < 2 && self.requests.iter().any(|r| r.decided_on.is_some()) {
            return Err(WireError::Malformed("decided_on"));
        }
        if self.v < 3 && self.requests.iter().any(|r| r.once.is_some()) {
            return Err(WireError::Malformed("once"));
        }
        self.requests
            .into_iter()
            .map(WireRequest::into_store)
            .collect()
    }
}

impl WireRequest {
    /// The wire form of a store request.
    pub fn from_store(request: &WriteRequest) -> WireRequest {
        WireRequest {
            requires_active: request.requires_active.clone(),
            decided_on: request.decided_on,
            once: request.once.map(|o| WireOnce {
                digest: B64.encode(o.digest),
                expires_at: o.expires_at,
                now: o.now,
            }),
            mutations: request.changes.iter().map(|c| c.to_wire()).collect(),
            entries: request
                .entries
                .iter()
                .map(|e| WireEntry {
                    subject: e.subject.clone(),
                    commitment: B64.encode(e.commitment),
                    sealed_body: e.sealed_body.as_ref().map(|b| B64.encode(b)),
                })
                .collect(),
        }
    }

    fn into_store(self) -> Result<WriteRequest, WireError> {
        if self.decided_on.is_some() && self.requires_active.is_none() {
            return Err(WireError::Malformed("decided_on"));
        }
        Ok(WriteRequest {
            requires_active: self.requires_active,
            decided_on: self.decided_on,
            once: self
                .once
                .map(|o| {
                    Ok::<_, WireError>(OnceClaim {
                        digest: digest(&o.digest, "once")?,
                        expires_at: o.expires_at,
                        now: o.now,
                    })
                })
                .transpose()?,
            changes: self
                .mutations
                .into_iter()
                .map(|m| {
                    candor_vault::decode_change(m).map_err(|e| {
                        tracing::warn!(error = %e, "a peer sent a change this node cannot read");
                        WireError::Malformed("change")
                    })
                })
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

impl WireOutcome {
    /// The wire form of a committed outcome.
    pub fn of_outcome(outcome: RequestOutcome) -> WireOutcome {
        match outcome {
            Ok(leaves) => WireOutcome::Committed { leaves },
            Err(conflict) => WireOutcome::Conflict {
                conflict: match conflict {
                    Conflict::SubjectUnknown => "subject_unknown",
                    Conflict::SubjectErased => "subject_erased",
                    Conflict::Stale => "stale",
                    Conflict::Claimed => "claimed",
                }
                .to_owned(),
            },
        }
    }

    /// The outcome it reports, if the write was committed or refused for its precondition.
    pub fn outcome(&self) -> Option<Result<RequestOutcome, WireError>> {
        match self {
            WireOutcome::Committed { leaves } => Some(Ok(Ok(leaves.clone()))),
            WireOutcome::Conflict { conflict } => Some(match conflict.as_str() {
                "subject_unknown" => Ok(Err(Conflict::SubjectUnknown)),
                "subject_erased" => Ok(Err(Conflict::SubjectErased)),
                "stale" => Ok(Err(Conflict::Stale)),
                "claimed" => Ok(Err(Conflict::Claimed)),
                _ => Err(WireError::Malformed("conflict")),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candor_core::{ConsentAction, ConsentRecord, Evidence, SubjectId};
    use candor_vault::consent::AddConsent;
    use candor_vault::erasure::Erase;
    use candor_vault::keys::{ApiKeyRow, Delegation, InsertApiKey, Role};
    use candor_vault::subjects::{CreateSubject, PutBlindIndex, PutField};

    use super::*;

    fn sample_requests() -> Vec<WriteRequest> {
        let consent = ConsentRecord {
            purpose: "marketing.communications.email".into(),
            recipient: None,
            action: ConsentAction::Grant,
            at: 1_700_000_001,
            expires_at: Some(1_800_000_000),
            evidence: Evidence {
                channel: "privacy_center".into(),
                notice_version: "2026-11".into(),
            },
        };
        let customer = SubjectId::parse("cus_1").unwrap();
        vec![
            WriteRequest {
                requires_active: Some("cus_1".into()),
                decided_on: Some(3),
                once: None,
                changes: vec![
                    Arc::new(CreateSubject {
                        subject: "cus_1".into(),
                        wrapped_key: vec![0, 1, 255],
                        key_epoch: None,
                        at: 1_700_000_000,
                    }),
                    Arc::new(PutField {
                        subject: "cus_1".into(),
                        category: "user.name".into(),
                        sealed: vec![9; 4],
                    }),
                    Arc::new(PutBlindIndex {
                        subject: "cus_1".into(),
                        category: "user.contact.email".into(),
                        digest: vec![7; 8],
                    }),
                    Arc::new(AddConsent::of(&customer, &consent)),
                ],
                entries: vec![LogEntry {
                    subject: "cus_1".into(),
                    commitment: [7; 32],
                    sealed_body: Some(vec![1, 2]),
                }],
            },
            WriteRequest {
                requires_active: Some("cus_2".into()),
                decided_on: None,
                once: Some(OnceClaim {
                    digest: [5; 32],
                    expires_at: 1_700_000_900,
                    now: 1_700_000_002,
                }),
                changes: vec![Arc::new(Erase {
                    subject: "cus_2".into(),
                    at: 1_700_000_002,
                })],
                entries: vec![LogEntry {
                    subject: "cus_2".into(),
                    commitment: [8; 32],
                    sealed_body: None,
                }],
            },
            WriteRequest {
                requires_active: None,
                decided_on: None,
                once: None,
                changes: vec![Arc::new(InsertApiKey(ApiKeyRow {
                    id: candor_core::KeyId::parse("k1").unwrap(),
                    secret_hash: [3; 32],
                    role: Role::Service,
                    name: "checkout".into(),
                    purposes: vec!["essential.service.operations".into()],
                    recipient: None,
                    can_mint_sessions: true,
                    can_erase: false,
                    sessions: Delegation::default(),
                    created_at: 1_700_000_003,
                    expires_at: None,
                    revoked_at: None,
                }))],
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
            .map(|r| serde_json::to_vec(&WireRequest::from_store(r)).unwrap())
            .collect();
        CommitBatch::assemble(&each)
    }

    #[test]
    fn a_commit_batch_holds_exactly_the_pinned_fields() {
        let body = encoded(&sample_requests());
        let pretty: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            serde_json::to_string_pretty(&pretty).unwrap() + "\n",
            golden("commit_batch_v3.json")
        );
        // And it parses back to the same requests, field for field.
        let batch: CommitBatch = serde_json::from_slice(&body).unwrap();
        let back = batch.into_requests().unwrap();
        assert_eq!(encoded(&back), body);
    }

    /// A follower of the build before version 2 still writes through this node: its batches
    /// parse, and are the version-2 batch without `decided_on`.
    #[test]
    fn a_version_1_batch_is_still_taken() {
        let batch: CommitBatch = serde_json::from_str(&golden("commit_batch_v1.json")).unwrap();
        assert_eq!(batch.v, 1);
        let back = batch.into_requests().unwrap();
        assert!(back.iter().all(|r| r.decided_on.is_none()));
        let mut expected = sample_requests();
        expected[0].decided_on = None;
        expected[1].once = None;
        assert_eq!(encoded(&back), encoded(&expected));

        let mut with_decision: serde_json::Value =
            serde_json::from_str(&golden("commit_batch_v1.json")).unwrap();
        with_decision["requests"][0]["decided_on"] = 3.into();
        let parsed: CommitBatch = serde_json::from_value(with_decision).unwrap();
        assert_eq!(
            parsed.into_requests().unwrap_err(),
            WireError::Malformed("decided_on"),
            "version 1 has no decisions to carry"
        );
    }

    /// A follower of the build before version 3 still writes through this node: its batches
    /// parse, and are the version-3 batch without one-time claims (nor keys' session rights).
    #[test]
    fn a_version_2_batch_is_still_taken() {
        let batch: CommitBatch = serde_json::from_str(&golden("commit_batch_v2.json")).unwrap();
        assert_eq!(batch.v, 2);
        let back = batch.into_requests().unwrap();
        let mut expected = sample_requests();
        expected[1].once = None;
        assert_eq!(encoded(&back), encoded(&expected));

        let mut with_claim: serde_json::Value =
            serde_json::from_str(&golden("commit_batch_v3.json")).unwrap();
        with_claim["v"] = 2.into();
        let parsed: CommitBatch = serde_json::from_value(with_claim).unwrap();
        assert_eq!(
            parsed.into_requests().unwrap_err(),
            WireError::Malformed("once"),
            "version 2 has no one-time claims to carry"
        );
    }

    #[test]
    fn commit_outcomes_are_exactly_the_pinned_bytes() {
        let answer = CommitOutcomes {
            v: PROTOCOL_VERSION,
            outcomes: vec![
                WireOutcome::of_outcome(Ok(vec![41, 42])),
                WireOutcome::of_outcome(Err(Conflict::SubjectErased)),
                WireOutcome::of_outcome(Err(Conflict::SubjectUnknown)),
                WireOutcome::of_outcome(Err(Conflict::Stale)),
                WireOutcome::of_outcome(Err(Conflict::Claimed)),
                WireOutcome::NotSequencer,
                WireOutcome::Uncommitted,
                WireOutcome::Failed,
            ],
        };
        assert_eq!(
            serde_json::to_string_pretty(&answer).unwrap() + "\n",
            golden("commit_outcomes_v3.json")
        );
        let back: CommitOutcomes =
            serde_json::from_str(&golden("commit_outcomes_v3.json")).unwrap();
        assert_eq!(back, answer);
        assert_eq!(
            back.outcomes[1].outcome(),
            Some(Ok(Err(Conflict::SubjectErased)))
        );
        assert_eq!(back.outcomes[3].outcome(), Some(Ok(Err(Conflict::Stale))));
        assert_eq!(back.outcomes[4].outcome(), Some(Ok(Err(Conflict::Claimed))));
        // Version 2's answers still read the same.
        let v2: CommitOutcomes = serde_json::from_str(&golden("commit_outcomes_v2.json")).unwrap();
        assert_eq!(v2.outcomes[3].outcome(), Some(Ok(Err(Conflict::Stale))));
        // Version 1's answers still read the same.
        let v1: CommitOutcomes = serde_json::from_str(&golden("commit_outcomes_v1.json")).unwrap();
        assert_eq!(
            v1.outcomes[1].outcome(),
            Some(Ok(Err(Conflict::SubjectErased)))
        );
    }

    #[test]
    fn another_version_or_a_malformed_field_is_refused() {
        let mut batch: serde_json::Value =
            serde_json::from_str(&golden("commit_batch_v1.json")).unwrap();
        batch["v"] = 4.into();
        let parsed: CommitBatch = serde_json::from_value(batch.clone()).unwrap();
        assert_eq!(parsed.into_requests().unwrap_err(), WireError::Version(4));
        batch["v"] = 0.into();
        let parsed: CommitBatch = serde_json::from_value(batch.clone()).unwrap();
        assert_eq!(parsed.into_requests().unwrap_err(), WireError::Version(0));

        batch["v"] = 1.into();
        batch["requests"][0]["entries"][0]["commitment"] = "AQI=".into();
        let parsed: CommitBatch = serde_json::from_value(batch.clone()).unwrap();
        assert_eq!(
            parsed.into_requests().unwrap_err(),
            WireError::Malformed("commitment")
        );

        batch["requests"][0]["entries"][0]["commitment"] = B64.encode([7; 32]).into();
        batch["requests"][0]["mutations"][1]["type"] = "put_nothing".into();
        let parsed: CommitBatch = serde_json::from_value(batch.clone()).unwrap();
        assert_eq!(
            parsed.into_requests().unwrap_err(),
            WireError::Malformed("change"),
            "a change no slice makes"
        );

        batch["requests"][0]["mutations"][1]["type"] = "put_field".into();
        batch["requests"][0]["mutations"][1]["surprise"] = true.into();
        let parsed: CommitBatch = serde_json::from_value(batch.clone()).unwrap();
        assert_eq!(
            parsed.into_requests().unwrap_err(),
            WireError::Malformed("change"),
            "a change with a field its slice does not know"
        );

        batch["requests"][0]["surprise"] = true.into();
        assert!(serde_json::from_value::<CommitBatch>(batch).is_err());
    }
}
