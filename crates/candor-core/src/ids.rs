//! Identifiers, parsed once at the edge and trusted afterwards.

/// A customer ("data subject") id chosen by the business.
///
/// INVARIANT: 1 to 64 characters from `[A-Za-z0-9_-]`. Ids are opaque handles, never personal data:
/// the character set rules out email addresses and phone numbers, which would otherwise reach the
/// database and the log in the clear. Dots are excluded too, so ids can sit in dotted tokens.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubjectId(String);

impl SubjectId {
    /// Checks the id's form.
    pub fn parse(raw: &str) -> Result<SubjectId, IdError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(SubjectId(raw.to_owned()))
        } else {
            Err(IdError::Subject)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SubjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// See [`SubjectId`].
    #[error("subject ids are 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    Subject,
}

/// Is `key` a dotted taxonomy key such as `user.contact.email` (lowercase segments)?
pub fn is_dotted_key(key: &str) -> bool {
    key.len() <= 128
        && key.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn personal_values_are_not_ids() {
        for bad in [
            "",
            "a@b.com",
            "+44 20 7946 0000",
            "cus.1",
            &"x".repeat(65),
            "naïve",
        ] {
            assert!(SubjectId::parse(bad).is_err(), "{bad}");
        }
        assert!(SubjectId::parse("cus_8f3A-2").is_ok());
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_documented_alphabet(raw in "\\PC{0,70}") {
            let expected = (1..=64).contains(&raw.len())
                && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            prop_assert_eq!(SubjectId::parse(&raw).is_ok(), expected);
        }
    }
}
