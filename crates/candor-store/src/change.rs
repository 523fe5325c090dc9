//! What the feature slices hand the group commit: [`Change`]s to their own tables, applied in
//! order inside the group's one transaction, so "no log entry, no data" holds for every table a
//! slice adds without the kernel knowing it.
//!
//! A change writes its SQL for both backends side by side, one [`Tx`] arm each. It names itself
//! and its fields for the nodes' protocol ([`Change::kind`], [`Change::to_wire`]); the slice
//! that owns it decodes it again on the sequencer.

use crate::pg::PgSession;

/// The group's open transaction, on whichever backend holds the data.
pub enum Tx<'a> {
    /// Embedded SQLite; statements are prepared and cached on the connection.
    Sqlite(&'a rusqlite::Connection),
    /// PostgreSQL; statements are prepared once per connection.
    Postgres(&'a mut PgSession),
}

/// A change failed; the whole group is rolled back and fails.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
}

/// What a change does to a customer's standing, which later requests' preconditions in the same
/// group must see: the customer registry's own changes, and those that revise what may be
/// decided about a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The customer exists from now on (if they did not already).
    Created,
    /// The customer is erased from now on.
    Erased {
        /// Unix seconds.
        at: i64,
    },
    /// What was decided about the customer before no longer holds (their consent changed): the
    /// kernel moves their revision on, and requests decided on an earlier one are stale.
    Revised,
}

/// One change a feature slice makes to its own tables inside a group commit.
///
/// Contract: `apply` is a plain insert, upsert or delete that cannot conflict once the request's
/// precondition holds, so any error is a database failure and aborts the whole group; it never
/// writes the log's tables (only the kernel appends entries); it carries ciphertexts, digests and
/// metadata, never a plaintext value.
pub trait Change: Send + Sync + std::fmt::Debug {
    /// Its name on the nodes' protocol, unique across slices (`slice.change`).
    fn kind(&self) -> &'static str;
    /// Its fields on the nodes' protocol (byte strings as base64).
    fn to_wire(&self) -> serde_json::Value;
    /// Applies it inside the group's transaction.
    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError>;
    /// The customer whose standing it changes, and how.
    fn standing(&self) -> Option<(&str, Standing)> {
        None
    }
}

/// A change whose protocol form is its serde form tagged with a fixed type: what the slices'
/// changes are. [`Change`] comes with it.
pub trait TypedChange: serde::Serialize + Send + Sync + std::fmt::Debug {
    /// Its name on the nodes' protocol, unique across slices.
    const KIND: &'static str;
    /// As [`Change::apply`].
    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError>;
    /// As [`Change::standing`].
    fn standing(&self) -> Option<(&str, Standing)> {
        None
    }
}

impl<T: TypedChange> Change for T {
    fn kind(&self) -> &'static str {
        T::KIND
    }
    fn to_wire(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("a change serialises");
        value
            .as_object_mut()
            .expect("a change serialises as an object")
            .insert("type".into(), T::KIND.into());
        value
    }
    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        TypedChange::apply(self, tx)
    }
    fn standing(&self) -> Option<(&str, Standing)> {
        TypedChange::standing(self)
    }
}

impl TxError {
    pub(crate) fn into_store(self, operation: &'static str) -> crate::StoreError {
        match self {
            TxError::Sqlite(e) => crate::StoreError::Database {
                operation,
                source: Box::new(e),
            },
            // A serialization failure stays retryable.
            TxError::Postgres(e) => crate::pg::db(operation)(e),
        }
    }
}
