//! The kernel's storage contract as tests, written once against [`LogStore`] and run on every
//! backend: SQLite always, PostgreSQL when `CANDOR_TEST_POSTGRES` names a server (`.ci/run` sets
//! it). The slices' own tables are tested in their slices.

use std::sync::atomic::{AtomicUsize, Ordering};

use candor_log::{Frontier, Hash};

use std::sync::Arc;

use crate::{
    Appended, Change, Claim, Conflict, LogEntry, LogStore, OnceClaim, PgSettings, PgStore,
    Sequencer, SqliteStore, Standing, StoreError, StoredCheckpoint, SubjectLog, SubjectState, Tx,
    TxError, WriteRequest,
};

/// The registry's changes, as the slices that create, revise and erase customers make them.
#[derive(Debug)]
enum TestChange {
    Create(String),
    Erase(String, i64),
    Revise(String),
}

impl Change for TestChange {
    fn kind(&self) -> &'static str {
        "test"
    }
    fn to_wire(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        match self {
            TestChange::Create(subject) => {
                crate::customers::create(tx, subject, &[1, 2, 3], Some(1), 1)
            }
            TestChange::Erase(subject, at) => crate::customers::erase(tx, subject, *at),
            TestChange::Revise(_) => Ok(()),
        }
    }
    fn standing(&self) -> Option<(&str, Standing)> {
        Some(match self {
            TestChange::Create(subject) => (subject, Standing::Created),
            TestChange::Erase(subject, at) => (subject, Standing::Erased { at: *at }),
            TestChange::Revise(subject) => (subject, Standing::Revised),
        })
    }
}

pub struct TestSequencer(pub Frontier);

/// A test customer's label: their id, padded.
fn label(subject: &str) -> [u8; 32] {
    let mut label = [0u8; 32];
    label[..subject.len()].copy_from_slice(subject.as_bytes());
    label
}

impl Sequencer for TestSequencer {
    fn append(&mut self, subject: &str, commitment: &[u8; 32]) -> Appended {
        let (index, hashes) = self.0.append(commitment);
        Appended {
            index,
            hashes,
            subject_log: SubjectLog {
                label: label(subject),
                size: index + 1,
                peaks: vec![Hash([index as u8; 32])],
            },
        }
    }
    fn checkpoint(&mut self) -> StoredCheckpoint {
        StoredCheckpoint {
            size: self.0.size(),
            note: format!("test\n{}\n", self.0.size()),
        }
    }
}

/// A test sequencer committing under a sequencer claim's token.
struct Under<'a>(&'a mut TestSequencer, u64);

impl Sequencer for Under<'_> {
    fn append(&mut self, subject: &str, commitment: &[u8; 32]) -> Appended {
        self.0.append(subject, commitment)
    }
    fn checkpoint(&mut self) -> StoredCheckpoint {
        self.0.checkpoint()
    }
    fn fencing_token(&self) -> Option<u64> {
        Some(self.1)
    }
}

/// Two stores on one database, as two processes see it: one sequences at a time, and a
/// superseded claim's commits are refused.
fn one_sequencer_at_a_time(first: &dyn LogStore, second: &dyn LogStore) {
    let ttl = std::time::Duration::from_secs(60);
    let Claim::Granted { token: t1 } = first.claim_sequencer("first", ttl).unwrap() else {
        panic!("an unclaimed log is granted");
    };
    assert_eq!(
        first.claim_sequencer("first", ttl).unwrap(),
        Claim::Granted { token: t1 },
        "renewing keeps the token"
    );
    assert!(matches!(
        second.claim_sequencer("second", ttl).unwrap(),
        Claim::HeldBy { .. }
    ));
    let mut seq = TestSequencer(Frontier::default());
    first
        .commit(&[create("a")], &mut Under(&mut seq, t1))
        .unwrap();

    assert!(first.renew_sequencer(t1).unwrap());
    first.release_sequencer(t1).unwrap();
    assert!(
        !first.renew_sequencer(t1).unwrap(),
        "a released claim is not renewed"
    );
    let Claim::Granted { token: t2 } = second.claim_sequencer("second", ttl).unwrap() else {
        panic!("a released claim is granted to the next");
    };
    assert!(matches!(
        first.commit(&[event("a", 1)], &mut Under(&mut seq, t1)),
        Err(StoreError::Fenced)
    ));
    let mut seq = TestSequencer(Frontier::default());
    second
        .commit(&[event("a", 1)], &mut Under(&mut seq, t2))
        .unwrap();
    assert_eq!(first.latest_checkpoint().unwrap().unwrap().size, 1);
}

