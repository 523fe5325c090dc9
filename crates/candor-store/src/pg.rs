//! The PostgreSQL backend, for a business that outgrows one machine.
//!
//! The SQL keeps to what PostgreSQL, CockroachDB and YugabyteDB all accept: no advisory locks, no
//! `LOCK TABLE`, no triggers or stored procedures; upserts are `INSERT … ON CONFLICT`, batches are
//! `UNNEST` of arrays, and the schema version row is serialised with `SELECT … FOR UPDATE`.
//!
//! The synchronous `postgres` client drives a runtime of its own, which may not run inside the
//! server's. So every connection lives on a thread of its own and is handed closures over a
//! channel; callers block on the answer as they would on SQLite's file IO. One connection is the
//! writer's; the rest are a pool of readers.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use candor_log::Hash;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

use crate::customers::{revise, row_postgres, subject_state};
use crate::migrations::{
    COUNTED_BY_PART, COUNTS_POSTGRES, ONE_LIST_LEN, SchemaPart, adopted, check, in_order,
};
use crate::once;
use crate::{
    Appended, Claim, Conflict, EventRow, LogUpdate, RequestOutcome, Sequencer, Standing,
    StoreError, StoredCheckpoint, SubjectLog, SubjectState, Tx, WriteRequest,
};

/// How to reach PostgreSQL. `Debug` never shows the URL, which may carry a password.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Reader connections (the writer has one more of its own).
    pub pool_size: usize,
    /// Any statement running longer is cancelled by the server.
    pub statement_timeout: Duration,
    /// How long to keep retrying the first connection (the database may still be starting).
    pub connect_retry: Duration,
    /// A schema to use instead of `public` (created if missing); tests use one each.
    pub schema: Option<String>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &"[redacted]")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_retry", &self.connect_retry)
            .field("schema", &self.schema)
            .finish()
    }
}

impl PgSettings {
    /// Defaults for `url`: 16 readers, 10 s statement timeout, 30 s connect retry.
    pub fn new(url: impl Into<String>) -> PgSettings {
        PgSettings {
            url: url.into(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(10),
            connect_retry: Duration::from_secs(30),
            schema: None,
        }
    }
}

pub(crate) fn db(operation: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |source| {
        // Aborted to stay serializable, or chosen as a deadlock's victim: safe to run again.
        let retryable = source.code().is_some_and(|code| {
            *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        });
        if retryable {
            StoreError::Contention { operation }
        } else {
            StoreError::Database {
                operation,
                source: Box::new(source),
            }
        }
    }
}

/// How often a read the database aborted under contention is run again before giving up.
const READ_ATTEMPTS: usize = 3;

/// A PostgreSQL connection as the slices read and write through it, with the statements it has
/// prepared: each is parsed and planned once per connection instead of on every call.
pub struct PgSession {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    // Inside a transaction that spans calls (the writer's group commit): a lost connection must
    // then fail the group, never be replaced silently mid-transaction.
    in_transaction: bool,
}

impl PgSession {
    fn new(client: Client) -> PgSession {
        PgSession {
            client,
            statements: HashMap::new(),
            in_transaction: false,
        }
    }

    fn begin(&mut self) -> Result<(), postgres::Error> {
        self.client.batch_execute("BEGIN")?;
        self.in_transaction = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), postgres::Error> {
        let done = self.client.batch_execute("COMMIT");
        self.in_transaction = false;
        done
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
        self.in_transaction = false;
    }

    fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs a query with a statement prepared once on this connection.
    pub fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query(&statement, params)
    }

    /// Runs a query of at most one row.
    pub fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query_opt(&statement, params)
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.execute(&statement, params)
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.client.batch_execute(sql)
    }
}

type Job = Box<dyn FnOnce(&mut PgSession) + Send>;

/// A connection on its own thread.
struct Conn {
    jobs: mpsc::Sender<Job>,
}

