//! The customer registry, the one thing the kernel knows of customers beyond their trees: who
//! exists, who is erased, and the wrapped key their entries' bodies are sealed under. Every entry
//! is about one customer who must be active when it is appended (see
//! [`WriteRequest::requires_active`](crate::WriteRequest)), and erasure destroys the key and the
//! bodies of their entries in the same transaction, so it is the kernel's too.
//!
//! The slices that create and erase customers call [`create`] and [`erase`] from their changes;
//! what a slice keeps about a customer in its own tables it erases itself, in the same change.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{PgSession, StoreError, SubjectState, Tx, TxError};

/// A `subjects` row as both backends read it: the wrapped key, when erased, and the revision.
pub type SubjectRow = Option<(Option<Vec<u8>>, Option<i64>, i64)>;

/// A customer's standing from their `subjects` row.
pub fn subject_state(row: SubjectRow) -> Result<SubjectState, StoreError> {
    Ok(match row {
        None => SubjectState::Unknown,
        Some((_, Some(at), _)) => SubjectState::Erased { at },
        Some((Some(wrapped_key), None, _)) => SubjectState::Active { wrapped_key },
        Some((None, None, _)) => return Err(StoreError::Corrupt("active subject without key")),
    })
}

/// The customer's revision from their row (0 for a customer not yet registered): what a request
/// decided on the consents read with it carries as [`WriteRequest::decided_on`].
///
/// [`WriteRequest::decided_on`]: crate::WriteRequest::decided_on
pub fn revision(row: &SubjectRow) -> u64 {
    row.as_ref().map_or(0, |(_, _, revision)| *revision as u64)
}

