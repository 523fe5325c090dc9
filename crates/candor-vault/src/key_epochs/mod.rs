//! Tenant key epochs: how an erasure reaches backups and old disk blocks.
//!
//! Every customer's data key is wrapped under the key of an epoch, kept in the node's
//! [`Keyring`] outside the database. On a schedule (and when the admin asks) a new epoch starts;
//! live customers' keys are rewrapped into it (32 bytes each, no field re-encrypted); an epoch
//! that no live key uses any more is retired, and destroyed once the backups' retention has
//! passed since. A database copy taken before an erasure holds the customer's key wrapped under
//! an epoch that is destroyed at most one epoch length plus the retention (plus one check
//! interval) later, and from then on it opens nothing of theirs, whoever holds the root key.
//!
//! The database keeps only each epoch's dates (`key_epochs`) and, with each customer, the
//! epoch their key is wrapped under: never key material. Invariants, each held inside the
//! group commit's transaction:
//! - an epoch is retired only when no live key is wrapped under it or an earlier one, and no
//!   key is created under a retired epoch, so a retired epoch never again wraps a live key;
//! - only retired epochs are destroyed, oldest first, and a keyring moves past an epoch only
//!   once the database says it is destroyed, so no live customer's key is ever lost.
//!
//! Starting and destroying epochs are events of the operator log.

mod keyring;

use std::sync::{Arc, RwLock};

use candor_core::{Actor, EventKind, SubjectId};
use candor_store::{
    Change, Db, Migration, OnceClaim, SchemaPart, Tx, TxError, TypedChange, customers,
};
use rusqlite::params;
use serde::{Deserialize, Serialize};

pub use keyring::{Keyring, KeyringError};

use crate::VaultError;
use crate::kernel::Journal;
use crate::keys::Principal;
use crate::operator::OperatorLog;
use crate::registry::{Slice, change};
use crate::wire::b64;

/// How many keys one rewrap change moves.
const REWRAP_BATCH: i64 = 256;

/// The slice, registered: the epochs' dates and its changes.
pub(crate) const SLICE: Slice = Slice {
    schema: Some(SchemaPart {
        owner: "key_epochs",
        migrations: &[Migration {
            name: "tenant key epochs: when each started, stopped wrapping live keys, was destroyed",
            sqlite: r#"
CREATE TABLE key_epochs (
    epoch        INTEGER PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    retired_at   INTEGER,
    destroyed_at INTEGER
) STRICT;
"#,
            postgres: r#"
CREATE TABLE key_epochs (
    epoch        BIGINT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    retired_at   BIGINT,
    destroyed_at BIGINT
);
"#,
        }],
    }),
    changes: &[
        change::<StartEpoch>(),
        change::<RewrapKeys>(),
        change::<RetireEpochs>(),
        change::<DestroyEpochs>(),
    ],
    on_erasure: None,
};

/// How often epochs roll and how long retired ones are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochPolicy {
    /// Seconds from an epoch's start to the next's.
    pub epoch_secs: i64,
    /// Seconds a retired epoch is kept: the database's backup retention, so every backup still
    /// kept opens.
    pub retention_secs: i64,
    /// Seconds between the checks that roll, retire and destroy epochs.
    pub check_secs: i64,
}

impl Default for EpochPolicy {
    fn default() -> EpochPolicy {
        EpochPolicy {
            epoch_secs: 30 * 86_400,
            retention_secs: 30 * 86_400,
            check_secs: 3_600,
        }
    }
}

impl EpochPolicy {
    /// How long after an erasure a copy of the database taken before it may still open the
    /// customer's data, with the root key and the keyring of the day: the copy's epoch rolls
    /// within an epoch length, is retired once rewrapping is done, and is destroyed a retention
    /// later, at the first check after.
    pub fn erasure_bound_secs(&self) -> i64 {
        self.epoch_secs + self.retention_secs + self.check_secs
    }
}

/// One epoch as the database records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochRecord {
    /// Its number.
    pub epoch: u32,
    /// Unix seconds.
    pub started_at: i64,
    /// When it stopped wrapping any live customer's key.
    pub retired_at: Option<i64>,
    /// When it was destroyed.
    pub destroyed_at: Option<i64>,
}

