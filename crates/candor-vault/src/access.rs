//! Purpose-bound access: a service reads fields for a purpose and gets only those the policy
//! allows; a customer reads everything held about them; a service finds customers by an exact
//! value through the blind index. Every read is logged, durably, before anything is opened.

use std::sync::Arc;

use candor_core::{
    DataMap, Decision, Denial, EventKind, FieldDecision, FieldOutcome, LeafIndex, Permit, Purpose,
    SUBJECT_ACCESS, SubjectId, decide, delegated_access, subject_access,
};
use candor_crypto::{DataKey, SealContext};
use candor_store::customers::{SubjectRow, revision, row_sqlite, subject_state};
use candor_store::{Db, StoreError, SubjectState};
use zeroize::Zeroizing;

use crate::VaultError;
use crate::consent::{self, ConsentRow, to_records};
use crate::error::invalid;
use crate::kernel::{DECIDE_ATTEMPTS, Journal};
use crate::keys::{Principal, ServiceKey};
use crate::refusals::Refusals;
use crate::subjects::{self, BlindIndexes, Customers, MAX_FIELDS, normalise};

/// A customer as one access sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    /// Whether they exist, and their wrapped key.
    pub state: SubjectState,
    /// Consent records in the order recorded (empty unless active).
    pub consents: Vec<ConsentRow>,
    /// Sealed fields by data category (empty unless active).
    pub fields: Vec<(String, Vec<u8>)>,
    /// Their revision: a decision on these consents is logged as decided on it.
    pub revision: u64,
}

/// The customer's standing, consents and sealed fields, read as one snapshot: what an access
/// needs, consistently. It reads across the registry's, consent's and fields' tables because one
/// read transaction (SQLite) or one statement (PostgreSQL) costs a fraction of three.
pub fn subject_record(db: &Db, subject: &SubjectId) -> Result<SubjectRecord, StoreError> {
    type Read = (SubjectRow, Vec<ConsentRow>, Vec<(String, Vec<u8>)>);
    let owned = subject.as_str().to_owned();
    let (row, consents, fields): Read = db.read(
        "read subject record",
        |c| {
            let tx = c.unchecked_transaction()?;
            let row = row_sqlite(&tx, subject.as_str())?;
            let consents = consent::rows_sqlite(&tx, subject.as_str())?;
            let fields = subjects::fields_sqlite(&tx, subject.as_str())?;
            tx.finish()?;
            Ok((row, consents, fields))
        },
        move |c| {
            let Some(r) = c.query_opt(
                "SELECT wrapped_key, erased_at,
                   ARRAY(SELECT purpose FROM consents WHERE subject_id = $1 ORDER BY seq),
                   ARRAY(SELECT recipient FROM consents WHERE subject_id = $1 ORDER BY seq),
                   ARRAY(SELECT action FROM consents WHERE subject_id = $1 ORDER BY seq),
                   ARRAY(SELECT at FROM consents WHERE subject_id = $1 ORDER BY seq),
                   ARRAY(SELECT expires_at FROM consents WHERE subject_id = $1 ORDER BY seq),
                   ARRAY(SELECT channel FROM consents WHERE subject_id = $1 ORDER BY seq),
                   ARRAY(SELECT notice_version FROM consents WHERE subject_id = $1 ORDER BY seq),
                   ARRAY(SELECT category FROM fields WHERE subject_id = $1 ORDER BY category),
                   ARRAY(SELECT sealed FROM fields WHERE subject_id = $1 ORDER BY category),
                   revision
                 FROM subjects WHERE id = $1",
                &[&owned],
            )?
            else {
                return Ok((None, Vec::new(), Vec::new()));
            };
            let purposes: Vec<String> = r.get(2);
            let recipients: Vec<Option<String>> = r.get(3);
            let actions: Vec<String> = r.get(4);
            let ats: Vec<i64> = r.get(5);
            let expiries: Vec<Option<i64>> = r.get(6);
            let channels: Vec<String> = r.get(7);
            let notices: Vec<String> = r.get(8);
            let consents = (0..purposes.len())
                .map(|i| ConsentRow {
                    purpose: purposes[i].clone(),
                    recipient: recipients[i].clone(),
                    action: actions[i].clone(),
                    at: ats[i],
                    expires_at: expiries[i],
                    channel: channels[i].clone(),
                    notice_version: notices[i].clone(),
                })
                .collect();
            let categories: Vec<String> = r.get(9);
            let sealed: Vec<Vec<u8>> = r.get(10);
            let fields = categories.into_iter().zip(sealed).collect();
            Ok((Some((r.get(0), r.get(1), r.get(11))), consents, fields))
        },
    )?;
    Ok(SubjectRecord {
        revision: revision(&row),
        state: subject_state(row)?,
        consents,
        fields,
    })
}

