//! The JSON shapes the slices' routes share (base64, the completeness proof, health). Each
//! slice's own request and response bodies are in its routes module. Only this crate serialises;
//! domain types are converted by hand.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_log::Hash;
use candor_log::directory::{Head, NodeRef};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use axum::http::StatusCode;

use crate::error::ApiError;

/// Standard base64, as in the C2SP and transparency-dev formats.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// A subtree of the directory: how many entries it attributes, and its hash.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DirectoryNode {
    /// Entries attributed below this node.
    pub sum: u64,
    /// Its hash, base64.
    pub hash: String,
}

/// The customer's entry in the checkpoint's directory. Check it by rebuilding your tree (RFC 6962
/// over the events' commitments, in log order), hashing the leaf
/// `SHA-256(0x00 || label || size (u64 BE) || root)` and folding the siblings, root first, by the
/// label's bits: `SHA-256(0x01 || left sum (u64 BE) || left || right sum || right)`. The result
/// must be the checkpoint's `candor-directory <sum> <hash>` line, and its sum the tree size.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CompletenessProof {
    /// Your private directory label, base64.
    pub label: String,
    /// How many of the log's entries are yours: exactly the events shown.
    pub size: u64,
    /// The root of your tree over those events' commitments, base64.
    pub root: String,
    /// Siblings from the directory's root down to your leaf.
    pub proof: Vec<DirectoryNode>,
    /// The directory root the checkpoint commits to.
    pub directory: DirectoryNode,
}

impl CompletenessProof {
    /// The wire form of a completeness proof.
    pub fn from_domain(c: &candor_vault::Completeness) -> CompletenessProof {
        let node = |n: &NodeRef| DirectoryNode {
            sum: n.sum,
            hash: b64(&n.hash.0),
        };
        CompletenessProof {
            label: b64(&c.label),
            size: c.head.size,
            root: b64(&c.head.root.0),
            proof: c.proof.iter().map(node).collect(),
            directory: node(&c.directory),
        }
    }

    /// Back to the domain form; `None` if a field does not decode.
    pub fn to_domain(&self) -> Option<candor_vault::Completeness> {
        let hash = |text: &str| Hash::from_slice(&B64.decode(text).ok()?);
        let node = |n: &DirectoryNode| {
            Some(NodeRef {
                sum: n.sum,
                hash: hash(&n.hash)?,
            })
        };
        Some(candor_vault::Completeness {
            label: B64.decode(&self.label).ok()?.try_into().ok()?,
            head: Head {
                size: self.size,
                root: hash(&self.root)?,
            },
            proof: self.proof.iter().map(node).collect::<Option<_>>()?,
            directory: node(&self.directory)?,
        })
    }
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// Current log size.
    pub tree_size: u64,
    /// Whether this node sequences the log (in a cluster, exactly one does).
    pub sequencer: bool,
}

/// A number as it must be written in a path or a query: canonical decimal digits (no sign, no
/// leading zero, nothing else), so one number has one spelling and caches and logs agree.
pub(crate) fn canonical_decimal(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// Deserializes a query parameter that must be a [`canonical_decimal`] of at most `2^63 - 1`,
/// the largest the OpenAPI document's 64-bit integers admit (and SQL's).
pub(crate) fn canonical_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    canonical_decimal(&text)
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or_else(|| serde::de::Error::custom("not a canonical decimal number up to 2^63 - 1"))
}

/// What `check_label` takes, as a pattern the OpenAPI document states: no control, bidirectional
/// or invisible format character anywhere, no space at either end (length is stated apart).
pub(crate) const LABEL_PATTERN: &str = concat!(
    r"^[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]",
    r"([^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*",
    r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb])?$"
);

/// `?after=N&limit=M`: which page of a long list to read.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The previous page's `next`: this page starts after it. Absent for the first page.
    #[serde(default, deserialize_with = "canonical_u64_opt")]
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// How many items, 1 to 500 (100 when absent).
    #[serde(default, deserialize_with = "canonical_u64_opt")]
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

impl PageQuery {
    /// The page asked for, or the query's error.
    pub(crate) fn page(
        query: Result<axum::extract::Query<PageQuery>, axum::extract::rejection::QueryRejection>,
    ) -> Result<candor_vault::Page, ApiError> {
        let refuse = || {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_page",
                format!(
                    "a page is ?after=N&limit=M: canonical decimals, M from 1 to {}",
                    candor_vault::MAX_PAGE
                ),
            )
        };
        let axum::extract::Query(q) = query.map_err(|_| refuse())?;
        let limit = q
            .limit
            .map(|l| usize::try_from(l).map_err(|_| refuse()))
            .transpose()?;
        candor_vault::Page::new(q.after, limit).map_err(|_| refuse())
    }
}

/// Deserializes an optional query parameter that must be a [`canonical_decimal`].
fn canonical_u64_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    canonical_u64(d).map(Some)
}

/// The longest a key or a consent grant may be made to last: ten years.
pub(crate) const MAX_LIFETIME_SECS: i64 = 10 * 365 * 24 * 60 * 60;

/// When something asked to last `secs` from `now` ends (`expires_in_secs` in a request body).
pub(crate) fn expiry(now: i64, secs: Option<i64>) -> Result<Option<i64>, ApiError> {
    match secs {
        None => Ok(None),
        Some(secs) if (1..=MAX_LIFETIME_SECS).contains(&secs) => Ok(Some(now + secs)),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("expires_in_secs is 1 to {MAX_LIFETIME_SECS}"),
        )),
    }
}

/// Deserializes a JSON integer, also when written with a zero fraction (`5.0`), which JSON
/// Schema counts as an integer too; any other fraction is refused.
pub(crate) fn json_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= -9.2e18 && *f <= 9.2e18)
                .map(|f| f as i64)
        })
        .ok_or_else(|| serde::de::Error::custom("expected an integer"))
}

/// As [`json_i64`], for an optional field (absent or `null` is `None`).
pub(crate) fn json_i64_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Integer(#[serde(deserialize_with = "json_i64")] i64);
    Ok(Option::<Integer>::deserialize(d)?.map(|Integer(n)| n))
}

/// Deserializes a JSON object of text values, refusing one that names a key twice (serde would
/// keep the last, silently): which value was meant is not Candor's to guess.
pub(crate) fn unique_keys<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = std::collections::BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of text values, each key once")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = std::collections::BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("`{key}` is given twice")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_decimals_are_numbers() {
        assert_eq!(canonical_decimal("0"), Some(0));
        assert_eq!(canonical_decimal("1234"), Some(1234));
        assert_eq!(canonical_decimal("18446744073709551615"), Some(u64::MAX));
        for text in [
            "",
            "+1",
            "-0",
            "01",
            "00",
            " 1",
            "1 ",
            "1e3",
            "0x1",
            "18446744073709551616",
        ] {
            assert_eq!(canonical_decimal(text), None, "{text:?}");
        }
    }
}
