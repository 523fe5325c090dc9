//! Log events and their canonical bytes.
//!
//! Every collection, consent change, access (allowed, denied or refused) and erasure is an
//! [`Event`]. Its canonical form is JSON with object keys sorted and no whitespace (RFC 8785 for the
//! values used here: strings, integers, booleans, null), so a customer can recompute the commitment
//! from the event they are shown. Events name data categories, never values.

use serde::Serialize;
use serde_json::Value;

/// The version of the committed event format: the `v` of every new event.
///
/// Version 2 made the actor data: a customer acting on their own data is `{"kind":"subject",
/// "id":…}`, where version 1 also committed the display text `"name":"you"`. Events already in a
/// log keep their bytes (commitments are over what was stored), so both versions verify.
pub const EVENT_FORMAT_VERSION: u32 = 2;

/// Who caused an event: data, never display text (how it is shown is the reader's business).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The business's administrator key.
    Admin {
        /// The API key id.
        id: String,
        /// The key's name, as recorded when it was created.
        name: String,
    },
    /// A service key of the business or a recipient.
    Service {
        /// The API key id.
        id: String,
        /// The key's name, as recorded when it was created: who touched the customer's data.
        name: String,
    },
    /// The customer themself.
    Subject {
        /// The customer id.
        id: String,
    },
    /// The customer, through a session a service minted for them: the service is named in every
    /// event, so a delegated act is never shown as the customer's own.
    Delegate {
        /// The customer id.
        id: String,
        /// The service whose session it was.
        through: ServiceRef,
    },
    /// Candor itself, acting on a request nobody was signed in for (sending a sign-in link).
    Candor,
    /// Another customer, signed in as themself: not named, as their id is theirs, not this
    /// customer's, to see.
    AnotherCustomer,
    /// Whoever holds the Candor home (its root key), at the command line: `candor init`,
    /// `candor admin-key`.
    CommandLine,
}

/// A service key, as an event names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceRef {
    /// The API key id.
    pub id: String,
    /// The key's name.
    pub name: String,
}

/// One field's outcome in an access event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldOutcome {
    /// The data category.
    pub field: String,
    /// `allowed` or a denial code.
    pub outcome: &'static str,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// Fields were stored, for a purpose.
    Collected {
        /// The purpose of collection.
        purpose: String,
        /// The categories written.
        fields: Vec<String>,
    },
    /// A consent record was added.
    ConsentChanged {
        /// The purpose.
        purpose: String,
        /// The recipient it is limited to.
        recipient: Option<String>,
        /// `grant` or `withdraw`.
        action: &'static str,
        /// When a grant lapses.
        expires_at: Option<i64>,
        /// Evidence: where.
        channel: String,
        /// Evidence: which notice.
        notice_version: String,
    },
    /// A read was decided (and allowed fields released).
    Accessed {
        /// The purpose named.
        purpose: String,
        /// The recipient, for shares.
        recipient: Option<String>,
        /// Each field's outcome.
        fields: Vec<FieldOutcome>,
    },
    /// A call was refused before any decision (the key may not use this purpose).
    Refused {
        /// The purpose named.
        purpose: String,
        /// The refusal code.
        reason: &'static str,
    },
    /// The customer's key and data were destroyed.
    Erased,
    /// A session to act as the customer began: they signed in (`oidc`, `email_link`), or a
    /// service minted one for them (`delegated`, with the service as the actor).
    SessionStarted {
        /// How.
        method: &'static str,
        /// Unix seconds when it stops working.
        expires_at: i64,
    },
    /// The email address the customer signs in with was set; it counts once a link sent to it
    /// is used.
    SigninEmailSet,
    /// Candor sent a one-time link to the customer's sign-in address: `sign_in`, or
    /// `verify_address` for an address just set.
    SigninLinkSent {
        /// What the link is for.
        purpose: &'static str,
    },
    /// Someone signed in or holding a key tried to act on the customer's data and was refused
    /// (`action`: `read_data`, `read_history`, `erase`, ...; `reason`: the error code).
    AttemptRefused {
        /// What was tried.
        action: String,
        /// Why it was refused: the error code the caller got.
        reason: &'static str,
    },
    /// In the operator log: an API key was created.
    KeyCreated {
        /// The new key.
        key: ServiceRef,
        /// `admin` or `service`.
        role: &'static str,
        /// The purposes it may name.
        purposes: Vec<String>,
        /// The recipient it acts for.
        recipient: Option<String>,
        /// What it may do beyond its purposes: `can_erase`, `can_mint_sessions`,
        /// `sessions_may_erase`, `sessions_may_export`, `sessions_may_grant_consent`.
        rights: Vec<&'static str>,
        /// Unix seconds when it stops working, if it expires.
        expires_at: Option<i64>,
    },
    /// In the operator log: a key was revoked, and the sessions it minted with it.
    KeyRevoked {
        /// The key.
        key: ServiceRef,
    },
    /// In the operator log: a key was rotated. Its successor has its purposes and rights; the
    /// key itself works until `expires_at`, so its holders can move over.
    KeyRotated {
        /// The key rotated.
        key: ServiceRef,
        /// The successor's id.
        successor: String,
        /// When the rotated key stops working.
        expires_at: i64,
    },
    /// In the operator log: a service minted a delegated session (the customer's own log names
    /// them; this one does not).
    SessionDelegated {
        /// The minting key.
        key: ServiceRef,
        /// Unix seconds when the session stops working.
        expires_at: i64,
    },
    /// In the operator log: a tenant key epoch started. Customer keys are wrapped under it from
    /// now on, and keys wrapped under earlier epochs are rewrapped into it.
    KeyEpochStarted {
        /// The epoch's number.
        epoch: u32,
    },
    /// In the operator log: every key epoch up to `through` was destroyed, so a copy of the
    /// database whose keys are wrapped under one of them no longer opens.
    KeyEpochsDestroyed {
        /// The last epoch destroyed.
        through: u32,
        /// When the last of them stopped wrapping any live customer's key.
        retired_at: i64,
    },
}