/// The customer's row, on SQLite.
pub fn row_sqlite(c: &Connection, subject: &str) -> rusqlite::Result<SubjectRow> {
    c.prepare_cached("SELECT wrapped_key, erased_at, revision FROM subjects WHERE id = ?1")?
        .query_row([subject], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
}

/// The customer's row, on PostgreSQL.
pub fn row_postgres(c: &mut PgSession, subject: &str) -> Result<SubjectRow, postgres::Error> {
    Ok(c.query_opt(
        "SELECT wrapped_key, erased_at, revision FROM subjects WHERE id = $1",
        &[&subject],
    )?
    .map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// Moves the customer's revision on, for a change that revises what may be decided about them
/// ([`Standing::Revised`]); the kernel's commit calls it, never a slice.
///
/// [`Standing::Revised`]: crate::Standing::Revised
pub(crate) fn revise(tx: &mut Tx<'_>, subject: &str) -> Result<(), TxError> {
    match tx {
        Tx::Sqlite(c) => {
            c.prepare_cached("UPDATE subjects SET revision = revision + 1 WHERE id = ?1")?
                .execute([subject])?;
        }
        Tx::Postgres(c) => {
            c.execute(
                "UPDATE subjects SET revision = revision + 1 WHERE id = $1",
                &[&subject],
            )?;
        }
    }
    Ok(())
}

/// Registers the customer with their key wrapped under `key_epoch` (none: wrapped before
/// epochs), unless they exist already.
pub fn create(
    tx: &mut Tx<'_>,
    subject: &str,
    wrapped_key: &[u8],
    key_epoch: Option<i64>,
    at: i64,
) -> Result<(), TxError> {
    match tx {
        Tx::Sqlite(c) => {
            c.prepare_cached(
                "INSERT INTO subjects (id, wrapped_key, key_epoch, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![subject, wrapped_key, key_epoch, at])?;
        }
        Tx::Postgres(c) => {
            c.execute(
                "INSERT INTO subjects (id, wrapped_key, key_epoch, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
                &[&subject, &wrapped_key, &key_epoch, &at],
            )?;
        }
    }
    Ok(())
}

/// Replaces the customer's wrapped key by the same key wrapped under `key_epoch`, only while it
/// is still `from`: an erasure or another rewrap since leaves the row as it is.
pub fn rewrap(
    tx: &mut Tx<'_>,
    subject: &str,
    from: &[u8],
    to: &[u8],
    key_epoch: i64,
) -> Result<(), TxError> {
    match tx {
        Tx::Sqlite(c) => {
            c.prepare_cached(
                "UPDATE subjects SET wrapped_key = ?3, key_epoch = ?4
                 WHERE id = ?1 AND wrapped_key = ?2",
            )?
            .execute(params![subject, from, to, key_epoch])?;
        }
        Tx::Postgres(c) => {
            c.execute(
                "UPDATE subjects SET wrapped_key = $3, key_epoch = $4
                 WHERE id = $1 AND wrapped_key = $2",
                &[&subject, &from, &to, &key_epoch],
            )?;
        }
    }
    Ok(())
}

/// Up to `limit` live customers whose keys are wrapped under an epoch before `epoch` (or before
/// epochs), with those keys, in id order after `after`.
pub fn wrapped_before_sqlite(
    c: &Connection,
    epoch: i64,
    after: &str,
    limit: i64,
) -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
    c.prepare_cached(
        "SELECT id, wrapped_key FROM subjects
         WHERE wrapped_key IS NOT NULL AND coalesce(key_epoch, 0) < ?1 AND id > ?2
         ORDER BY id LIMIT ?3",
    )?
    .query_map(params![epoch, after, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// As [`wrapped_before_sqlite`], on PostgreSQL.
pub fn wrapped_before_postgres(
    c: &mut PgSession,
    epoch: i64,
    after: &str,
    limit: i64,
) -> Result<Vec<(String, Vec<u8>)>, postgres::Error> {
    Ok(c.query(
        "SELECT id, wrapped_key FROM subjects
             WHERE wrapped_key IS NOT NULL AND coalesce(key_epoch, 0) < $1 AND id > $2
             ORDER BY id LIMIT $3",
        &[&epoch, &after, &limit],
    )?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// Whether any live customer's key is wrapped under `epoch` or an earlier one (or before
/// epochs), inside a group's transaction: what an epoch's retirement and destruction check.
pub fn live_key_at_or_before(tx: &mut Tx<'_>, epoch: i64) -> Result<bool, TxError> {
    const SQLITE: &str = "SELECT EXISTS (SELECT 1 FROM subjects
        WHERE wrapped_key IS NOT NULL AND coalesce(key_epoch, 0) <= ?1)";
    const POSTGRES: &str = "SELECT EXISTS (SELECT 1 FROM subjects
        WHERE wrapped_key IS NOT NULL AND coalesce(key_epoch, 0) <= $1)";
    Ok(match tx {
        Tx::Sqlite(c) => c
            .prepare_cached(SQLITE)?
            .query_row([epoch], |r| r.get::<_, bool>(0))?,
        Tx::Postgres(c) => c
            .query_opt(POSTGRES, &[&epoch])?
            .is_some_and(|r| r.get::<_, bool>(0)),
    })
}

/// Erases the customer from the kernel's tables: their key is destroyed, the bodies of their
/// entries and the entries' link to them are removed, and they are marked erased. The entries'
/// commitments stay, so the log and every proof stay valid.
pub fn erase(tx: &mut Tx<'_>, subject: &str, at: i64) -> Result<(), TxError> {
    match tx {
        Tx::Sqlite(c) => {
            c.prepare_cached(
                "UPDATE events SET sealed_body = NULL, subject_id = NULL WHERE subject_id = ?1",
            )?
            .execute([subject])?;
            c.prepare_cached(
                "UPDATE subjects SET wrapped_key = NULL, erased_at = ?2 WHERE id = ?1",
            )?
            .execute(params![subject, at])?;
        }
        Tx::Postgres(c) => {
            c.execute(
                "UPDATE events SET sealed_body = NULL, subject_id = NULL WHERE subject_id = $1",
                &[&subject],
            )?;
            c.execute(
                "UPDATE subjects SET wrapped_key = NULL, erased_at = $2 WHERE id = $1",
                &[&subject, &at],
            )?;
        }
    }
    Ok(())
}
