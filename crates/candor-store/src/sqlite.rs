//! The embedded SQLite backend: one file, WAL journal, `synchronous=FULL` so a commit that
//! returned survives power loss. One connection writes (the log's single writer); reads use a
//! small pool of their own connections and never block the writer.

use std::path::Path;
use std::sync::Mutex;

use candor_log::Hash;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::customers::{revise, row_sqlite, subject_state};
use crate::migrations::{
    COUNTED_BY_PART, COUNTS_SQLITE, ONE_LIST_LEN, SQLITE_APPLICATION_ID, SQLITE_BEFORE_UNIFICATION,
    SchemaPart, adopted, check, in_order,
};
use crate::once;
use crate::{
    Appended, Claim, Conflict, EventRow, LogUpdate, RequestOutcome, Sequencer, Standing,
    StoreError, StoredCheckpoint, SubjectLog, SubjectState, Tx, WriteRequest,
};

const READ_POOL: usize = 64;

/// SQLite-backed [`crate::LogStore`].
pub struct SqliteStore {
    // Only the log's writer thread takes this lock, so it is uncontended in normal operation.
    writer: Mutex<Connection>,
    // Idle read connections; a reader takes one, or opens a new one when none is idle.
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
    // The claim to sequence the log: an exclusive lock on `<db>.lock`, which the operating system
    // releases if the process dies, so a restart after a crash never waits.
    claim: Mutex<Option<std::fs::File>>,
}

fn db(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Database {
        operation,
        source: Box::new(source),
    }
}

/// Opens a connection. The busy timeout is set before anything else: a connection opened while
/// the writer commits would otherwise fail at once with SQLITE_BUSY instead of waiting.
fn open(path: &Path, role: Role) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db("open"))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db("configure"))?;
    let pragmas = match role {
        // WAL mode is recorded in the file; only the writer needs to ask for it.
        Role::Writer => {
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;"
        }
        Role::Reader => "PRAGMA query_only = ON;",
    };
    conn.execute_batch(pragmas).map_err(db("configure"))?;
    // `rarray`, so a batch of tree hashes is one statement.
    rusqlite::vtab::array::load_module(&conn).map_err(db("configure"))?;
    Ok(conn)
}

#[derive(Clone, Copy)]
enum Role {
    Writer,
    Reader,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies the kernel's pending
    /// migrations, then each of `slices`' in turn. Refuses a database whose schema is newer than
    /// this build, or that has a part `slices` lacks.
    pub fn open(path: &Path, slices: &[&SchemaPart]) -> Result<SqliteStore, StoreError> {
        // SQLite gives the WAL and shared-memory files the database file's permissions.
        owner_only()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::Database {
                operation: "create the database file",
                source: Box::new(e),
            })?;
        let mut conn = open(path, Role::Writer)?;
        migrate(&mut conn, slices)?;
        Ok(SqliteStore {
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path: path.to_owned(),
            claim: Mutex::new(None),
        })
    }

    pub(crate) fn read<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let idle = self.readers.lock().expect("reader pool poisoned").pop();
        let conn = match idle {
            Some(c) => c,
            None => open(&self.path, Role::Reader)?,
        };
        let out = f(&conn).map_err(db(operation));
        let mut pool = self.readers.lock().expect("reader pool poisoned");
        if pool.len() < READ_POOL {
            pool.push(conn);
        }
        out
    }
}

