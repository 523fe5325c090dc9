//! The schema, in parts: the kernel's tables here, and each feature slice's tables in that
//! slice, which hands its [`SchemaPart`] to the store when it opens. Each part is one append-only
//! list of migrations with both dialects side by side, so the SQLite and PostgreSQL schemas cannot
//! drift apart unnoticed (a test in the vault compares the two, column by column, over every
//! part).
//!
//! A database counts, per part, how many of its migrations ran (in `candor_migrations`). One
//! that ran more of a part than this build knows, or has a part this build lacks, is refused
//! before anything changes: a build that lacked a slice would leave that slice's rows behind when
//! it erased a customer.
//!
//! Databases written while the schema was one list (SQLite counted it in `PRAGMA user_version`,
//! PostgreSQL in `candor_schema.version`) are adopted: [`adopted`] says what that count meant per
//! part. Both places then hold [`COUNTED_BY_PART`], which builds from before refuse as too new.
//!
//! Deliberate differences, which the comparison knows about: PostgreSQL has `sequencer_lease`
//! (SQLite's claim is a lock on a file beside the database) and `candor_schema`; SQLite's
//! booleans are `INTEGER` and its row ids need no `BIGSERIAL`.

use crate::StoreError;

/// One step of the schema, in each dialect.
pub struct Migration {
    /// What it does, for operators.
    pub name: &'static str,
    /// The SQLite DDL (tables are `STRICT`).
    pub sqlite: &'static str,
    /// The PostgreSQL DDL, in the subset CockroachDB and YugabyteDB accept too.
    pub postgres: &'static str,
}

/// A part of the schema with a list of migrations of its own: the kernel's, or a feature slice's.
pub struct SchemaPart {
    /// The part's name, recorded in the database: never renamed.
    pub owner: &'static str,
    /// Its migrations, in order; append-only.
    pub migrations: &'static [Migration],
}

/// Marks a SQLite file as Candor's (the ASCII of `CNDR`).
pub const SQLITE_APPLICATION_ID: i64 = 0x434e_4452;

/// The one-list count that marks a database counted per part.
pub const COUNTED_BY_PART: i64 = 1000;

/// Files written before SQLite's and PostgreSQL's lists were one had no application id and
/// counted SQLite's own migrations; this maps such a count to the one list's. Older counts
/// predate customers' trees, which start-up needs, and are refused.
pub const SQLITE_BEFORE_UNIFICATION: &[(i64, i64)] = &[(4, 3)];

/// The bookkeeping table, in each dialect.
pub(crate) const COUNTS_SQLITE: &str = "CREATE TABLE IF NOT EXISTS candor_migrations (owner TEXT PRIMARY KEY, applied INTEGER NOT NULL) STRICT;";
pub(crate) const COUNTS_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS candor_migrations (owner TEXT PRIMARY KEY, applied BIGINT NOT NULL);";

/// How many migrations the one list had when each part got a list of its own.
pub(crate) const ONE_LIST_LEN: i64 = 3;

/// What the first `count` migrations of the one list were, per part. Frozen: that list's first
/// migration made the kernel's tables and those of the `subjects`, `consent` and `keys` slices
/// together; its second and third were the kernel's.
pub(crate) fn adopted(count: i64) -> Vec<(&'static str, i64)> {
    if count == 0 {
        return Vec::new();
    }
    vec![
        ("kernel", count),
        ("subjects", 1),
        ("consent", 1),
        ("keys", 1),
    ]
}