#[test]
fn sqlite_one_sequencer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let first = SqliteStore::open(&path, &[]).unwrap();
    let second = SqliteStore::open(&path, &[]).unwrap();
    one_sequencer_at_a_time(&first, &second);
}

#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn postgres_one_sequencer_at_a_time() {
    let pg = PgFixture::new("postgres_one_sequencer_at_a_time");
    let second = PgStore::open(&pg.settings, &[]).unwrap();
    one_sequencer_at_a_time(&pg.store, &second);
}

/// Stand-ins for the slices whose first migrations the one list's first migration made, which a
/// database counted in that list is adopted as having (see `migrations::adopted`).
pub const LEGACY_SLICES: &[&crate::SchemaPart] = &[
    &crate::SchemaPart {
        owner: "subjects",
        migrations: &[LEGACY_STAND_IN],
    },
    &crate::SchemaPart {
        owner: "consent",
        migrations: &[LEGACY_STAND_IN],
    },
    &crate::SchemaPart {
        owner: "keys",
        migrations: &[LEGACY_STAND_IN],
    },
];

const LEGACY_STAND_IN: crate::Migration = crate::Migration {
    name: "a slice's tables",
    sqlite: "",
    postgres: "",
};

pub fn create(subject: &str) -> WriteRequest {
    WriteRequest {
        changes: vec![Arc::new(TestChange::Create(subject.into()))],
        ..Default::default()
    }
}

pub fn event(subject: &str, byte: u8) -> WriteRequest {
    WriteRequest {
        requires_active: Some(subject.into()),
        decided_on: None,
        once: None,
        changes: vec![],
        entries: vec![LogEntry {
            subject: subject.into(),
            commitment: [byte; 32],
            sealed_body: Some(vec![byte]),
        }],
    }
}

pub fn erase(subject: &str, at: i64) -> WriteRequest {
    WriteRequest {
        requires_active: Some(subject.into()),
        decided_on: None,
        once: None,
        changes: vec![Arc::new(TestChange::Erase(subject.into(), at))],
        entries: vec![],
    }
}

/// The contract's tests, each a function of a fresh, empty store.
pub fn a_group_commits_with_its_leaves_and_checkpoint_and_conflicts_stay_alone(
    store: &dyn LogStore,
) {
    let mut seq = TestSequencer(Frontier::default());
    store.commit(&[create("a")], &mut seq).unwrap();
    assert_eq!(
        store.latest_checkpoint().unwrap(),
        None,
        "no leaves, no checkpoint"
    );

    let outcomes = store
        .commit(&[event("a", 1), event("ghost", 2), event("a", 3)], &mut seq)
        .unwrap();
    assert_eq!(
        outcomes,
        vec![Ok(vec![0]), Err(Conflict::SubjectUnknown), Ok(vec![1])]
    );
    assert_eq!(store.latest_checkpoint().unwrap().unwrap().size, 2);
    let events = store.subject_events("a", 0..u64::MAX, usize::MAX).unwrap();
    assert_eq!(
        events.iter().map(|e| e.leaf_index).collect::<Vec<_>>(),
        [0, 1]
    );
    // A page is a range of leaves and a limit; the count is of the customer's own below a size.
    let page = |leaves, limit| -> Vec<u64> {
        store
            .subject_events("a", leaves, limit)
            .unwrap()
            .iter()
            .map(|e| e.leaf_index)
            .collect()
    };
    assert_eq!(page(0..u64::MAX, 1), [0]);
    assert_eq!(page(1..u64::MAX, 5), [1]);
    assert_eq!(page(0..1, 5), [0]);
    assert_eq!(page(2..u64::MAX, 5), Vec::<u64>::new());
    assert_eq!(store.subject_event_count("a", 1).unwrap(), 1);
    assert_eq!(store.subject_event_count("a", u64::MAX).unwrap(), 2);
    assert_eq!(store.subject_event_count("ghost", u64::MAX).unwrap(), 0);

    let reader = crate::StoreHashes(store);
    assert_eq!(candor_log::tree_hash(2, &reader).unwrap(), seq.0.root());
    assert_eq!(store.entries(0..2).unwrap(), vec![[1; 32], [3; 32]]);
    // One batched read answers in the order asked, repeats included.
    let each: Vec<Hash> = [2, 0, 1]
        .iter()
        .map(|&i| store.read_hashes(&[i]).unwrap()[0])
        .collect();
    assert_eq!(
        store.read_hashes(&[2, 0, 1, 0]).unwrap(),
        [each.clone(), vec![each[1]]].concat()
    );
    assert!(matches!(
        store.read_hashes(&[0, 3]),
        Err(StoreError::Corrupt("missing tree hash"))
    ));
    assert!(matches!(
        store.entries(1..3),
        Err(StoreError::Corrupt("missing log entries"))
    ));

    store.commit(&[erase("a", 9)], &mut seq).unwrap();
    assert_eq!(store.subject("a").unwrap(), SubjectState::Erased { at: 9 });
    assert_eq!(store.subject("nobody").unwrap(), SubjectState::Unknown);
    assert!(
        store
            .subject_events("a", 0..u64::MAX, usize::MAX)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.subject_event_count("a", u64::MAX).unwrap(), 0);
    let late = store.commit(&[event("a", 4)], &mut seq).unwrap();
    assert_eq!(late, vec![Err(Conflict::SubjectErased)]);
    assert_eq!(candor_log::tree_hash(2, &reader).unwrap(), seq.0.root());
}