fn migrate(conn: &mut Connection, slices: &[&SchemaPart]) -> Result<(), StoreError> {
    let application_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(db("read schema version"))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db("read schema version"))?;
    if application_id != SQLITE_APPLICATION_ID || version != COUNTED_BY_PART {
        let one_list = match (application_id == SQLITE_APPLICATION_ID, version) {
            (true, v) if (0..=ONE_LIST_LEN).contains(&v) => v,
            (true, v) => {
                return Err(StoreError::SchemaTooNew {
                    part: "candor".into(),
                    found: v,
                    supported: COUNTED_BY_PART,
                });
            }
            // A new file, or one numbered before SQLite's and PostgreSQL's lists were one.
            (false, 0) => 0,
            (false, v) => SQLITE_BEFORE_UNIFICATION
                .iter()
                .find(|(before, _)| *before == v)
                .map(|(_, now)| *now)
                .ok_or(StoreError::Corrupt(
                    "the database was made by an early pre-release Candor that this build cannot migrate",
                ))?,
        };
        let tx = conn.transaction().map_err(db("migrate"))?;
        tx.execute_batch(COUNTS_SQLITE).map_err(db("migrate"))?;
        for (owner, applied) in adopted(one_list) {
            tx.execute(
                "INSERT INTO candor_migrations (owner, applied) VALUES (?1, ?2)",
                params![owner, applied],
            )
            .map_err(db("migrate"))?;
        }
        tx.pragma_update(None, "application_id", SQLITE_APPLICATION_ID)
            .map_err(db("migrate"))?;
        tx.pragma_update(None, "user_version", COUNTED_BY_PART)
            .map_err(db("migrate"))?;
        tx.commit().map_err(db("migrate"))?;
    }
    let recorded = conn
        .prepare("SELECT owner, applied FROM candor_migrations")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, i64)>>>()
        })
        .map_err(db("read schema version"))?;
    check(&recorded, slices)?;
    for part in in_order(slices) {
        let applied = recorded
            .iter()
            .find(|(owner, _)| owner == part.owner)
            .map_or(0, |(_, n)| *n);
        for (i, migration) in part.migrations.iter().enumerate().skip(applied as usize) {
            let tx = conn.transaction().map_err(db("migrate"))?;
            tx.execute_batch(migration.sqlite).map_err(db("migrate"))?;
            tx.execute(
                "INSERT INTO candor_migrations (owner, applied) VALUES (?1, ?2)
                 ON CONFLICT (owner) DO UPDATE SET applied = excluded.applied",
                params![part.owner, i as i64 + 1],
            )
            .map_err(db("migrate"))?;
            tx.commit().map_err(db("migrate"))?;
            tracing::info!(
                part = part.owner,
                version = i + 1,
                migration = migration.name,
                "schema migrated"
            );
        }
    }
    Ok(())
}

/// New files readable and writable by their owner alone: they hold customers' sealed data.
fn owner_only() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// How often the writer waits out readers (each time under the busy timeout) to truncate the WAL.
const WAL_TRUNCATE_ATTEMPTS: usize = 3;

/// Copies the WAL into the database file and truncates it to nothing, so that no frame from
/// before an erasure (the customer's wrapped key, sealed fields and bodies) stays in the live
/// files; `secure_delete` has zeroed what the erasure deleted in the pages it copies. Waits, under
/// the busy timeout, until readers have left older snapshots.
fn truncate_wal(conn: &Connection) -> Result<(), StoreError> {
    for _ in 0..WAL_TRUNCATE_ATTEMPTS {
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(db("truncate the WAL"))?;
        if busy == 0 {
            return Ok(());
        }
    }
    Err(StoreError::Database {
        operation: "truncate the WAL after an erasure",
        source: "readers kept older snapshots open".into(),
    })
}

fn check_active(
    tx: &Connection,
    subject: &str,
    decided_on: Option<u64>,
) -> Result<Result<(), Conflict>, rusqlite::Error> {
    let row: Option<(Option<i64>, i64)> = tx
        .prepare_cached("SELECT erased_at, revision FROM subjects WHERE id = ?1")?
        .query_row([subject], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => Err(Conflict::SubjectUnknown),
        Some((Some(_), _)) => Err(Conflict::SubjectErased),
        Some((None, revision)) if decided_on.is_some_and(|d| d != revision as u64) => {
            Err(Conflict::Stale)
        }
        Some((None, _)) => Ok(()),
    })
}

fn checkpoint_row(c: &Connection, sql: &str) -> rusqlite::Result<Option<StoredCheckpoint>> {
    c.prepare_cached(sql)?
        .query_row([], |r| {
            Ok(StoredCheckpoint {
                size: r.get::<_, i64>(0)? as u64,
                note: r.get(1)?,
            })
        })
        .optional()
}

impl crate::LogStore for SqliteStore {
    fn subject(&self, subject: &str) -> Result<SubjectState, StoreError> {
        subject_state(self.read("read subject", |c| row_sqlite(c, subject))?)
    }

