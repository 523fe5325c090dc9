//! Candor's use cases, one module per feature slice around a small log kernel.
//!
//! - [`kernel`]: the log's single writer with its group commit, sequencing across nodes, the
//!   [`Journal`] every slice writes through, and `fsck`.
//! - Slices: [`subjects`] (customers, their data keys, fields and the blind index), [`consent`],
//!   [`keys`] (keys, sessions, authentication), [`access`], [`history`], [`erasure`],
//!   [`public_log`] (checkpoints, tiles, receipts, consistency), [`key_epochs`] (the tenant key
//!   epochs customers' keys are wrapped under), [`refusals`] (refused attempts in the customer's
//!   log), [`operator`] (key and session changes in the operator log) and
//!   [`nodes`] (peers' authentication). Each owns its use cases, its tables' SQL for both backends and its changes;
//!   [`registry`] lists what the kernel and the other slices need to know of them.
//!
//! Every use case that touches a customer's data writes its log event through the journal and
//! waits until it is durable before anything is returned ("no log entry, no data"). Use cases
//! that log are `async`: they read inline (short point reads) and await the writer's durable
//! commit without holding a thread. Read-only use cases are plain functions.
//!
//! This crate knows nothing of HTTP; it returns domain values. Its only serialisation is each
//! change's form on the nodes' protocol ([`wire`]).

pub mod access;
pub mod consent;
pub mod erasure;
mod error;
pub mod history;
pub mod kernel;
pub mod key_epochs;
pub mod keys;
pub mod nodes;
pub mod operator;
mod page;
pub mod public_log;
pub mod refusals;
mod registry;
#[cfg(test)]
mod schema_tests;
pub mod signin;
pub mod subjects;
#[cfg(test)]
mod testing;
pub mod wire;

use std::sync::Arc;

use candor_core::DataMap;
use candor_crypto::RootKey;
use candor_log::{NoteSigner, NoteVerifier};
use candor_store::Db;

pub use access::AccessOutcome;
pub use consent::{ConsentChange, ConsentView};
pub use error::VaultError;
pub use history::{Completeness, History, HistoryEntry, LeafOpening};
pub use kernel::sequencing::{Forwarder, Sequencing};
pub use kernel::writer::{LogHead, LogWriter, SequencerClaim, WriterError};
pub use kernel::{Journal, fsck};
pub use key_epochs::{EpochPolicy, Keyring};
pub use keys::{CreatedKey, NewKeySpec, Principal, SESSION_TTL_SECS, ServiceKey};
pub use nodes::NODE_REQUEST_WINDOW_SECS;
pub use page::{DEFAULT_PAGE, MAX_PAGE, Page};
pub use public_log::WitnessPolicy;
pub use registry::schema;
pub use subjects::{MAX_FIELDS, MAX_VALUE_LEN};
pub use wire::decode_change;

/// The vault: one per process, the feature slices assembled over one database and one log.
pub struct Vault {
    db: Db,
    map: Arc<DataMap>,
    log_key: NoteVerifier,
    sequencing: Arc<Sequencing>,
    keys: keys::Keys,
    collection: subjects::Collection,
    consents: consent::Consents,
    access: access::Access,
    histories: history::Histories,
    signin: signin::Signin,
    erasure: erasure::Erasure,
    key_epochs: key_epochs::KeyEpochs,
    refusals: Arc<refusals::Refusals>,
    public_log: Arc<public_log::PublicLog>,
    nodes: nodes::Nodes,
}

impl Vault {
    /// Opens the vault over `db` with the data map, the root key, the node's keyring and the
    /// log's signing key, as the only node: it claims the right to sequence the log first (see
    /// [`Sequencing::alone`]).
    pub fn open(
        db: Db,
        map: DataMap,
        root: &RootKey,
        keyring: Keyring,
        signer: NoteSigner,
        claim: &SequencerClaim,
    ) -> Result<Vault, VaultError> {
        let log_key = signer.verifier();
        let labels = root.directory_label_key();
        let sequencing = Sequencing::alone(db.log(), signer, labels, claim)?;
        Ok(Vault::assemble(
            db,
            map,
            (root, keyring),
            log_key,
            Arc::new(sequencing),
        ))
    }

