//! Consent: customers (or services, with evidence) grant and withdraw consent per purpose, the
//! Global Privacy Control signal withdraws every purpose that sells or shares data, and every
//! change is logged with its evidence.

use std::sync::Arc;

use candor_core::{
    ConsentAction, ConsentRecord, ConsentState, DataMap, EventKind, Evidence, PurposeId, SubjectId,
    consent_in_force,
};
use candor_store::{
    Change, Db, Migration, SchemaPart, Standing, StoreError, SubjectState, Tx, TxError, TypedChange,
};
use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::VaultError;
use crate::error::{check_label, invalid};
use crate::kernel::Journal;
use crate::keys::Principal;
use crate::page::Page;
use crate::registry::{Slice, change};
use crate::subjects::Customers;

/// A stored consent record (metadata only; the customer id is the row's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    /// The purpose id.
    pub purpose: String,
    /// The recipient it is limited to.
    pub recipient: Option<String>,
    /// `grant` or `withdraw`.
    pub action: String,
    /// Unix seconds when given.
    pub at: i64,
    /// When a grant lapses.
    pub expires_at: Option<i64>,
    /// Evidence: where.
    pub channel: String,
    /// Evidence: which notice.
    pub notice_version: String,
}

/// Appends a consent record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddConsent {
    /// Customer id.
    pub subject: String,
    /// The purpose id.
    pub purpose: String,
    /// The recipient it is limited to.
    pub recipient: Option<String>,
    /// `grant` or `withdraw`.
    pub action: String,
    /// Unix seconds when given.
    pub at: i64,
    /// When a grant lapses.
    pub expires_at: Option<i64>,
    /// Evidence: where.
    pub channel: String,
    /// Evidence: which notice.
    pub notice_version: String,
}

impl AddConsent {
    /// The record for `subject`.
    pub fn of(subject: &SubjectId, r: &ConsentRecord) -> AddConsent {
        AddConsent {
            subject: subject.as_str().to_owned(),
            purpose: r.purpose.clone(),
            recipient: r.recipient.clone(),
            action: r.action.as_str().to_owned(),
            at: r.at,
            expires_at: r.expires_at,
            channel: r.evidence.channel.clone(),
            notice_version: r.evidence.notice_version.clone(),
        }
    }
}

impl TypedChange for AddConsent {
    const KIND: &'static str = "add_consent";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "INSERT INTO consents
                       (subject_id, purpose, recipient, action, at, expires_at, channel, notice_version)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    self.subject,
                    self.purpose,
                    self.recipient,
                    self.action,
                    self.at,
                    self.expires_at,
                    self.channel,
                    self.notice_version
                ])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "INSERT INTO consents (subject_id, purpose, recipient, action, at,
                       expires_at, channel, notice_version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &self.subject,
                        &self.purpose,
                        &self.recipient,
                        &self.action,
                        &self.at,
                        &self.expires_at,
                        &self.channel,
                        &self.notice_version,
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// A consent record changes what may be decided about the customer.
    fn standing(&self) -> Option<(&str, Standing)> {
        Some((&self.subject, Standing::Revised))
    }
}

/// The channels only Candor records: the customer's own change in the privacy center, and the
/// browser's Global Privacy Control signal. No caller may give them as evidence, so a consent
/// record saying the customer acted is only ever Candor's word.
pub const CANDOR_CHANNELS: &[&str] = &["privacy_center", "gpc"];