/// A log event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Format version: [`EVENT_FORMAT_VERSION`] for every event made by [`Event::new`].
    pub v: u32,
    /// The customer the event is about.
    pub subject: String,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: Actor,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// A new event in the current format.
    pub fn new(subject: impl Into<String>, at: i64, actor: Actor, kind: EventKind) -> Event {
        Event {
            v: EVENT_FORMAT_VERSION,
            subject: subject.into(),
            at,
            actor,
            kind,
        }
    }

    /// The canonical bytes that the log commits to.
    pub fn canonical(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("events serialise");
        let mut out = Vec::with_capacity(256);
        write_canonical(&value, &mut out);
        out
    }
}

/// Writes JSON with sorted keys and no insignificant whitespace, whatever map order serde_json uses.
/// Strings and scalars go straight into `out` through serde_json's writer, which cannot fail on a
/// `Vec`.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("writing to a Vec");
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Actor {
        Actor::Service {
            id: "k1".into(),
            name: "checkout".into(),
        }
    }

    /// One event of every kind, and every kind of actor, in the current format.
    fn one_of_each() -> Vec<(&'static str, Event)> {
        let at = 1_700_000_000;
        let customer = Actor::Subject { id: "cus_1".into() };
        let admin = Actor::Admin {
            id: "k0".into(),
            name: "admin".into(),
        };
        vec![
            (
                "collected",
                Event::new(
                    "cus_1",
                    at,
                    service(),
                    EventKind::Collected {
                        purpose: "essential.service.operations".into(),
                        fields: vec!["user.name".into(), "user.contact.email".into()],
                    },
                ),
            ),
            (
                "consent_changed",
                Event::new(
                    "cus_1",
                    at,
                    customer.clone(),
                    EventKind::ConsentChanged {
                        purpose: "marketing.communications.email".into(),
                        recipient: None,
                        action: "grant",
                        expires_at: Some(1_800_000_000),
                        channel: "privacy_center".into(),
                        notice_version: "2026-11".into(),
                    },
                ),
            ),
            (
                "accessed",
                Event::new(
                    "cus_1",
                    at,
                    service(),
                    EventKind::Accessed {
                        purpose: "marketing.communications.email".into(),
                        recipient: Some("mailer".into()),
                        fields: vec![
                            FieldOutcome {
                                field: "user.contact.email".into(),
                                outcome: "allowed",
                            },
                            FieldOutcome {
                                field: "user.name".into(),
                                outcome: "consent_required",
                            },
                        ],
                    },
                ),
            ),
            (
                "refused",
                Event::new(
                    "cus_1",
                    at,
                    service(),
                    EventKind::Refused {
                        purpose: "analytics.reporting".into(),
                        reason: "purpose_not_permitted",
                    },
                ),
            ),
            ("erased", Event::new("cus_1", at, admin, EventKind::Erased)),
            (
                "erased_by_the_customer",
                Event::new("cus_1", at, customer.clone(), EventKind::Erased),
            ),
            (
                "session_started",
                Event::new(
                    "cus_1",
                    at,
                    customer.clone(),
                    EventKind::SessionStarted {
                        method: "oidc",
                        expires_at: at + 900,
                    },
                ),
            ),
            (
                "session_delegated",
                Event::new(
                    "cus_1",
                    at,
                    service(),
                    EventKind::SessionStarted {
                        method: "delegated",
                        expires_at: at + 900,
                    },
                ),
            ),
            (
                "consent_changed_through_a_service",
                Event::new(
                    "cus_1",
                    at,
                    Actor::Delegate {
                        id: "cus_1".into(),
                        through: ServiceRef {
                            id: "k1".into(),
                            name: "checkout".into(),
                        },
                    },
                    EventKind::ConsentChanged {
                        purpose: "marketing.communications.email".into(),
                        recipient: None,
                        action: "withdraw",
                        expires_at: None,
                        channel: "checkout_app".into(),
                        notice_version: "2026-11".into(),
                    },
                ),
            ),
            (
                "signin_email_set",
                Event::new("cus_1", at, customer, EventKind::SigninEmailSet),
            ),
            (
                "signin_link_sent",
                Event::new(
                    "cus_1",
                    at,
                    Actor::Candor,
                    EventKind::SigninLinkSent { purpose: "sign_in" },
                ),
            ),
            (
                "attempt_refused",
                Event::new(
                    "cus_1",
                    at,
                    service(),
                    EventKind::AttemptRefused {
                        action: "erase".into(),
                        reason: "forbidden",
                    },
                ),
            ),
            (
                "key_created",
                Event::new(
                    "candor.operator",
                    at,
                    Actor::Admin {
                        id: "k0".into(),
                        name: "admin".into(),
                    },
                    EventKind::KeyCreated {
                        key: ServiceRef {
                            id: "k1".into(),
                            name: "checkout".into(),
                        },
                        role: "service",
                        purposes: vec!["essential.service.operations".into()],
                        recipient: None,
                        rights: vec!["can_mint_sessions"],
                        expires_at: Some(1_700_086_400),
                    },
                ),
            ),
            (
                "admin_key_created_at_the_command_line",
                Event::new(
                    "candor.operator",
                    at,
                    Actor::CommandLine,
                    EventKind::KeyCreated {
                        key: ServiceRef {
                            id: "k0".into(),
                            name: "admin".into(),
                        },
                        role: "admin",
                        purposes: vec![],
                        recipient: None,
                        rights: vec!["can_erase"],
                        expires_at: None,
                    },
                ),
            ),
            (
                "key_revoked",
                Event::new(
                    "candor.operator",
                    at,
                    Actor::CommandLine,
                    EventKind::KeyRevoked {
                        key: ServiceRef {
                            id: "k0".into(),
                            name: "admin".into(),
                        },
                    },
                ),
            ),
            (
                "key_rotated",
                Event::new(
                    "candor.operator",
                    at,
                    Actor::Admin {
                        id: "k0".into(),
                        name: "admin".into(),
                    },
                    EventKind::KeyRotated {
                        key: ServiceRef {
                            id: "k1".into(),
                            name: "checkout".into(),
                        },
                        successor: "k2".into(),
                        expires_at: 1_700_086_400,
                    },
                ),
            ),
            (
                "session_delegated",
                Event::new(
                    "candor.operator",
                    at,
                    service(),
                    EventKind::SessionDelegated {
                        key: ServiceRef {
                            id: "k1".into(),
                            name: "checkout".into(),
                        },
                        expires_at: 1_700_000_900,
                    },
                ),
            ),
            (
                "key_epoch_started",
                Event::new(
                    "candor.operator",
                    at,
                    Actor::Candor,
                    EventKind::KeyEpochStarted { epoch: 2 },
                ),
            ),
            (
                "key_epochs_destroyed",
                Event::new(
                    "candor.operator",
                    at,
                    Actor::Candor,
                    EventKind::KeyEpochsDestroyed {
                        through: 1,
                        retired_at: 1_699_000_000,
                    },
                ),
            ),
            (
                "attempt_refused_another_customer",
                Event::new(
                    "cus_1",
                    at,
                    Actor::AnotherCustomer,
                    EventKind::AttemptRefused {
                        action: "read_history".into(),
                        reason: "forbidden",
                    },
                ),
            ),
        ]
    }

    /// The canonical bytes of every kind are pinned in `testdata/events.txt`: changing them is a
    /// change of the committed format, which needs a new [`EVENT_FORMAT_VERSION`] and a new file.
    #[test]
    fn every_event_kind_has_exactly_its_pinned_canonical_bytes() {
        let pinned = include_str!("../testdata/events.txt");
        let pinned: Vec<(&str, &str)> = pinned
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split_once(' ').expect("`name canonical-json` per line"))
            .collect();
        let made = one_of_each();
        assert_eq!(pinned.len(), made.len(), "one pinned line per event");
        for ((name, event), (pinned_name, bytes)) in made.iter().zip(&pinned) {
            assert_eq!(name, pinned_name);
            assert_eq!(
                String::from_utf8(event.canonical()).unwrap(),
                *bytes,
                "{name}"
            );
        }
    }

    #[test]
    fn canonical_form_is_sorted_and_compact() {
        let event = Event::new(
            "cus_1",
            1_700_000_000,
            service(),
            EventKind::Refused {
                purpose: "analytics.reporting".into(),
                reason: "purpose_not_permitted",
            },
        );
        assert_eq!(
            String::from_utf8(event.canonical()).unwrap(),
            r#"{"actor":{"id":"k1","kind":"service","name":"checkout"},"at":1700000000,"purpose":"analytics.reporting","reason":"purpose_not_permitted","subject":"cus_1","type":"refused","v":2}"#
        );
    }
}