impl Conn {
    fn open(settings: &PgSettings) -> Result<Conn, StoreError> {
        let settings = settings.clone();
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("candor-postgres".into())
            .spawn(move || {
                let mut session = match connect(&settings) {
                    Ok(client) => {
                        let _ = ready_tx.send(Ok(()));
                        PgSession::new(client)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    // A connection the server dropped (a restart, a failover) is replaced before
                    // the next job, unless a transaction was open on it: that one must fail.
                    if session.client.is_closed() && !session.in_transaction {
                        match connect(&settings) {
                            Ok(client) => session = PgSession::new(client),
                            Err(e) => tracing::warn!(error = %e, "reconnecting failed"),
                        }
                    }
                    job(&mut session);
                }
            })
            .expect("spawn a database thread");
        ready
            .recv()
            .map_err(|_| StoreError::Corrupt("database thread died"))??;
        Ok(Conn { jobs })
    }

    /// Runs `f` on this connection and waits for its answer.
    ///
    /// The one rule for blocking work: every store call blocks its caller, and a PostgreSQL call,
    /// which waits on the network, tells the async runtime so when it is made on one of its
    /// workers (`block_in_place`), so the worker's other tasks move to another worker instead of
    /// waiting behind it. SQLite's calls are short reads of a local file and run inline.
    fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut PgSession) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .expect("the database thread outlives its connection handle");
        let wait = || rx.recv().expect("the database thread answers every job");
        match tokio::runtime::Handle::try_current() {
            Ok(runtime)
                if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }
}

fn connect(settings: &PgSettings) -> Result<Client, StoreError> {
    let mut config: postgres::Config = settings.url.parse().map_err(db("parse database URL"))?;
    let mut options = format!(
        "-c statement_timeout={}",
        settings.statement_timeout.as_millis()
    );
    if let Some(schema) = &settings.schema {
        options.push_str(&format!(" -c search_path={schema}"));
    }
    config.options(&options);
    // Lets operators (and the reconnect test) tell Candor's connections apart.
    config.application_name(&match &settings.schema {
        Some(schema) => format!("candor/{schema}"),
        None => "candor".to_owned(),
    });
    config.connect_timeout(Duration::from_secs(5));
    let deadline = Instant::now() + settings.connect_retry;
    let mut pause = Duration::from_millis(100);
    loop {
        match config.connect(NoTls) {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() < deadline => {
                // The cause names the host, never the password.
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(db("connect")(e)),
        }
    }
}

/// PostgreSQL-backed [`crate::LogStore`].
pub struct PgStore {
    writer: Mutex<Conn>,
    // Idle readers; a reader waits on `returned` when all are busy.
    readers: Mutex<Vec<Conn>>,
    returned: Condvar,
}

impl PgStore {
    /// Connects (retrying for `connect_retry`), applies the kernel's pending migrations, then each
    /// of `slices`' in turn, and opens the pool. Refuses a database whose schema is newer than
    /// this build, or that has a part `slices` lacks.
    pub fn open(
        settings: &PgSettings,
        slices: &[&'static SchemaPart],
    ) -> Result<PgStore, StoreError> {
        if let Some(schema) = &settings.schema {
            if schema.is_empty()
                || !schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(StoreError::Corrupt("schema names are [a-z0-9_]+"));
            }
            let bootstrap = PgSettings {
                schema: None,
                ..settings.clone()
            };
            let name = schema.clone();
            Conn::open(&bootstrap)?
                .call(move |c| c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {name}")))
                .map_err(db("create schema"))?;
        }
        let writer = Conn::open(settings)?;
        let parts = slices.to_vec();
        writer.call(move |s| migrate(&mut s.client, &parts))?;
        let readers = (0..settings.pool_size.max(1))
            .map(|_| Conn::open(settings))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PgStore {
            writer: Mutex::new(writer),
            readers: Mutex::new(readers),
            returned: Condvar::new(),
        })
    }

    /// Runs the read `f` on an idle reader, again if the database aborted it under contention.
    pub(crate) fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl Fn(&mut PgSession) -> Result<T, postgres::Error> + Send + Sync + 'static,
    ) -> Result<T, StoreError> {
        let f = Arc::new(f);
        let mut attempt = 1;
        loop {
            let f = f.clone();
            match self.read_once(operation, move |c| f(c)) {
                Err(StoreError::Contention { .. }) if attempt < READ_ATTEMPTS => attempt += 1,
                done => return done,
            }
        }
    }

    fn read_once<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut PgSession) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = {
            let mut idle = self.readers.lock().expect("reader pool poisoned");
            loop {
                if let Some(c) = idle.pop() {
                    break c;
                }
                idle = self.returned.wait(idle).expect("reader pool poisoned");
            }
        };
        let out = conn.call(f).map_err(db(operation));
        self.readers
            .lock()
            .expect("reader pool poisoned")
            .push(conn);
        self.returned.notify_one();
        out
    }
}