pub fn an_erasure_earlier_in_a_group_stops_a_later_request(store: &dyn LogStore) {
    let mut seq = TestSequencer(Frontier::default());
    store.commit(&[create("b")], &mut seq).unwrap();
    let outcomes = store
        .commit(&[event("b", 1), erase("b", 5), event("b", 2)], &mut seq)
        .unwrap();
    assert_eq!(
        outcomes,
        vec![Ok(vec![0]), Ok(vec![]), Err(Conflict::SubjectErased)]
    );
    assert_eq!(store.latest_checkpoint().unwrap().unwrap().size, 1);
}

/// A request decided on a customer's revision applies only while it is still theirs: a
/// revision earlier in the same group, or in an earlier one, makes it stale.
pub fn a_request_decided_on_an_old_revision_is_stale(store: &dyn LogStore) {
    let mut seq = TestSequencer(Frontier::default());
    let decided = |byte: u8, revision: u64| WriteRequest {
        decided_on: Some(revision),
        ..event("a", byte)
    };
    let revise = WriteRequest {
        changes: vec![Arc::new(TestChange::Revise("a".into()))],
        ..Default::default()
    };
    store.commit(&[create("a")], &mut seq).unwrap();
    assert_eq!(
        store.commit(&[decided(1, 0)], &mut seq).unwrap(),
        vec![Ok(vec![0])]
    );
    assert_eq!(
        store
            .commit(
                &[decided(2, 0), revise.clone(), decided(3, 0), decided(4, 1)],
                &mut seq
            )
            .unwrap(),
        vec![Ok(vec![1]), Ok(vec![]), Err(Conflict::Stale), Ok(vec![2])]
    );
    assert_eq!(
        store.commit(&[decided(5, 0)], &mut seq).unwrap(),
        vec![Err(Conflict::Stale)],
        "stale across groups too"
    );
    store.commit(&[revise], &mut seq).unwrap();
    assert_eq!(
        store.commit(&[decided(6, 2)], &mut seq).unwrap(),
        vec![Ok(vec![3])]
    );
    assert_eq!(store.latest_checkpoint().unwrap().unwrap().size, 4);
}

/// A one-time claim is made once: the same digest later in the group, or in a later group, is
/// refused alone; a claim refused for its customer is not spent; an expired claim is forgotten.
pub fn a_one_time_claim_is_honoured_once(store: &dyn LogStore) {
    let mut seq = TestSequencer(Frontier::default());
    let claiming = |subject: &str, byte: u8, digest: u8, expires_at: i64, now: i64| WriteRequest {
        once: Some(OnceClaim {
            digest: [digest; 32],
            expires_at,
            now,
        }),
        ..event(subject, byte)
    };
    store.commit(&[create("a")], &mut seq).unwrap();
    assert_eq!(
        store
            .commit(
                &[
                    claiming("nobody", 1, 9, 100, 10),
                    claiming("a", 2, 9, 100, 10),
                    claiming("a", 3, 9, 100, 10),
                    claiming("a", 4, 8, 100, 10),
                ],
                &mut seq
            )
            .unwrap(),
        vec![
            Err(Conflict::SubjectUnknown),
            Ok(vec![0]),
            Err(Conflict::Claimed),
            Ok(vec![1])
        ]
    );
    assert_eq!(
        store
            .commit(&[claiming("a", 5, 9, 100, 20)], &mut seq)
            .unwrap(),
        vec![Err(Conflict::Claimed)],
        "spent across groups too"
    );
    // Once the secret has expired it is refused anyway, so its claim is dropped.
    assert_eq!(
        store
            .commit(&[claiming("a", 6, 9, 300, 200)], &mut seq)
            .unwrap(),
        vec![Ok(vec![2])]
    );
}