    fn subject_events(
        &self,
        subject: &str,
        leaves: std::ops::Range<u64>,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        let (from, below, limit) = crate::rows::event_bounds(leaves, limit);
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = self.read("read events", |c| {
            c.prepare_cached(
                "SELECT leaf_index, commitment, sealed_body FROM events
                 WHERE subject_id = ?1 AND sealed_body IS NOT NULL
                   AND leaf_index >= ?2 AND leaf_index < ?3
                 ORDER BY leaf_index LIMIT ?4",
            )?
            .query_map(rusqlite::params![subject, from, below, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })?;
        rows.into_iter().map(crate::rows::event_row).collect()
    }

    fn subject_event_count(&self, subject: &str, below: u64) -> Result<u64, StoreError> {
        let (_, below, _) = crate::rows::event_bounds(0..below, 0);
        let count: i64 = self.read("count events", |c| {
            c.prepare_cached(
                "SELECT COUNT(*) FROM events
                 WHERE subject_id = ?1 AND sealed_body IS NOT NULL AND leaf_index < ?2",
            )?
            .query_row(rusqlite::params![subject, below], |r| r.get(0))
        })?;
        crate::rows::count(count)
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read("read checkpoint", |c| {
            checkpoint_row(c, "SELECT size, note FROM checkpoint WHERE id = 1")
        })
    }

    fn latest_witnessed(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read("read witnessed checkpoint", |c| {
            checkpoint_row(
                c,
                "SELECT size, note FROM witnessed_checkpoint WHERE id = 1",
            )
        })
    }

    fn record_witnessed(&self, checkpoint: &StoredCheckpoint) -> Result<bool, StoreError> {
        let conn = self.writer.lock().expect("writer poisoned");
        let changed = conn
            .prepare_cached(
                "INSERT INTO witnessed_checkpoint (id, size, note) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET size = excluded.size, note = excluded.note
                 WHERE excluded.size > witnessed_checkpoint.size",
            )
            .and_then(|mut s| s.execute(params![checkpoint.size as i64, checkpoint.note]))
            .map_err(db("record witnessed checkpoint"))?;
        Ok(changed == 1)
    }

    fn claim_sequencer(
        &self,
        _holder: &str,
        _ttl: std::time::Duration,
    ) -> Result<Claim, StoreError> {
        let mut claim = self.claim.lock().expect("claim poisoned");
        if claim.is_some() {
            return Ok(Claim::Granted { token: 1 });
        }
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let file = owner_only()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Database {
                operation: "open the sequencer lock",
                source: Box::new(e),
            })?;
        match file.try_lock() {
            Ok(()) => {
                *claim = Some(file);
                Ok(Claim::Granted { token: 1 })
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(Claim::HeldBy {
                holder: "another process on this machine".into(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Database {
                operation: "take the sequencer lock",
                source: Box::new(e),
            }),
        }
    }

    fn renew_sequencer(&self, _token: u64) -> Result<bool, StoreError> {
        // The lock lasts while it is held; there is nothing to renew.
        Ok(self.claim.lock().expect("claim poisoned").is_some())
    }

    fn release_sequencer(&self, _token: u64) -> Result<(), StoreError> {
        // Closing the file releases the lock.
        self.claim.lock().expect("claim poisoned").take();
        Ok(())
    }

    fn subject_logs(&self) -> Result<Vec<SubjectLog>, StoreError> {
        let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = self.read("read subject logs", |c| {
            c.prepare_cached("SELECT label, size, peaks FROM subject_logs")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })?;
        rows.into_iter().map(crate::rows::subject_log).collect()
    }

    fn subject_logs_of(&self, labels: &[[u8; 32]]) -> Result<Vec<SubjectLog>, StoreError> {
        let wanted = std::rc::Rc::new(
            labels
                .iter()
                .map(|l| rusqlite::types::Value::Blob(l.to_vec()))
                .collect::<Vec<_>>(),
        );
        let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = self.read("read subject logs", |c| {
            c.prepare_cached(
                "SELECT label, size, peaks FROM subject_logs WHERE label IN rarray(?1)",
            )?
            .query_map([wanted], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
        })?;
        rows.into_iter().map(crate::rows::subject_log).collect()
    }

    fn log_since(&self, from: u64) -> Result<Option<LogUpdate>, StoreError> {
        let read = self.read("read the log since a checkpoint", |c| {
            // A read transaction is one snapshot of the WAL: the trees match the checkpoint.
            let tx = c.unchecked_transaction()?;
            let Some(checkpoint) =
                checkpoint_row(&tx, "SELECT size, note FROM checkpoint WHERE id = 1")?
            else {
                return Ok(None);
            };
            let rows = tx
                .prepare_cached(
                    "SELECT label, size, peaks FROM subject_logs WHERE last_leaf >= ?1",
                )?
                .query_map([from as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<(Vec<u8>, i64, Vec<u8>)>>>()?;
            tx.finish()?;
            Ok(Some((checkpoint, rows)))
        })?;
        read.map(|(checkpoint, rows)| {
            Ok(LogUpdate {
                checkpoint,
                subject_logs: rows
                    .into_iter()
                    .map(crate::rows::subject_log)
                    .collect::<Result<_, _>>()?,
            })
        })
        .transpose()
    }

    fn entries(&self, leaves: std::ops::Range<u64>) -> Result<Vec<[u8; 32]>, StoreError> {
        let want = (leaves.end - leaves.start) as usize;
        let blobs: Vec<Vec<u8>> = self.read("read entries", |c| {
            c.prepare_cached(
                "SELECT commitment FROM events WHERE leaf_index >= ?1 AND leaf_index < ?2
                 ORDER BY leaf_index",
            )?
            .query_map(params![leaves.start as i64, leaves.end as i64], |r| {
                r.get(0)
            })?
            .collect()
        })?;
        crate::rows::commitments(blobs, want)
    }

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        // One statement for the whole batch (a tile is 256 hashes, a proof up to 2·log2(n)):
        // a query per hash cost more in statement overhead than in page reads.
        let wanted = std::rc::Rc::new(
            indexes
                .iter()
                .map(|&i| rusqlite::types::Value::Integer(i as i64))
                .collect::<Vec<_>>(),
        );
        let found: std::collections::HashMap<u64, Vec<u8>> =
            self.read("read tree hashes", |c| {
                c.prepare_cached("SELECT idx, hash FROM tree_hashes WHERE idx IN rarray(?1)")?
                    .query_map([wanted], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?
                    .collect()
            })?;
        crate::rows::hashes_in_order(indexes, &found)
    }

    fn commit(
        &self,
        requests: &[WriteRequest],
        sequencer: &mut dyn Sequencer,
    ) -> Result<Vec<RequestOutcome>, StoreError> {
        let mut conn = self.writer.lock().expect("writer poisoned");
        // On one machine the file lock is the fence: a commit under a claim this store no longer
        // holds is refused.
        if sequencer.fencing_token().is_some()
            && self.claim.lock().expect("claim poisoned").is_none()
        {
            return Err(StoreError::Fenced);
        }
        // IMMEDIATE takes the write lock up front, under the busy timeout. A deferred transaction that
        // reads first (the preconditions) and then writes gets SQLITE_BUSY at once, with no waiting,
        // if a reader opening the WAL holds the write lock for that instant.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("begin"))?;
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut appended = false;
        let mut erased = false;
        for request in requests {
            if let Some(subject) = &request.requires_active
                && let Err(conflict) =
                    check_active(&tx, subject, request.decided_on).map_err(db("check subject"))?
            {
                outcomes.push(Err(conflict));
                continue;
            }
            if let Some(once) = &request.once
                && !once::claim(&mut Tx::Sqlite(&tx), once)
                    .map_err(|e| e.into_store("claim once"))?
            {
                outcomes.push(Err(Conflict::Claimed));
                continue;
            }
            erased |= request
                .changes
                .iter()
                .any(|c| matches!(c.standing(), Some((_, Standing::Erased { .. }))));
            // Mutations are plain upserts and deletes that cannot conflict once the precondition
            // holds, so no savepoint is needed: any error here is a database failure and aborts
            // the whole group.
            for change in &request.changes {
                let mut tx = Tx::Sqlite(&tx);
                change
                    .apply(&mut tx)
                    .map_err(|e| e.into_store("apply change"))?;
                if let Some((subject, Standing::Revised)) = change.standing() {
                    revise(&mut tx, subject).map_err(|e| e.into_store("revise subject"))?;
                }
            }
            let mut leaves = Vec::with_capacity(request.entries.len());
            for entry in &request.entries {
                let Appended {
                    index,
                    hashes,
                    subject_log,
                } = sequencer.append(&entry.subject, &entry.commitment);
                tx.prepare_cached(
                    "INSERT INTO events (leaf_index, subject_id, commitment, sealed_body)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        index as i64,
                        entry.sealed_body.as_ref().map(|_| &entry.subject),
                        &entry.commitment[..],
                        entry.sealed_body
                    ])
                })
                .map_err(db("append event"))?;
                let mut put = tx
                    .prepare_cached("INSERT INTO tree_hashes (idx, hash) VALUES (?1, ?2)")
                    .map_err(db("append tree hash"))?;
                for (idx, hash) in hashes {
                    put.execute(params![idx as i64, &hash.0[..]])
                        .map_err(db("append tree hash"))?;
                }
                let peaks: Vec<u8> = subject_log.peaks.iter().flat_map(|h| h.0).collect();
                tx.prepare_cached(
                    "INSERT INTO subject_logs (label, size, peaks, last_leaf) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (label) DO UPDATE
                     SET size = excluded.size, peaks = excluded.peaks, last_leaf = excluded.last_leaf",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        &subject_log.label[..],
                        subject_log.size as i64,
                        peaks,
                        index as i64
                    ])
                })
                .map_err(db("append subject log"))?;
                leaves.push(index);
                appended = true;
            }
            outcomes.push(Ok(leaves));
        }
        if appended {
            let cp = sequencer.checkpoint();
            tx.prepare_cached(
                "INSERT INTO checkpoint (id, size, note) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET size = excluded.size, note = excluded.note",
            )
            .and_then(|mut s| s.execute(params![cp.size as i64, cp.note]))
            .map_err(db("store checkpoint"))?;
        }
        tx.commit().map_err(db("commit"))?;
        if erased {
            truncate_wal(&conn)?;
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogStore;
    use crate::contract_tests::{LEGACY_SLICES, TestSequencer, create, erase, event};
    use crate::migrations::Migration;
    use candor_log::Frontier;

    #[test]
    fn readers_opened_while_the_writer_commits_do_not_fail() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("c.db"), &[]).unwrap();
        let mut seq = TestSequencer(Frontier::default());
        store.commit(&[create("a")], &mut seq).unwrap();
        std::thread::scope(|s| {
            let store = &store;
            for _ in 0..16 {
                s.spawn(move || {
                    for _ in 0..100 {
                        // An empty pool forces a fresh connection for each read.
                        store.readers.lock().unwrap().clear();
                        store
                            .subject_events("a", 0..u64::MAX, usize::MAX)
                            .expect("read during commits");
                    }
                });
            }
            for i in 0..500u32 {
                store
                    .commit(&[event("a", i as u8)], &mut seq)
                    .expect("the writer waits out readers instead of failing");
            }
        });
    }

    /// A group that erases someone returns only once the WAL, which holds the pages from before
    /// the erasure, is copied into the database and cut to nothing.
    #[test]
    fn an_erasure_is_committed_with_the_wal_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = SqliteStore::open(&path, &[]).unwrap();
        let mut seq = TestSequencer(Frontier::default());
        store
            .commit(&[create("a"), create("b"), event("a", 1)], &mut seq)
            .unwrap();
        let wal = dir.path().join("c.db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        store
            .commit(&[erase("a", 2), event("b", 3)], &mut seq)
            .unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        assert_eq!(store.subject("a").unwrap(), SubjectState::Erased { at: 2 });
        assert_eq!(
            store
                .subject_events("b", 0..u64::MAX, usize::MAX)
                .unwrap()
                .len(),
            1
        );
    }

    /// A file numbered before the two lists were one (SQLite's own count, no application id)
    /// is taken as the same schema's place in the one list, and migrated on from there.
    #[test]
    fn a_file_from_before_the_one_migration_list_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(SqliteStore::open(&path, LEGACY_SLICES).unwrap());
        // The old numbering's fourth migration left exactly this schema, with no counts per part.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "DROP TABLE candor_migrations; DROP INDEX subjects_by_key_epoch; ALTER TABLE subjects DROP COLUMN key_epoch; ALTER TABLE subjects DROP COLUMN revision; DROP TABLE once_claims;
                 PRAGMA application_id = 0; PRAGMA user_version = 4;",
            )
            .unwrap();
        let store = SqliteStore::open(&path, LEGACY_SLICES).unwrap();
        let mut seq = TestSequencer(Frontier::default());
        store
            .commit(&[create("a"), event("a", 1)], &mut seq)
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        let (id, version): (i64, i64) = conn
            .query_row(
                "SELECT * FROM pragma_application_id, pragma_user_version",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((id, version), (SQLITE_APPLICATION_ID, COUNTED_BY_PART));
        assert_eq!(counts(&conn), "consent 1, kernel 6, keys 1, subjects 1");

        conn.execute_batch(
            "DROP TABLE candor_migrations; PRAGMA application_id = 0; PRAGMA user_version = 2;",
        )
        .unwrap();
        assert!(matches!(
            SqliteStore::open(&path, LEGACY_SLICES),
            Err(StoreError::Corrupt(_))
        ));
    }