/// What an access released.
pub struct AccessOutcome {
    /// Per-field decisions, in request order.
    pub decisions: Vec<FieldDecision>,
    /// Allowed fields that hold a value, with the value.
    pub values: Vec<(String, Zeroizing<String>)>,
    /// The access event's position in the log.
    pub leaf_index: LeafIndex,
}

/// Reading personal data.
pub struct Access {
    map: Arc<DataMap>,
    db: Db,
    customers: Arc<Customers>,
    blind: Arc<BlindIndexes>,
    journal: Journal,
    refusals: Arc<Refusals>,
}

impl Access {
    /// The use cases over their parts.
    pub fn new(
        map: Arc<DataMap>,
        db: Db,
        customers: Arc<Customers>,
        blind: Arc<BlindIndexes>,
        journal: Journal,
        refusals: Arc<Refusals>,
    ) -> Access {
        Access {
            map,
            db,
            customers,
            blind,
            journal,
            refusals,
        }
    }

    /// Reads fields for a purpose: decide, log durably, then unseal only what the policy permits.
    pub async fn access(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        purpose_id: &str,
        fields: &[String],
        now: i64,
    ) -> Result<AccessOutcome, VaultError> {
        let key = principal.service()?;
        if fields.is_empty() || fields.len() > MAX_FIELDS {
            return Err(invalid(format!("ask for 1 to {MAX_FIELDS} fields")));
        }
        if !key.purposes.contains(purpose_id) {
            let kind = EventKind::Refused {
                purpose: purpose_id.to_owned(),
                reason: "purpose_not_permitted",
            };
            self.refusals
                .log(principal.actor(), subject, kind, now)
                .await?;
            return Err(VaultError::PurposeNotPermitted(purpose_id.to_owned()));
        }
        let purpose = self
            .map
            .purpose(purpose_id)
            .ok_or_else(|| VaultError::UnknownPurpose(purpose_id.to_owned()))?;
        let mut attempt = 1;
        loop {
            // Everything is read up front, ciphertexts included; nothing is opened before the
            // event is durable. An erasure racing this read makes the log write fail its
            // precondition, and so does a consent change if the decision rested on consent.
            let Decided {
                dek,
                decision,
                decided_on,
                sealed,
            } = self.decide_now(key, purpose, subject, fields, now)?;
            let kind = EventKind::Accessed {
                purpose: purpose_id.to_owned(),
                recipient: key.recipient().map(str::to_owned),
                fields: decision
                    .fields
                    .iter()
                    .map(|d| FieldOutcome {
                        field: d.field.clone(),
                        outcome: d.denial.map_or("allowed", Denial::code),
                    })
                    .collect(),
            };
            let leaf_index = match self
                .journal
                .log_event(&dek, principal.actor(), subject, decided_on, now, kind)
                .await
            {
                Err(VaultError::ConsentChanged) if attempt < DECIDE_ATTEMPTS => {
                    attempt += 1;
                    continue;
                }
                logged => logged?,
            };
            // The event is durable; only now may plaintext leave the vault.
            let values = release(&dek, subject, &decision.permit, sealed)?;
            return Ok(AccessOutcome {
                decisions: decision.fields,
                values,
                leaf_index,
            });
        }
    }