pub fn customer_trees_keep_their_last_state(store: &dyn LogStore) {
    let mut seq = TestSequencer(Frontier::default());
    store
        .commit(&[create("a"), create("bb")], &mut seq)
        .unwrap();
    store
        .commit(&[event("a", 1), event("bb", 2), event("a", 3)], &mut seq)
        .unwrap();
    let mut logs = store.subject_logs().unwrap();
    logs.sort_by_key(|l| l.label);
    assert_eq!(
        logs.iter()
            .map(|l| (l.label[0], l.size))
            .collect::<Vec<_>>(),
        vec![(b'a', 3), (b'b', 2)],
        "one row per customer, the last append's"
    );
    assert_eq!(logs[0].peaks, vec![Hash([2; 32])]);

    let mut some = store
        .subject_logs_of(&[label("bb"), label("nobody"), label("a")])
        .unwrap();
    some.sort_by_key(|l| l.label);
    assert_eq!(some, logs, "the trees asked for, those that exist");
    assert!(store.subject_logs_of(&[]).unwrap().is_empty());
}

pub fn a_follower_reads_only_the_trees_that_grew_since_its_checkpoint(store: &dyn LogStore) {
    assert_eq!(store.log_since(0).unwrap(), None, "an empty log");
    let mut seq = TestSequencer(Frontier::default());
    store
        .commit(&[create("a"), create("bb"), create("ccc")], &mut seq)
        .unwrap();
    store
        .commit(&[event("a", 1), event("bb", 2)], &mut seq)
        .unwrap();
    let first = store.log_since(0).unwrap().unwrap();
    assert_eq!(
        first.checkpoint,
        store.latest_checkpoint().unwrap().unwrap()
    );
    let labels = |update: &crate::LogUpdate| {
        let mut l: Vec<(u8, u64)> = update
            .subject_logs
            .iter()
            .map(|l| (l.label[0], l.size))
            .collect();
        l.sort();
        l
    };
    assert_eq!(labels(&first), vec![(b'a', 1), (b'b', 2)]);

    store
        .commit(&[event("ccc", 3), event("a", 4)], &mut seq)
        .unwrap();
    let next = store.log_since(first.checkpoint.size).unwrap().unwrap();
    assert_eq!(next.checkpoint.size, 4);
    assert_eq!(
        labels(&next),
        vec![(b'a', 4), (b'c', 3)],
        "only the trees that grew at or after leaf 2, as of the checkpoint"
    );
    assert!(
        store.log_since(4).unwrap().unwrap().subject_logs.is_empty(),
        "nothing grew since the latest checkpoint"
    );
}

pub fn only_a_larger_witnessed_checkpoint_replaces_the_recorded_one(store: &dyn LogStore) {
    assert_eq!(store.latest_witnessed().unwrap(), None);
    let cp = |size: u64| StoredCheckpoint {
        size,
        note: format!("n{size}"),
    };
    assert!(store.record_witnessed(&cp(5)).unwrap());
    assert!(!store.record_witnessed(&cp(3)).unwrap());
    assert!(!store.record_witnessed(&cp(5)).unwrap());
    assert!(store.record_witnessed(&cp(9)).unwrap());
    assert_eq!(store.latest_witnessed().unwrap(), Some(cp(9)));
}

/// A fresh PostgreSQL schema for one test, dropped afterwards. Tests that take one are ignored
/// unless `CANDOR_TEST_POSTGRES` was set when they were built (see `build.rs`).
pub struct PgFixture {
    pub store: PgStore,
    settings: PgSettings,
}

static NEXT_SCHEMA: AtomicUsize = AtomicUsize::new(0);

impl PgFixture {
    pub fn new(test: &str) -> PgFixture {
        let url = std::env::var("CANDOR_TEST_POSTGRES")
            .unwrap_or_else(|_| panic!("{test} needs CANDOR_TEST_POSTGRES, set when it was built"));
        let mut settings = PgSettings::new(url);
        settings.pool_size = 2;
        settings.connect_retry = std::time::Duration::from_secs(5);
        settings.schema = Some(format!(
            "candor_test_{}_{}",
            std::process::id(),
            NEXT_SCHEMA.fetch_add(1, Ordering::SeqCst)
        ));
        let store = PgStore::open(&settings, &[])
            .unwrap_or_else(|e| panic!("CANDOR_TEST_POSTGRES is set but unusable: {e:?}"));
        PgFixture { store, settings }
    }
}

