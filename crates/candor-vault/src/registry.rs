//! The feature slices, registered: what the kernel and the other slices need to know of each
//! without depending on it. A new slice adds a line here for each that applies to it.

use candor_store::{Tx, TxError, TypedChange};
use serde::de::DeserializeOwned;

use crate::wire::decode;
use crate::{consent, erasure, keys, subjects};

/// A decoder of one kind of change from the nodes' protocol.
type Decode = fn(serde_json::Value) -> Result<std::sync::Arc<dyn candor_store::Change>, String>;

const fn change<T: TypedChange + DeserializeOwned + 'static>() -> (&'static str, Decode) {
    (T::KIND, decode::<T>)
}

/// Every kind of change a slice makes, by its wire type.
pub(crate) const CHANGES: &[(&str, Decode)] = &[
    change::<subjects::CreateSubject>(),
    change::<subjects::PutField>(),
    change::<subjects::PutBlindIndex>(),
    change::<consent::AddConsent>(),
    change::<keys::InsertApiKey>(),
    change::<erasure::Erase>(),
];

/// What erases a customer from a slice's own tables, in the erasure's transaction.
type Erase = fn(&mut Tx<'_>, &str) -> Result<(), TxError>;

/// Every slice that keeps something about a customer: the erasure runs each of these, then the
/// kernel's own erasure (the key, the entries' bodies).
pub(crate) const ON_ERASURE: &[Erase] = &[subjects::erase, consent::erase];