/// Every part in the order it migrates: the kernel's first, then the slices' in their order.
pub(crate) fn in_order<'a>(slices: &'a [&'a SchemaPart]) -> impl Iterator<Item = &'a SchemaPart> {
    std::iter::once(&KERNEL).chain(slices.iter().copied())
}

/// Refuses a database that knows more than this build: more of a part's migrations, or a part
/// it does not have.
pub(crate) fn check(recorded: &[(String, i64)], slices: &[&SchemaPart]) -> Result<(), StoreError> {
    for (owner, applied) in recorded {
        let Some(part) = in_order(slices).find(|p| p.owner == owner) else {
            return Err(StoreError::UnknownSchemaPart {
                part: owner.clone(),
            });
        };
        let supported = part.migrations.len() as i64;
        if *applied > supported {
            return Err(StoreError::SchemaTooNew {
                part: owner.clone(),
                found: *applied,
                supported,
            });
        }
    }
    Ok(())
}

/// The kernel's tables: the customer registry, the log's entries with the customers' sealed
/// copies, tree hashes, checkpoints, customers' trees and the sequencer lease.
pub const KERNEL: SchemaPart = SchemaPart {
    owner: "kernel",
    migrations: &[
        Migration {
            name: "customers, the log's entries, tree hashes, checkpoints and customers' trees",
            sqlite: r#"
CREATE TABLE subjects (
    id          TEXT PRIMARY KEY,
    wrapped_key BLOB,              -- NULL once erased
    created_at  INTEGER NOT NULL,
    erased_at   INTEGER
) STRICT;
CREATE TABLE events (
    leaf_index  INTEGER PRIMARY KEY,
    subject_id  TEXT,              -- NULL once erased
    commitment  BLOB NOT NULL CHECK (length(commitment) = 32),
    sealed_body BLOB               -- NULL once erased
) STRICT;
CREATE INDEX events_by_subject ON events (subject_id, leaf_index);
CREATE TABLE tree_hashes (
    idx  INTEGER PRIMARY KEY,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
-- Only the latest checkpoint: clients keep the ones they have seen, and one row per group commit
-- would grow without bound.
CREATE TABLE checkpoint (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    note TEXT NOT NULL
) STRICT;
CREATE TABLE witnessed_checkpoint (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    note TEXT NOT NULL
) STRICT;
CREATE TABLE subject_logs (
    label BLOB PRIMARY KEY CHECK (length(label) = 32),
    size  INTEGER NOT NULL,
    peaks BLOB NOT NULL
) STRICT, WITHOUT ROWID;
"#,
            postgres: r#"
CREATE TABLE subjects (
    id          TEXT PRIMARY KEY,
    wrapped_key BYTEA,
    created_at  BIGINT NOT NULL,
    erased_at   BIGINT
);
CREATE TABLE events (
    leaf_index  BIGINT PRIMARY KEY,
    subject_id  TEXT,
    commitment  BYTEA NOT NULL CHECK (length(commitment) = 32),
    sealed_body BYTEA
);
CREATE INDEX events_by_subject ON events (subject_id, leaf_index);
CREATE TABLE tree_hashes (
    idx  BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL CHECK (length(hash) = 32)
);
CREATE TABLE checkpoint (
    id   INT PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE witnessed_checkpoint (
    id   INT PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE subject_logs (
    label BYTEA PRIMARY KEY CHECK (length(label) = 32),
    size  BIGINT NOT NULL,
    peaks BYTEA NOT NULL
);
"#,
        },
        Migration {
            name: "the sequencer lease (PostgreSQL; on SQLite the claim is a file lock)",
            sqlite: "",
            postgres: r#"
CREATE TABLE sequencer_lease (
    id         INT PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    token      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ttl_ms     BIGINT NOT NULL
);
"#,
        },
        Migration {
            name: "the leaf that last grew each customer's tree, for nodes that follow the log",
            sqlite: r#"
ALTER TABLE subject_logs ADD COLUMN last_leaf INTEGER NOT NULL DEFAULT 0;
CREATE INDEX subject_logs_by_last_leaf ON subject_logs (last_leaf);
"#,
            postgres: r#"
ALTER TABLE subject_logs ADD COLUMN last_leaf BIGINT NOT NULL DEFAULT 0;
CREATE INDEX subject_logs_by_last_leaf ON subject_logs (last_leaf);
"#,
        },
        Migration {
            name: "each customer's revision, moved on when their consent changes",
            sqlite: "ALTER TABLE subjects ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;",
            postgres: "ALTER TABLE subjects ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;",
        },
        Migration {
            name: "one-time claims (sign-in nonces and links redeemed)",
            sqlite: r#"
CREATE TABLE once_claims (
    digest     BLOB PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX once_claims_by_expiry ON once_claims (expires_at);
"#,
            postgres: r#"
CREATE TABLE once_claims (
    digest     BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX once_claims_by_expiry ON once_claims (expires_at);
"#,
        },
        Migration {
            name: "the tenant key epoch each customer's key is wrapped under",
            sqlite: r#"
ALTER TABLE subjects ADD COLUMN key_epoch INTEGER; -- NULL: wrapped before epochs
CREATE INDEX subjects_by_key_epoch ON subjects (key_epoch) WHERE wrapped_key IS NOT NULL;
"#,
            postgres: r#"
ALTER TABLE subjects ADD COLUMN key_epoch BIGINT;
CREATE INDEX subjects_by_key_epoch ON subjects (key_epoch) WHERE wrapped_key IS NOT NULL;
"#,
        },
    ],
};