fn migrate(c: &mut Client, slices: &[&SchemaPart]) -> Result<(), StoreError> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS candor_schema (
             id INT PRIMARY KEY CHECK (id = 1),
             version BIGINT NOT NULL
         );
         INSERT INTO candor_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
    )
    .map_err(db("migrate"))?;
    // Every step takes the version row's lock first, which serialises nodes that start together:
    // each migration runs once.
    let lock = "SELECT version FROM candor_schema WHERE id = 1 FOR UPDATE";
    let mut tx = c.transaction().map_err(db("migrate"))?;
    let version: i64 = tx
        .query_one(lock, &[])
        .map_err(db("read schema version"))?
        .get(0);
    if version != COUNTED_BY_PART {
        if !(0..=ONE_LIST_LEN).contains(&version) {
            return Err(StoreError::SchemaTooNew {
                part: "candor".into(),
                found: version,
                supported: COUNTED_BY_PART,
            });
        }
        tx.batch_execute(COUNTS_POSTGRES).map_err(db("migrate"))?;
        for (owner, applied) in adopted(version) {
            tx.execute(
                "INSERT INTO candor_migrations (owner, applied) VALUES ($1, $2)",
                &[&owner, &applied],
            )
            .map_err(db("migrate"))?;
        }
        tx.execute(
            "UPDATE candor_schema SET version = $1 WHERE id = 1",
            &[&COUNTED_BY_PART],
        )
        .map_err(db("migrate"))?;
    }
    let recorded = recorded_counts(&mut tx)?;
    check(&recorded, slices)?;
    tx.commit().map_err(db("migrate"))?;
    for part in in_order(slices) {
        loop {
            let mut tx = c.transaction().map_err(db("migrate"))?;
            tx.query_one(lock, &[]).map_err(db("read schema version"))?;
            let applied = recorded_counts(&mut tx)?
                .into_iter()
                .find(|(owner, _)| owner == part.owner)
                .map_or(0, |(_, n)| n);
            let Some(migration) = part.migrations.get(applied as usize) else {
                break;
            };
            tx.batch_execute(migration.postgres)
                .map_err(db("migrate"))?;
            tx.execute(
                "INSERT INTO candor_migrations (owner, applied) VALUES ($1, $2)
                 ON CONFLICT (owner) DO UPDATE SET applied = excluded.applied",
                &[&part.owner, &(applied + 1)],
            )
            .map_err(db("migrate"))?;
            tx.commit().map_err(db("migrate"))?;
            tracing::info!(
                part = part.owner,
                version = applied + 1,
                migration = migration.name,
                "schema migrated"
            );
        }
    }
    Ok(())
}

