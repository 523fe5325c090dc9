//! The slices' changes as the nodes' protocol carries them: `{"type": KIND, …fields}`, byte
//! strings as base64, unknown fields refused. Each slice's change derives its own form; the
//! envelope around them (versions, batches, outcomes) is `candor-http`'s `cluster::wire`.

use std::sync::Arc;

use candor_store::{Change, TypedChange};
use serde::de::DeserializeOwned;

/// The change of type `T` from its wire form, its tag removed already. The error names the
/// type, never serde's message, which may quote a field's value.
pub(crate) fn decode<T: DeserializeOwned + TypedChange + 'static>(
    fields: serde_json::Value,
) -> Result<Arc<dyn Change>, String> {
    serde_json::from_value::<T>(fields)
        .map(|c| Arc::new(c) as Arc<dyn Change>)
        .map_err(|_| format!("a `{}` change does not parse", T::KIND))
}

/// Decodes a change from the nodes' protocol, by its `type`, with the slice that owns it.
pub fn decode_change(mut value: serde_json::Value) -> Result<Arc<dyn Change>, String> {
    let kind = value
        .as_object_mut()
        .and_then(|o| o.remove("type"))
        .and_then(|t| t.as_str().map(str::to_owned))
        .ok_or("a change names its type")?;
    let decode = crate::registry::decoder(&kind)
        .ok_or_else(|| format!("no slice makes changes of type `{kind}`"))?;
    decode(value)
}

/// Byte strings as base64.
pub(crate) mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(bytes: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<Vec<u8>>>(
        d: D,
    ) -> Result<T, D::Error> {
        let bytes = STANDARD
            .decode(String::deserialize(d)?)
            .map_err(D::Error::custom)?;
        T::try_from(bytes).map_err(|_| D::Error::custom("wrong length"))
    }

    /// An optional byte string: base64, or `null`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(b) => s.serialize_str(&STANDARD.encode(b)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| STANDARD.decode(t).map_err(D::Error::custom))
                .transpose()
        }
    }
}
