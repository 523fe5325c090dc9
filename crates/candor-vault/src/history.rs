//! A customer's history: every event the log holds about them, each with what they need to check
//! it (the opening of its commitment, an inclusion proof, a receipt) and the proof that nothing
//! was left out.

use std::sync::Arc;

use candor_core::{LeafIndex, SubjectId};
use candor_crypto::{LabelKey, RootKey, SealContext};
use candor_log::directory::{Directory, Head, NodeRef};
use candor_log::{Hash, Receipt, leaf_hash};
use candor_store::{Db, StoreError, StoreHashes};

use crate::VaultError;
use crate::kernel::sequencing::Sequencing;
use crate::keys::Principal;
use crate::page::Page;
use crate::public_log::PublicLog;
use crate::subjects::Customers;

/// What opens a leaf's commitment: anyone holding it can recompute the leaf from the event.
#[derive(Debug, Clone)]
pub struct LeafOpening {
    /// Position in the log.
    pub leaf_index: LeafIndex,
    /// The leaf's entry: SHA-256(domain || nonce || canonical event).
    pub commitment: [u8; 32],
    /// The commitment's nonce.
    pub nonce: [u8; 32],
    /// The exact canonical event bytes committed to.
    pub canonical_event: String,
}

/// One event of a customer's history, with what they need to check it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The event and the means to check it opens the leaf.
    pub opening: LeafOpening,
    /// RFC 6962 leaf hash of the commitment.
    pub leaf_hash: Hash,
    /// Inclusion proof against the checkpoint's tree.
    pub inclusion_proof: Vec<Hash>,
    /// The same proof with its checkpoint as a C2SP tlog-proof, checkable offline.
    pub receipt: Receipt,
}

/// A customer's history against one signed checkpoint.
#[derive(Debug, Clone)]
pub struct History {
    /// The signed checkpoint note every proof is against.
    pub checkpoint: String,
    /// Its tree size.
    pub tree_size: u64,
    /// This page of the events, in log order.
    pub entries: Vec<HistoryEntry>,
    /// The leaf index the next page starts after, or `None` if this page is the last.
    pub next: Option<u64>,
    /// How many events the checkpoint holds for this customer, on every page together.
    pub total: u64,
    /// Events already committed but not yet in the published checkpoint (awaiting the witnesses):
    /// they appear, with proofs, once it is cosigned.
    pub pending: usize,
    /// The proof that the pages' events are all the events the log attributes to this customer
    /// (`total` of them), when the checkpoint's directory is at hand.
    pub completeness: Option<Completeness>,
}

/// What lets a customer check that their history is complete: the directory that the checkpoint
/// commits to records, under their label, a tree of exactly the events shown.
#[derive(Debug, Clone)]
pub struct Completeness {
    /// The customer's private directory label.
    pub label: [u8; 32],
    /// Their tree's head in the directory: as many entries as shown, and the root over them.
    pub head: Head,
    /// The siblings from the directory's root down to their leaf.
    pub proof: Vec<NodeRef>,
    /// The directory root, as the checkpoint's `candor-directory` line gives it.
    pub directory: NodeRef,
}

/// The proof that `label`'s tree in `directory` is the one shown (`None` if they have none).
pub(crate) fn completeness_in(directory: &Directory, label: [u8; 32]) -> Option<Completeness> {
    Some(Completeness {
        label,
        head: directory.get(&label)?,
        proof: directory.prove(&label)?,
        directory: directory.root_ref(),
    })
}

/// Showing customers their history.
pub struct Histories {
    db: Db,
    customers: Arc<Customers>,
    public_log: Arc<PublicLog>,
    sequencing: Arc<Sequencing>,
    labels: LabelKey,
}

impl Histories {
    /// The use case over its parts; customers' labels come from the root key.
    pub fn new(
        db: Db,
        root: &RootKey,
        customers: Arc<Customers>,
        public_log: Arc<PublicLog>,
        sequencing: Arc<Sequencing>,
    ) -> Histories {
        Histories {
            db,
            customers,
            public_log,
            sequencing,
            labels: root.directory_label_key(),
        }
    }

    /// A page of the customer's own history, each event with an inclusion proof against the
    /// published checkpoint; the cursor is a leaf index.
    pub fn history(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        page: Page,
    ) -> Result<History, VaultError> {
        let exporting_delegate = principal
            .delegate_for(subject)
            .is_some_and(|k| k.sessions.sessions_may_export);
        if !principal.is_subject(subject) && !exporting_delegate {
            return Err(VaultError::Forbidden(
                "only the customer may read their history",
            ));
        }
        self.read(subject, page)
    }

    /// A page of the operator log (admin only): every key and session change, with the same
    /// proofs a customer's history has.
    pub fn operator_history(
        &self,
        principal: &Principal,
        page: Page,
    ) -> Result<History, VaultError> {
        if !matches!(principal, Principal::Admin { .. }) {
            return Err(VaultError::Forbidden(
                "only the admin key may read the operator log",
            ));
        }
        self.read(&SubjectId::operator(), page)
    }

