//! The schema, as one list of migrations with both dialects side by side, so the SQLite and
//! PostgreSQL schemas cannot drift apart unnoticed (a test compares the two, column by column).
//!
//! The list is append-only: a database records how many of its migrations ran (SQLite in
//! `PRAGMA user_version`, PostgreSQL in `candor_schema.version`), and one that ran more than this
//! build knows is refused. SQLite files are marked with [`SQLITE_APPLICATION_ID`], so a file
//! written before the two lists were one (numbered on its own) is recognised and adopted.
//!
//! Deliberate differences, which the comparison knows about: PostgreSQL has `sequencer_lease`
//! (SQLite's claim is a lock on a file beside the database) and `candor_schema`; SQLite's
//! booleans are `INTEGER` and its row ids need no `BIGSERIAL`.

/// One step of the schema, in each dialect.
pub struct Migration {
    /// What it does, for operators.
    pub name: &'static str,
    /// The SQLite DDL (tables are `STRICT`).
    pub sqlite: &'static str,
    /// The PostgreSQL DDL, in the subset CockroachDB and YugabyteDB accept too.
    pub postgres: &'static str,
}

/// Marks a SQLite file as Candor's, numbered by [`MIGRATIONS`] (the ASCII of `CNDR`).
pub const SQLITE_APPLICATION_ID: i64 = 0x434e_4452;

/// Files written before the lists were one had no application id and counted SQLite's own
/// migrations; this maps such a count to the same schema's place in [`MIGRATIONS`]. Older counts
/// predate customers' trees, which start-up needs, and are refused.
pub const SQLITE_BEFORE_UNIFICATION: &[(i64, i64)] = &[(4, 3)];

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "customers, fields, blind index, consents, the log's entries, tree hashes, checkpoints, API keys and customers' trees",
        sqlite: r#"
