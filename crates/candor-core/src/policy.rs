//! The access decision: (data map, consents in force, request) to a per-field allow or deny.
//!
//! Default deny: a field is allowed only if it is a declared category, the purpose needs it, the
//! recipient (if any) is declared for the purpose, and, for consent-based purposes, the customer's
//! consent is in force. Fields that pass come out as a [`Permit`], which only this module can make,
//! so the vault cannot unseal a field the policy did not allow.

use crate::consent::{ConsentRecord, ConsentState, consent_in_force};
use crate::datamap::{DataMap, Purpose};
use crate::ids::{PurposeId, SubjectId};

/// Why a field was denied. The codes are part of the API and of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The field is not a category of the data map.
    UnknownField,
    /// The purpose does not need this category.
    NotNeededByPurpose,
    /// The recipient is not declared for this purpose.
    RecipientNotDeclared,
    /// The purpose needs consent and the customer never gave it.
    NoConsent,
    /// The customer withdrew consent.
    ConsentWithdrawn,
    /// The customer's consent has expired.
    ConsentExpired,
}

impl Denial {
    /// The stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            Denial::UnknownField => "unknown_field",
            Denial::NotNeededByPurpose => "not_needed_by_purpose",
            Denial::RecipientNotDeclared => "recipient_not_declared",
            Denial::NoConsent => "no_consent",
            Denial::ConsentWithdrawn => "consent_withdrawn",
            Denial::ConsentExpired => "consent_expired",
        }
    }
}

/// The outcome for one requested field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDecision {
    /// The requested field (a data-category key).
    pub field: String,
    /// `None` when allowed.
    pub denial: Option<Denial>,
}

/// The fields a decision allowed one customer's data to be read for, for one purpose: the only
/// key to unsealing. It is bound to that customer, and whoever opens fields checks it is theirs.
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    subject: SubjectId,
    purpose: PurposeId,
    fields: Vec<String>,
}

impl Permit {
    /// The customer whose fields it allows.
    pub fn subject(&self) -> &SubjectId {
        &self.subject
    }

    /// The purpose it was decided for ([`SUBJECT_ACCESS`] for a customer's own read).
    pub fn purpose(&self) -> &PurposeId {
        &self.purpose
    }

    /// The allowed fields, in request order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }
}

/// The decision for a whole request.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    /// One outcome per requested field, in request order, duplicates removed.
    pub fields: Vec<FieldDecision>,
    /// What may be unsealed.
    pub permit: Permit,
}

/// Decides a read of `subject`'s `fields` for `purpose` by `recipient` at `now`.
pub fn decide(
    map: &DataMap,
    purpose: &Purpose,
    subject: &SubjectId,
    recipient: Option<&str>,
    consents: &[ConsentRecord],
    fields: &[String],
    now: i64,
) -> Decision {
    let consent_denial = if purpose.legal_basis().needs_consent() {
        match consent_in_force(consents, purpose.id().as_str(), recipient, now) {
            ConsentState::Granted => None,
            ConsentState::Absent => Some(Denial::NoConsent),
            ConsentState::Withdrawn => Some(Denial::ConsentWithdrawn),
            ConsentState::Expired => Some(Denial::ConsentExpired),
        }
    } else {
        None
    };
    let recipient_denial = recipient
        .filter(|r| !purpose.allows_recipient(r))
        .map(|_| Denial::RecipientNotDeclared);

    let mut decisions: Vec<FieldDecision> = Vec::with_capacity(fields.len());
    for field in fields {
        if decisions.iter().any(|d| &d.field == field) {
            continue;
        }
        let denial = if map.category(field).is_none() {
            Some(Denial::UnknownField)
        } else if !purpose.needs(field) {
            Some(Denial::NotNeededByPurpose)
        } else {
            recipient_denial.or(consent_denial)
        };
        decisions.push(FieldDecision {
            field: field.clone(),
            denial,
        });
    }
    let permit = Permit {
        subject: subject.clone(),
        purpose: purpose.id().clone(),
        fields: decisions
            .iter()
            .filter(|d| d.denial.is_none())
            .map(|d| d.field.clone())
            .collect(),
    };
    Decision {
        fields: decisions,
        permit,
    }
}

/// The purpose recorded when customers read their own data.
pub const SUBJECT_ACCESS: &str = "data_subject_access";

/// A customer reading their own data (GDPR Art. 15, the right of access) may read everything held
/// about them, whatever the purposes and consents: every category of `held` that the data map
/// declares (nothing else can be named in a permit).
pub fn subject_access(map: &DataMap, subject: &SubjectId, held: &[String]) -> Permit {
    Permit {
        subject: subject.clone(),
        purpose: PurposeId::parse(SUBJECT_ACCESS)
            .expect("the right of access's purpose is a dotted key"),
        fields: held
            .iter()
            .filter(|f| map.category(f).is_some())
            .cloned()
            .collect(),
    }
}