    fn read(&self, subject: &SubjectId, page: Page) -> Result<History, VaultError> {
        let state = self.customers.state(subject)?;
        let dek = self.customers.unwrap_key(subject, state)?;
        // The checkpoint first, then the events: every event below its size was committed before
        // it was published, so the events read include all that its directory counts; later ones
        // are pending.
        let Some((cp, directory)) = self.public_log.published()? else {
            return Err(VaultError::SubjectNotFound);
        };
        let store = self.db.log();
        let total = store.subject_event_count(subject.as_str(), cp.size)?;
        let pending = store.subject_event_count(subject.as_str(), u64::MAX)? - total;
        let rows = store.subject_events(subject.as_str(), page.start()..cp.size, page.limit + 1)?;
        let (rows, next) = page.cut(rows, |r| r.leaf_index);
        let hashes = StoreHashes(&*store);
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let body = dek
                .open(subject.as_str(), SealContext::Event, &row.sealed_body)
                .map_err(|_| VaultError::Internal)?;
            if body.len() < 32 {
                return Err(StoreError::Corrupt("event body too short").into());
            }
            let nonce: [u8; 32] = body[..32].try_into().expect("checked length");
            let canonical_event =
                String::from_utf8(body[32..].to_vec()).map_err(|_| VaultError::Internal)?;
            let inclusion_proof = candor_log::inclusion_proof(row.leaf_index, cp.size, &hashes)?;
            entries.push(HistoryEntry {
                leaf_hash: leaf_hash(&row.commitment),
                receipt: Receipt {
                    extra: None,
                    index: row.leaf_index,
                    proof: inclusion_proof.clone(),
                    checkpoint: cp.note.clone(),
                },
                inclusion_proof,
                opening: LeafOpening {
                    leaf_index: LeafIndex::new(row.leaf_index),
                    commitment: row.commitment,
                    nonce,
                    canonical_event,
                },
            });
        }
        let label = self.labels.label(subject.as_str());
        let completeness = match directory {
            Some(directory) => completeness_in(&directory, label),
            // A follower under a witness policy has not seen the cosigned checkpoint's directory;
            // the sequencer has.
            None => self.sequencing.completeness_from_sequencer(label, cp.size),
        };
        if let Some(c) = &completeness
            && c.head.size != total
        {
            tracing::error!(
                subject = %subject,
                "the directory disagrees with the customer's stored events"
            );
            return Err(VaultError::Internal);
        }
        Ok(History {
            checkpoint: cp.note,
            tree_size: cp.size,
            entries,
            next,
            total,
            pending: pending as usize,
            completeness,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, OPS};

    #[test]
    fn only_the_customer_reads_their_history_and_it_is_complete() {
        let f = Fixture::new();
        let service = f.service(&[OPS], true, false);
        let a = f.customer("cus_a", &service);
        let b = f.customer("cus_b", &service);
        for caller in [&service, &f.admin, &Principal::Subject(b)] {
            assert!(matches!(
                f.vault.histories().history(caller, &a, Page::FIRST),
                Err(VaultError::Forbidden(_))
            ));
        }
        let history = f
            .vault
            .histories()
            .history(&Principal::Subject(a.clone()), &a, Page::FIRST)
            .unwrap();
        assert_eq!(history.entries.len(), 1);
        assert_eq!((history.total, history.next), (1, None));
        assert_eq!(history.pending, 0);
        let completeness = history.completeness.expect("no witness policy: at hand");
        assert_eq!(completeness.head.size, 1);
    }

    #[test]
    fn pages_together_are_the_whole_history_in_order() {
        let f = Fixture::new();
        let service = f.service(&[OPS], true, false);
        let a = f.customer("cus_a", &service);
        let me = Principal::Subject(a.clone());
        let grant = || crate::ConsentChange {
            purpose: crate::testing::EMAIL.into(),
            recipient: None,
            action: candor_core::ConsentAction::Grant,
            expires_at: None,
            evidence: None,
        };
        f.run(f.vault.consents().record(
            &me,
            &a,
            vec![grant(), grant(), grant(), grant()],
            false,
            crate::testing::NOW,
        ))
        .unwrap();
        let whole = f.vault.histories().history(&me, &a, Page::FIRST).unwrap();
        assert_eq!((whole.entries.len(), whole.total, whole.next), (5, 5, None));

        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = Page::new(after, Some(2)).unwrap();
            let history = f.vault.histories().history(&me, &a, page).unwrap();
            assert!(history.entries.len() <= 2);
            assert_eq!(history.total, 5, "every page counts the whole history");
            walked.extend(history.entries.iter().map(|e| e.opening.leaf_index));
            match history.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let whole: Vec<_> = whole.entries.iter().map(|e| e.opening.leaf_index).collect();
        assert_eq!(walked, whole);
    }
}
