//! The refusals and failures the slices share, with a stable machine code per variant, which
//! `candor-http` maps to a status deliberately: a customer's standing, the log, a purpose or
//! recipient the request names, a caller's rights, a malformed request, an internal failure.
//! A slice with refusals of its own has its own enum beside its use cases, which wraps this one
//! (`keys::AuthError`, `subjects::CollectError`, `public_log::PublicLogError`).
//! Messages never contain personal values or secrets.

use candor_store::StoreError;

use crate::kernel::writer::WriterError;

/// Why a use case failed, for the reasons every slice shares. Each variant has a stable
/// [`VaultError::code`]; messages never contain personal values or secrets.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The caller is authenticated but may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The service key is not bound to this purpose; the refusal is logged.
    #[error("this key may not use purpose `{0}`")]
    PurposeNotPermitted(String),
    /// The purpose is not in the data map.
    #[error("purpose `{0}` is not declared in the data map")]
    UnknownPurpose(String),
    /// The recipient is unknown or not declared for the purpose.
    #[error("recipient `{0}` is not declared for this purpose")]
    RecipientNotDeclared(String),
    /// No such customer.
    #[error("no such subject")]
    SubjectNotFound,
    /// No API key has this id.
    #[error("no such key")]
    KeyNotFound,
    /// The key was revoked or has expired, so it cannot be rotated.
    #[error("this key was revoked or has expired")]
    KeyNotLive,
    /// The customer was erased.
    #[error("this subject has been erased")]
    SubjectErased,
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The customer's consent changed while the request was being decided, again each time it
    /// was decided anew; nothing was released or stored.
    #[error(
        "the customer's consent changed while this was being decided; nothing was released, try again"
    )]
    ConsentChanged,
    /// A one-time secret (a sign-in nonce or link) was already used; nothing was written.
    #[error("this one-time secret was already used")]
    AlreadyClaimed,
    /// No node sequences the log just now (one is taking over); nothing was written.
    #[error("the log is changing sequencer; nothing was written, try again")]
    LogUnavailable,
    /// A write was handed to this node, which does not sequence the log (any more).
    #[error("this node does not sequence the log")]
    NotSequencer,
    /// The customer's key is wrapped under a destroyed tenant key epoch: this database is a copy
    /// older than the erasure bound (410 `key_epoch_destroyed`).
    #[error("this customer's key is wrapped under a key epoch that has been destroyed")]
    KeyEpochDestroyed,
    /// Something failed inside Candor; the cause went to the operator's log.
    #[error("internal error")]
    Internal,
}

impl VaultError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::Forbidden(_) => "forbidden",
            VaultError::PurposeNotPermitted(_) => "purpose_not_permitted",
            VaultError::UnknownPurpose(_) => "unknown_purpose",
            VaultError::RecipientNotDeclared(_) => "recipient_not_declared",
            VaultError::SubjectNotFound => "subject_not_found",
            VaultError::KeyNotFound => "key_not_found",
            VaultError::KeyNotLive => "key_not_live",
            VaultError::SubjectErased => "subject_erased",
            VaultError::Invalid(_) => "invalid_request",
            VaultError::ConsentChanged => "consent_changed",
            VaultError::AlreadyClaimed => "already_claimed",
            VaultError::LogUnavailable => "log_unavailable",
            VaultError::NotSequencer => "not_sequencer",
            VaultError::KeyEpochDestroyed => "key_epoch_destroyed",
            VaultError::Internal => "internal",
        }
    }
}

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> VaultError {
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "store failure");
        VaultError::Internal
    }
}

impl From<WriterError> for VaultError {
    fn from(e: WriterError) -> VaultError {
        tracing::error!(error = %e, "log write failure");
        match e {
            WriterError::NotSequencer => VaultError::NotSequencer,
            // Nothing was written, and the client may simply try again.
            e if e.never_committed() => VaultError::LogUnavailable,
            _ => VaultError::Internal,
        }
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> VaultError {
    VaultError::Invalid(msg.into())
}

/// A label a person typed (a key's name, consent evidence): 1 to 64 bytes of visible text. It is
/// shown to customers as who touched their data, so it may not carry what hides, reorders or pads
/// the text it shows: control characters, bidirectional overrides and isolates, zero-width and
/// other invisible format characters, or leading and trailing spaces.
pub(crate) fn check_label(what: &str, value: &str) -> Result<(), VaultError> {
    let invisible = |c: char| {
        c.is_control()
            || matches!(c,
                '\u{AD}' | '\u{61C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
    };
    let length = value.chars().count();
    if !(1..=64).contains(&length) || value.trim() != value || value.chars().any(invisible) {
        return Err(invalid(format!(
            "{what} must be 1 to 64 characters of visible text, without leading or trailing spaces"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Customers read key names as who touched their data, so a name may not hide, reorder or
    /// pad what it shows.
    #[test]
    fn a_label_is_plain_visible_text() {
        for ok in ["checkout", "Café Müller", "日本の店", "app v2 (web)"] {
            assert!(check_label("name", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "\u{7}",
            "\u{202E}tuokcehc",
            "check\u{200B}out",
            "\u{2066}checkout\u{2069}",
            "check\u{AD}out",
            "\u{FEFF}checkout",
            "check\u{200D}out",
            "\u{61C}checkout",
            " checkout",
            "checkout ",
            "   ",
        ] {
            assert!(check_label("name", bad).is_err(), "{bad:?}");
        }
        assert!(check_label("name", &"x".repeat(65)).is_err());
    }
}