/// A customer reading their own data through a session a service minted for them: only the
/// categories of `held` that one of the service's `purposes` uses, since the service may not
/// export everything on the customer's behalf.
pub fn delegated_access<'a>(
    map: &DataMap,
    subject: &SubjectId,
    held: &[String],
    purposes: impl IntoIterator<Item = &'a PurposeId>,
) -> Permit {
    let used: Vec<&crate::Purpose> = purposes
        .into_iter()
        .filter_map(|p| map.purpose(p.as_str()))
        .collect();
    let mut permit = subject_access(map, subject, held);
    permit.fields.retain(|f| used.iter().any(|p| p.needs(f)));
    permit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{ConsentAction, Evidence};
    use crate::datamap::SAMPLE_DATA_MAP;

    fn map() -> DataMap {
        DataMap::parse(SAMPLE_DATA_MAP).unwrap()
    }

    fn consent(purpose: &str, action: ConsentAction, at: i64) -> ConsentRecord {
        ConsentRecord {
            purpose: purpose.into(),
            recipient: None,
            action,
            at,
            expires_at: None,
            evidence: Evidence {
                channel: "privacy_center".into(),
                notice_version: "2026-11-01".into(),
            },
        }
    }

    /// Renders a decision as `field=outcome` lines, so each case reads as a table.
    fn check(
        purpose: &str,
        recipient: Option<&str>,
        consents: &[ConsentRecord],
        fields: &[&str],
        expect: &str,
    ) {
        let map = map();
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        let subject = SubjectId::parse("cus_1").unwrap();
        let d = decide(
            &map,
            map.purpose(purpose).unwrap(),
            &subject,
            recipient,
            consents,
            &fields,
            1000,
        );
        let got: Vec<String> = d
            .fields
            .iter()
            .map(|f| format!("{}={}", f.field, f.denial.map_or("allowed", Denial::code)))
            .collect();
        assert_eq!(got.join(" "), expect);
        let allowed: Vec<&str> = d
            .fields
            .iter()
            .filter(|f| f.denial.is_none())
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(d.permit.fields(), allowed.as_slice());
        assert_eq!(
            (d.permit.subject(), d.permit.purpose().as_str()),
            (&subject, purpose)
        );
    }

    #[test]
    fn contract_purposes_get_only_their_categories_without_consent() {
        check(
            "essential.service.payment_processing",
            None,
            &[],
            &[
                "user.name",
                "user.financial.bank_account",
                "user.contact.email",
                "user.shoe_size",
            ],
            "user.name=allowed user.financial.bank_account=allowed \
             user.contact.email=not_needed_by_purpose user.shoe_size=unknown_field",
        );
    }

    #[test]
    fn consent_purposes_follow_the_consent_in_force() {
        let fields = ["user.contact.email", "user.name"];
        let m = "marketing.communications.email";
        check(
            m,
            None,
            &[],
            &fields,
            "user.contact.email=no_consent user.name=not_needed_by_purpose",
        );
        let granted = [consent(m, ConsentAction::Grant, 10)];
        check(
            m,
            None,
            &granted,
            &fields,
            "user.contact.email=allowed user.name=not_needed_by_purpose",
        );
        let withdrawn = [
            consent(m, ConsentAction::Grant, 10),
            consent(m, ConsentAction::Withdraw, 20),
        ];
        check(
            m,
            None,
            &withdrawn,
            &fields,
            "user.contact.email=consent_withdrawn user.name=not_needed_by_purpose",
        );
        let mut expiring = consent(m, ConsentAction::Grant, 10);
        expiring.expires_at = Some(500);
        check(
            m,
            None,
            &[expiring],
            &fields,
            "user.contact.email=consent_expired user.name=not_needed_by_purpose",
        );
    }

    #[test]
    fn recipients_must_be_declared_for_the_purpose() {
        check(
            "essential.service.operations",
            Some("adreach"),
            &[],
            &["user.contact.address"],
            "user.contact.address=recipient_not_declared",
        );
        check(
            "essential.service.operations",
            Some("parcelgo"),
            &[],
            &["user.contact.address", "user.contact.address"],
            "user.contact.address=allowed",
        );
    }

    #[test]
    fn a_customers_own_read_permits_only_declared_categories_and_only_theirs() {
        let map = map();
        let subject = SubjectId::parse("cus_1").unwrap();
        let held = vec!["user.name".to_owned(), "user.not.declared".to_owned()];
        let permit = subject_access(&map, &subject, &held);
        assert_eq!(permit.fields(), ["user.name".to_owned()]);
        assert_eq!(
            (permit.subject(), permit.purpose().as_str()),
            (&subject, SUBJECT_ACCESS)
        );
    }
}
