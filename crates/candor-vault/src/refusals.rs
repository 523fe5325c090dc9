//! Refused attempts: whoever is refused acting on a customer's data (another customer, a
//! service, a service's session, the admin), the customer's log records the attempt, so their
//! history shows who tried, not only who succeeded.
//!
//! Only callers that proved who they are get here: an attempt with no valid credentials has no
//! one to name, and logging it would let anyone grow any customer's log. A customer who does not
//! exist or was erased has no log to add to; the attempt is refused all the same.

use std::sync::Arc;

use candor_core::{Actor, EventKind, SubjectId};

use crate::VaultError;
use crate::kernel::Journal;
use crate::keys::Principal;
use crate::subjects::Customers;

/// Recording refused attempts in the customer's log.
pub struct Refusals {
    customers: Arc<Customers>,
    journal: Journal,
}

impl Refusals {
    /// The use case over its parts.
    pub fn new(customers: Arc<Customers>, journal: Journal) -> Refusals {
        Refusals { customers, journal }
    }

    /// Logs that `principal` tried `action` on `subject`'s data and was refused with `reason`
    /// (the error code it was given). Another customer is recorded unnamed.
    pub async fn record(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        action: String,
        reason: &'static str,
        now: i64,
    ) -> Result<(), VaultError> {
        let actor = match principal {
            Principal::Subject(s) if s != subject => Actor::AnotherCustomer,
            Principal::Delegated { subject: s, .. } if s != subject => Actor::AnotherCustomer,
            _ => principal.actor(),
        };
        self.log(
            actor,
            subject,
            EventKind::AttemptRefused { action, reason },
            now,
        )
        .await
    }

    /// Logs a refusal event in `subject`'s log, if they exist and are not erased (the access
    /// slice's `refused`, naming the purpose, comes here too).
    pub(crate) async fn log(
        &self,
        actor: Actor,
        subject: &SubjectId,
        kind: EventKind,
        now: i64,
    ) -> Result<(), VaultError> {
        let dek = match self.customers.data_key(subject, false, now).await {
            Ok(key) => key,
            Err(VaultError::SubjectNotFound | VaultError::SubjectErased) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self
            .journal
            .log_event(&dek, actor, subject, None, now, kind)
            .await
        {
            // Erased in between: there is no log left to add to.
            Ok(_) | Err(VaultError::SubjectErased | VaultError::SubjectNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Page;
    use crate::testing::{Fixture, NOW, OPS};

    #[test]
    fn the_customer_sees_who_was_refused_but_not_another_customer_s_id() {
        let f = Fixture::new();
        let service = f.service(&[OPS], false, false);
        let a = f.customer("cus_a", &service);
        let b = f.customer("cus_b", &service);
        let refusals = f.vault.refusals();
        for who in [&Principal::Subject(b.clone()), &service, &f.admin] {
            f.run(refusals.record(who, &a, "read_history".into(), "forbidden", NOW))
                .unwrap();
        }
        let ghost = SubjectId::parse("cus_nobody").unwrap();
        f.run(refusals.record(&service, &ghost, "erase".into(), "forbidden", NOW))
            .unwrap();
        assert_eq!(
            f.vault.db().log().subject(ghost.as_str()).unwrap(),
            candor_store::SubjectState::Unknown,
            "an attempt on nobody creates nobody"
        );

        let me = Principal::Subject(a.clone());
        let history = f.vault.histories().history(&me, &a, Page::FIRST).unwrap();
        let refused: Vec<serde_json::Value> = history
            .entries
            .iter()
            .map(|e| serde_json::from_str(&e.opening.canonical_event).unwrap())
            .filter(|e: &serde_json::Value| e["type"] == "attempt_refused")
            .collect();
        let actors: Vec<&str> = refused
            .iter()
            .map(|e| e["actor"]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(actors, ["another_customer", "service", "admin"]);
        assert!(
            !history
                .entries
                .iter()
                .any(|e| e.opening.canonical_event.contains("cus_b")),
            "the other customer is not named"
        );
        assert!(refused.iter().all(|e| e["action"] == "read_history"));
    }
}
