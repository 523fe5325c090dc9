//! The feature slices, registered: what the store, the kernel and the other slices need to know
//! of each without depending on it. Each slice declares one [`Slice`]; a new slice adds its line
//! to [`SLICES`].

use candor_store::{Change, SchemaPart, Tx, TxError, TypedChange};
use serde::de::DeserializeOwned;

use crate::wire::decode;
use crate::{consent, erasure, key_epochs, keys, signin, subjects};

/// Every slice, in the order its tables migrate (after the kernel's, and after any slice whose
/// tables its own refer to).
const SLICES: &[&Slice] = &[
    &subjects::SLICE,
    &consent::SLICE,
    &keys::SLICE,
    &signin::SLICE,
    &erasure::SLICE,
    &key_epochs::SLICE,
];

/// What a slice hands to the rest of the system.
pub(crate) struct Slice {
    /// Its tables, if it keeps any: the store migrates them when it opens.
    pub schema: Option<SchemaPart>,
    /// Every kind of change it makes, by its wire type, so the nodes' protocol can carry them.
    pub changes: &'static [(&'static str, Decode)],
    /// What erases a customer from its tables, if it keeps anything about them: the erasure
    /// runs each slice's, then the kernel's own (the key, the entries' bodies), in one
    /// transaction.
    pub on_erasure: Option<Erase>,
}

/// A decoder of one kind of change from the nodes' protocol.
pub(crate) type Decode = fn(serde_json::Value) -> Result<std::sync::Arc<dyn Change>, String>;

/// What erases a customer from a slice's own tables, in the erasure's transaction.
pub(crate) type Erase = fn(&mut Tx<'_>, &str) -> Result<(), TxError>;

/// A slice's entry in [`Slice::changes`] for the change type `T`.
pub(crate) const fn change<T: TypedChange + DeserializeOwned + 'static>() -> (&'static str, Decode)
{
    (T::KIND, decode::<T>)
}

/// Every slice's schema part, in order, for the store to migrate.
pub fn schema() -> Vec<&'static SchemaPart> {
    SLICES.iter().filter_map(|s| s.schema.as_ref()).collect()
}

/// The decoder of changes of `kind`, from whichever slice makes them.
pub(crate) fn decoder(kind: &str) -> Option<Decode> {
    SLICES
        .iter()
        .flat_map(|s| s.changes)
        .find(|(k, _)| *k == kind)
        .map(|(_, decode)| *decode)
}

/// Every slice's erasure of a customer, in order.
pub(crate) fn on_erasure() -> impl Iterator<Item = Erase> {
    SLICES.iter().filter_map(|s| s.on_erasure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_kind_and_schema_owner_is_registered_once() {
        let mut kinds: Vec<_> = SLICES
            .iter()
            .flat_map(|s| s.changes)
            .map(|(k, _)| *k)
            .collect();
        let mut owners: Vec<_> = schema().iter().map(|p| p.owner).collect();
        let (all_kinds, all_owners) = (kinds.len(), owners.len());
        kinds.sort_unstable();
        kinds.dedup();
        owners.sort_unstable();
        owners.dedup();
        assert_eq!((kinds.len(), owners.len()), (all_kinds, all_owners));
        assert!(
            !owners.contains(&"kernel"),
            "the kernel's part is the store's own"
        );
    }
}
