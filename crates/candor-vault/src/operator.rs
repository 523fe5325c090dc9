//! The operator log: every key and session change (keys created, rotated, revoked, the admin
//! key replaced, delegated sessions minted), as events in the same log as customers' events,
//! under a reserved subject (`SubjectId::operator()`) whose tree the checkpoint's directory
//! commits to. Auditors read it as a customer reads their history, with inclusion proofs and the
//! proof that nothing was left out, so operator actions are as verifiable as customer events.
//!
//! It names keys, never customers: a delegated session's customer is named in their own log.
//! The operator's record is created on its first event and is never erased (no route can name
//! it, and erasure refuses it).

use std::sync::Arc;

use candor_core::{Actor, EventKind, SubjectId};
use candor_store::LogEntry;

use crate::VaultError;
use crate::kernel::Journal;
use crate::subjects::Customers;

/// Writing the operator log's events.
pub struct OperatorLog {
    customers: Arc<Customers>,
    journal: Journal,
}

impl OperatorLog {
    /// The slice over its parts.
    pub fn new(customers: Arc<Customers>, journal: Journal) -> OperatorLog {
        OperatorLog { customers, journal }
    }

    /// `kind` as an entry of the operator log, to submit with the change it records, so the
    /// change and its event commit together or not at all.
    pub(crate) async fn entry(
        &self,
        actor: Actor,
        kind: EventKind,
        now: i64,
    ) -> Result<LogEntry, VaultError> {
        let operator = SubjectId::operator();
        let key = self.customers.data_key(&operator, true, now).await?;
        Ok(self
            .journal
            .seal(Some(&key), actor, &operator, now, kind)
            .entry)
    }
}