CREATE TABLE subjects (
    id          TEXT PRIMARY KEY,
    wrapped_key BLOB,              -- NULL once erased
    created_at  INTEGER NOT NULL,
    erased_at   INTEGER
) STRICT;
CREATE TABLE fields (
    subject_id TEXT NOT NULL REFERENCES subjects(id),
    category   TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    PRIMARY KEY (subject_id, category)
) STRICT, WITHOUT ROWID;
CREATE TABLE blind_index (
    category   TEXT NOT NULL,
    digest     BLOB NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id),
    PRIMARY KEY (category, subject_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX blind_index_lookup ON blind_index (category, digest);
CREATE TABLE consents (
    seq            INTEGER PRIMARY KEY,
    subject_id     TEXT NOT NULL REFERENCES subjects(id),
    purpose        TEXT NOT NULL,
    recipient      TEXT,
    action         TEXT NOT NULL CHECK (action IN ('grant', 'withdraw')),
    at             INTEGER NOT NULL,
    expires_at     INTEGER,
    channel        TEXT NOT NULL,
    notice_version TEXT NOT NULL
) STRICT;
CREATE INDEX consents_by_subject ON consents (subject_id, seq);
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
CREATE TABLE api_keys (
    id                TEXT PRIMARY KEY,
    secret_hash       BLOB NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('admin', 'service')),
    name              TEXT NOT NULL,
    purposes          TEXT NOT NULL,   -- newline-separated purpose ids
    recipient         TEXT,
    can_mint_sessions INTEGER NOT NULL,
    can_erase         INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
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
CREATE TABLE fields (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    category   TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    PRIMARY KEY (subject_id, category)
);
CREATE TABLE blind_index (
    category   TEXT NOT NULL,
    digest     BYTEA NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    PRIMARY KEY (category, subject_id)
);
CREATE INDEX blind_index_lookup ON blind_index (category, digest);
CREATE TABLE consents (
    seq            BIGSERIAL PRIMARY KEY,
    subject_id     TEXT NOT NULL REFERENCES subjects (id),
    purpose        TEXT NOT NULL,
    recipient      TEXT,
    action         TEXT NOT NULL CHECK (action IN ('grant', 'withdraw')),
    at             BIGINT NOT NULL,
    expires_at     BIGINT,
    channel        TEXT NOT NULL,
    notice_version TEXT NOT NULL
);
CREATE INDEX consents_by_subject ON consents (subject_id, seq);
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
CREATE TABLE api_keys (
    id                TEXT PRIMARY KEY,
    secret_hash       BYTEA NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('admin', 'service')),
    name              TEXT NOT NULL,
    purposes          TEXT NOT NULL,
    recipient         TEXT,
    can_mint_sessions BOOLEAN NOT NULL,
    can_erase         BOOLEAN NOT NULL,
    created_at        BIGINT NOT NULL
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
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::SqliteStore;
    use crate::contract_tests::PgFixture;

    /// A column as both dialects can describe it: its kind of value, whether it may be null,
    /// and whether it is part of the primary key.
    type Columns = BTreeMap<String, Vec<(String, &'static str, bool, bool)>>;

    /// Tables that exist on one backend only, by design (see the module docs).
    const ONE_BACKEND_ONLY: &[&str] = &["sequencer_lease", "candor_schema"];

    fn kind(declared: &str) -> &'static str {
        match declared.to_ascii_lowercase().as_str() {
            "integer" | "bigint" | "int" | "int4" | "int8" | "boolean" | "bool" => "integer",
            "text" => "text",
            "blob" | "bytea" => "bytes",
            other => panic!("a column type the comparison does not know: {other}"),
        }
    }

    fn sqlite_schema(path: &std::path::Path) -> (Columns, Vec<(String, String)>) {
        drop(SqliteStore::open(path).unwrap());
        let conn = rusqlite::Connection::open(path).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut columns = Columns::new();
        for table in tables {
            let cols = conn
                .prepare(&format!("PRAGMA table_info({table})"))
                .unwrap()
                .query_map([], |r| {
                    let name: String = r.get(1)?;
                    let declared: String = r.get(2)?;
                    let not_null: bool = r.get(3)?;
                    let pk: i64 = r.get(5)?;
                    // A primary key column is never null, whatever SQLite reports for it.
                    Ok((name, kind(&declared), !not_null && pk == 0, pk > 0))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            columns.insert(table, cols);
        }
        let mut indexes: Vec<(String, String)> = conn
            .prepare(
                "SELECT tbl_name, name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        indexes.sort();
        (columns, indexes)
    }

    fn postgres_schema(pg: &PgFixture) -> (Columns, Vec<(String, String)>) {
        let schema = pg.schema().to_owned();
        let mut c = postgres::Client::connect(pg.url(), postgres::NoTls).unwrap();
        let mut columns = Columns::new();
        for row in c
            .query(
                "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'YES',
                        EXISTS (SELECT 1 FROM information_schema.key_column_usage k
                                JOIN information_schema.table_constraints t
                                  ON t.constraint_name = k.constraint_name
                                 AND t.table_schema = k.table_schema
                                WHERE t.constraint_type = 'PRIMARY KEY'
                                  AND k.table_schema = c.table_schema
                                  AND k.table_name = c.table_name
                                  AND k.column_name = c.column_name)
                 FROM information_schema.columns c
                 WHERE c.table_schema = $1
                 ORDER BY c.table_name, c.ordinal_position",
                &[&schema],
            )
            .unwrap()
        {
            let table: String = row.get(0);
            let declared: String = row.get(2);
            columns.entry(table).or_default().push((
                row.get(1),
                kind(&declared),
                row.get(3),
                row.get(4),
            ));
        }
        // Indexes other than those that back a primary key.
        let mut indexes: Vec<(String, String)> = c
            .query(
                "SELECT tablename, indexname FROM pg_indexes
                 WHERE schemaname = $1 AND indexname NOT LIKE '%_pkey'",
                &[&schema],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        indexes.sort();
        (columns, indexes)
    }

    /// Both dialects of every migration make the same tables, with the same columns (kind,
    /// nullability, primary key, in order) and the same indexes.
    #[test]
    #[cfg_attr(
        not(candor_postgres_tests),
        ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
    )]
    fn both_dialects_make_the_same_schema() {
        let dir = tempfile::tempdir().unwrap();
        let (sqlite_columns, sqlite_indexes) = sqlite_schema(&dir.path().join("c.db"));
        let pg = PgFixture::new("both_dialects_make_the_same_schema");
        let (mut pg_columns, pg_indexes) = postgres_schema(&pg);
        for table in ONE_BACKEND_ONLY {
            pg_columns.remove(*table);
        }
        assert_eq!(sqlite_columns, pg_columns);
        assert_eq!(sqlite_indexes, pg_indexes);
        assert!(sqlite_columns.len() >= 10, "{sqlite_columns:?}");
    }
}
