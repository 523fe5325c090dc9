//! Consent records and the state in force.
//!
//! Consent is an append-only history per customer. For a purpose and (optionally) a recipient, the
//! state in force is what the latest matching record says, latest by the time it was given, ties
//! broken by the order recorded. A record without a recipient covers every recipient, so a general
//! withdrawal after a recipient-specific grant withdraws that grant too.

/// Grant or withdraw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentAction {
    /// The customer agrees.
    Grant,
    /// The customer takes agreement back.
    Withdraw,
}

impl ConsentAction {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentAction::Grant => "grant",
            ConsentAction::Withdraw => "withdraw",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<ConsentAction> {
        match s {
            "grant" => Some(ConsentAction::Grant),
            "withdraw" => Some(ConsentAction::Withdraw),
            _ => None,
        }
    }
}

/// How the choice was expressed, kept as evidence (ISO/IEC TS 27560's collection method).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Where: `privacy_center`, `checkout`, `gpc`, `support_call`, ...
    pub channel: String,
    /// The notice version the customer was shown.
    pub notice_version: String,
}

/// One consent change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The purpose id.
    pub purpose: String,
    /// The recipient it is limited to, or `None` for all recipients of the purpose.
    pub recipient: Option<String>,
    /// Grant or withdraw.
    pub action: ConsentAction,
    /// Unix seconds when the customer made the choice.
    pub at: i64,
    /// Unix seconds after which a grant lapses.
    pub expires_at: Option<i64>,
    /// How it was given.
    pub evidence: Evidence,
}

/// The consent in force for one purpose and recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentState {
    /// No record at all.
    Absent,
    /// Granted and not expired.
    Granted,
    /// The latest record withdraws.
    Withdrawn,
    /// The latest record granted, but its expiry has passed.
    Expired,
}

/// The state in force at `now` for `purpose` as used by `recipient` (`None`: the business itself).
pub fn consent_in_force(
    records: &[ConsentRecord],
    purpose: &str,
    recipient: Option<&str>,
    now: i64,
) -> ConsentState {
    let latest = records
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.purpose == purpose && (r.recipient.is_none() || r.recipient.as_deref() == recipient)
        })
        .max_by_key(|(order, r)| (r.at, *order))
        .map(|(_, r)| r);
    match latest {
        None => ConsentState::Absent,
        Some(r) if r.action == ConsentAction::Withdraw => ConsentState::Withdrawn,
        Some(r) if r.expires_at.is_some_and(|e| now >= e) => ConsentState::Expired,
        Some(_) => ConsentState::Granted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(action: ConsentAction, at: i64, recipient: Option<&str>) -> ConsentRecord {
        ConsentRecord {
            purpose: "p".into(),
            recipient: recipient.map(Into::into),
            action,
            at,
            expires_at: None,
            evidence: Evidence {
                channel: "test".into(),
                notice_version: "1".into(),
            },
        }
    }
    use ConsentAction::*;

    #[test]
    fn latest_by_time_wins_regardless_of_recording_order() {
        let records = [rec(Withdraw, 20, None), rec(Grant, 10, None)];
        assert_eq!(
            consent_in_force(&records, "p", None, 30),
            ConsentState::Withdrawn
        );
        let records = [rec(Grant, 10, None), rec(Withdraw, 10, None)];
        assert_eq!(
            consent_in_force(&records, "p", None, 30),
            ConsentState::Withdrawn
        );
        assert_eq!(
            consent_in_force(&records, "q", None, 30),
            ConsentState::Absent
        );
    }

    #[test]
    fn recipient_grants_do_not_cover_internal_use_and_general_withdrawal_covers_them() {
        let records = [rec(Grant, 10, Some("r"))];
        assert_eq!(
            consent_in_force(&records, "p", Some("r"), 30),
            ConsentState::Granted
        );
        assert_eq!(
            consent_in_force(&records, "p", Some("s"), 30),
            ConsentState::Absent
        );
        assert_eq!(
            consent_in_force(&records, "p", None, 30),
            ConsentState::Absent
        );
        let records = [rec(Grant, 10, Some("r")), rec(Withdraw, 20, None)];
        assert_eq!(
            consent_in_force(&records, "p", Some("r"), 30),
            ConsentState::Withdrawn
        );
    }

    #[test]
    fn grants_lapse_at_their_expiry() {
        let mut grant = rec(Grant, 10, None);
        grant.expires_at = Some(100);
        let records = [grant];
        assert_eq!(
            consent_in_force(&records, "p", None, 99),
            ConsentState::Granted
        );
        assert_eq!(
            consent_in_force(&records, "p", None, 100),
            ConsentState::Expired
        );
    }
}
