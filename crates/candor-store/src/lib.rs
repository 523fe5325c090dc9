//! The log kernel's storage: the [`LogStore`] contract and its two backends, embedded SQLite
//! (the default) and PostgreSQL (for a business that outgrows one machine; the SQL also suits
//! CockroachDB and YugabyteDB). Both pass the same contract tests.
//!
//! The kernel owns the log's tables (entries with the customers' sealed copies, tree hashes,
//! customers' trees, checkpoints, the sequencer lease) and the customer registry (who exists, who
//! is erased, and the wrapped key their entries are sealed under), because every entry is about
//! one active customer. Feature slices own the rest: they read their tables through [`Db`] and
//! write them through [`Change`]s that the group commit applies in its one transaction.
//!
//! Writes go through [`LogStore::commit`], which takes a whole group of requests and makes them
//! durable in one transaction together with the log leaves they carry and the new checkpoint.
//! That single fsync per group is what lets many concurrent requests share the cost of durability.
//!
//! The store holds only ciphertexts, digests, opaque ids, metadata, commitments, tree hashes,
//! customers' tree heads and signed checkpoints. It never sees a key or a plaintext value.

mod change;
#[cfg(test)]
mod contract_tests;
pub mod customers;
mod db;
pub mod migrations;
mod once;
mod pg;
mod rows;
mod sqlite;

pub use change::{Change, Standing, Tx, TxError, TypedChange};
pub use db::Db;
pub use migrations::{Migration, SchemaPart};
pub use once::OnceClaim;
pub use pg::{PgSession, PgSettings, PgStore};

pub use sqlite::SqliteStore;

use candor_log::Hash;

/// A storage failure. Messages name the operation, never the data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (IO, corruption, constraint). The cause is for operators' logs only.
    #[error("database error during {operation}")]
    Database {
        /// What the store was doing.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database was written by a newer Candor.
    #[error(
        "database schema version {found} of {part} is newer than this build supports ({supported})"
    )]
    SchemaTooNew {
        /// The part of the schema (the kernel's, or a feature slice's).
        part: String,
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The database has tables of a feature slice this build does not have: it was written by a
    /// newer Candor, and this build would leave that slice's data behind when it erased a
    /// customer.
    #[error("the database has tables of `{part}`, which this build does not have")]
    UnknownSchemaPart {
        /// The slice's name.
        part: String,
    },
    /// Stored data failed a consistency check on load.
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// Another process holds the right to sequence this log.
    #[error("another Candor process sequences this log ({holder})")]
    SequencerBusy {
        /// Who holds it.
        holder: String,
    },
    /// This process's right to sequence the log was taken over: its commits are refused.
    #[error("another Candor process took over sequencing this log")]
    Fenced,
    /// The database aborted the transaction to keep it serializable (SQLSTATE 40001, or a
    /// deadlock); nothing of it was applied, and running it again may succeed. Distributed SQL
    /// engines (CockroachDB) raise this under contention as a matter of course.
    #[error("the database aborted {operation} under contention; it may be retried")]
    Contention {
        /// What the store was doing.
        operation: &'static str,
    },
}

/// Where a customer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectState {
    /// Never seen.
    Unknown,
    /// Present, with their wrapped data key.
    Active {
        /// The data key, wrapped by the root-derived key-wrapping key.
        wrapped_key: Vec<u8>,
    },
    /// Erased at this time; nothing of theirs remains readable.
    Erased {
        /// Unix seconds.
        at: i64,
    },
}

/// A log event as stored for its customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Position in the log.
    pub leaf_index: u64,
    /// The 32-byte commitment that is the leaf's entry.
    pub commitment: [u8; 32],
    /// Nonce and canonical event, sealed under the customer's key.
    pub sealed_body: Vec<u8>,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size it commits to.
    pub size: u64,
    /// The C2SP signed note.
    pub note: String,
}

/// A log leaf to append, with the customer's sealed copy of the event.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// The customer the event is about.
    pub subject: String,
    /// The leaf's entry.
    pub commitment: [u8; 32],
    /// Nonce and canonical event sealed under the customer's key; `None` when the key is being
    /// destroyed in the same request (the erasure event).
    pub sealed_body: Option<Vec<u8>>,
}