/// What an operator sees of the epochs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochStatus {
    /// The epoch new keys are wrapped under.
    pub current: u32,
    /// The oldest epoch this node's keyring still holds.
    pub oldest_held: u32,
    /// The policy's epoch length, in seconds.
    pub epoch_secs: i64,
    /// The policy's retention, in seconds.
    pub retention_secs: i64,
    /// See [`EpochPolicy::erasure_bound_secs`].
    pub erasure_bound_secs: i64,
    /// Every epoch the database records, oldest first.
    pub epochs: Vec<EpochRecord>,
}

/// An epoch started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartEpoch {
    /// Its number.
    pub epoch: u32,
    /// Unix seconds.
    pub at: i64,
}

impl TypedChange for StartEpoch {
    const KIND: &'static str = "start_key_epoch";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        let epoch = i64::from(self.epoch);
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "INSERT INTO key_epochs (epoch, started_at) VALUES (?1, ?2)
                     ON CONFLICT (epoch) DO NOTHING",
                )?
                .execute(params![epoch, self.at])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "INSERT INTO key_epochs (epoch, started_at) VALUES ($1, $2)
                     ON CONFLICT (epoch) DO NOTHING",
                    &[&epoch, &self.at],
                )?;
            }
        }
        Ok(())
    }
}

/// One customer's key, rewrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrapped {
    /// Customer id.
    pub subject: String,
    /// The wrapped key as read; the row changes only if it still holds it.
    #[serde(with = "b64")]
    pub from: Vec<u8>,
    /// The same key wrapped under the new epoch.
    #[serde(with = "b64")]
    pub to: Vec<u8>,
}

/// Customers' keys, rewrapped into `epoch`. A customer erased (or rewrapped) since their key
/// was read keeps their row as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapKeys {
    /// The epoch they are wrapped under now.
    pub epoch: u32,
    /// The keys.
    pub keys: Vec<Rewrapped>,
}

impl TypedChange for RewrapKeys {
    const KIND: &'static str = "rewrap_keys";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        for key in &self.keys {
            customers::rewrap(tx, &key.subject, &key.from, &key.to, i64::from(self.epoch))?;
        }
        Ok(())
    }
}

/// Every epoch up to `through` is retired, if no live key is wrapped under any of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireEpochs {
    /// The last epoch to retire.
    pub through: u32,
    /// Unix seconds.
    pub at: i64,
}

impl TypedChange for RetireEpochs {
    const KIND: &'static str = "retire_key_epochs";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        let through = i64::from(self.through);
        if customers::live_key_at_or_before(tx, through)? {
            return Ok(());
        }
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "UPDATE key_epochs SET retired_at = ?2 WHERE epoch <= ?1 AND retired_at IS NULL",
                )?
                .execute(params![through, self.at])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "UPDATE key_epochs SET retired_at = $2 WHERE epoch <= $1 AND retired_at IS NULL",
                    &[&through, &self.at],
                )?;
            }
        }
        Ok(())
    }
}

/// Every retired epoch up to `through` is destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyEpochs {
    /// The last epoch to destroy.
    pub through: u32,
    /// Unix seconds.
    pub at: i64,
}

impl TypedChange for DestroyEpochs {
    const KIND: &'static str = "destroy_key_epochs";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        let through = i64::from(self.through);
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "UPDATE key_epochs SET destroyed_at = ?2
                     WHERE epoch <= ?1 AND retired_at IS NOT NULL AND destroyed_at IS NULL",
                )?
                .execute(params![through, self.at])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "UPDATE key_epochs SET destroyed_at = $2
                     WHERE epoch <= $1 AND retired_at IS NOT NULL AND destroyed_at IS NULL",
                    &[&through, &self.at],
                )?;
            }
        }
        Ok(())
    }
}

/// Whether `epoch` is retired (or destroyed), inside a group's transaction: a new customer's
/// key is never created under one.
pub(crate) fn is_retired(tx: &mut Tx<'_>, epoch: u32) -> Result<bool, TxError> {
    let epoch = i64::from(epoch);
    Ok(match tx {
        Tx::Sqlite(c) => c
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM key_epochs WHERE epoch >= ?1 AND retired_at IS NOT NULL)",
            )?
            .query_row([epoch], |r| r.get::<_, bool>(0))?,
        Tx::Postgres(c) => c
            .query_opt(
                "SELECT EXISTS (SELECT 1 FROM key_epochs WHERE epoch >= $1 AND retired_at IS NOT NULL)",
                &[&epoch],
            )?
            .is_some_and(|r| r.get::<_, bool>(0)),
    })
}