fn recorded_counts(tx: &mut postgres::Transaction<'_>) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(tx
        .query("SELECT owner, applied FROM candor_migrations", &[])
        .map_err(db("read schema version"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

fn checkpoint_row(
    c: &mut PgSession,
    sql: &'static str,
) -> Result<Option<StoredCheckpoint>, postgres::Error> {
    Ok(c.query_opt(sql, &[])?.map(|r| StoredCheckpoint {
        size: r.get::<_, i64>(0) as u64,
        note: r.get(1),
    }))
}

/// Where each customer a group names stands: absent, or present with when erased (if ever) and
/// their revision.
type Standing_ = HashMap<String, Option<(Option<i64>, i64)>>;

/// Reads, in one query, where every customer the group names stands.
fn standing(tx: &mut PgSession, requests: &[WriteRequest]) -> Result<Standing_, postgres::Error> {
    let mut named: Vec<String> = Vec::new();
    for r in requests {
        named.extend(r.requires_active.iter().cloned());
        for change in &r.changes {
            if let Some((subject, _)) = change.standing() {
                named.push(subject.to_owned());
            }
        }
    }
    let mut known: Standing_ = named.iter().map(|s| (s.clone(), None)).collect();
    for row in tx.query(
        "SELECT id, erased_at, revision FROM subjects WHERE id = ANY($1)",
        &[&named],
    )? {
        known.insert(row.get(0), Some((row.get(1), row.get(2))));
    }
    Ok(known)
}

/// Checks a request's precondition against `standing` and, if it holds, applies its changes,
/// inside `tx`, keeping `standing` up to date for the requests after it in the group.
fn apply_request(
    tx: &mut PgSession,
    request: &WriteRequest,
    standing: &mut Standing_,
) -> Result<Result<(), Conflict>, StoreError> {
    if let Some(subject) = &request.requires_active {
        match standing.get(subject).cloned().flatten() {
            None => return Ok(Err(Conflict::SubjectUnknown)),
            Some((Some(_), _)) => return Ok(Err(Conflict::SubjectErased)),
            Some((None, revision)) if request.decided_on.is_some_and(|d| d != revision as u64) => {
                return Ok(Err(Conflict::Stale));
            }
            Some((None, _)) => {}
        }
    }
    if let Some(once) = &request.once
        && !once::claim(&mut Tx::Postgres(tx), once).map_err(|e| e.into_store("claim once"))?
    {
        return Ok(Err(Conflict::Claimed));
    }
    for change in &request.changes {
        change
            .apply(&mut Tx::Postgres(tx))
            .map_err(|e| e.into_store("apply change"))?;
        match change.standing() {
            Some((subject, Standing::Created)) => {
                standing
                    .entry(subject.to_owned())
                    .or_default()
                    .get_or_insert((None, 0));
            }
            Some((subject, Standing::Erased { at })) => {
                let revision = standing.get(subject).cloned().flatten().map_or(0, |r| r.1);
                standing.insert(subject.to_owned(), Some((Some(at), revision)));
            }
            Some((subject, Standing::Revised)) => {
                revise(&mut Tx::Postgres(tx), subject)
                    .map_err(|e| e.into_store("revise subject"))?;
                if let Some(Some(row)) = standing.get_mut(subject) {
                    row.1 += 1;
                }
            }
            None => {}
        }
    }
    Ok(Ok(()))
}

/// What a group appends, gathered on the writer's thread and written in one round of batches.
#[derive(Default)]
struct Batch {
    leaf_index: Vec<i64>,
    subject_id: Vec<Option<String>>,
    commitment: Vec<Vec<u8>>,
    sealed_body: Vec<Option<Vec<u8>>>,
    hash_idx: Vec<i64>,
    hash: Vec<Vec<u8>>,
    // The last state of each customer's tree in the group (an upsert may touch a row once),
    // with the leaf that grew it last.
    subject_logs: HashMap<[u8; 32], (u64, SubjectLog)>,
    checkpoint: Option<StoredCheckpoint>,
}

fn write_batch(tx: &mut PgSession, b: &Batch) -> Result<(), postgres::Error> {
    if !b.leaf_index.is_empty() {
        tx.execute(
            "INSERT INTO events (leaf_index, subject_id, commitment, sealed_body)
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BYTEA[], $4::BYTEA[])",
            &[&b.leaf_index, &b.subject_id, &b.commitment, &b.sealed_body],
        )?;
        tx.execute(
            "INSERT INTO tree_hashes (idx, hash) SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[])",
            &[&b.hash_idx, &b.hash],
        )?;
        let (mut labels, mut sizes, mut peaks, mut last_leaves) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (last_leaf, log) in b.subject_logs.values() {
            labels.push(log.label.to_vec());
            sizes.push(log.size as i64);
            peaks.push(log.peaks.iter().flat_map(|h| h.0).collect::<Vec<u8>>());
            last_leaves.push(*last_leaf as i64);
        }
        tx.execute(
            "INSERT INTO subject_logs (label, size, peaks, last_leaf)
             SELECT * FROM UNNEST($1::BYTEA[], $2::BIGINT[], $3::BYTEA[], $4::BIGINT[])
             ON CONFLICT (label) DO UPDATE
             SET size = excluded.size, peaks = excluded.peaks, last_leaf = excluded.last_leaf",
            &[&labels, &sizes, &peaks, &last_leaves],
        )?;
    }
    if let Some(cp) = &b.checkpoint {
        tx.execute(
            "INSERT INTO checkpoint (id, size, note) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET size = excluded.size, note = excluded.note",
            &[&(cp.size as i64), &cp.note],
        )?;
    }
    Ok(())
}

// Lease times are the database's clock in milliseconds (CockroachDB and YugabyteDB accept the
// expression too), so the nodes' own clocks never matter.
// A released lease (expires_at 0) is not renewed: its holder is shutting down.
const RENEW_LEASE: &str = "UPDATE sequencer_lease
     SET expires_at = (extract(epoch from clock_timestamp()) * 1000)::BIGINT + ttl_ms
     WHERE id = 1 AND token = $1 AND expires_at > 0";

const CLAIM_LEASE: &str = "INSERT INTO sequencer_lease (id, holder, token, expires_at, ttl_ms)
     VALUES (1, $1, 1, (extract(epoch from clock_timestamp()) * 1000)::BIGINT + $2, $2)
     ON CONFLICT (id) DO UPDATE SET
       token = CASE WHEN sequencer_lease.holder = excluded.holder
                    THEN sequencer_lease.token ELSE sequencer_lease.token + 1 END,
       holder = excluded.holder,
       expires_at = excluded.expires_at,
       ttl_ms = excluded.ttl_ms
     WHERE sequencer_lease.holder = excluded.holder
        OR sequencer_lease.expires_at < (extract(epoch from clock_timestamp()) * 1000)::BIGINT
     RETURNING token";

impl crate::LogStore for PgStore {
    fn claim_sequencer(&self, holder: &str, ttl: Duration) -> Result<Claim, StoreError> {
        let (holder, ttl) = (holder.to_owned(), ttl.as_millis() as i64);
        self.writer
            .lock()
            .expect("writer poisoned")
            .call(move |c| {
                if let Some(row) = c.query_opt(CLAIM_LEASE, &[&holder, &ttl])? {
                    return Ok(Claim::Granted {
                        token: row.get::<_, i64>(0) as u64,
                    });
                }
                let holder: String = c
                    .query_opt("SELECT holder FROM sequencer_lease WHERE id = 1", &[])?
                    .map_or_else(String::new, |r| r.get(0));
                Ok(Claim::HeldBy { holder })
            })
            .map_err(db("claim the sequencer lease"))
    }

    fn renew_sequencer(&self, token: u64) -> Result<bool, StoreError> {
        let token = token as i64;
        self.writer
            .lock()
            .expect("writer poisoned")
            .call(move |c| c.execute(RENEW_LEASE, &[&token]))
            .map(|renewed| renewed == 1)
            .map_err(db("renew the sequencer lease"))
    }

    fn release_sequencer(&self, token: u64) -> Result<(), StoreError> {
        let token = token as i64;
        self.writer
            .lock()
            .expect("writer poisoned")
            .call(move |c| {
                c.execute(
                    "UPDATE sequencer_lease SET expires_at = 0 WHERE id = 1 AND token = $1",
                    &[&token],
                )
            })
            .map(drop)
            .map_err(db("release the sequencer lease"))
    }

    fn subject(&self, subject: &str) -> Result<SubjectState, StoreError> {
        let subject = subject.to_owned();
        subject_state(self.read("read subject", move |c| row_postgres(c, &subject))?)
    }

    fn subject_events(
        &self,
        subject: &str,
        leaves: std::ops::Range<u64>,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        let subject = subject.to_owned();
        let (from, below, limit) = crate::rows::event_bounds(leaves, limit);
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = self.read("read events", move |c| {
            Ok(c.query(
                "SELECT leaf_index, commitment, sealed_body FROM events
                 WHERE subject_id = $1 AND sealed_body IS NOT NULL
                   AND leaf_index >= $2 AND leaf_index < $3
                 ORDER BY leaf_index LIMIT $4",
                &[&subject, &from, &below, &limit],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
        })?;
        rows.into_iter().map(crate::rows::event_row).collect()
    }

    fn subject_event_count(&self, subject: &str, below: u64) -> Result<u64, StoreError> {
        let subject = subject.to_owned();
        let (_, below, _) = crate::rows::event_bounds(0..below, 0);
        let count: i64 = self.read("count events", move |c| {
            Ok(c.query_opt(
                "SELECT COUNT(*) FROM events
                 WHERE subject_id = $1 AND sealed_body IS NOT NULL AND leaf_index < $2",
                &[&subject, &below],
            )?
            .map_or(0, |r| r.get(0)))
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
        let (size, note) = (checkpoint.size as i64, checkpoint.note.clone());
        let changed = self
            .writer
            .lock()
            .expect("writer poisoned")
            .call(move |c| {
                c.execute(
                    "INSERT INTO witnessed_checkpoint (id, size, note) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO UPDATE SET size = excluded.size, note = excluded.note
                     WHERE excluded.size > witnessed_checkpoint.size",
                    &[&size, &note],
                )
            })
            .map_err(db("record witnessed checkpoint"))?;
        Ok(changed == 1)
    }

    fn subject_logs(&self) -> Result<Vec<SubjectLog>, StoreError> {
        let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = self.read("read subject logs", |c| {
            Ok(c.query("SELECT label, size, peaks FROM subject_logs", &[])?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect())
        })?;
        rows.into_iter().map(crate::rows::subject_log).collect()
    }

    fn subject_logs_of(&self, labels: &[[u8; 32]]) -> Result<Vec<SubjectLog>, StoreError> {
        let wanted: Vec<Vec<u8>> = labels.iter().map(|l| l.to_vec()).collect();
        let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = self.read("read subject logs", move |c| {
            Ok(c.query(
                "SELECT label, size, peaks FROM subject_logs WHERE label = ANY($1)",
                &[&wanted],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
        })?;
        rows.into_iter().map(crate::rows::subject_log).collect()
    }

    fn log_since(&self, from: u64) -> Result<Option<LogUpdate>, StoreError> {
        let from = from as i64;
        // One statement is one snapshot: the trees are those the checkpoint commits to.
        type Read = Option<(StoredCheckpoint, Vec<Vec<u8>>, Vec<i64>, Vec<Vec<u8>>)>;
        let read: Read = self.read("read the log since a checkpoint", move |c| {
            Ok(c.query_opt(
                "SELECT size, note,
                   ARRAY(SELECT l.label FROM subject_logs l WHERE l.last_leaf >= $1 ORDER BY l.label),
                   ARRAY(SELECT l.size FROM subject_logs l WHERE l.last_leaf >= $1 ORDER BY l.label),
                   ARRAY(SELECT l.peaks FROM subject_logs l WHERE l.last_leaf >= $1 ORDER BY l.label)
                 FROM checkpoint WHERE id = 1",
                &[&from],
            )?
            .map(|r| {
                let checkpoint = StoredCheckpoint {
                    size: r.get::<_, i64>(0) as u64,
                    note: r.get(1),
                };
                (checkpoint, r.get(2), r.get(3), r.get(4))
            }))
        })?;
        read.map(|(checkpoint, labels, sizes, peaks)| {
            let subject_logs = labels
                .into_iter()
                .zip(sizes)
                .zip(peaks)
                .map(|((label, size), peaks)| crate::rows::subject_log((label, size, peaks)))
                .collect::<Result<_, _>>()?;
            Ok(LogUpdate {
                checkpoint,
                subject_logs,
            })
        })
        .transpose()
    }

    fn entries(&self, leaves: std::ops::Range<u64>) -> Result<Vec<[u8; 32]>, StoreError> {
        let want = (leaves.end - leaves.start) as usize;
        let (from, to) = (leaves.start as i64, leaves.end as i64);
        let blobs: Vec<Vec<u8>> = self.read("read entries", move |c| {
            Ok(c.query(
                "SELECT commitment FROM events WHERE leaf_index >= $1 AND leaf_index < $2
                 ORDER BY leaf_index",
                &[&from, &to],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        crate::rows::commitments(blobs, want)
    }

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let wanted: Vec<i64> = indexes.iter().map(|&i| i as i64).collect();
        let found: HashMap<u64, Vec<u8>> = self.read("read tree hashes", move |c| {
            Ok(c.query(
                "SELECT idx, hash FROM tree_hashes WHERE idx = ANY($1)",
                &[&wanted],
            )?
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect())
        })?;
        crate::rows::hashes_in_order(indexes, &found)
    }

    fn commit(
        &self,
        requests: &[WriteRequest],
        sequencer: &mut dyn Sequencer,
    ) -> Result<Vec<RequestOutcome>, StoreError> {
        let writer = self.writer.lock().expect("writer poisoned");
        // Round trip one: begin, then each request's precondition and changes, in order, so an
        // erasure earlier in the group is seen by a later request's precondition.
        let owned = requests.to_vec();
        // The transaction spans both round trips, so it is driven by hand on the session.
        let token = sequencer.fencing_token().map(|t| t as i64);
        type Checks = Option<Vec<Result<(), Conflict>>>;
        let checks = writer.call(move |c| -> Result<Checks, StoreError> {
            c.begin().map_err(db("begin"))?;
            // The fence, and the lease's renewal: the row is locked until this commit ends, so a
            // takeover either happened before (and this group is refused) or waits for it.
            if let Some(token) = token
                && c.execute(RENEW_LEASE, &[&token])
                    .map_err(db("renew the sequencer lease"))?
                    == 0
            {
                return Ok(None);
            }
            let mut known = standing(c, &owned).map_err(db("check preconditions"))?;
            owned
                .iter()
                .map(|r| apply_request(c, r, &mut known))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        });
        let checks = match checks {
            Ok(Some(c)) => c,
            Ok(None) => {
                writer.call(|c| c.rollback());
                return Err(StoreError::Fenced);
            }
            Err(e) => {
                writer.call(|c| c.rollback());
                return Err(e);
            }
        };
        // Sequencing happens here, on the writer's thread, between the two round trips.
        let mut batch = Batch::default();
        let mut outcomes = Vec::with_capacity(requests.len());
        for (request, check) in requests.iter().zip(checks) {
            if let Err(conflict) = check {
                outcomes.push(Err(conflict));
                continue;
            }
            let mut leaves = Vec::with_capacity(request.entries.len());
            for entry in &request.entries {
                let Appended {
                    index,
                    hashes,
                    subject_log,
                } = sequencer.append(&entry.subject, &entry.commitment);
                batch.leaf_index.push(index as i64);
                batch
                    .subject_id
                    .push(entry.sealed_body.as_ref().map(|_| entry.subject.clone()));
                batch.commitment.push(entry.commitment.to_vec());
                batch.sealed_body.push(entry.sealed_body.clone());
                for (idx, hash) in hashes {
                    batch.hash_idx.push(idx as i64);
                    batch.hash.push(hash.0.to_vec());
                }
                batch
                    .subject_logs
                    .insert(subject_log.label, (index, subject_log));
                leaves.push(index);
            }
            outcomes.push(Ok(leaves));
        }
        if !batch.leaf_index.is_empty() {
            batch.checkpoint = Some(sequencer.checkpoint());
        }
        // Round trip two: the batched appends, the checkpoint, and the commit.
        let written = writer.call(move |c| -> Result<(), postgres::Error> {
            write_batch(c, &batch)?;
            c.commit()
        });
        if let Err(e) = written {
            writer.call(|c| c.rollback());
            return Err(db("commit")(e));
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::contract_tests::PgFixture;

    #[test]
    #[cfg_attr(
        not(candor_postgres_tests),
        ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
    )]
    fn postgres_reports_serialization_failures_as_contention() {
        let pg = PgFixture::new("postgres_contention");
        // A real 40001 from the server, as CockroachDB raises under contention.
        let raised = pg.store.read("raise a serialization failure", |c| {
            c.batch_execute(
                "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$",
            )
        });
        assert!(
            matches!(raised, Err(StoreError::Contention { .. })),
            "{raised:?}"
        );
        // A read the server aborts once is run again.
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = attempts.clone();
        let second_time = pg.store.read("abort once", move |c| {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                c.batch_execute(
                    "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = 'serialization_failure'; END $$",
                )?;
            }
            Ok(c.query_opt("SELECT 7::BIGINT", &[])?.map(|r| r.get::<_, i64>(0)))
        });
        assert_eq!(second_time.unwrap(), Some(7));
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        // Other failures stay database errors, which nobody retries.
        let other = pg.store.read("select from nowhere", |c| {
            c.batch_execute("SELECT * FROM nowhere")
        });
        assert!(
            matches!(other, Err(StoreError::Database { .. })),
            "{other:?}"
        );
    }
}