impl Drop for PgFixture {
    fn drop(&mut self) {
        if let (Ok(mut c), Some(schema)) = (
            postgres::Client::connect(&self.settings.url, postgres::NoTls),
            &self.settings.schema,
        ) {
            let _ = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = crate::SqliteStore::open(&dir.path().join("c.db"), &[]).unwrap();
                    super::$name(&store);
                }
            )*
        }
        mod postgres_backend {
            $(
                #[test]
                #[cfg_attr(not(candor_postgres_tests), ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)")]
                fn $name() {
                    let pg = super::PgFixture::new(stringify!($name));
                    super::$name(&pg.store);
                }
            )*
        }
    };
}

on_every_backend!(
    a_group_commits_with_its_leaves_and_checkpoint_and_conflicts_stay_alone,
    an_erasure_earlier_in_a_group_stops_a_later_request,
    a_request_decided_on_an_old_revision_is_stale,
    a_one_time_claim_is_honoured_once,
    customer_trees_keep_their_last_state,
    a_follower_reads_only_the_trees_that_grew_since_its_checkpoint,
    only_a_larger_witnessed_checkpoint_replaces_the_recorded_one,
);

#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn postgres_refuses_a_newer_schema() {
    let pg = PgFixture::new("postgres_refuses_a_newer_schema");
    let schema = pg.settings.schema.clone().unwrap();
    let mut c = postgres::Client::connect(&pg.settings.url, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "UPDATE {schema}.candor_schema SET version = 99 WHERE id = 1"
    ))
    .unwrap();
    assert!(matches!(
        PgStore::open(&pg.settings, &[]),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
    let _ = SqliteStore::open;
}

/// On PostgreSQL too, a part counted further than this build knows is refused, as is a part it
/// lacks, and a database counted in the one list is adopted part by part.
#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn postgres_counts_migrations_per_part() {
    let pg = PgFixture::new("postgres_counts_migrations_per_part");
    let schema = pg.settings.schema.clone().unwrap();
    let mut c = postgres::Client::connect(&pg.settings.url, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DROP TABLE {schema}.candor_migrations; DROP INDEX {schema}.subjects_by_key_epoch; ALTER TABLE {schema}.subjects DROP COLUMN key_epoch; ALTER TABLE {schema}.subjects DROP COLUMN revision; DROP TABLE {schema}.once_claims;
         UPDATE {schema}.candor_schema SET version = 3"
    ))
    .unwrap();
    assert!(matches!(
        PgStore::open(&pg.settings, &[]),
        Err(StoreError::UnknownSchemaPart { .. })
    ));
    drop(PgStore::open(&pg.settings, LEGACY_SLICES).unwrap());
    let counts: Vec<(String, i64)> = c
        .query(
            &format!("SELECT owner, applied FROM {schema}.candor_migrations ORDER BY owner"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = [("consent", 1), ("kernel", 6), ("keys", 1), ("subjects", 1)];
    assert_eq!(
        counts,
        expected.map(|(o, n)| (o.to_owned(), n)),
        "adopted from the one list's count, and migrated on"
    );
    c.batch_execute(&format!(
        "UPDATE {schema}.candor_migrations SET applied = 99 WHERE owner = 'kernel'"
    ))
    .unwrap();
    assert!(matches!(
        PgStore::open(&pg.settings, LEGACY_SLICES),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
#[cfg_attr(
    not(candor_postgres_tests),
    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
)]
fn postgres_reconnects_after_the_server_drops_its_connections() {
    let pg = PgFixture::new("postgres_reconnects");
    let store = &pg.store;
    let mut seq = TestSequencer(Frontier::default());
    store.commit(&[create("a")], &mut seq).unwrap();

    let name = format!("candor/{}", pg.settings.schema.as_deref().unwrap());
    let mut admin = postgres::Client::connect(&pg.settings.url, postgres::NoTls).unwrap();
    let dropped: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
             WHERE application_name = $1) AS t",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert_eq!(dropped, 3, "two readers and the writer");

    // Each connection fails the call that finds it dropped, at most, then is replaced.
    let mut failures = 0;
    for _ in 0..3 {
        match store.subject("a") {
            Ok(state) => assert!(matches!(state, SubjectState::Active { .. })),
            Err(_) => failures += 1,
        }
    }
    assert!(failures <= 2, "{failures} failed reads");
    assert!(store.subject("a").is_ok());
    // The writer loses at most the group that found its connection gone, never half of one.
    let first = store.commit(&[event("a", 1)], &mut seq);
    if first.is_err() {
        store.commit(&[event("a", 1)], &mut seq).unwrap();
    }
    assert_eq!(store.latest_checkpoint().unwrap().unwrap().size, 1);
    assert_eq!(
        store
            .subject_events("a", 0..u64::MAX, usize::MAX)
            .unwrap()
            .len(),
        1
    );
}
