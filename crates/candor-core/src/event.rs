//! Log events and their canonical bytes.
//!
//! Every collection, consent change, access (allowed, denied or refused) and erasure is an
//! [`Event`]. Its canonical form is JSON with object keys sorted and no whitespace (RFC 8785 for the
//! values used here: strings, integers, booleans, null), so a customer can recompute the commitment
//! from the event they are shown. Events name data categories, never values.

use serde::Serialize;
use serde_json::Value;

/// Who caused an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `service`, `subject` or `admin`.
    pub kind: &'static str,
    /// The API key id, or the customer id for the customer themself.
    pub id: String,
    /// The key's display name, shown to the customer as who touched their data.
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
}

/// A log event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Format version.
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

    #[test]
    fn canonical_form_is_sorted_and_compact() {
        let event = Event {
            v: 1,
            subject: "cus_1".into(),
            at: 1_700_000_000,
            actor: Actor {
                kind: "service",
                id: "k1".into(),
                name: "checkout".into(),
            },
            kind: EventKind::Refused {
                purpose: "analytics.reporting".into(),
                reason: "purpose_not_permitted",
            },
        };
        assert_eq!(
            String::from_utf8(event.canonical()).unwrap(),
            r#"{"actor":{"id":"k1","kind":"service","name":"checkout"},"at":1700000000,"purpose":"analytics.reporting","reason":"purpose_not_permitted","subject":"cus_1","type":"refused","v":1}"#
        );
    }
}