    /// A file counted in the one list (with Candor's application id) is adopted part by part.
    #[test]
    fn a_file_counted_in_one_list_is_adopted_part_by_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(SqliteStore::open(&path, LEGACY_SLICES).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "DROP TABLE candor_migrations; DROP INDEX subjects_by_key_epoch; ALTER TABLE subjects DROP COLUMN key_epoch; ALTER TABLE subjects DROP COLUMN revision; DROP TABLE once_claims;
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        drop(SqliteStore::open(&path, LEGACY_SLICES).unwrap());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(counts(&conn), "consent 1, kernel 6, keys 1, subjects 1");
        // A legacy count says the slices' first migrations ran, so a build without them refuses.
        conn.execute_batch(
            "DROP TABLE candor_migrations; DROP INDEX subjects_by_key_epoch; ALTER TABLE subjects DROP COLUMN key_epoch; ALTER TABLE subjects DROP COLUMN revision; DROP TABLE once_claims;
             PRAGMA user_version = 3;",
        )
        .unwrap();
        assert!(matches!(
            SqliteStore::open(&path, &[]),
            Err(StoreError::UnknownSchemaPart { .. })
        ));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(SqliteStore::open(&path, &[]).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path, &[]),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn a_part_newer_than_this_build_is_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(SqliteStore::open(&path, &[]).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("UPDATE candor_migrations SET applied = 99 WHERE owner = 'kernel'")
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path, &[&NOTES_V1]),
            Err(StoreError::SchemaTooNew { found: 99, ref part, .. }) if part == "kernel"
        ));
        assert_eq!(
            counts(&conn),
            "kernel 99",
            "the slice's migration did not run"
        );
    }

    #[test]
    fn a_part_this_build_lacks_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(SqliteStore::open(&path, &[&NOTES_V1]).unwrap());
        assert!(matches!(
            SqliteStore::open(&path, &[]),
            Err(StoreError::UnknownSchemaPart { ref part }) if part == "notes"
        ));
    }

    /// A slice's migrations run after the kernel's, once each, and one appended to its list
    /// later runs at the next open.
    #[test]
    fn a_slice_migrates_on_its_own_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(SqliteStore::open(&path, &[&NOTES_V1]).unwrap());
        drop(SqliteStore::open(&path, &[&NOTES_V1]).unwrap());
        drop(SqliteStore::open(&path, &[&NOTES_V2]).unwrap());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(counts(&conn), "kernel 6, notes 2");
        conn.execute(
            "INSERT INTO notes (subject_id, body, pinned) VALUES ('a', 'x', 1)",
            [],
        )
        .expect_err("notes reference the kernel's customers");
    }

    const NOTES: Migration = Migration {
        name: "notes",
        sqlite: "CREATE TABLE notes (subject_id TEXT NOT NULL REFERENCES subjects (id), body TEXT NOT NULL) STRICT;",
        postgres: "",
    };
    const NOTES_V1: SchemaPart = SchemaPart {
        owner: "notes",
        migrations: &[NOTES],
    };
    const NOTES_V2: SchemaPart = SchemaPart {
        owner: "notes",
        migrations: &[
            NOTES,
            Migration {
                name: "pinned notes",
                sqlite: "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;",
                postgres: "",
            },
        ],
    };

    /// Each part's count, as `owner count`, by owner.
    fn counts(conn: &Connection) -> String {
        conn.prepare("SELECT owner || ' ' || applied FROM candor_migrations ORDER BY owner")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<Vec<String>>>()
            .unwrap()
            .join(", ")
    }
}