/// The slice, registered: its table, its change and its erasure of a customer.
pub(crate) const SLICE: Slice = Slice {
    schema: Some(SchemaPart {
        owner: "consent",
        migrations: &[Migration {
            name: "customers' consent records",
            sqlite: r#"
CREATE TABLE consents (
    seq            INTEGER PRIMARY KEY,
    subject_id     TEXT NOT NULL REFERENCES subjects(id),
    purpose        TEXT NOT NULL,
    recipient      TEXT,
    action         TEXT NOT NULL CHECK (action IN ('grant', 'withdraw')),
    at             INTEGER NOT NULL,
    expires_at     INTEGER,
    channel        TEXT NOT NULL,
    notice_version TEXT NOT NULL
) STRICT;
CREATE INDEX consents_by_subject ON consents (subject_id, seq);
"#,
            postgres: r#"
CREATE TABLE consents (
    seq            BIGSERIAL PRIMARY KEY,
    subject_id     TEXT NOT NULL REFERENCES subjects (id),
    purpose        TEXT NOT NULL,
    recipient      TEXT,
    action         TEXT NOT NULL CHECK (action IN ('grant', 'withdraw')),
    at             BIGINT NOT NULL,
    expires_at     BIGINT,
    channel        TEXT NOT NULL,
    notice_version TEXT NOT NULL
);
CREATE INDEX consents_by_subject ON consents (subject_id, seq);
"#,
        }],
    }),
    changes: &[change::<AddConsent>()],
    on_erasure: Some(erase),
};

/// Erases the customer's consent records (its [`SLICE`]'s `on_erasure`).
pub(crate) fn erase(tx: &mut Tx<'_>, subject: &str) -> Result<(), TxError> {
    match tx {
        Tx::Sqlite(c) => {
            c.prepare_cached("DELETE FROM consents WHERE subject_id = ?1")?
                .execute([subject])?;
        }
        Tx::Postgres(c) => {
            c.execute("DELETE FROM consents WHERE subject_id = $1", &[&subject])?;
        }
    }
    Ok(())
}

/// The customer's consent rows in the order recorded, on SQLite.
pub(crate) fn rows_sqlite(
    c: &rusqlite::Connection,
    subject: &str,
) -> rusqlite::Result<Vec<ConsentRow>> {
    c.prepare_cached(
        "SELECT purpose, recipient, action, at, expires_at, channel, notice_version
         FROM consents WHERE subject_id = ?1 ORDER BY seq",
    )?
    .query_map([subject], |r| consent_row(r, 0))?
    .collect()
}

/// The customer's consent rows in the order recorded, on either backend.
pub fn rows(db: &Db, subject: &SubjectId) -> Result<Vec<ConsentRow>, StoreError> {
    let owned = subject.as_str().to_owned();
    db.read(
        "read consents",
        |c| rows_sqlite(c, subject.as_str()),
        move |c| {
            Ok(c.query(
                "SELECT purpose, recipient, action, at, expires_at, channel, notice_version
                 FROM consents WHERE subject_id = $1 ORDER BY seq",
                &[&owned],
            )?
            .iter()
            .map(|r| consent_row_pg(r, 0))
            .collect())
        },
    )
}

/// The customer's consent records, checked as they are loaded.
pub(crate) fn records(db: &Db, subject: &SubjectId) -> Result<Vec<ConsentRecord>, VaultError> {
    to_records(rows(db, subject)?)
}

/// Which purposes' records a caller may see: all, or only those named.
enum Visible {
    All,
    Only(Vec<String>),
}

impl Visible {
    fn held_by(key: &crate::ServiceKey) -> Visible {
        Visible::Only(key.purposes.iter().map(|p| p.as_str().to_owned()).collect())
    }

    fn shows(&self, purpose: &str) -> bool {
        match self {
            Visible::All => true,
            Visible::Only(held) => held.iter().any(|p| p == purpose),
        }
    }

    /// As SQL parameters: whether to filter, and by which purposes.
    fn filter(&self) -> (bool, Vec<String>) {
        match self {
            Visible::All => (false, Vec::new()),
            Visible::Only(held) => (true, held.clone()),
        }
    }
}