/// A unit of work that succeeds or fails as a whole.
#[derive(Debug, Clone, Default)]
pub struct WriteRequest {
    /// If set, the request applies only while this customer exists and is not erased.
    pub requires_active: Option<String>,
    /// If set, the request applies only while that customer's revision is still this one: the
    /// decisions it carries (a read released, a collection allowed) were made on what the
    /// customer had agreed to at that revision, and a change since (a consent withdrawn) makes
    /// them stale. Read with the customer's row ([`customers::row_sqlite`]).
    pub decided_on: Option<u64>,
    /// If set, the request applies only if no earlier request made this claim: a one-time
    /// secret (a sign-in nonce or link) is honoured once, whichever node presents it.
    pub once: Option<OnceClaim>,
    /// The slices' changes to apply, in order.
    pub changes: Vec<std::sync::Arc<dyn Change>>,
    /// Log leaves to append, in order, after the mutations.
    pub entries: Vec<LogEntry>,
}

/// Why one request of a group was not applied (the rest of the group still commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// `requires_active` named a customer who does not exist.
    SubjectUnknown,
    /// `requires_active` named a customer who has been erased.
    SubjectErased,
    /// The customer's revision moved past `decided_on`: decide again.
    Stale,
    /// The request's [`OnceClaim`] was made before: its one-time secret is spent.
    Claimed,
}

/// A customer's own tree, as stored: enough to keep appending and to rebuild the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectLog {
    /// The customer's private directory label.
    pub label: [u8; 32],
    /// How many of the log's entries are theirs.
    pub size: u64,
    /// The peaks of their tree, largest first (one per set bit of `size`).
    pub peaks: Vec<Hash>,
}

/// What a node that does not sequence the log reads to follow it: the latest checkpoint and the
/// trees of the customers whose trees grew since the checkpoint it knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogUpdate {
    /// The latest signed checkpoint.
    pub checkpoint: StoredCheckpoint,
    /// Each customer's tree that grew at or after the leaf asked about, as of `checkpoint`.
    pub subject_logs: Vec<SubjectLog>,
}

/// What one append produced, for the store to write.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The leaf's index in the log.
    pub index: u64,
    /// The log's new tree hashes, with their stored positions.
    pub hashes: Vec<(u64, Hash)>,
    /// The entry's customer's tree after the append.
    pub subject_log: SubjectLog,
}

/// The outcome of claiming the right to sequence the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This holder sequences; its commits carry the token, which fences every earlier holder.
    Granted {
        /// The fencing token.
        token: u64,
    },
    /// Another holder's claim is in force.
    HeldBy {
        /// Who holds it.
        holder: String,
    },
}

/// Assigns leaf positions and signs checkpoints while the store's transaction is open.
///
/// Implemented by the log's single writer. If [`LogStore::commit`] returns an error, nothing was
/// committed and the caller must reset the sequencer to its state before the call.
pub trait Sequencer {
    /// Appends a leaf about `subject`; returns what to store.
    fn append(&mut self, subject: &str, commitment: &[u8; 32]) -> Appended;
    /// Signs a checkpoint for the current tree; called once per group that appended leaves.
    fn checkpoint(&mut self) -> StoredCheckpoint;
    /// The token of the sequencer claim this commit is made under, if any.
    fn fencing_token(&self) -> Option<u64> {
        None
    }
}

/// The outcome of one request: the leaf indexes of its entries, or why it was skipped.
pub type RequestOutcome = Result<Vec<u64>, Conflict>;

