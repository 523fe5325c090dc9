//! What the slices' unit tests share: a vault over SQLite in a temporary directory, with an admin
//! and callers of every kind, and the databases a storage test runs on (SQLite always, PostgreSQL
//! where the tests were built with `CANDOR_TEST_POSTGRES`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use candor_core::{DataMap, SAMPLE_DATA_MAP, SubjectId};
use candor_crypto::RootKey;
use candor_log::NoteSigner;
use candor_store::{Db, PgSettings, PgStore, SqliteStore};
use zeroize::Zeroizing;

use crate::keys::{Delegation, NewKeySpec, Principal};
use crate::{SequencerClaim, Vault};

pub const OPS: &str = "essential.service.operations";
pub const EMAIL: &str = "marketing.communications.email";
pub const NOW: i64 = 1_800_000_000;

/// A vault and its callers.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub vault: Vault,
    pub admin: Principal,
    runtime: tokio::runtime::Runtime,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::Sqlite(Arc::new(
            SqliteStore::open(&dir.path().join("c.db"), &crate::schema()).unwrap(),
        ));
        let claim = SequencerClaim {
            holder: "test".into(),
            ttl: std::time::Duration::from_secs(10),
        };
        let root = RootKey::generate();
        let vault = Vault::open(
            db,
            DataMap::parse(SAMPLE_DATA_MAP).unwrap(),
            &root,
            crate::Keyring::in_memory(&root),
            NoteSigner::generate("test.candor.example/log").unwrap(),
            &claim,
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let admin = runtime
            .block_on(vault.keys().create_admin_key(NOW))
            .unwrap();
        let admin = vault.keys().authenticate(&admin.token, NOW).unwrap();
        Fixture {
            _dir: dir,
            vault,
            admin,
            runtime,
        }
    }

    /// Runs a use case to its end.
    pub fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }

    /// A service key for `purposes`, with the capabilities given.
    pub fn service(
        &self,
        purposes: &[&str],
        can_mint_sessions: bool,
        can_erase: bool,
    ) -> Principal {
        self.minter(
            purposes,
            can_mint_sessions,
            can_erase,
            Delegation::default(),
        )
    }

    /// A service key for `purposes` whose sessions may do what `sessions` allows.
    pub fn minter(
        &self,
        purposes: &[&str],
        can_mint_sessions: bool,
        can_erase: bool,
        sessions: Delegation,
    ) -> Principal {
        let spec = NewKeySpec {
            name: "svc".into(),
            purposes: purposes.iter().map(|p| p.to_string()).collect(),
            recipient: None,
            can_mint_sessions,
            can_erase,
            expires_at: None,
            sessions,
        };
        let key = self
            .run(self.vault.keys().create_key(&self.admin, spec, NOW))
            .unwrap();
        self.vault.keys().authenticate(&key.token, NOW).unwrap()
    }

    /// `id` exists, with a name collected for operations by `by`.
    pub fn customer(&self, id: &str, by: &Principal) -> SubjectId {
        let subject = SubjectId::parse(id).unwrap();
        let fields = vec![("user.name".to_owned(), Zeroizing::new("Ada".to_owned()))];
        self.run(
            self.vault
                .collection()
                .collect(by, &subject, OPS, fields, NOW),
        )
        .unwrap();
        subject
    }
}

static NEXT_SCHEMA: AtomicUsize = AtomicUsize::new(0);

/// A fresh SQLite database, with the folder that holds it.
pub fn sqlite() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(Arc::new(
        SqliteStore::open(&dir.path().join("c.db"), &crate::schema()).unwrap(),
    ));
    (db, dir)
}

/// A fresh PostgreSQL schema on `CANDOR_TEST_POSTGRES`, with what drops it afterwards.
pub fn postgres() -> (Db, impl Drop) {
    let schema = postgres_settings();
    let store = PgStore::open(&schema.0, &crate::schema()).unwrap();
    (Db::Postgres(Arc::new(store)), schema)
}

/// Settings for a fresh PostgreSQL schema on `CANDOR_TEST_POSTGRES`, which dropping them drops.
pub fn postgres_settings() -> DropSchema {
    let url = std::env::var("CANDOR_TEST_POSTGRES")
        .expect("CANDOR_TEST_POSTGRES was set when the tests were built");
    let mut settings = PgSettings::new(url);
    settings.pool_size = 2;
    settings.schema = Some(format!(
        "candor_vault_test_{}_{}",
        std::process::id(),
        NEXT_SCHEMA.fetch_add(1, Ordering::SeqCst)
    ));
    DropSchema(settings)
}

/// Runs each storage test, a function of a fresh `&Db`, on SQLite and on PostgreSQL; the
/// PostgreSQL run is ignored, with the reason, unless the tests were built with
/// `CANDOR_TEST_POSTGRES`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $name() {
                    let (db, _dir) = crate::testing::sqlite();
                    super::$name(&db);
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                #[cfg_attr(
                    not(candor_postgres_tests),
                    ignore = "needs PostgreSQL: set CANDOR_TEST_POSTGRES to a server URL (.ci/run does)"
                )]
                fn $name() {
                    let (db, _schema) = crate::testing::postgres();
                    super::$name(&db);
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;

/// A test's PostgreSQL schema, dropped with everything in it when this is.
pub struct DropSchema(pub PgSettings);

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let (Ok(mut c), Some(schema)) = (
            postgres::Client::connect(&self.0.url, postgres::NoTls),
            &self.0.schema,
        ) {
            let _ = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
}

/// A sequencer for groups that append no entries: changes alone.
pub struct ChangesOnly;

impl candor_store::Sequencer for ChangesOnly {
    fn append(&mut self, _: &str, _: &[u8; 32]) -> candor_store::Appended {
        unreachable!("these groups append no entries")
    }
    fn checkpoint(&mut self) -> candor_store::StoredCheckpoint {
        unreachable!("these groups append no entries")
    }
}

/// Applies `changes` in one group commit, as the writer would.
pub fn apply(db: &Db, changes: Vec<Arc<dyn candor_store::Change>>) {
    let request = candor_store::WriteRequest {
        requires_active: None,
        decided_on: None,
        once: None,
        changes,
        entries: vec![],
    };
    let outcomes = db.log().commit(&[request], &mut ChangesOnly).unwrap();
    assert_eq!(outcomes, vec![Ok(vec![])]);
}