fn consent_row(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<ConsentRow> {
    Ok(ConsentRow {
        purpose: r.get(from)?,
        recipient: r.get(from + 1)?,
        action: r.get(from + 2)?,
        at: r.get(from + 3)?,
        expires_at: r.get(from + 4)?,
        channel: r.get(from + 5)?,
        notice_version: r.get(from + 6)?,
    })
}

fn consent_row_pg(r: &postgres::Row, from: usize) -> ConsentRow {
    ConsentRow {
        purpose: r.get(from),
        recipient: r.get(from + 1),
        action: r.get(from + 2),
        at: r.get(from + 3),
        expires_at: r.get(from + 4),
        channel: r.get(from + 5),
        notice_version: r.get(from + 6),
    }
}

/// A page of the visible records, by their `seq`, with one more than the page to tell whether
/// another follows.
fn page_of_records(
    db: &Db,
    subject: &SubjectId,
    visible: &Visible,
    page: Page,
) -> Result<Vec<(u64, ConsentRecord)>, VaultError> {
    let (filtered, purposes) = visible.filter();
    let start = i64::try_from(page.start()).unwrap_or(i64::MAX);
    let limit = (page.limit + 1) as i64;
    let owned = subject.as_str().to_owned();
    let sqlite_purposes = std::rc::Rc::new(
        purposes
            .iter()
            .map(|p| rusqlite::types::Value::Text(p.clone()))
            .collect::<Vec<_>>(),
    );
    let rows: Vec<(i64, ConsentRow)> = db.read(
        "read a page of consents",
        |c| {
            c.prepare_cached(
                "SELECT seq, purpose, recipient, action, at, expires_at, channel, notice_version
                 FROM consents
                 WHERE subject_id = ?1 AND seq >= ?2 AND (?3 = 0 OR purpose IN rarray(?4))
                 ORDER BY seq LIMIT ?5",
            )?
            .query_map(
                params![subject.as_str(), start, filtered, sqlite_purposes, limit],
                |r| Ok((r.get(0)?, consent_row(r, 1)?)),
            )?
            .collect()
        },
        move |c| {
            Ok(c.query(
                "SELECT seq, purpose, recipient, action, at, expires_at, channel, notice_version
                 FROM consents
                 WHERE subject_id = $1 AND seq >= $2 AND ($3 = false OR purpose = ANY($4))
                 ORDER BY seq LIMIT $5",
                &[&owned, &start, &filtered, &purposes, &limit],
            )?
            .iter()
            .map(|r| (r.get(0), consent_row_pg(r, 1)))
            .collect())
        },
    )?;
    let (seqs, rows): (Vec<i64>, Vec<ConsentRow>) = rows.into_iter().unzip();
    let seqs = seqs
        .into_iter()
        .map(|seq| u64::try_from(seq).map_err(|_| StoreError::Corrupt("consent seq")));
    seqs.zip(to_records(rows)?)
        .map(|(seq, record)| Ok((seq?, record)))
        .collect()
}

/// The latest record of each purpose and recipient: all that decides the consent in force
/// (`consent_in_force` takes the latest of the records that apply, and those are whole groups),
/// however many changes a customer made.
fn latest_records(db: &Db, subject: &SubjectId) -> Result<Vec<ConsentRecord>, VaultError> {
    const LATEST: &str =
        "SELECT purpose, recipient, action, at, expires_at, channel, notice_version
         FROM (SELECT purpose, recipient, action, at, expires_at, channel, notice_version, seq,
                      ROW_NUMBER() OVER (PARTITION BY purpose, recipient
                                         ORDER BY at DESC, seq DESC) AS newest
               FROM consents WHERE subject_id = $1) ranked
         WHERE newest = 1 ORDER BY seq";
    let owned = subject.as_str().to_owned();
    let rows = db.read(
        "read the latest consents",
        |c| {
            c.prepare_cached(LATEST)?
                .query_map([subject.as_str()], |r| consent_row(r, 0))?
                .collect()
        },
        move |c| {
            Ok(c.query(LATEST, &[&owned])?
                .iter()
                .map(|r| consent_row_pg(r, 0))
                .collect())
        },
    )?;
    to_records(rows)
}

/// Consent rows as records; an unknown action is corrupt data.
pub(crate) fn to_records(rows: Vec<ConsentRow>) -> Result<Vec<ConsentRecord>, VaultError> {
    rows.into_iter()
        .map(|row| {
            let action =
                ConsentAction::parse(&row.action).ok_or(StoreError::Corrupt("consent action"))?;
            Ok(ConsentRecord {
                purpose: row.purpose,
                recipient: row.recipient,
                action,
                at: row.at,
                expires_at: row.expires_at,
                evidence: Evidence {
                    channel: row.channel,
                    notice_version: row.notice_version,
                },
            })
        })
        .collect()
}

/// A requested consent change.
#[derive(Debug, Clone)]
pub struct ConsentChange {
    /// The purpose.
    pub purpose: String,
    /// Limit to one recipient.
    pub recipient: Option<String>,
    /// Grant or withdraw.
    pub action: ConsentAction,
    /// When a grant lapses (Unix seconds).
    pub expires_at: Option<i64>,
    /// How the choice was expressed; required from services, defaulted for customers.
    pub evidence: Option<Evidence>,
}

/// The most consent changes one request may carry: more than any privacy center asks at once,
/// and a bound on the events and rows one request writes.
pub const MAX_CONSENT_CHANGES: usize = 100;

/// The consents of one customer: state in force per consent-based purpose and the full history.
#[derive(Debug, Clone)]
pub struct ConsentView {
    /// Each consent-based purpose with its state for the business itself.
    pub in_force: Vec<(PurposeId, ConsentState)>,
    /// Records in the order recorded: a page of them when shown, the ones just made when
    /// recorded.
    pub history: Vec<ConsentRecord>,
    /// The cursor the next page starts after, or `None` if this is the last.
    pub next: Option<u64>,
}

/// Recording and showing consent.
pub struct Consents {
    map: Arc<DataMap>,
    db: Db,
    customers: Arc<Customers>,
    journal: Journal,
}

impl Consents {
    /// The use cases over their parts.
    pub fn new(map: Arc<DataMap>, db: Db, customers: Arc<Customers>, journal: Journal) -> Consents {
        Consents {
            map,
            db,
            customers,
            journal,
        }
    }

    /// Records consent changes; `gpc` (a `Sec-GPC: 1` signal) withdraws every purpose that
    /// sells or shares data, after the explicit changes, so the signal always wins.
    pub async fn record(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        changes: Vec<ConsentChange>,
        gpc: bool,
        now: i64,
    ) -> Result<ConsentView, VaultError> {
        // A service, or a customer through a service's session, changes only the service's
        // purposes and gives its own evidence; only the customer's own session is the privacy
        // center.
        let as_service = match principal {
            Principal::Subject(s) if s == subject => None,
            Principal::Service(k) => Some(k),
            Principal::Delegated {
                subject: s,
                through,
            } if s == subject => Some(through),
            _ => return Err(VaultError::Forbidden("not your subject")),
        };
        let delegated = matches!(principal, Principal::Delegated { .. });
        if changes.is_empty() && !gpc {
            // Nothing to record: the answer is what is in force.
            let in_force = self.view(principal, subject, now, Page::FIRST)?.in_force;
            return Ok(ConsentView {
                in_force,
                history: Vec::new(),
                next: None,
            });
        }
        if changes.len() > MAX_CONSENT_CHANGES {
            return Err(invalid(format!(
                "at most {MAX_CONSENT_CHANGES} consent changes in one request"
            )));
        }
        let mut records = Vec::with_capacity(changes.len());
        for c in changes {
            let purpose = self
                .map
                .purpose(&c.purpose)
                .ok_or_else(|| VaultError::UnknownPurpose(c.purpose.clone()))?;
            if let Some(k) = as_service
                && !k.purposes.contains(c.purpose.as_str())
            {
                return Err(VaultError::PurposeNotPermitted(c.purpose));
            }
            if let Some(r) = &c.recipient
                && !purpose.allows_recipient(r)
            {
                return Err(VaultError::RecipientNotDeclared(r.clone()));
            }
            if delegated
                && c.action == ConsentAction::Grant
                && !as_service.is_some_and(|k| k.sessions.sessions_may_grant_consent)
            {
                return Err(VaultError::Forbidden(
                    "a session this service minted may not grant consent for the customer",
                ));
            }
            if c.expires_at.is_some_and(|e| e <= now) {
                return Err(invalid("expires_at must be in the future"));
            }
            let evidence = match (c.evidence, as_service) {
                (Some(e), _) if CANDOR_CHANNELS.contains(&e.channel.as_str()) => {
                    return Err(invalid(format!(
                        "channel `{}` is recorded by Candor itself, never given as evidence",
                        e.channel
                    )));
                }
                (Some(e), _) => e,
                (None, None) => Evidence {
                    channel: "privacy_center".into(),
                    notice_version: self.map.version().to_owned(),
                },
                (None, Some(_)) => {
                    return Err(VaultError::Forbidden(
                        "a service records consent only with its evidence: channel and notice_version",
                    ));
                }
            };
            check_label("evidence.channel", &evidence.channel)?;
            check_label("evidence.notice_version", &evidence.notice_version)?;
            records.push(ConsentRecord {
                purpose: c.purpose,
                recipient: c.recipient,
                action: c.action,
                at: now,
                expires_at: c.expires_at,
                evidence,
            });
        }
        if gpc {
            // A service's call carries the signal for the purposes it is bound to, no others.
            let bound = |p: &candor_core::Purpose| {
                as_service.is_none_or(|k| k.purposes.contains(p.id().as_str()))
            };
            for p in self
                .map
                .purposes()
                .filter(|p| p.sells_or_shares() && bound(p))
            {
                records.push(ConsentRecord {
                    purpose: p.id().as_str().to_owned(),
                    recipient: None,
                    action: ConsentAction::Withdraw,
                    at: now,
                    expires_at: None,
                    evidence: Evidence {
                        channel: "gpc".into(),
                        notice_version: self.map.version().to_owned(),
                    },
                });
            }
        }
        let dek = self.customers.data_key(subject, true, now).await?;
        let mut changes: Vec<Arc<dyn Change>> = Vec::with_capacity(records.len());
        let mut entries = Vec::with_capacity(records.len());
        for r in &records {
            let kind = EventKind::ConsentChanged {
                purpose: r.purpose.clone(),
                recipient: r.recipient.clone(),
                action: r.action.as_str(),
                expires_at: r.expires_at,
                channel: r.evidence.channel.clone(),
                notice_version: r.evidence.notice_version.clone(),
            };
            let sealed = self
                .journal
                .seal(Some(&dek), principal.actor(), subject, now, kind);
            entries.push(sealed.entry);
            changes.push(Arc::new(AddConsent::of(subject, r)));
        }
        self.journal
            .submit(Some(subject), None, changes, entries)
            .await?;
        let in_force = self.view(principal, subject, now, Page::FIRST)?.in_force;
        Ok(ConsentView {
            in_force,
            history: records,
            next: None,
        })
    }

    /// The customer's consents in force and a page of their records (the cursor is the record's
    /// order key): the customer themself, or a service (any purpose it holds).
    pub fn view(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
        page: Page,
    ) -> Result<ConsentView, VaultError> {
        let visible = match principal {
            Principal::Subject(s) if s == subject => Visible::All,
            Principal::Service(k) => Visible::held_by(k),
            Principal::Delegated {
                subject: s,
                through,
            } if s == subject => Visible::held_by(through),
            _ => return Err(VaultError::Forbidden("not your subject")),
        };
        let (latest, page_records) = match self.customers.state(subject)? {
            SubjectState::Active { .. } => (
                latest_records(&self.db, subject)?,
                page_of_records(&self.db, subject, &visible, page)?,
            ),
            SubjectState::Unknown => (Vec::new(), Vec::new()),
            SubjectState::Erased { .. } => return Err(VaultError::SubjectErased),
        };
        let (page_records, next) = page.cut(page_records, |(seq, _)| *seq);
        let in_force = self
            .map
            .purposes()
            .filter(|p| p.legal_basis().needs_consent() && visible.shows(p.id().as_str()))
            .map(|p| {
                (
                    p.id().clone(),
                    consent_in_force(&latest, p.id().as_str(), None, now),
                )
            })
            .collect();
        Ok(ConsentView {
            in_force,
            history: page_records.into_iter().map(|(_, r)| r).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{EMAIL, Fixture, NOW, OPS, apply, on_every_backend};

    fn grant(purpose: &str, evidence: Option<Evidence>) -> ConsentChange {
        ConsentChange {
            purpose: purpose.into(),
            recipient: None,
            action: ConsentAction::Grant,
            expires_at: None,
            evidence,
        }
    }

    #[test]
    fn customers_change_only_their_own_consent_and_services_only_with_evidence() {
        let f = Fixture::new();
        let service = f.service(&[OPS, EMAIL], false, false);
        let a = f.customer("cus_a", &service);
        let b = f.customer("cus_b", &service);
        let consents = f.vault.consents();
        let as_b = Principal::Subject(b.clone());
        for caller in [&as_b, &f.admin] {
            let r = f.run(consents.record(caller, &a, vec![grant(EMAIL, None)], false, NOW));
            assert!(matches!(r, Err(VaultError::Forbidden(_))));
        }
        let r = f.run(consents.record(&service, &a, vec![grant(EMAIL, None)], false, NOW));
        assert!(matches!(r, Err(VaultError::Forbidden(_))), "no evidence");
        let evidence = Evidence {
            channel: "checkout".into(),
            notice_version: "v1".into(),
        };
        let r = f.run(consents.record(
            &service,
            &a,
            vec![grant("analytics.reporting", Some(evidence.clone()))],
            false,
            NOW,
        ));
        assert!(
            matches!(r, Err(VaultError::PurposeNotPermitted(_))),
            "not its purpose"
        );
        let view = f
            .run(consents.record(&service, &a, vec![grant(EMAIL, Some(evidence))], false, NOW))
            .unwrap();
        assert!(
            view.in_force
                .iter()
                .any(|(p, s)| p.as_str() == EMAIL && *s == ConsentState::Granted)
        );
        let view = f
            .run(consents.record(
                &Principal::Subject(a.clone()),
                &a,
                vec![grant("analytics.reporting", None)],
                false,
                NOW,
            ))
            .unwrap();
        assert_eq!(view.history.len(), 1, "the records this request made");
        assert_eq!(view.history[0].evidence.channel, "privacy_center");
        let all = consents
            .view(&Principal::Subject(a.clone()), &a, NOW, Page::FIRST)
            .unwrap();
        assert_eq!((all.history.len(), all.next), (2, None));
        // A service sees only the purposes it holds.
        let seen = consents.view(&service, &a, NOW, Page::FIRST).unwrap();
        assert_eq!(seen.history.len(), 1);
        assert!(matches!(
            consents.view(&as_b, &a, NOW, Page::FIRST),
            Err(VaultError::Forbidden(_))
        ));
    }

    #[test]
    fn records_are_read_a_page_at_a_time_and_the_latest_decide() {
        let f = Fixture::new();
        let service = f.service(&[OPS, EMAIL], false, false);
        let a = f.customer("cus_a", &service);
        let me = Principal::Subject(a.clone());
        let consents = f.vault.consents();
        let withdraw = |purpose: &str| ConsentChange {
            action: ConsentAction::Withdraw,
            ..grant(purpose, None)
        };
        // Seven records; the email purpose ends granted, analytics withdrawn, and a record
        // given with an earlier clock (another node's) does not count as the latest.
        let changes = vec![
            grant(EMAIL, None),
            withdraw(EMAIL),
            grant("analytics.reporting", None),
            grant(EMAIL, None),
            withdraw("analytics.reporting"),
        ];
        f.run(consents.record(&me, &a, changes, false, NOW))
            .unwrap();
        f.run(consents.record(&me, &a, vec![withdraw(EMAIL)], false, NOW - 60))
            .unwrap();
        f.run(consents.record(
            &me,
            &a,
            vec![grant("analytics.reporting", None)],
            false,
            NOW - 60,
        ))
        .unwrap();

        let whole = consents.view(&me, &a, NOW, Page::FIRST).unwrap();
        assert_eq!((whole.history.len(), whole.next), (7, None));
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = consents
                .view(&me, &a, NOW, Page::new(after, Some(3)).unwrap())
                .unwrap();
            assert!(page.history.len() <= 3);
            assert_eq!(
                page.in_force, whole.in_force,
                "every page shows what is in force"
            );
            walked.extend(page.history);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(walked, whole.history);
        let state = |purpose: &str| {
            whole
                .in_force
                .iter()
                .find(|(p, _)| p.as_str() == purpose)
                .map(|(_, s)| *s)
        };
        let by_every_record = |purpose: &str| consent_in_force(&whole.history, purpose, None, NOW);
        assert_eq!(state(EMAIL), Some(ConsentState::Granted));
        assert_eq!(state(EMAIL), Some(by_every_record(EMAIL)));
        assert_eq!(state("analytics.reporting"), Some(ConsentState::Withdrawn));
        assert_eq!(
            state("analytics.reporting"),
            Some(by_every_record("analytics.reporting"))
        );
        // A service's pages hold only its purposes.
        let seen = consents.view(&service, &a, NOW, Page::FIRST).unwrap();
        assert!(seen.history.iter().all(|r| r.purpose == EMAIL));
        assert_eq!(seen.history.len(), 4);
    }

    #[test]
    fn the_gpc_signal_withdraws_every_purpose_that_sells_or_shares() {
        let f = Fixture::new();
        let service = f.service(&[OPS], false, false);
        let a = f.customer("cus_a", &service);
        let me = Principal::Subject(a.clone());
        let view = f
            .run(f.vault.consents().record(
                &me,
                &a,
                vec![grant("third_party_sharing", None)],
                true,
                NOW,
            ))
            .unwrap();
        let last = view.history.last().unwrap();
        assert_eq!(
            (
                last.purpose.as_str(),
                last.action,
                last.evidence.channel.as_str()
            ),
            ("third_party_sharing", ConsentAction::Withdraw, "gpc")
        );
        assert!(
            view.in_force
                .iter()
                .any(|(p, s)| p.as_str() == "third_party_sharing" && *s == ConsentState::Withdrawn)
        );
    }

    fn consent_records_round_trip_in_order(db: &Db) {
        let subject = SubjectId::parse("c").unwrap();
        let record = |action, at| ConsentRecord {
            purpose: "p1".into(),
            recipient: None,
            action,
            at,
            expires_at: Some(at + 100),
            evidence: Evidence {
                channel: "web".into(),
                notice_version: "v1".into(),
            },
        };
        let limited = |action, at| ConsentRecord {
            recipient: Some("acme".into()),
            ..record(action, at)
        };
        let other = |action, at| ConsentRecord {
            purpose: "p2".into(),
            ..record(action, at)
        };
        let written = vec![
            record(ConsentAction::Grant, 10),
            record(ConsentAction::Withdraw, 10),
            limited(ConsentAction::Grant, 12),
            other(ConsentAction::Grant, 13),
            // Recorded later with an earlier clock: not the latest of its group.
            limited(ConsentAction::Withdraw, 11),
        ];
        let mut changes: Vec<Arc<dyn Change>> = vec![Arc::new(crate::subjects::CreateSubject {
            subject: "c".into(),
            wrapped_key: vec![7; 40],
            key_epoch: Some(1),
            at: 2,
        })];
        changes.extend(
            written
                .iter()
                .map(|r| Arc::new(AddConsent::of(&subject, r)) as Arc<dyn Change>),
        );
        apply(db, changes);
        assert_eq!(
            records(db, &subject).unwrap(),
            written,
            "in the order recorded, even at the same second"
        );
        assert_eq!(
            latest_records(db, &subject).unwrap(),
            [written[1].clone(), written[2].clone(), written[3].clone()],
            "the latest of each purpose and recipient, by time and then order"
        );

        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = Page::new(after, Some(2)).unwrap();
            let (rows, next) = page.cut(
                page_of_records(db, &subject, &Visible::All, page).unwrap(),
                |(seq, _)| *seq,
            );
            assert!(rows.len() <= 2);
            walked.extend(rows.into_iter().map(|(_, r)| r));
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(walked, written, "the pages together, in order");
        let p2_only =
            page_of_records(db, &subject, &Visible::Only(vec!["p2".into()]), Page::FIRST).unwrap();
        assert_eq!(
            p2_only.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            [written[3].clone()]
        );
    }

    on_every_backend!(consent_records_round_trip_in_order);
}