/// The log kernel's storage contract.
///
/// - Every method may be called concurrently from many threads, except that [`LogStore::commit`] is
///   only ever called by one writer at a time (the log has a single sequencer).
/// - Exactly one process sequences a log: it first wins [`LogStore::claim_sequencer`], and commits
///   carrying a token that is no longer current fail with [`StoreError::Fenced`], whatever else
///   they hold, so a deposed sequencer can never add to the log.
/// - Entries and tree hashes are never changed once committed, erasure included (erasure removes
///   event bodies, never commitments), so anything derived from them, such as a full tile, is
///   immutable.
/// - When `commit` returns `Ok`, every applied request, its leaves, their tree hashes, their
///   customers' tree heads and the new checkpoint are durable together; after a crash either all of a group is there or none of it.
/// - When a group erased a customer, `commit` returns only once no earlier copy of their rows is
///   left in the live files the backend controls: SQLite copies its WAL into the database (with
///   `secure_delete`, which zeroes what was deleted) and truncates it. PostgreSQL's WAL and dead
///   row versions are the server's to recycle.
/// - Reads see only committed data. Tree hashes below the latest checkpoint's size never change.
/// - Errors: [`StoreError::Database`] for failures the caller cannot fix; per-request
///   [`Conflict`]s for preconditions that no longer hold.
pub trait LogStore: Send + Sync {
    /// The customer's standing in the registry.
    fn subject(&self, subject: &str) -> Result<SubjectState, StoreError>;
    /// The customer's own copies of their entries at leaf indexes in `leaves`, with bodies, in
    /// log order, at most `limit` of them (none once erased).
    fn subject_events(
        &self,
        subject: &str,
        leaves: std::ops::Range<u64>,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError>;
    /// How many of the customer's own entries lie below leaf index `below` (none once erased).
    fn subject_event_count(&self, subject: &str, below: u64) -> Result<u64, StoreError>;
    /// The latest signed checkpoint.
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// The latest checkpoint that the witness policy accepted, with its cosignatures.
    fn latest_witnessed(&self) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// Records a cosigned checkpoint, durably, if it is larger than the one recorded; returns
    /// whether it was. May run concurrently with [`LogStore::commit`]; the caller has checked it.
    fn record_witnessed(&self, checkpoint: &StoredCheckpoint) -> Result<bool, StoreError>;
    /// Every customer's tree head (for the directory, rebuilt at start-up, and for fsck).
    fn subject_logs(&self) -> Result<Vec<SubjectLog>, StoreError>;
    /// The trees of the customers with these labels, those that have one, in no set order: the
    /// sequencer keeps only a bounded cache of trees and reads the rest before each group.
    fn subject_logs_of(&self, labels: &[[u8; 32]]) -> Result<Vec<SubjectLog>, StoreError>;
    /// The latest checkpoint and the tree of every customer that gained an entry at or after leaf
    /// `from`, read as one snapshot (the trees are exactly those the checkpoint's directory
    /// commits to); `None` while the log is empty.
    fn log_since(&self, from: u64) -> Result<Option<LogUpdate>, StoreError>;
    /// The entries (commitments) of leaves `leaves`, in order; every one is below a committed size.
    fn entries(&self, leaves: std::ops::Range<u64>) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Claims, or renews, the right to sequence the log for `holder`. A claim lapses `ttl` after
    /// its last renewal where the backend is shared over a network (PostgreSQL); on one machine
    /// (SQLite) it lasts until the process releases it or dies.
    fn claim_sequencer(&self, holder: &str, ttl: std::time::Duration) -> Result<Claim, StoreError>;
    /// Renews the claim made with `token`, unless it was released or another holder took it;
    /// returns whether it did. Never makes a new claim, so a writer whose process is giving
    /// the claim up cannot take it back by renewing.
    fn renew_sequencer(&self, token: u64) -> Result<bool, StoreError>;
    /// Gives the claim up, so the next sequencer need not wait for it to lapse.
    fn release_sequencer(&self, token: u64) -> Result<(), StoreError>;
    /// Tree hashes by stored position (see `candor_log::stored_hash_index`).
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError>;
    /// Applies `requests` in order in one durable transaction, with their log leaves and one
    /// checkpoint. A request whose precondition fails is skipped alone and reported; any other
    /// failure aborts the whole group.
    fn commit(
        &self,
        requests: &[WriteRequest],
        sequencer: &mut dyn Sequencer,
    ) -> Result<Vec<RequestOutcome>, StoreError>;
}

/// Adapts a [`LogStore`] to the log's hash reader.
pub struct StoreHashes<'a>(pub &'a dyn LogStore);

impl candor_log::HashReader for StoreHashes<'_> {
    type Error = StoreError;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        self.0.read_hashes(indexes)
    }
}