    /// Opens the vault as one node of a cluster sharing `db`: it sequences the log if it wins
    /// the claim, and otherwise hands its writes to the node that did with `forwarder` (see
    /// [`Sequencing::in_cluster`]).
    pub fn open_in_cluster(
        db: Db,
        map: DataMap,
        root: &RootKey,
        keyring: Keyring,
        signer: NoteSigner,
        claim: &SequencerClaim,
        forwarder: Arc<dyn Forwarder>,
    ) -> Result<Vault, VaultError> {
        let log_key = signer.verifier();
        let labels = root.directory_label_key();
        let sequencing = Sequencing::in_cluster(db.log(), signer, labels, claim, forwarder)?;
        Ok(Vault::assemble(
            db,
            map,
            (root, keyring),
            log_key,
            sequencing,
        ))
    }

    fn assemble(
        db: Db,
        map: DataMap,
        (root, keyring): (&RootKey, Keyring),
        log_key: NoteVerifier,
        sequencing: Arc<Sequencing>,
    ) -> Vault {
        let map = Arc::new(map);
        let journal = Journal::new(sequencing.clone());
        let keyring = Arc::new(keyring);
        let customers = Arc::new(subjects::Customers::new(
            db.clone(),
            keyring.clone(),
            journal.clone(),
        ));
        let blind = Arc::new(subjects::BlindIndexes::new(&map, root));
        let public_log = Arc::new(public_log::PublicLog::new(db.log(), sequencing.clone()));
        let refusals = Arc::new(refusals::Refusals::new(customers.clone(), journal.clone()));
        let operator = Arc::new(operator::OperatorLog::new(
            customers.clone(),
            journal.clone(),
        ));
        Vault {
            keys: keys::Keys::new(
                map.clone(),
                db.clone(),
                root,
                customers.clone(),
                journal.clone(),
                operator.clone(),
            ),
            collection: subjects::Collection::new(
                map.clone(),
                db.clone(),
                customers.clone(),
                blind.clone(),
                journal.clone(),
            ),
            consents: consent::Consents::new(
                map.clone(),
                db.clone(),
                customers.clone(),
                journal.clone(),
            ),
            access: access::Access::new(
                map.clone(),
                db.clone(),
                customers.clone(),
                blind,
                journal.clone(),
                refusals.clone(),
            ),
            histories: history::Histories::new(
                db.clone(),
                root,
                customers.clone(),
                public_log.clone(),
                sequencing.clone(),
            ),
            signin: signin::Signin::new(db.clone(), root, customers.clone(), journal.clone()),
            key_epochs: key_epochs::KeyEpochs::new(db.clone(), keyring, journal.clone(), operator),
            erasure: erasure::Erasure::new(customers, journal),
            refusals,
            nodes: nodes::Nodes::new(root),
            public_log,
            db,
            map,
            log_key,
            sequencing,
        }
    }

    /// Shows customers only checkpoints that `policy` accepted.
    pub fn with_witness_policy(self, policy: WitnessPolicy) -> Vault {
        self.public_log.set_witness_policy(policy);
        self
    }

    /// Keys, sessions and authentication.
    pub fn keys(&self) -> &keys::Keys {
        &self.keys
    }

    /// Collecting customers' fields.
    pub fn collection(&self) -> &subjects::Collection {
        &self.collection
    }

    /// Customers' consents.
    pub fn consents(&self) -> &consent::Consents {
        &self.consents
    }

    /// Purpose-bound reads, the customer's own reads, and lookups.
    pub fn access(&self) -> &access::Access {
        &self.access
    }

    /// Customers' histories.
    pub fn histories(&self) -> &history::Histories {
        &self.histories
    }

    /// Erasure.
    pub fn erasure(&self) -> &erasure::Erasure {
        &self.erasure
    }

    /// Customers signing in.
    pub fn signin(&self) -> &signin::Signin {
        &self.signin
    }

    /// Tenant key epochs.
    pub fn key_epochs(&self) -> &key_epochs::KeyEpochs {
        &self.key_epochs
    }

    /// Refused attempts, in the customer's log.
    pub fn refusals(&self) -> &refusals::Refusals {
        &self.refusals
    }

    /// The published log.
    pub fn public_log(&self) -> &public_log::PublicLog {
        &self.public_log
    }

    /// Peers' authentication.
    pub fn nodes(&self) -> &nodes::Nodes {
        &self.nodes
    }

    /// Which node sequences the log, and the log's head.
    pub fn sequencing(&self) -> &Arc<Sequencing> {
        &self.sequencing
    }

    /// The database, for the witness client and `fsck`.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The data map in force.
    pub fn data_map(&self) -> &DataMap {
        &self.map
    }

    /// The log's verifier key.
    pub fn log_key(&self) -> &NoteVerifier {
        &self.log_key
    }
}