    /// The customer reads everything held about them (their right of access). Logged, and
    /// durable, before anything is opened, like every other read.
    pub async fn own_data(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
    ) -> Result<(Vec<(String, Zeroizing<String>)>, LeafIndex), VaultError> {
        // Through a service's session, only what the service's purposes use, unless the
        // business let that key's sessions export everything.
        let within = match principal.delegate_for(subject) {
            Some(k) if !k.sessions.sessions_may_export => Some(&k.purposes),
            Some(_) => None,
            None if principal.is_subject(subject) => None,
            None => {
                return Err(VaultError::Forbidden(
                    "only the customer may read all their data",
                ));
            }
        };
        let record = subject_record(&self.db, subject)?;
        let dek = self.customers.unwrap_key(subject, record.state)?;
        let held: Vec<String> = record.fields.iter().map(|(f, _)| f.clone()).collect();
        let permit = match within {
            Some(purposes) => delegated_access(&self.map, subject, &held, purposes),
            None => subject_access(&self.map, subject, &held),
        };
        let kind = EventKind::Accessed {
            purpose: SUBJECT_ACCESS.to_owned(),
            recipient: None,
            fields: permit
                .fields()
                .iter()
                .map(|f| FieldOutcome {
                    field: f.clone(),
                    outcome: "allowed",
                })
                .collect(),
        };
        let leaf_index = self
            .journal
            .log_event(&dek, principal.actor(), subject, None, now, kind)
            .await?;
        let values = release(&dek, subject, &permit, record.fields)?;
        Ok((values, leaf_index))
    }

    /// Finds customers whose `category` equals `value`, through the blind index. Each match is
    /// decided like an access for `purpose` and logged before it is returned.
    pub async fn lookup(
        &self,
        principal: &Principal,
        purpose_id: &str,
        category: &str,
        value: &str,
        now: i64,
    ) -> Result<Vec<SubjectId>, VaultError> {
        let key = principal.service()?;
        if !key.purposes.contains(purpose_id) {
            return Err(VaultError::PurposeNotPermitted(purpose_id.to_owned()));
        }
        let purpose = self
            .map
            .purpose(purpose_id)
            .ok_or_else(|| VaultError::UnknownPurpose(purpose_id.to_owned()))?;
        let digest = self.blind.digest(category, value).ok_or_else(|| {
            invalid(format!(
                "`{category}` is not declared with lookup = true in the data map"
            ))
        })?;
        let wanted = normalise(category, value);
        let mut found = Vec::new();
        for candidate in subjects::blind_index_matches(&self.db, category, &digest)? {
            let Ok(subject) = SubjectId::parse(&candidate) else {
                continue;
            };
            if self
                .match_candidate(principal, purpose, &subject, category, &wanted, now)
                .await?
            {
                found.push(subject);
            }
        }
        Ok(found)
    }

