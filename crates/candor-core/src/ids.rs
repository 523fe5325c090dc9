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

    /// The operator log's own subject: key and session changes, for auditors to check as a
    /// customer checks their history. No customer can have its id, which has a dot.
    pub fn operator() -> SubjectId {
        SubjectId(OPERATOR_SUBJECT.to_owned())
    }

    /// Whether this is the operator log's subject.
    pub fn is_operator(&self) -> bool {
        self.0 == OPERATOR_SUBJECT
    }
}

const OPERATOR_SUBJECT: &str = "candor.operator";

impl std::fmt::Display for SubjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A leaf's position in the log, kept apart from tree sizes so the two are never confused (a
/// size counts leaves; the leaf at index `i` is in every tree of size greater than `i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeafIndex(u64);

impl LeafIndex {
    /// The leaf at position `index`, as the sequencer assigned it.
    pub fn new(index: u64) -> LeafIndex {
        LeafIndex(index)
    }

    /// The position as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The public id of an API key (the `<id>` of `cnd_<id>_<secret>`).
///
/// INVARIANT: 1 to 32 lowercase letters or digits; Candor makes 16 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Checks the id's form.
    pub fn parse(raw: &str) -> Result<KeyId, IdError> {
        let ok = (1..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(KeyId(raw.to_owned()))
        } else {
            Err(IdError::Key)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for KeyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<KeyId, D::Error> {
        let raw = String::deserialize(d)?;
        KeyId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A key of the data map: a purpose's id, a category's key, a recipient's id.
macro_rules! dotted_id {
    ($(#[$doc:meta])* $name:ident, $error:ident) => {
        $(#[$doc])*
        ///
        /// INVARIANT: a dotted key of lowercase segments, at most 128 bytes ([`is_dotted_key`]).
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks the key's form.
            pub fn parse(raw: &str) -> Result<$name, IdError> {
                if is_dotted_key(raw) {
                    Ok($name(raw.to_owned()))
                } else {
                    Err(IdError::$error)
                }
            }

            /// The key as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

dotted_id!(
    /// A purpose of processing, as the data map declares it (`marketing.communications.email`).
    PurposeId,
    Purpose
);
dotted_id!(
    /// A data category, as the data map declares it (`user.contact.email`).
    CategoryKey,
    Category
);
dotted_id!(
    /// A party that receives data, as the data map declares it (`parcelgo`).
    RecipientId,
    Recipient
);

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// See [`SubjectId`].
    #[error("subject ids are 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    Subject,
    /// See [`PurposeId`].
    #[error("purpose ids are dotted lowercase keys")]
    Purpose,
    /// See [`CategoryKey`].
    #[error("category keys are dotted lowercase keys")]
    Category,
    /// See [`RecipientId`].
    #[error("recipient ids are dotted lowercase keys")]
    Recipient,
    /// See [`KeyId`].
    #[error("key ids are 1 to 32 lowercase letters or digits")]
    Key,
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

    #[test]
    fn data_map_keys_are_dotted_lowercase_keys_and_look_up_by_text() {
        for good in [
            "marketing.communications.email",
            "parcelgo",
            "user.contact.email",
        ] {
            assert_eq!(PurposeId::parse(good).unwrap().as_str(), good);
            assert!(CategoryKey::parse(good).is_ok());
            assert!(RecipientId::parse(good).is_ok());
        }
        for bad in [
            "",
            "Marketing",
            "a..b",
            ".a",
            "a.",
            "a-b",
            "a b",
            &"a".repeat(129),
        ] {
            assert_eq!(PurposeId::parse(bad), Err(IdError::Purpose), "{bad}");
            assert_eq!(CategoryKey::parse(bad), Err(IdError::Category), "{bad}");
            assert_eq!(RecipientId::parse(bad), Err(IdError::Recipient), "{bad}");
        }
        let held: std::collections::BTreeSet<PurposeId> =
            [PurposeId::parse("analytics.reporting").unwrap()].into();
        assert!(held.contains("analytics.reporting"));
        assert!(!held.contains("analytics"));
    }

    #[test]
    fn key_ids_are_short_lowercase_alphanumerics() {
        assert!(KeyId::parse("0cd143841b1c760d").is_ok());
        for bad in ["", "ABC", "a_b", "a-b", &"a".repeat(33)] {
            assert_eq!(KeyId::parse(bad), Err(IdError::Key), "{bad}");
        }
        let id: KeyId = serde_json::from_str("\"k1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"k1\"");
        assert!(serde_json::from_str::<KeyId>("\"K1\"").is_err());
    }
}
