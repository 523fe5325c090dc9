//! The database a deployment keeps its data in, as the feature slices see it: the kernel's
//! [`LogStore`] and a way to read their own tables with the SQL for both backends side by side.

use std::sync::Arc;

use crate::{LogStore, PgSession, PgStore, SqliteStore, StoreError};

/// One deployment's database.
#[derive(Clone)]
pub enum Db {
    /// Embedded SQLite, the default.
    Sqlite(Arc<SqliteStore>),
    /// PostgreSQL, for several nodes.
    Postgres(Arc<PgStore>),
}

impl Db {
    /// The log kernel's storage.
    pub fn log(&self) -> Arc<dyn LogStore> {
        match self {
            Db::Sqlite(s) => s.clone(),
            Db::Postgres(p) => p.clone(),
        }
    }

    /// Reads with `sqlite` or `postgres`, whichever backend this is. The SQLite read runs on a
    /// pooled read-only connection; the PostgreSQL read on a pooled connection's thread, again
    /// (up to three times) if the database aborted it under contention, so it is `Fn`.
    pub fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        sqlite: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
        postgres: impl Fn(&mut PgSession) -> Result<T, postgres::Error> + Send + Sync + 'static,
    ) -> Result<T, StoreError> {
        match self {
            Db::Sqlite(s) => s.read(operation, sqlite),
            Db::Postgres(p) => p.read(operation, postgres),
        }
    }
}