    /// Decides whether `subject` is a match for a lookup and, if so, logs it; decided anew
    /// while their consent changes under the decision, and no match if it keeps changing.
    async fn match_candidate(
        &self,
        principal: &Principal,
        purpose: &Purpose,
        subject: &SubjectId,
        category: &str,
        wanted: &str,
        now: i64,
    ) -> Result<bool, VaultError> {
        let key = principal.service()?;
        for _ in 0..DECIDE_ATTEMPTS {
            let field = [category.to_owned()];
            let Decided {
                dek,
                decision,
                decided_on,
                sealed,
            } = match self.decide_now(key, purpose, subject, &field, now) {
                Ok(decided) => decided,
                Err(VaultError::SubjectErased | VaultError::SubjectNotFound) => return Ok(false),
                Err(e) => return Err(e),
            };
            // Truncated digests can coincide: confirm by opening the stored value. The value
            // never leaves the vault: a match returns only the customer's id, once logged.
            let released = release(&dek, subject, &decision.permit, sealed)?;
            let Some((_, plain)) = released.into_iter().next() else {
                return Ok(false);
            };
            if normalise(category, &plain) != wanted {
                return Ok(false);
            }
            let kind = EventKind::Accessed {
                purpose: purpose.id().as_str().to_owned(),
                recipient: key.recipient().map(str::to_owned),
                fields: vec![FieldOutcome {
                    field: category.to_owned(),
                    outcome: "lookup_match",
                }],
            };
            match self
                .journal
                .log_event(&dek, principal.actor(), subject, decided_on, now, kind)
                .await
            {
                Ok(_) => return Ok(true),
                Err(VaultError::ConsentChanged) => continue,
                Err(VaultError::SubjectErased | VaultError::SubjectNotFound) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

/// A policy decision on the customer as read just now, with what it needs to be logged and acted
/// on.
struct Decided {
    dek: DataKey,
    decision: Decision,
    /// The customer's revision, if releasing what the decision permits rests on their consent:
    /// the event must be logged as decided on it.
    decided_on: Option<u64>,
    /// The customer's sealed fields, read with the consents decided on.
    sealed: Vec<(String, Vec<u8>)>,
}

impl Access {
    /// Reads the customer's record in one snapshot and decides `fields` for `purpose` on it.
    fn decide_now(
        &self,
        key: &ServiceKey,
        purpose: &Purpose,
        subject: &SubjectId,
        fields: &[String],
        now: i64,
    ) -> Result<Decided, VaultError> {
        let record = subject_record(&self.db, subject)?;
        let dek = self.customers.unwrap_key(subject, record.state)?;
        let consents = to_records(record.consents)?;
        let decision = decide(
            &self.map,
            purpose,
            subject,
            key.recipient(),
            &consents,
            fields,
            now,
        );
        let rests_on_consent =
            purpose.legal_basis().needs_consent() && !decision.permit.fields().is_empty();
        Ok(Decided {
            dek,
            decided_on: rests_on_consent.then_some(record.revision),
            decision,
            sealed: record.fields,
        })
    }
}

/// Opens the stored values of the fields a policy decision permitted for this customer; nothing
/// else can be opened, because only the policy makes a [`Permit`], and a permit for another
/// customer opens nothing.
fn release(
    dek: &DataKey,
    subject: &SubjectId,
    permit: &Permit,
    mut sealed: Vec<(String, Vec<u8>)>,
) -> Result<Vec<(String, Zeroizing<String>)>, VaultError> {
    if permit.subject() != subject {
        tracing::error!(subject = %subject, "a permit for another customer was presented");
        return Err(VaultError::Internal);
    }
    let mut values = Vec::with_capacity(permit.fields().len());
    for wanted in permit.fields() {
        let Some(at) = sealed.iter().position(|(field, _)| field == wanted) else {
            continue;
        };
        let (field, blob) = sealed.swap_remove(at);
        let plain = dek
            .open(subject.as_str(), SealContext::Field(&field), &blob)
            .map_err(|_| {
                tracing::error!(subject = %subject, field = %field, "field failed to open");
                VaultError::Internal
            })?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Internal)?;
        values.push((field, Zeroizing::new(text)));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candor_store::Change;

    use super::*;
    use crate::consent::AddConsent;
    use crate::subjects::{CreateSubject, PutBlindIndex, PutField};
    use crate::testing::{EMAIL, Fixture, NOW, OPS, apply, on_every_backend};

    #[test]
    fn only_services_read_for_a_purpose_and_a_refusal_is_logged() {
        let f = Fixture::new();
        let service = f.service(&[OPS], false, false);
        let subject = f.customer("cus_a", &service);
        let me = Principal::Subject(subject.clone());
        let fields = ["user.name".to_owned()];
        for caller in [&f.admin, &me] {
            let r = f.run(f.vault.access().access(caller, &subject, OPS, &fields, NOW));
            assert!(matches!(r, Err(VaultError::Forbidden(_))));
        }
        let r = f.run(
            f.vault
                .access()
                .access(&service, &subject, EMAIL, &fields, NOW),
        );
        assert!(matches!(r, Err(VaultError::PurposeNotPermitted(_))));
        let history = f
            .vault
            .histories()
            .history(&me, &subject, crate::Page::FIRST)
            .unwrap();
        assert!(
            history
                .entries
                .last()
                .unwrap()
                .opening
                .canonical_event
                .contains("\"refused\""),
            "the customer sees the refused attempt"
        );
        let out = f
            .run(
                f.vault
                    .access()
                    .access(&service, &subject, OPS, &fields, NOW),
            )
            .unwrap();
        assert_eq!(out.values.len(), 1);
        assert_eq!(&*out.values[0].1, "Ada");
    }

    #[test]
    fn a_field_the_purpose_needs_consent_for_is_denied_until_granted() {
        let f = Fixture::new();
        let ops = f.service(&[OPS], false, false);
        let marketing = f.service(&[EMAIL], false, false);
        let subject = f.customer("cus_a", &ops);
        let fields = ["user.contact.email".to_owned()];
        let out = f
            .run(
                f.vault
                    .access()
                    .access(&marketing, &subject, EMAIL, &fields, NOW),
            )
            .unwrap();
        assert_eq!(
            out.decisions[0].denial.map(|d| d.code()),
            Some("no_consent")
        );
        assert!(out.values.is_empty());
        let grant = crate::consent::ConsentChange {
            purpose: EMAIL.into(),
            recipient: None,
            action: candor_core::ConsentAction::Grant,
            expires_at: None,
            evidence: None,
        };
        let me = Principal::Subject(subject.clone());
        f.run(
            f.vault
                .consents()
                .record(&me, &subject, vec![grant], false, NOW),
        )
        .unwrap();
        let out = f
            .run(
                f.vault
                    .access()
                    .access(&marketing, &subject, EMAIL, &fields, NOW),
            )
            .unwrap();
        assert_eq!(out.decisions[0].denial, None);
    }

    #[test]
    fn only_the_customer_reads_all_their_data() {
        let f = Fixture::new();
        let service = f.service(&[OPS], false, false);
        let a = f.customer("cus_a", &service);
        let b = f.customer("cus_b", &service);
        for caller in [&service, &f.admin, &Principal::Subject(b)] {
            let r = f.run(f.vault.access().own_data(caller, &a, NOW));
            assert!(matches!(r, Err(VaultError::Forbidden(_))));
        }
        let (values, _) = f
            .run(
                f.vault
                    .access()
                    .own_data(&Principal::Subject(a.clone()), &a, NOW),
            )
            .unwrap();
        assert_eq!(values.len(), 1);
    }

    /// The customer's record, read as one snapshot across the registry's, consent's and fields'
    /// tables, on every backend; and the blind index finds them.
    fn customer_records_round_trip(db: &Db) {
        let subject = SubjectId::parse("c").unwrap();
        let consent = candor_core::ConsentRecord {
            purpose: "p1".into(),
            recipient: None,
            action: candor_core::ConsentAction::Grant,
            at: 10,
            expires_at: Some(110),
            evidence: candor_core::Evidence {
                channel: "web".into(),
                notice_version: "v1".into(),
            },
        };
        let changes: Vec<Arc<dyn Change>> = vec![
            Arc::new(CreateSubject {
                subject: "c".into(),
                wrapped_key: vec![7; 40],
                key_epoch: Some(1),
                at: 2,
            }),
            Arc::new(PutField {
                subject: "c".into(),
                category: "user.name".into(),
                sealed: vec![1, 2],
            }),
            Arc::new(PutField {
                subject: "c".into(),
                category: "user.name".into(),
                sealed: vec![3, 4],
            }),
            Arc::new(PutBlindIndex {
                subject: "c".into(),
                category: "user.contact.email".into(),
                digest: vec![5; 8],
            }),
            Arc::new(AddConsent::of(&subject, &consent)),
        ];
        apply(db, changes);
        let record = subject_record(db, &subject).unwrap();
        assert_eq!(
            record.state,
            SubjectState::Active {
                wrapped_key: vec![7; 40]
            }
        );
        assert_eq!(record.fields, vec![("user.name".into(), vec![3, 4])]);
        assert_eq!(record.consents.len(), 1);
        assert_eq!(
            subjects::blind_index_matches(db, "user.contact.email", &[5; 8]).unwrap(),
            vec!["c".to_owned()]
        );
        assert!(
            subjects::blind_index_matches(db, "user.contact.email", &[6; 8])
                .unwrap()
                .is_empty()
        );
        let nobody = SubjectId::parse("nobody").unwrap();
        assert_eq!(
            subject_record(db, &nobody).unwrap().state,
            SubjectState::Unknown
        );
    }

    on_every_backend!(customer_records_round_trip);

    #[test]
    fn a_permit_opens_nothing_of_another_customer() {
        let f = Fixture::new();
        let service = f.service(&[OPS], false, false);
        let a = f.customer("cus_a", &service);
        let b = f.customer("cus_b", &service);
        let record = subject_record(f.vault.db(), &b).unwrap();
        let dek = f
            .vault
            .access()
            .customers
            .unwrap_key(&b, record.state.clone())
            .unwrap();
        let held = vec!["user.name".to_owned()];
        let for_a = subject_access(f.vault.data_map(), &a, &held);
        assert!(matches!(
            release(&dek, &b, &for_a, record.fields.clone()),
            Err(VaultError::Internal)
        ));
        let for_b = subject_access(f.vault.data_map(), &b, &held);
        assert_eq!(release(&dek, &b, &for_b, record.fields).unwrap().len(), 1);
    }
}