fn epoch_number(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Every epoch the database records, oldest first.
pub(crate) fn records(db: &Db) -> Result<Vec<EpochRecord>, VaultError> {
    const SQL: &str =
        "SELECT epoch, started_at, retired_at, destroyed_at FROM key_epochs ORDER BY epoch";
    let rows: Vec<(i64, i64, Option<i64>, Option<i64>)> = db.read(
        "read key epochs",
        |c| {
            c.prepare_cached(SQL)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        },
        |c| {
            Ok(c.query(SQL, &[])?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect())
        },
    )?;
    Ok(rows
        .into_iter()
        .map(
            |(epoch, started_at, retired_at, destroyed_at)| EpochRecord {
                epoch: epoch_number(epoch),
                started_at,
                retired_at,
                destroyed_at,
            },
        )
        .collect())
}

/// Whether the database's keys are wrapped under epochs already: a node whose keyring is
/// missing then must not start with a new one, which would open none of them.
pub fn in_use(db: &Db) -> Result<bool, VaultError> {
    const SQL: &str = "SELECT EXISTS (SELECT 1 FROM key_epochs)
        OR EXISTS (SELECT 1 FROM subjects WHERE key_epoch IS NOT NULL)";
    Ok(db.read(
        "read whether key epochs are in use",
        |c| c.prepare_cached(SQL)?.query_row([], |r| r.get(0)),
        |c| Ok(c.query_opt(SQL, &[])?.is_some_and(|r| r.get(0))),
    )?)
}

/// The epoch new keys are wrapped under: the latest started, and never one this node's keyring
/// has moved past (a database older than the keyring starts again from the keyring's oldest).
pub(crate) fn current(db: &Db, keyring: &Keyring) -> Result<u32, VaultError> {
    const SQL: &str = "SELECT max(epoch) FROM key_epochs";
    let latest: Option<i64> = db.read(
        "read the current key epoch",
        |c| c.prepare_cached(SQL)?.query_row([], |r| r.get(0)),
        |c| Ok(c.query_opt(SQL, &[])?.and_then(|r| r.get(0))),
    )?;
    Ok(latest.map_or(0, epoch_number).max(keyring.oldest()))
}

/// Rolling, retiring and destroying epochs.
pub struct KeyEpochs {
    db: Db,
    keyring: Arc<Keyring>,
    journal: Journal,
    operator: Arc<OperatorLog>,
    policy: RwLock<EpochPolicy>,
    /// One roll or settlement at a time on this node.
    busy: tokio::sync::Mutex<()>,
}

impl KeyEpochs {
    /// The use case over its parts, with the default policy.
    pub(crate) fn new(
        db: Db,
        keyring: Arc<Keyring>,
        journal: Journal,
        operator: Arc<OperatorLog>,
    ) -> KeyEpochs {
        KeyEpochs {
            db,
            keyring,
            journal,
            operator,
            policy: RwLock::new(EpochPolicy::default()),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Rolls and keeps epochs by `policy` from now on.
    pub fn set_policy(&self, policy: EpochPolicy) {
        *self.policy.write().expect("policy poisoned") = policy;
    }

    /// The policy in force.
    pub fn policy(&self) -> EpochPolicy {
        *self.policy.read().expect("policy poisoned")
    }

    /// The epochs, for the admin.
    pub fn status(&self, principal: &Principal) -> Result<EpochStatus, VaultError> {
        admin_only(principal)?;
        self.snapshot()
    }

    fn snapshot(&self) -> Result<EpochStatus, VaultError> {
        let policy = self.policy();
        Ok(EpochStatus {
            current: current(&self.db, &self.keyring)?,
            oldest_held: self.keyring.oldest(),
            epoch_secs: policy.epoch_secs,
            retention_secs: policy.retention_secs,
            erasure_bound_secs: policy.erasure_bound_secs(),
            epochs: records(&self.db)?,
        })
    }

    /// Starts a new epoch now (admin only), then rewraps, retires and destroys as the policy
    /// says: what an operator does after a copy of the database may have leaked.
    pub async fn roll(&self, principal: &Principal, now: i64) -> Result<EpochStatus, VaultError> {
        admin_only(principal)?;
        let _busy = self.busy.lock().await;
        self.start(
            current(&self.db, &self.keyring)? + 1,
            principal.actor(),
            now,
        )
        .await?;
        self.settle(principal.actor(), now).await?;
        self.snapshot()
    }

    /// The scheduled check, on the node that sequences the log: starts the first epoch if the
    /// database has none, rolls when the current one has run its length, then settles.
    pub async fn check(&self, now: i64) -> Result<(), VaultError> {
        let _busy = self.busy.lock().await;
        let epoch = current(&self.db, &self.keyring)?;
        let records = records(&self.db)?;
        match records.iter().find(|r| r.epoch == epoch) {
            None => self.start(epoch, Actor::Candor, now).await?,
            Some(r) if now - r.started_at >= self.policy().epoch_secs => {
                self.start(epoch + 1, Actor::Candor, now).await?;
            }
            Some(_) => {}
        }
        self.settle(Actor::Candor, now).await
    }

    /// Destroys here what the database says is destroyed: what a node that does not sequence
    /// the log does on each check.
    pub fn follow(&self) -> Result<(), VaultError> {
        let records = records(&self.db)?;
        self.move_keyring(&records)
    }

    async fn start(&self, epoch: u32, actor: Actor, now: i64) -> Result<(), VaultError> {
        let entry = self
            .operator
            .entry(actor, EventKind::KeyEpochStarted { epoch }, now)
            .await?;
        let change: Arc<dyn Change> = Arc::new(StartEpoch { epoch, at: now });
        if self.once(b"start", epoch, now, change, entry).await? {
            tracing::info!(epoch, "key epoch started");
        }
        Ok(())
    }

    /// Commits `change` with its operator event once per `step` and `epoch`, whichever node
    /// asks first (two nodes rolling or destroying at once log it once); false if it was done.
    async fn once(
        &self,
        step: &[u8],
        epoch: u32,
        now: i64,
        change: Arc<dyn Change>,
        entry: candor_store::LogEntry,
    ) -> Result<bool, VaultError> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"candor.key_epochs.v1\0")
            .chain_update(step)
            .chain_update(epoch.to_be_bytes())
            .finalize()
            .into();
        let once = OnceClaim {
            digest,
            // Epoch numbers only grow, so the claim need outlive only any clock skew; a decade
            // is far beyond that and keeps the table small.
            expires_at: now + 10 * 365 * 86_400,
            now,
        };
        match self
            .journal
            .submit_once(&SubjectId::operator(), once, vec![change], vec![entry])
            .await
        {
            Ok(_) => Ok(true),
            Err(VaultError::AlreadyClaimed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Rewraps every live key wrapped under an earlier epoch into the current one, retires the
    /// epochs left without live keys, destroys those retired for the retention, and moves the
    /// keyring past them.
    async fn settle(&self, actor: Actor, now: i64) -> Result<(), VaultError> {
        let epoch = current(&self.db, &self.keyring)?;
        let rewrapped = self.rewrap_into(epoch).await?;
        if rewrapped > 0 {
            tracing::info!(epoch, keys = rewrapped, "customer keys rewrapped");
        }
        if let Some(through) = records(&self.db)?
            .iter()
            .filter(|r| r.epoch < epoch && r.retired_at.is_none())
            .map(|r| r.epoch)
            .max()
        {
            let change: Arc<dyn Change> = Arc::new(RetireEpochs { through, at: now });
            self.journal
                .submit(None, None, vec![change], vec![])
                .await?;
        }
        let cutoff = now - self.policy().retention_secs;
        let recorded = records(&self.db)?;
        let due = recorded
            .iter()
            .take_while(|r| r.destroyed_at.is_some() || r.retired_at.is_some_and(|at| at <= cutoff))
            .filter(|r| r.destroyed_at.is_none())
            .last();
        if let Some(due) = due {
            let (through, retired_at) = (due.epoch, due.retired_at.expect("retired"));
            let entry = self
                .operator
                .entry(
                    actor,
                    EventKind::KeyEpochsDestroyed {
                        through,
                        retired_at,
                    },
                    now,
                )
                .await?;
            let change: Arc<dyn Change> = Arc::new(DestroyEpochs { through, at: now });
            if self.once(b"destroy", through, now, change, entry).await? {
                tracing::info!(through, "key epochs destroyed");
            }
        }
        self.move_keyring(&records(&self.db)?)
    }

    /// Rewraps live keys from earlier epochs into `epoch`, a batch per change; how many moved.
    async fn rewrap_into(&self, epoch: u32) -> Result<usize, VaultError> {
        let mut after = String::new();
        let mut moved = 0;
        loop {
            let (owned_after, e) = (after.clone(), i64::from(epoch));
            let batch = self.db.read(
                "read keys to rewrap",
                |c| customers::wrapped_before_sqlite(c, e, &after, REWRAP_BATCH),
                move |c| customers::wrapped_before_postgres(c, e, &owned_after, REWRAP_BATCH),
            )?;
            let Some((last, _)) = batch.last() else {
                return Ok(moved);
            };
            after = last.clone();
            let mut keys = Vec::with_capacity(batch.len());
            for (subject, from) in batch {
                let key = self.keyring.unwrap(&subject, &from).map_err(|e| {
                    tracing::error!(subject = %subject, error = %e, "a customer key did not unwrap for rewrapping");
                    VaultError::Internal
                })?;
                let to = self
                    .keyring
                    .wrap(epoch, &subject, &key)
                    .map_err(|_| VaultError::Internal)?;
                keys.push(Rewrapped { subject, from, to });
            }
            moved += keys.len();
            let change: Arc<dyn Change> = Arc::new(RewrapKeys { epoch, keys });
            self.journal
                .submit(None, None, vec![change], vec![])
                .await?;
        }
    }

    fn move_keyring(&self, records: &[EpochRecord]) -> Result<(), VaultError> {
        let Some(destroyed) = records
            .iter()
            .take_while(|r| r.destroyed_at.is_some())
            .last()
        else {
            return Ok(());
        };
        self.keyring.move_to(destroyed.epoch + 1).map_err(|e| {
            tracing::error!(error = %e, "the keyring could not move past destroyed epochs");
            VaultError::Internal
        })
    }
}

fn admin_only(principal: &Principal) -> Result<(), VaultError> {
    match principal {
        Principal::Admin { .. } => Ok(()),
        _ => Err(VaultError::Forbidden(
            "only the admin key may manage key epochs",
        )),
    }
}

#[cfg(test)]
mod tests {
    use candor_store::SubjectState;

    use super::*;
    use crate::testing::{Fixture, NOW, OPS, apply};

    fn wrapped(f: &Fixture, subject: &str) -> Vec<u8> {
        match f.vault.db().log().subject(subject).unwrap() {
            SubjectState::Active { wrapped_key } => wrapped_key,
            other => panic!("{subject} is {other:?}"),
        }
    }

    fn read_name(f: &Fixture, service: &Principal, subject: &SubjectId, now: i64) -> String {
        let fields = ["user.name".to_owned()];
        let out = f
            .run(f.vault.access().access(service, subject, OPS, &fields, now))
            .unwrap();
        out.values[0].1.to_string()
    }

    #[test]
    fn a_roll_rewraps_live_keys_and_destroys_the_old_epoch_only_once_the_retention_has_passed() {
        let f = Fixture::new();
        let epochs = f.vault.key_epochs();
        epochs.set_policy(EpochPolicy {
            epoch_secs: 1_000,
            retention_secs: 500,
            check_secs: 10,
        });
        let ops = f.service(&[OPS], false, false);
        let ada = f.customer("cus_ada", &ops);
        f.run(epochs.check(NOW)).unwrap();
        let copy = wrapped(&f, "cus_ada");
        assert_eq!(candor_crypto::wrapped_key_epoch(&copy), Some(1));

        let status = f.run(epochs.roll(&f.admin, NOW + 10)).unwrap();
        assert_eq!(status.current, 2);
        assert_eq!(
            candor_crypto::wrapped_key_epoch(&wrapped(&f, "cus_ada")),
            Some(2),
            "the live key moved"
        );
        assert_eq!(status.epochs[0].retired_at, Some(NOW + 10));
        assert_eq!(status.epochs[0].destroyed_at, None);
        assert_eq!(status.oldest_held, 1);

        // Until the retention has passed, a copy taken before the roll still opens.
        f.run(epochs.check(NOW + 509)).unwrap();
        assert!(epochs.keyring.unwrap("cus_ada", &copy).is_ok());
        assert_eq!(read_name(&f, &ops, &ada, NOW + 509), "Ada");

        f.run(epochs.check(NOW + 510)).unwrap();
        let status = epochs.status(&f.admin).unwrap();
        assert_eq!(status.epochs[0].destroyed_at, Some(NOW + 510));
        assert_eq!(status.oldest_held, 2);
        assert!(matches!(
            epochs.keyring.unwrap("cus_ada", &copy),
            Err(KeyringError::EpochDestroyed { epoch: 1 })
        ));
        assert_eq!(
            read_name(&f, &ops, &ada, NOW + 510),
            "Ada",
            "the live customer still reads"
        );

        // The epoch runs its length, then the check rolls on its own.
        f.run(epochs.check(NOW + 1_009)).unwrap();
        assert_eq!(epochs.status(&f.admin).unwrap().current, 2);
        f.run(epochs.check(NOW + 1_010)).unwrap();
        assert_eq!(epochs.status(&f.admin).unwrap().current, 3);

        let log = f
            .vault
            .histories()
            .operator_history(&f.admin, crate::Page::FIRST)
            .unwrap();
        let kinds: Vec<&str> = log
            .entries
            .iter()
            .map(|e| &e.opening.canonical_event)
            .filter(|c| c.contains("key_epoch"))
            .map(|c| {
                if c.contains("destroyed") {
                    "destroyed"
                } else {
                    "started"
                }
            })
            .collect();
        assert_eq!(kinds, ["started", "started", "destroyed", "started"]);
    }

    #[test]
    fn an_epoch_starts_once_however_many_nodes_start_it() {
        let f = Fixture::new();
        let epochs = f.vault.key_epochs();
        for _ in 0..2 {
            f.run(epochs.start(2, Actor::Candor, NOW)).unwrap();
        }
        let log = f
            .vault
            .histories()
            .operator_history(&f.admin, crate::Page::FIRST)
            .unwrap();
        let started = log
            .entries
            .iter()
            .filter(|e| e.opening.canonical_event.contains("key_epoch_started"))
            .count();
        assert_eq!(started, 1);
        assert_eq!(records(f.vault.db()).unwrap().len(), 1);
    }

    #[test]
    fn only_the_admin_rolls_or_reads_epochs() {
        let f = Fixture::new();
        let ops = f.service(&[OPS], true, true);
        assert!(matches!(
            f.run(f.vault.key_epochs().roll(&ops, NOW)),
            Err(VaultError::Forbidden(_))
        ));
        assert!(f.vault.key_epochs().status(&ops).is_err());
    }

    #[test]
    fn no_key_is_created_under_a_retired_epoch_and_the_creator_wraps_it_again() {
        let f = Fixture::new();
        let epochs = f.vault.key_epochs();
        f.run(epochs.check(NOW)).unwrap();
        f.run(epochs.roll(&f.admin, NOW)).unwrap();
        // A node that had not yet seen the roll wraps a new customer's key under epoch 1.
        let stale = crate::subjects::CreateSubject {
            subject: "cus_late".into(),
            wrapped_key: epochs
                .keyring
                .wrap(1, "cus_late", &candor_crypto::DataKey::generate())
                .unwrap(),
            key_epoch: Some(1),
            at: NOW,
        };
        apply(f.vault.db(), vec![Arc::new(stale)]);
        assert_eq!(
            f.vault.db().log().subject("cus_late").unwrap(),
            SubjectState::Unknown
        );
        // A first write reads the current epoch and lands.
        let ops = f.service(&[OPS], false, false);
        f.customer("cus_late", &ops);
        assert_eq!(
            candor_crypto::wrapped_key_epoch(&wrapped(&f, "cus_late")),
            Some(2)
        );
    }

    #[test]
    fn a_rewrap_read_before_an_erasure_does_not_bring_the_key_back() {
        let f = Fixture::new();
        let ops = f.service(&[OPS], false, true);
        let gone = f.customer("cus_gone", &ops);
        let from = wrapped(&f, "cus_gone");
        let key = epochs_unwrap(&f, "cus_gone", &from);
        f.run(f.vault.erasure().erase(&ops, &gone, NOW)).unwrap();
        let late = RewrapKeys {
            epoch: 2,
            keys: vec![Rewrapped {
                subject: "cus_gone".into(),
                to: f
                    .vault
                    .key_epochs()
                    .keyring
                    .wrap(2, "cus_gone", &key)
                    .unwrap(),
                from,
            }],
        };
        apply(f.vault.db(), vec![Arc::new(late)]);
        assert!(matches!(
            f.vault.db().log().subject("cus_gone").unwrap(),
            SubjectState::Erased { .. }
        ));
    }

    fn epochs_unwrap(f: &Fixture, subject: &str, wrapped: &[u8]) -> candor_crypto::DataKey {
        f.vault
            .key_epochs()
            .keyring
            .unwrap(subject, wrapped)
            .unwrap()
    }
}
