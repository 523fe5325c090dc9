//! The feature slices, registered: what the kernel and the other slices need to know of each
//! without depending on it. A new slice adds a line here for each that applies to it.

use candor_store::{Tx, TxError};

use crate::wire::decode;
use crate::{consent, erasure, keys, subjects};

/// A decoder of one kind of change from the nodes' protocol.
type Decode = fn(serde_json::Value) -> Result<std::sync::Arc<dyn candor_store::Change>, String>;

/// Every kind of change a slice makes, by its wire type.
pub(crate) const CHANGES: &[(&str, Decode)] = &[
    (
        subjects::CreateSubject::KIND,
        decode::<subjects::CreateSubject>,
    ),
    (subjects::PutField::KIND, decode::<subjects::PutField>),
    (
        subjects::PutBlindIndex::KIND,
        decode::<subjects::PutBlindIndex>,
    ),
    (consent::AddConsent::KIND, decode::<consent::AddConsent>),
    (keys::InsertApiKey::KIND, decode::<keys::InsertApiKey>),
    (erasure::Erase::KIND, decode::<erasure::Erase>),
];

/// What erases a customer from a slice's own tables, in the erasure's transaction.
type Erase = fn(&mut Tx<'_>, &str) -> Result<(), TxError>;

/// Every slice that keeps something about a customer: the erasure runs each of these, then the
/// kernel's own erasure (the key, the entries' bodies).
pub(crate) const ON_ERASURE: &[Erase] = &[subjects::erase, consent::erase];
