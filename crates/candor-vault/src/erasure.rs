//! Erasure: a customer's key is destroyed with everything sealed under it, in one durable step
//! with the event that records it. The log's entries stay, so every proof stays valid.

use std::sync::Arc;

use candor_core::{EventKind, SubjectId};
use candor_store::{Standing, Tx, TxError, TypedChange};
use serde::{Deserialize, Serialize};

use crate::VaultError;
use crate::history::LeafOpening;
use crate::kernel::Journal;
use crate::keys::Principal;
use crate::registry::{Slice, change};
use crate::subjects::Customers;

/// The slice, registered: it keeps no tables of its own.
pub(crate) const SLICE: Slice = Slice {
    schema: None,
    changes: &[change::<Erase>()],
    on_erasure: None,
};

/// Erases a customer everywhere: from every slice that keeps something of theirs
/// (`registry::on_erasure`), then from the kernel (their key, their entries' bodies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Erase {
    /// Customer id.
    pub subject: String,
    /// Unix seconds.
    pub at: i64,
}

impl TypedChange for Erase {
    const KIND: &'static str = "erase";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        for erase in crate::registry::on_erasure() {
            erase(tx, &self.subject)?;
        }
        candor_store::customers::erase(tx, &self.subject, self.at)
    }
    fn standing(&self) -> Option<(&str, Standing)> {
        Some((&self.subject, Standing::Erased { at: self.at }))
    }
}

/// Erasing customers.
pub struct Erasure {
    customers: Arc<Customers>,
    journal: Journal,
}

impl Erasure {
    /// The use case over its parts.
    pub fn new(customers: Arc<Customers>, journal: Journal) -> Erasure {
        Erasure { customers, journal }
    }

    /// Erases a customer: destroys their data key, fields, index entries, consents and event
    /// bodies in one durable step, and logs the erasure. The returned opening is the caller's
    /// only copy of the erasure event's nonce.
    pub async fn erase(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
    ) -> Result<LeafOpening, VaultError> {
        let allowed = match principal {
            Principal::Subject(s) => s == subject,
            Principal::Service(k) => k.can_erase,
            // Through a service's session, only if the business let that key's sessions erase.
            Principal::Delegated {
                subject: s,
                through,
            } => s == subject && through.sessions.sessions_may_erase,
            Principal::Admin { .. } => true,
        };
        if !allowed || subject.is_operator() {
            return Err(VaultError::Forbidden(
                "this caller may not erase this subject",
            ));
        }
        // Fails with SubjectErased or SubjectNotFound as appropriate.
        drop(self.customers.data_key(subject, false, now).await?);
        let sealed = self
            .journal
            .seal(None, principal.actor(), subject, now, EventKind::Erased);
        let commitment = sealed.entry.commitment;
        let change = Erase {
            subject: subject.as_str().to_owned(),
            at: now,
        };
        let leaves = self
            .journal
            .submit(
                Some(subject),
                None,
                vec![Arc::new(change)],
                vec![sealed.entry],
            )
            .await?;
        Ok(LeafOpening {
            leaf_index: leaves[0],
            commitment,
            nonce: sealed.nonce,
            canonical_event: String::from_utf8(sealed.canonical).expect("canonical JSON is UTF-8"),
        })
    }
}

#[cfg(test)]
mod tests {
    use candor_store::Change;

    use super::*;
    use crate::testing::{Fixture, NOW, OPS};

    #[test]
    fn erasure_needs_the_customer_the_admin_or_a_key_allowed_to_erase() {
        let f = Fixture::new();
        let plain = f.service(&[OPS], false, false);
        let eraser = f.service(&[OPS], false, true);
        let a = f.customer("cus_a", &plain);
        let b = f.customer("cus_b", &plain);
        let c = f.customer("cus_c", &plain);
        let erasure = f.vault.erasure();
        for caller in [&plain, &Principal::Subject(b.clone())] {
            let r = f.run(erasure.erase(caller, &a, NOW));
            assert!(matches!(r, Err(VaultError::Forbidden(_))));
        }
        f.run(erasure.erase(&Principal::Subject(a.clone()), &a, NOW))
            .unwrap();
        f.run(erasure.erase(&f.admin, &b, NOW)).unwrap();
        let opening = f.run(erasure.erase(&eraser, &c, NOW)).unwrap();
        assert!(opening.canonical_event.contains("\"erased\""));
        assert!(matches!(
            f.run(erasure.erase(&f.admin, &a, NOW)),
            Err(VaultError::SubjectErased)
        ));
        let fields = ["user.name".to_owned()];
        assert!(matches!(
            f.run(f.vault.access().access(&plain, &c, OPS, &fields, NOW)),
            Err(VaultError::SubjectErased)
        ));
    }

    #[test]
    fn an_erasure_crosses_the_nodes_protocol_intact() {
        let change = Erase {
            subject: "cus_a".into(),
            at: 5,
        };
        let back = crate::decode_change(change.to_wire()).unwrap();
        assert_eq!(back.kind(), Erase::KIND);
        assert_eq!(back.to_wire(), change.to_wire());
        assert_eq!(back.standing(), Some(("cus_a", Standing::Erased { at: 5 })));
        let mut malformed = change.to_wire();
        malformed["at"] = "never".into();
        let refused = crate::decode_change(malformed).unwrap_err();
        assert_eq!(refused, "a `erase` change does not parse");
        assert!(!refused.contains("never"), "no value in the message");
    }
}
