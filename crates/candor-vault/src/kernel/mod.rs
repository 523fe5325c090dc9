//! The log kernel: the single writer with its group commit, which node sequences the log, the
//! journal every slice writes its events through, and `fsck`. The tree maths, tiles, notes and the
//! directory are in `candor-log`; the storage contract is `candor-store`'s [`LogStore`].
//!
//! **Invariant:** nothing outside the kernel appends a log entry: a slice builds a
//! [`WriteRequest`] through the [`Journal`], whose only way out is the writer, so "no log entry,
//! no data" and one fsync per group hold for every slice's tables.
//!
//! [`LogStore`]: candor_store::LogStore
//! [`WriteRequest`]: candor_store::WriteRequest

pub mod fsck;
mod journal;
pub mod sequencing;
mod trees;
pub mod writer;

pub use journal::{DECIDE_ATTEMPTS, Journal, Sealed};
