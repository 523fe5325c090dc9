//! The schema's two dialects, compared over every part: the kernel's and each slice's.

use std::collections::BTreeMap;

use candor_store::{PgSettings, PgStore, SqliteStore};

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
    drop(SqliteStore::open(path, &crate::schema()).unwrap());
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

fn postgres_schema(settings: &PgSettings) -> (Columns, Vec<(String, String)>) {
    drop(PgStore::open(settings, &crate::schema()).unwrap());
    let schema = settings.schema.clone().expect("a test schema");
    let mut c = postgres::Client::connect(&settings.url, postgres::NoTls).unwrap();
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

/// Both dialects of every part's migrations make the same tables, with the same columns (kind,
/// nullability, primary key, in order) and the same indexes.
#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn both_dialects_make_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (sqlite_columns, sqlite_indexes) = sqlite_schema(&dir.path().join("c.db"));
    let pg = crate::testing::postgres_settings();
    let (mut pg_columns, pg_indexes) = postgres_schema(&pg.0);
    for table in ONE_BACKEND_ONLY {
        pg_columns.remove(*table);
    }
    assert_eq!(sqlite_columns, pg_columns);
    assert_eq!(sqlite_indexes, pg_indexes);
    assert!(sqlite_columns.len() >= 11, "{sqlite_columns:?}");
}
