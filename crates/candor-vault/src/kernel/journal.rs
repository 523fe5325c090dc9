//! How a slice writes: it seals its event for the customer, builds one write request of its
//! changes and entries, and submits it through the sequencing node's writer, which answers once
//! the request is durable. This is the slices' only way to the log.

use std::sync::Arc;

use candor_core::{Actor, Event, EventKind, LeafIndex, SubjectId};
use candor_crypto::{DataKey, SealContext};
use candor_log::commitment;
use candor_store::{Change, Conflict, LogEntry, OnceClaim, WriteRequest};
use zeroize::Zeroizing;

use crate::VaultError;
use crate::kernel::sequencing::Sequencing;

/// An event sealed for the log: the entry to append, and what opens its commitment.
pub struct Sealed {
    /// The leaf's entry, with the customer's sealed copy of the event (none for an erasure).
    pub entry: LogEntry,
    /// The commitment's nonce.
    pub nonce: [u8; 32],
    /// The canonical event bytes committed to.
    pub canonical: Vec<u8>,
}

/// How often a use case decides anew when the customer's consent changed between its decision
/// and its write (`ConsentChanged`), before it refuses with `consent_changed`.
pub const DECIDE_ATTEMPTS: usize = 3;

/// The slices' one path to the log.
#[derive(Clone)]
pub struct Journal {
    sequencing: Arc<Sequencing>,
}

impl Journal {
    /// A journal writing through `sequencing`.
    pub fn new(sequencing: Arc<Sequencing>) -> Journal {
        Journal { sequencing }
    }

    /// Commits `changes` and `entries` as one request, applied only while `subject` (if given)
    /// is active, and, if `decided_on` is given, while their revision is still that one (what it
    /// decided, it decided on their consent at that revision); waits until it is durable and
    /// returns the entries' leaf indexes. A stale decision fails with `ConsentChanged`, and
    /// nothing of it is written.
    pub async fn submit(
        &self,
        requires_active: Option<&SubjectId>,
        decided_on: Option<u64>,
        changes: Vec<Arc<dyn Change>>,
        entries: Vec<LogEntry>,
    ) -> Result<Vec<LeafIndex>, VaultError> {
        debug_assert!(decided_on.is_none() || requires_active.is_some());
        self.send(WriteRequest {
            requires_active: requires_active.map(|s| s.as_str().to_owned()),
            decided_on,
            once: None,
            changes,
            entries,
        })
        .await
    }

    /// As [`Journal::submit`] for an active `subject`, applied only if `once` was never claimed
    /// before: a one-time secret presented twice fails the second time with `AlreadyClaimed`,
    /// however close together, on whichever nodes.
    pub async fn submit_once(
        &self,
        subject: &SubjectId,
        once: OnceClaim,
        changes: Vec<Arc<dyn Change>>,
        entries: Vec<LogEntry>,
    ) -> Result<Vec<LeafIndex>, VaultError> {
        self.send(WriteRequest {
            requires_active: Some(subject.as_str().to_owned()),
            decided_on: None,
            once: Some(once),
            changes,
            entries,
        })
        .await
    }

    async fn send(&self, request: WriteRequest) -> Result<Vec<LeafIndex>, VaultError> {
        match self.sequencing.submit(request).await? {
            Ok(leaves) => Ok(leaves.into_iter().map(LeafIndex::new).collect()),
            Err(Conflict::SubjectErased) => Err(VaultError::SubjectErased),
            Err(Conflict::SubjectUnknown) => Err(VaultError::SubjectNotFound),
            Err(Conflict::Stale) => Err(VaultError::ConsentChanged),
            Err(Conflict::Claimed) => Err(VaultError::AlreadyClaimed),
        }
    }

    /// Seals `kind`, done by `actor` at `now`, about `subject`: the entry commits to the event,
    /// and carries the customer's copy sealed under `key` (no copy when `key` is `None`, as for
    /// the erasure that destroys the key).
    pub fn seal(
        &self,
        key: Option<&DataKey>,
        actor: Actor,
        subject: &SubjectId,
        now: i64,
        kind: EventKind,
    ) -> Sealed {
        let event = Event::new(subject.as_str(), now, actor, kind);
        let nonce = commitment::fresh_nonce();
        let canonical = event.canonical();
        let commitment = commitment::commit(&nonce, &canonical);
        let sealed_body = key.map(|k| {
            let mut body = Zeroizing::new(Vec::with_capacity(32 + canonical.len()));
            body.extend_from_slice(&nonce);
            body.extend_from_slice(&canonical);
            k.seal(subject.as_str(), SealContext::Event, &body)
        });
        Sealed {
            entry: LogEntry {
                subject: subject.as_str().to_owned(),
                commitment,
                sealed_body,
            },
            nonce,
            canonical,
        }
    }

    /// Logs one event about an active customer and waits until it is durable; returns its leaf.
    /// Fails with `SubjectErased` if an erasure committed first, and with `ConsentChanged` if
    /// the event records a decision made on their revision `decided_on` and it has moved.
    pub async fn log_event(
        &self,
        key: &DataKey,
        actor: Actor,
        subject: &SubjectId,
        decided_on: Option<u64>,
        now: i64,
        kind: EventKind,
    ) -> Result<LeafIndex, VaultError> {
        let sealed = self.seal(Some(key), actor, subject, now, kind);
        let leaves = self
            .submit(Some(subject), decided_on, vec![], vec![sealed.entry])
            .await?;
        Ok(leaves[0])
    }
}
