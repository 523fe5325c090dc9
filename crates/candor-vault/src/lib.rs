//! Candor's use cases: collect, consent, access, lookup, history and erase, with authentication
//! and authorisation, tied together from the pure crates and a [`Store`].
//!
//! Every use case that touches a customer's data writes its log event through the group-commit
//! [`writer`] and waits until it is durable before anything is returned ("no log entry, no data").
//! Use cases that log are `async`: they read SQLite inline (short point reads) and await the writer's
//! durable commit without holding a thread. Read-only use cases are plain functions.
//!
//! This crate knows nothing of HTTP or JSON wire formats; it returns domain values.

pub mod fsck;
pub mod sequencing;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use candor_core::{
    Actor, ConsentAction, ConsentRecord, ConsentState, DataMap, Denial, Event, EventKind, Evidence,
    FieldDecision, FieldOutcome, Permit, SUBJECT_ACCESS, SubjectId, consent_in_force, decide,
    subject_access,
};
use candor_crypto::{
    BlindIndexKey, DataKey, KeyWrappingKey, LabelKey, NodeKey, RootKey, SealContext, SessionKey,
    ct_eq, new_api_key, parse_api_key,
};
use candor_log::directory::{Directory, Head, NodeRef};
use candor_log::tile::encode_entry_bundle;
use candor_log::{
    Hash, NoteSigner, NoteVerifier, Receipt, TilePath, WitnessVerifier, commitment, leaf_hash,
};
use candor_store::{
    ApiKeyRow, Conflict, ConsentRow, LogEntry, Mutation, Store, StoreError, StoredCheckpoint,
    SubjectState, WriteRequest,
};
use zeroize::Zeroizing;

pub use sequencing::{Forwarder, Sequencing};
pub use writer::{LogHead, LogWriter, SequencerClaim, WriterError};

/// How long a customer session token lasts.
pub const SESSION_TTL_SECS: i64 = 15 * 60;
/// The most fields one request may name.
pub const MAX_FIELDS: usize = 64;
/// The longest value one field may hold, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024;

/// Why a use case failed. Each variant has a stable [`VaultError::code`]; messages never contain
/// personal values or secrets.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No valid credentials.
    #[error("missing or invalid credentials")]
    Unauthenticated,
    /// The caller is authenticated but may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The service key is not bound to this purpose; the refusal is logged.
    #[error("this key may not use purpose `{0}`")]
    PurposeNotPermitted(String),
    /// The purpose is not in the data map.
    #[error("purpose `{0}` is not declared in the data map")]
    UnknownPurpose(String),
    /// The field is not a data category of the data map.
    #[error("field `{0}` is not a data category of the data map")]
    UnknownField(String),
    /// The purpose does not need this field.
    #[error("purpose `{purpose}` does not need field `{field}`")]
    FieldNotNeeded {
        /// The field.
        field: String,
        /// The purpose.
        purpose: String,
    },
    /// The purpose needs consent that is not in force.
    #[error("purpose `{0}` needs the customer's consent, which is not in force")]
    ConsentRequired(String),
    /// The recipient is unknown or not declared for the purpose.
    #[error("recipient `{0}` is not declared for this purpose")]
    RecipientNotDeclared(String),
    /// No such customer.
    #[error("no such subject")]
    SubjectNotFound,
    /// The customer was erased.
    #[error("this subject has been erased")]
    SubjectErased,
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The tile or entry bundle is not (yet) in the log.
    #[error("no such tile in the log's current tree")]
    TileNotFound,
    /// No node sequences the log just now (one is taking over); nothing was written.
    #[error("the log is changing sequencer; nothing was written, try again")]
    LogUnavailable,
    /// A write was handed to this node, which does not sequence the log (any more).
    #[error("this node does not sequence the log")]
    NotSequencer,
    /// Something failed inside Candor; the cause went to the operator's log.
    #[error("internal error")]
    Internal,
}

impl VaultError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::Unauthenticated => "unauthenticated",
            VaultError::Forbidden(_) => "forbidden",
            VaultError::PurposeNotPermitted(_) => "purpose_not_permitted",
            VaultError::UnknownPurpose(_) => "unknown_purpose",
            VaultError::UnknownField(_) => "unknown_field",
            VaultError::FieldNotNeeded { .. } => "field_not_needed_by_purpose",
            VaultError::ConsentRequired(_) => "consent_required",
            VaultError::RecipientNotDeclared(_) => "recipient_not_declared",
            VaultError::SubjectNotFound => "subject_not_found",
            VaultError::SubjectErased => "subject_erased",
            VaultError::Invalid(_) => "invalid_request",
            VaultError::TileNotFound => "tile_not_found",
            VaultError::LogUnavailable => "log_unavailable",
            VaultError::NotSequencer => "not_sequencer",
            VaultError::Internal => "internal",
        }
    }
}

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> VaultError {
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "store failure");
        VaultError::Internal
    }
}

impl From<WriterError> for VaultError {
    fn from(e: WriterError) -> VaultError {
        tracing::error!(error = %e, "log write failure");
        match e {
            WriterError::NotSequencer => VaultError::NotSequencer,
            // Nothing was written, and the client may simply try again.
            e if e.never_committed() => VaultError::LogUnavailable,
            _ => VaultError::Internal,
        }
    }
}

/// The proof that `label`'s tree in `directory` is the one shown (`None` if they have none).
fn completeness_in(directory: &Directory, label: [u8; 32]) -> Option<Completeness> {
    Some(Completeness {
        label,
        head: directory.get(&label)?,
        proof: directory.prove(&label)?,
        directory: directory.root_ref(),
    })
}

fn invalid(msg: impl Into<String>) -> VaultError {
    VaultError::Invalid(msg.into())
}

/// A service API key's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKey {
    /// Public key id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Purposes it may name.
    pub purposes: BTreeSet<String>,
    /// The recipient it acts for, if it is not the business itself.
    pub recipient: Option<String>,
    /// May mint customer sessions.
    pub can_mint_sessions: bool,
    /// May erase customers.
    pub can_erase: bool,
}

/// Who is calling, after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The business's administrator: manages keys and erasure, reads no personal data.
    Admin {
        /// Key id.
        id: String,
        /// Display name.
        name: String,
    },
    /// A service of the business or a recipient.
    Service(ServiceKey),
    /// A customer, through a session token.
    Subject(SubjectId),
}

impl Principal {
    fn actor(&self) -> Actor {
        match self {
            Principal::Admin { id, name } => Actor::Admin {
                id: id.clone(),
                name: name.clone(),
            },
            Principal::Service(k) => Actor::Service {
                id: k.id.clone(),
                name: k.name.clone(),
            },
            Principal::Subject(s) => Actor::Subject {
                id: s.as_str().to_owned(),
            },
        }
    }

    fn service(&self) -> Result<&ServiceKey, VaultError> {
        match self {
            Principal::Service(k) => Ok(k),
            _ => Err(VaultError::Forbidden("only service keys may do this")),
        }
    }

    fn is_subject(&self, subject: &SubjectId) -> bool {
        matches!(self, Principal::Subject(s) if s == subject)
    }
}

/// A requested consent change.
#[derive(Debug, Clone)]
pub struct ConsentChange {
    /// The purpose.
    pub purpose: String,
    /// Limit to one recipient.
    pub recipient: Option<String>,
    /// Grant or withdraw.
    pub action: ConsentAction,
    /// When a grant lapses (Unix seconds).
    pub expires_at: Option<i64>,
    /// How the choice was expressed; required from services, defaulted for customers.
    pub evidence: Option<Evidence>,
}

/// The consents of one customer: state in force per consent-based purpose and the full history.
#[derive(Debug, Clone)]
pub struct ConsentView {
    /// Each consent-based purpose with its state for the business itself.
    pub in_force: Vec<(String, ConsentState)>,
    /// Every record, in the order recorded.
    pub history: Vec<ConsentRecord>,
}

/// What an access released.
pub struct AccessOutcome {
    /// Per-field decisions, in request order.
    pub decisions: Vec<FieldDecision>,
    /// Allowed fields that hold a value, with the value.
    pub values: Vec<(String, Zeroizing<String>)>,
    /// The access event's position in the log.
    pub leaf_index: u64,
}

/// What opens a leaf's commitment: anyone holding it can recompute the leaf from the event.
#[derive(Debug, Clone)]
pub struct LeafOpening {
    /// Position in the log.
    pub leaf_index: u64,
    /// The leaf's entry: SHA-256(domain || nonce || canonical event).
    pub commitment: [u8; 32],
    /// The commitment's nonce.
    pub nonce: [u8; 32],
    /// The exact canonical event bytes committed to.
    pub canonical_event: String,
}

/// One event of a customer's history, with what they need to check it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The event and the means to check it opens the leaf.
    pub opening: LeafOpening,
    /// RFC 6962 leaf hash of the commitment.
    pub leaf_hash: Hash,
    /// Inclusion proof against the checkpoint's tree.
    pub inclusion_proof: Vec<Hash>,
    /// The same proof with its checkpoint as a C2SP tlog-proof, checkable offline.
    pub receipt: Receipt,
}

/// A customer's history against one signed checkpoint.
#[derive(Debug, Clone)]
pub struct History {
    /// The signed checkpoint note every proof is against.
    pub checkpoint: String,
    /// Its tree size.
    pub tree_size: u64,
    /// The events, in log order.
    pub entries: Vec<HistoryEntry>,
    /// Events already committed but not yet in the published checkpoint (awaiting the witnesses):
    /// they appear, with proofs, once it is cosigned.
    pub pending: usize,
    /// The proof that `entries` are all the events the log attributes to this customer, when the
    /// checkpoint's directory is at hand.
    pub completeness: Option<Completeness>,
}

/// What lets a customer check that their history is complete: the directory that the checkpoint
/// commits to records, under their label, a tree of exactly the events shown.
#[derive(Debug, Clone)]
pub struct Completeness {
    /// The customer's private directory label.
    pub label: [u8; 32],
    /// Their tree's head in the directory: as many entries as shown, and the root over them.
    pub head: Head,
    /// The siblings from the directory's root down to their leaf.
    pub proof: Vec<NodeRef>,
    /// The directory root, as the checkpoint's `candor-directory` line gives it.
    pub directory: NodeRef,
}

/// A new API key's grants.
#[derive(Debug, Clone)]
pub struct NewKeySpec {
    /// Display name, shown to customers in their history.
    pub name: String,
    /// Purposes it may name.
    pub purposes: Vec<String>,
    /// The recipient it acts for.
    pub recipient: Option<String>,
    /// May mint customer sessions.
    pub can_mint_sessions: bool,
    /// May erase customers.
    pub can_erase: bool,
}

/// A freshly created key; the token is shown once.
pub struct CreatedKey {
    /// Public id.
    pub id: String,
    /// The secret bearer token.
    pub token: Zeroizing<String>,
}

/// Normalises a value before blind indexing, so lookups match however the value was typed.
fn normalise(category: &str, value: &str) -> String {
    if category.starts_with("user.contact.email") {
        value.trim().to_lowercase()
    } else {
        value.trim().to_owned()
    }
}

fn to_record(row: ConsentRow) -> Result<ConsentRecord, VaultError> {
    let action = ConsentAction::parse(&row.action).ok_or(StoreError::Corrupt("consent action"))?;
    Ok(ConsentRecord {
        purpose: row.purpose,
        recipient: row.recipient,
        action,
        at: row.at,
        expires_at: row.expires_at,
        evidence: Evidence {
            channel: row.channel,
            notice_version: row.notice_version,
        },
    })
}

fn to_records(rows: Vec<ConsentRow>) -> Result<Vec<ConsentRecord>, VaultError> {
    rows.into_iter().map(to_record).collect()
}

fn check_label(what: &str, value: &str) -> Result<(), VaultError> {
    if value.is_empty() || value.len() > 64 || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} must be 1 to 64 printable characters"
        )));
    }
    Ok(())
}

/// Which witnesses must cosign a checkpoint before customers are shown it.
#[derive(Debug, Clone)]
pub struct WitnessPolicy {
    /// The witnesses' public keys.
    pub witnesses: Vec<WitnessVerifier>,
    /// How many of them must cosign (1 to the number of witnesses).
    pub quorum: usize,
}

/// The vault: one per process, shared by all requests.
pub struct Vault {
    store: Arc<dyn Store>,
    map: DataMap,
    kek: KeyWrappingKey,
    sessions: SessionKey,
    // One blind-index key per category declared `lookup = true`.
    blind: BTreeMap<String, BlindIndexKey>,
    sequencing: Arc<Sequencing>,
    log_key: NoteVerifier,
    // With a policy, customers see only checkpoints it accepted; without, the latest one.
    witness_policy: Option<WitnessPolicy>,
    // API keys by id. Keys are immutable once created (there is no revocation yet), so a cached
    // row is never stale; this saves a database read on every request.
    keys: RwLock<HashMap<String, ApiKeyRow>>,
    // Gives customers their directory labels.
    labels: LabelKey,
    // The directories of the last two checkpoints the witness policy accepted, with their sizes:
    // the newer is recorded just before the store has its checkpoint.
    witnessed_directory: RwLock<Vec<(u64, Directory)>>,
    // Authenticates the requests this node and its peers send each other.
    nodes: NodeKey,
    // The nonces of peers' requests accepted lately, so none is replayed.
    node_nonces: Mutex<RecentNonces>,
    // Full tiles by path. Their bytes never change, so a cached one is never stale; bounded by
    // FULL_TILE_CACHE entries, evicting an arbitrary one when full.
    full_tiles: Mutex<HashMap<TilePath, Arc<[u8]>>>,
}

/// How far a peer's request time may be from this node's clock.
pub const NODE_REQUEST_WINDOW_SECS: i64 = 30;

/// Nonces accepted within the last two windows, in the order accepted: a request that is
/// accepted at `now` carries a time within a window of it, so a replay of it is refused by
/// time from a window after that, and by its nonce until then.
#[derive(Default)]
struct RecentNonces {
    order: std::collections::VecDeque<(i64, [u8; 16])>,
    seen: std::collections::HashSet<[u8; 16]>,
}

impl RecentNonces {
    /// Remembers `nonce`; false if it was seen already.
    fn accept(&mut self, nonce: [u8; 16], now: i64) -> bool {
        while let Some(&(when, old)) = self.order.front() {
            if now - when <= 2 * NODE_REQUEST_WINDOW_SECS {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if !self.seen.insert(nonce) {
            return false;
        }
        self.order.push_back((now, nonce));
        true
    }
}

/// How many full tiles (8 KiB each, a little more for entry bundles) stay in memory.
const FULL_TILE_CACHE: usize = 4096;

impl Vault {
    /// Opens the vault over `store` with the data map, the root key and the log's signing key,
    /// as the only node: it claims the right to sequence the log first (see
    /// [`Sequencing::alone`]).
    pub fn open(
        store: Arc<dyn Store>,
        map: DataMap,
        root: &RootKey,
        signer: NoteSigner,
        claim: &SequencerClaim,
    ) -> Result<Vault, VaultError> {
        let log_key = signer.verifier();
        let labels = root.directory_label_key();
        let sequencing = Sequencing::alone(store.clone(), signer, labels, claim)?;
        Ok(Vault::with_sequencing(
            store,
            map,
            root,
            log_key,
            Arc::new(sequencing),
        ))
    }

    /// Opens the vault as one node of a cluster sharing `store`: it sequences the log if it
    /// wins the claim, and otherwise hands its writes to the node that did with `forwarder`
    /// (see [`Sequencing::in_cluster`]).
    pub fn open_in_cluster(
        store: Arc<dyn Store>,
        map: DataMap,
        root: &RootKey,
        signer: NoteSigner,
        claim: &SequencerClaim,
        forwarder: Arc<dyn Forwarder>,
    ) -> Result<Vault, VaultError> {
        let log_key = signer.verifier();
        let labels = root.directory_label_key();
        let sequencing = Sequencing::in_cluster(store.clone(), signer, labels, claim, forwarder)?;
        Ok(Vault::with_sequencing(
            store, map, root, log_key, sequencing,
        ))
    }

    fn with_sequencing(
        store: Arc<dyn Store>,
        map: DataMap,
        root: &RootKey,
        log_key: NoteVerifier,
        sequencing: Arc<Sequencing>,
    ) -> Vault {
        let blind = map
            .categories
            .values()
            .filter(|c| c.lookup)
            .map(|c| (c.key.clone(), root.blind_index_key(&c.key)))
            .collect();
        Vault {
            store,
            map,
            kek: root.key_wrapping_key(),
            sessions: root.session_key(),
            blind,
            sequencing,
            log_key,
            witness_policy: None,
            keys: RwLock::new(HashMap::new()),
            full_tiles: Mutex::new(HashMap::new()),
            labels: root.directory_label_key(),
            witnessed_directory: RwLock::new(Vec::new()),
            nodes: root.node_key(),
            node_nonces: Mutex::new(RecentNonces::default()),
        }
    }

    /// Checks a request from a peer node by its `Candor-Node-Auth` header: the tag under the
    /// node key, the time within [`NODE_REQUEST_WINDOW_SECS`] of `now`, and a nonce not seen
    /// before.
    pub fn authenticate_node(&self, header: &str, body: &[u8], now: i64) -> Result<(), VaultError> {
        let Some((at, nonce, tag)) = candor_crypto::parse_node_authorization(header) else {
            return Err(VaultError::Unauthenticated);
        };
        if !self.nodes.verify(at, &nonce, body, &tag) || (now - at).abs() > NODE_REQUEST_WINDOW_SECS
        {
            return Err(VaultError::Unauthenticated);
        }
        let fresh = self
            .node_nonces
            .lock()
            .expect("nonces poisoned")
            .accept(nonce, now);
        if !fresh {
            tracing::warn!("a peer's request was replayed; refused");
            return Err(VaultError::Unauthenticated);
        }
        Ok(())
    }

    /// Gives up the claim to sequence the log, if this node holds it, so the next process need
    /// not wait for it to lapse. Call it once no more writes will come (on shutdown).
    pub fn release_sequencer(&self) -> Result<(), VaultError> {
        Ok(self.sequencing.release()?)
    }

    /// Whether this node sequences the log now.
    pub fn is_sequencer(&self) -> bool {
        self.sequencing.is_sequencer()
    }

    /// Commits a write another node handed over, if this node sequences the log; never hands
    /// it on again. The caller has authenticated the other node.
    pub async fn commit_forwarded(
        &self,
        request: WriteRequest,
    ) -> Result<candor_store::RequestOutcome, WriterError> {
        self.sequencing.submit_here(request).await
    }

    /// Shows customers only checkpoints that `policy` accepted.
    pub fn with_witness_policy(mut self, policy: WitnessPolicy) -> Vault {
        self.witness_policy = Some(policy);
        self
    }

    /// The witness policy, if any.
    pub fn witness_policy(&self) -> Option<&WitnessPolicy> {
        self.witness_policy.as_ref()
    }

    /// Follows the log's head, which changes after each durable group commit that appended.
    pub fn heads(&self) -> tokio::sync::watch::Receiver<LogHead> {
        self.sequencing.heads()
    }

    /// Remembers the directory of a checkpoint the witness policy accepted, so histories shown
    /// against that checkpoint can prove completeness.
    pub fn record_witnessed_directory(&self, size: u64, directory: Directory) {
        let mut kept = self
            .witnessed_directory
            .write()
            .expect("directory lock poisoned");
        if kept.iter().any(|(s, _)| *s >= size) {
            return;
        }
        // The previous one stays until the store has recorded the new checkpoint.
        kept.push((size, directory));
        if kept.len() > 2 {
            kept.remove(0);
        }
    }

    /// The completeness proof of the customer labelled `label` against the witnessed checkpoint
    /// of `size`, if this node holds that checkpoint's directory: what a follower asks the
    /// sequencer for. The label is all it reveals, and a peer that can ask holds the root key.
    pub fn witnessed_completeness(&self, label: [u8; 32], size: u64) -> Option<Completeness> {
        let kept = self
            .witnessed_directory
            .read()
            .expect("directory lock poisoned");
        let (_, directory) = kept.iter().find(|(s, _)| *s == size)?;
        completeness_in(directory, label)
    }

    /// The checkpoint customers are shown, with its directory when this process has it (after a
    /// restart under a witness policy, not until the next checkpoint is cosigned).
    fn published(&self) -> Result<Option<(StoredCheckpoint, Option<Directory>)>, VaultError> {
        if self.witness_policy.is_none() {
            let head = self.sequencing.head()?;
            return Ok(head.note.map(|note| {
                let cp = StoredCheckpoint {
                    size: head.size,
                    note: note.to_string(),
                };
                (cp, Some(head.directory))
            }));
        }
        let Some(cp) = self.store.latest_witnessed()? else {
            return Ok(None);
        };
        let directory = self
            .witnessed_directory
            .read()
            .expect("directory lock poisoned")
            .iter()
            .find(|(size, _)| *size == cp.size)
            .map(|(_, d)| d.clone());
        Ok(Some((cp, directory)))
    }

    /// The store, for the witness client and `fsck`.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The data map in force.
    pub fn data_map(&self) -> &DataMap {
        &self.map
    }

    /// The log's verifier key.
    pub fn log_key(&self) -> &NoteVerifier {
        &self.log_key
    }

    /// The checkpoint published to customers and auditors: the latest one the witness policy
    /// accepted, cosignatures included, or the latest signed one where there is no policy.
    pub fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, VaultError> {
        Ok(match self.witness_policy {
            Some(_) => self.store.latest_witnessed()?,
            None => self.store.latest_checkpoint()?,
        })
    }

    /// A full tile served before, from memory: no storage read, so callers may use it inline.
    pub fn cached_tile(&self, path: &TilePath) -> Option<Arc<[u8]>> {
        self.full_tiles
            .lock()
            .expect("tile cache poisoned")
            .get(path)
            .cloned()
    }

    /// A hash tile or entry bundle of the committed tree (C2SP tlog-tiles).
    pub fn tile(&self, path: TilePath) -> Result<Arc<[u8]>, VaultError> {
        if let Some(bytes) = self.cached_tile(&path) {
            return Ok(bytes);
        }
        let size = self.store.latest_checkpoint()?.map_or(0, |c| c.size);
        let (bytes, full): (Arc<[u8]>, bool) = match path {
            TilePath::Hashes(tile) if tile.within(size) => {
                let indexes: Vec<u64> = tile.stored_indexes().collect();
                let hashes = self.store.read_hashes(&indexes)?;
                (hashes.iter().flat_map(|h| h.0).collect(), tile.is_full())
            }
            TilePath::Entries(tile) if tile.within(size) => {
                let entries = self.store.entries(tile.entry_range())?;
                let bundle = encode_entry_bundle(entries.iter().map(|e| &e[..]));
                (bundle.into(), tile.is_full())
            }
            _ => return Err(VaultError::TileNotFound),
        };
        if full {
            let mut cache = self.full_tiles.lock().expect("tile cache poisoned");
            if cache.len() >= FULL_TILE_CACHE
                && let Some(evict) = cache.keys().next().copied()
            {
                cache.remove(&evict);
            }
            cache.insert(path, bytes.clone());
        }
        Ok(bytes)
    }

    /// A receipt for leaf `index` against the published checkpoint.
    pub fn receipt(&self, index: u64) -> Result<Receipt, VaultError> {
        let cp = self
            .checkpoint()?
            .filter(|cp| index < cp.size)
            .ok_or_else(|| {
                invalid(format!(
                    "leaf {index} is not in the published checkpoint yet"
                ))
            })?;
        let proof =
            candor_log::inclusion_proof(index, cp.size, &candor_store::StoreHashes(&*self.store))?;
        Ok(Receipt {
            extra: None,
            index,
            proof,
            checkpoint: cp.note,
        })
    }

    /// A consistency proof from tree size `from` to `to`, both at most the latest checkpoint's.
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, VaultError> {
        let size = self.store.latest_checkpoint()?.map_or(0, |c| c.size);
        if from == 0 || from > to || to > size {
            return Err(invalid(format!(
                "need 0 < from <= to <= {size}, the latest checkpoint's size"
            )));
        }
        Ok(candor_log::consistency_proof(
            from,
            to,
            &candor_store::StoreHashes(&*self.store),
        )?)
    }

    /// Checks a bearer token: a customer session (`cst_…`) or an API key (`cnd_…`).
    pub fn authenticate(&self, token: &str, now: i64) -> Result<Principal, VaultError> {
        if token.starts_with("cst_") {
            let session = self
                .sessions
                .verify(token, now)
                .map_err(|_| VaultError::Unauthenticated)?;
            let subject =
                SubjectId::parse(&session.subject).map_err(|_| VaultError::Unauthenticated)?;
            return Ok(Principal::Subject(subject));
        }
        let (id, presented) = parse_api_key(token).ok_or(VaultError::Unauthenticated)?;
        let cached = self
            .keys
            .read()
            .expect("key cache poisoned")
            .get(id)
            .cloned();
        let row = match cached {
            Some(row) => Some(row),
            None => {
                let row = self.store.api_key(id)?;
                if let Some(r) = &row {
                    let mut keys = self.keys.write().expect("key cache poisoned");
                    keys.insert(r.id.clone(), r.clone());
                }
                row
            }
        };
        // Compare against a dummy when the id is unknown, so timing does not reveal valid ids.
        let stored = row.as_ref().map_or([0u8; 32], |r| r.secret_hash);
        if !ct_eq(&stored, &presented) {
            return Err(VaultError::Unauthenticated);
        }
        let row = row.ok_or(VaultError::Unauthenticated)?;
        Ok(match row.role.as_str() {
            "admin" => Principal::Admin {
                id: row.id,
                name: row.name,
            },
            _ => Principal::Service(ServiceKey {
                id: row.id,
                name: row.name,
                purposes: row.purposes.into_iter().collect(),
                recipient: row.recipient,
                can_mint_sessions: row.can_mint_sessions,
                can_erase: row.can_erase,
            }),
        })
    }

    async fn submit(&self, request: WriteRequest) -> Result<Vec<u64>, VaultError> {
        match self.sequencing.submit(request).await? {
            Ok(leaves) => Ok(leaves),
            Err(Conflict::SubjectErased) => Err(VaultError::SubjectErased),
            Err(Conflict::SubjectUnknown) => Err(VaultError::SubjectNotFound),
        }
    }

    /// Unwraps the key of an active customer; erased and unknown customers are errors.
    fn unwrap_key(&self, subject: &SubjectId, state: SubjectState) -> Result<DataKey, VaultError> {
        match state {
            SubjectState::Active { wrapped_key } => self
                .kek
                .unwrap(subject.as_str(), &wrapped_key)
                .map_err(|_| {
                    tracing::error!(subject = %subject, "data key failed to unwrap");
                    VaultError::Internal
                }),
            SubjectState::Erased { .. } => Err(VaultError::SubjectErased),
            SubjectState::Unknown => Err(VaultError::SubjectNotFound),
        }
    }

    /// The customer's data key; with `create`, a first write creates the customer.
    async fn data_key(
        &self,
        subject: &SubjectId,
        create: bool,
        now: i64,
    ) -> Result<DataKey, VaultError> {
        let mut created = false;
        loop {
            match self.store.subject(subject.as_str())? {
                state @ (SubjectState::Active { .. } | SubjectState::Erased { .. }) => {
                    return self.unwrap_key(subject, state);
                }
                SubjectState::Unknown if create && !created => {
                    // Concurrent first writes may race; whichever key lands first is re-read above.
                    let wrapped_key = self.kek.wrap(subject.as_str(), &DataKey::generate());
                    self.submit(WriteRequest {
                        mutations: vec![Mutation::CreateSubject {
                            subject: subject.as_str().to_owned(),
                            wrapped_key,
                            at: now,
                        }],
                        ..Default::default()
                    })
                    .await?;
                    created = true;
                }
                SubjectState::Unknown => return Err(VaultError::SubjectNotFound),
            }
        }
    }

    /// Logs one event about an active customer and waits until it is durable; returns its leaf
    /// index. Fails with `SubjectErased` if an erasure committed first.
    async fn log_event(
        &self,
        dek: &DataKey,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
        kind: EventKind,
    ) -> Result<u64, VaultError> {
        let event = self.event(principal, subject, now, kind);
        let (entry, _, _) = self.entry(Some(dek), subject, &event);
        let leaves = self
            .submit(WriteRequest {
                requires_active: Some(subject.as_str().to_owned()),
                mutations: vec![],
                entries: vec![entry],
            })
            .await?;
        Ok(leaves[0])
    }

    /// Seals an event for the customer and returns the log entry plus its opening.
    fn entry(
        &self,
        key: Option<&DataKey>,
        subject: &SubjectId,
        event: &Event,
    ) -> (LogEntry, [u8; 32], Vec<u8>) {
        let nonce = commitment::fresh_nonce();
        let canonical = event.canonical();
        let commitment = commitment::commit(&nonce, &canonical);
        let sealed_body = key.map(|k| {
            let mut body = Zeroizing::new(Vec::with_capacity(32 + canonical.len()));
            body.extend_from_slice(&nonce);
            body.extend_from_slice(&canonical);
            k.seal(subject.as_str(), SealContext::Event, &body)
        });
        let entry = LogEntry {
            subject: subject.as_str().to_owned(),
            commitment,
            sealed_body,
        };
        (entry, nonce, canonical)
    }

    fn event(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
        kind: EventKind,
    ) -> Event {
        Event::new(subject.as_str(), now, principal.actor(), kind)
    }

    fn consent_records(&self, subject: &SubjectId) -> Result<Vec<ConsentRecord>, VaultError> {
        to_records(self.store.consents(subject.as_str())?)
    }

    /// Stores fields for a customer, collected for `purpose`.
    pub async fn collect(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        purpose_id: &str,
        fields: Vec<(String, Zeroizing<String>)>,
        now: i64,
    ) -> Result<u64, VaultError> {
        let key = principal.service()?;
        if !key.purposes.contains(purpose_id) {
            return Err(VaultError::PurposeNotPermitted(purpose_id.to_owned()));
        }
        let purpose = self
            .map
            .purpose(purpose_id)
            .ok_or_else(|| VaultError::UnknownPurpose(purpose_id.to_owned()))?;
        if fields.is_empty() || fields.len() > MAX_FIELDS {
            return Err(invalid(format!("send 1 to {MAX_FIELDS} fields")));
        }
        for (field, value) in &fields {
            if !self.map.categories.contains_key(field) {
                return Err(VaultError::UnknownField(field.clone()));
            }
            if !purpose.categories.contains(field) {
                return Err(VaultError::FieldNotNeeded {
                    field: field.clone(),
                    purpose: purpose.id.clone(),
                });
            }
            if value.len() > MAX_VALUE_LEN {
                return Err(invalid(format!(
                    "field `{field}` is longer than {MAX_VALUE_LEN} bytes"
                )));
            }
        }
        if purpose.legal_basis.needs_consent() {
            let records = match self.store.subject(subject.as_str())? {
                SubjectState::Active { .. } => self.consent_records(subject)?,
                _ => Vec::new(),
            };
            let state = consent_in_force(&records, purpose_id, key.recipient.as_deref(), now);
            if state != ConsentState::Granted {
                return Err(VaultError::ConsentRequired(purpose_id.to_owned()));
            }
        }
        let dek = self.data_key(subject, true, now).await?;
        let mut mutations = Vec::with_capacity(fields.len() * 2);
        for (field, value) in &fields {
            mutations.push(Mutation::PutField {
                subject: subject.as_str().to_owned(),
                category: field.clone(),
                sealed: dek.seal(
                    subject.as_str(),
                    SealContext::Field(field),
                    value.as_bytes(),
                ),
            });
            if let Some(blind) = self.blind.get(field) {
                mutations.push(Mutation::PutBlindIndex {
                    subject: subject.as_str().to_owned(),
                    category: field.clone(),
                    digest: blind.index(normalise(field, value).as_bytes()).to_vec(),
                });
            }
        }
        let event = self.event(
            principal,
            subject,
            now,
            EventKind::Collected {
                purpose: purpose_id.to_owned(),
                fields: fields.iter().map(|(f, _)| f.clone()).collect(),
            },
        );
        let (entry, _, _) = self.entry(Some(&dek), subject, &event);
        let leaves = self
            .submit(WriteRequest {
                requires_active: Some(subject.as_str().to_owned()),
                mutations,
                entries: vec![entry],
            })
            .await?;
        Ok(leaves[0])
    }

    /// Records consent changes; `gpc` (a `Sec-GPC: 1` signal) withdraws every purpose that sells
    /// or shares data, after the explicit changes, so the signal always wins.
    pub async fn record_consent(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        changes: Vec<ConsentChange>,
        gpc: bool,
        now: i64,
    ) -> Result<ConsentView, VaultError> {
        let as_service = match principal {
            Principal::Subject(s) if s == subject => None,
            Principal::Service(k) => Some(k),
            _ => return Err(VaultError::Forbidden("not your subject")),
        };
        if changes.is_empty() && !gpc {
            return Err(invalid("no consent changes given"));
        }
        let mut records = Vec::with_capacity(changes.len());
        for c in changes {
            let purpose = self
                .map
                .purpose(&c.purpose)
                .ok_or_else(|| VaultError::UnknownPurpose(c.purpose.clone()))?;
            if let Some(k) = as_service
                && !k.purposes.contains(&c.purpose)
            {
                return Err(VaultError::PurposeNotPermitted(c.purpose));
            }
            if let Some(r) = &c.recipient
                && !purpose.recipients.contains(r)
            {
                return Err(VaultError::RecipientNotDeclared(r.clone()));
            }
            if c.expires_at.is_some_and(|e| e <= now) {
                return Err(invalid("expires_at must be in the future"));
            }
            let evidence = match (c.evidence, as_service) {
                (Some(e), _) => e,
                (None, None) => Evidence {
                    channel: "privacy_center".into(),
                    notice_version: self.map.version.clone(),
                },
                (None, Some(_)) => {
                    return Err(invalid(
                        "services must give evidence: channel and notice_version",
                    ));
                }
            };
            check_label("evidence.channel", &evidence.channel)?;
            check_label("evidence.notice_version", &evidence.notice_version)?;
            records.push(ConsentRecord {
                purpose: c.purpose,
                recipient: c.recipient,
                action: c.action,
                at: now,
                expires_at: c.expires_at,
                evidence,
            });
        }
        if gpc {
            for p in self.map.purposes.values().filter(|p| p.sells_or_shares) {
                records.push(ConsentRecord {
                    purpose: p.id.clone(),
                    recipient: None,
                    action: ConsentAction::Withdraw,
                    at: now,
                    expires_at: None,
                    evidence: Evidence {
                        channel: "gpc".into(),
                        notice_version: self.map.version.clone(),
                    },
                });
            }
        }
        let dek = self.data_key(subject, true, now).await?;
        let mut request = WriteRequest {
            requires_active: Some(subject.as_str().to_owned()),
            ..Default::default()
        };
        for r in &records {
            let event = self.event(
                principal,
                subject,
                now,
                EventKind::ConsentChanged {
                    purpose: r.purpose.clone(),
                    recipient: r.recipient.clone(),
                    action: r.action.as_str(),
                    expires_at: r.expires_at,
                    channel: r.evidence.channel.clone(),
                    notice_version: r.evidence.notice_version.clone(),
                },
            );
            request
                .entries
                .push(self.entry(Some(&dek), subject, &event).0);
            request.mutations.push(Mutation::AddConsent {
                subject: subject.as_str().to_owned(),
                row: ConsentRow {
                    purpose: r.purpose.clone(),
                    recipient: r.recipient.clone(),
                    action: r.action.as_str().to_owned(),
                    at: r.at,
                    expires_at: r.expires_at,
                    channel: r.evidence.channel.clone(),
                    notice_version: r.evidence.notice_version.clone(),
                },
            });
        }
        self.submit(request).await?;
        self.consents(principal, subject, now)
    }

    /// The customer's consents: the customer themself, or a service (any purpose it holds).
    pub fn consents(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
    ) -> Result<ConsentView, VaultError> {
        let visible: Box<dyn Fn(&str) -> bool> = match principal {
            Principal::Subject(s) if s == subject => Box::new(|_| true),
            Principal::Service(k) => {
                let held = k.purposes.clone();
                Box::new(move |p| held.contains(p))
            }
            _ => return Err(VaultError::Forbidden("not your subject")),
        };
        let history = match self.store.subject(subject.as_str())? {
            SubjectState::Active { .. } => self.consent_records(subject)?,
            SubjectState::Unknown => Vec::new(),
            SubjectState::Erased { .. } => return Err(VaultError::SubjectErased),
        };
        let history: Vec<ConsentRecord> = history
            .into_iter()
            .filter(|r| visible(&r.purpose))
            .collect();
        let in_force = self
            .map
            .purposes
            .values()
            .filter(|p| p.legal_basis.needs_consent() && visible(&p.id))
            .map(|p| (p.id.clone(), consent_in_force(&history, &p.id, None, now)))
            .collect();
        Ok(ConsentView { in_force, history })
    }

    /// Reads fields for a purpose: decide, log durably, then unseal only what the policy permits.
    pub async fn access(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        purpose_id: &str,
        fields: &[String],
        now: i64,
    ) -> Result<AccessOutcome, VaultError> {
        let key = principal.service()?;
        if fields.is_empty() || fields.len() > MAX_FIELDS {
            return Err(invalid(format!("ask for 1 to {MAX_FIELDS} fields")));
        }
        if !key.purposes.contains(purpose_id) {
            self.log_refusal(principal, subject, purpose_id, now)
                .await?;
            return Err(VaultError::PurposeNotPermitted(purpose_id.to_owned()));
        }
        let purpose = self
            .map
            .purpose(purpose_id)
            .ok_or_else(|| VaultError::UnknownPurpose(purpose_id.to_owned()))?;
        // Everything is read up front, ciphertexts included; nothing is opened before the event
        // is durable, and an erasure racing this read makes the log write fail its precondition.
        let record = self.store.subject_record(subject.as_str())?;
        let dek = self.unwrap_key(subject, record.state)?;
        let consents = to_records(record.consents)?;
        let decision = decide(
            &self.map,
            purpose,
            key.recipient.as_deref(),
            &consents,
            fields,
            now,
        );
        let leaf_index = self
            .log_event(
                &dek,
                principal,
                subject,
                now,
                EventKind::Accessed {
                    purpose: purpose_id.to_owned(),
                    recipient: key.recipient.clone(),
                    fields: decision
                        .fields
                        .iter()
                        .map(|d| FieldOutcome {
                            field: d.field.clone(),
                            outcome: d.denial.map_or("allowed", Denial::code),
                        })
                        .collect(),
                },
            )
            .await?;
        // The event is durable; only now may plaintext leave the vault.
        let values = self.release(&dek, subject, &decision.permit, record.fields)?;
        Ok(AccessOutcome {
            decisions: decision.fields,
            values,
            leaf_index,
        })
    }

    /// The customer reads everything held about them (their right of access). Logged, and durable,
    /// before anything is opened, like every other read.
    pub async fn own_data(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
    ) -> Result<(Vec<(String, Zeroizing<String>)>, u64), VaultError> {
        if !principal.is_subject(subject) {
            return Err(VaultError::Forbidden(
                "only the customer may read all their data",
            ));
        }
        let record = self.store.subject_record(subject.as_str())?;
        let dek = self.unwrap_key(subject, record.state)?;
        let held: Vec<String> = record.fields.iter().map(|(f, _)| f.clone()).collect();
        let permit = subject_access(&held);
        let leaf_index = self
            .log_event(
                &dek,
                principal,
                subject,
                now,
                EventKind::Accessed {
                    purpose: SUBJECT_ACCESS.to_owned(),
                    recipient: None,
                    fields: held
                        .iter()
                        .map(|f| FieldOutcome {
                            field: f.clone(),
                            outcome: "allowed",
                        })
                        .collect(),
                },
            )
            .await?;
        let values = self.release(&dek, subject, &permit, record.fields)?;
        Ok((values, leaf_index))
    }

    /// Opens the stored values of the fields a policy decision permitted; nothing else can be
    /// opened, because only the policy makes a [`Permit`].
    fn release(
        &self,
        dek: &DataKey,
        subject: &SubjectId,
        permit: &Permit,
        mut sealed: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<(String, Zeroizing<String>)>, VaultError> {
        let mut values = Vec::with_capacity(permit.fields().len());
        for wanted in permit.fields() {
            let Some(at) = sealed.iter().position(|(field, _)| field == wanted) else {
                continue;
            };
            let (field, blob) = sealed.swap_remove(at);
            let plain = dek
                .open(subject.as_str(), SealContext::Field(&field), &blob)
                .map_err(|_| {
                    tracing::error!(subject = %subject, field = %field, "field failed to open");
                    VaultError::Internal
                })?;
            let text = String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Internal)?;
            values.push((field, Zeroizing::new(text)));
        }
        Ok(values)
    }

    /// Logs a refused call against the customer, if they exist, so they see the attempt.
    async fn log_refusal(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        purpose: &str,
        now: i64,
    ) -> Result<(), VaultError> {
        let dek = match self.data_key(subject, false, now).await {
            Ok(k) => k,
            Err(VaultError::SubjectNotFound | VaultError::SubjectErased) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self
            .log_event(
                &dek,
                principal,
                subject,
                now,
                EventKind::Refused {
                    purpose: purpose.to_owned(),
                    reason: "purpose_not_permitted",
                },
            )
            .await
        {
            Ok(_) | Err(VaultError::SubjectErased | VaultError::SubjectNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Finds customers whose `category` equals `value`, through the blind index. Each match is
    /// decided like an access for `purpose` and logged before it is returned.
    pub async fn lookup(
        &self,
        principal: &Principal,
        purpose_id: &str,
        category: &str,
        value: &str,
        now: i64,
    ) -> Result<Vec<SubjectId>, VaultError> {
        let key = principal.service()?;
        if !key.purposes.contains(purpose_id) {
            return Err(VaultError::PurposeNotPermitted(purpose_id.to_owned()));
        }
        let purpose = self
            .map
            .purpose(purpose_id)
            .ok_or_else(|| VaultError::UnknownPurpose(purpose_id.to_owned()))?;
        let blind = self.blind.get(category).ok_or_else(|| {
            invalid(format!(
                "`{category}` is not declared with lookup = true in the data map"
            ))
        })?;
        let wanted = normalise(category, value);
        let digest = blind.index(wanted.as_bytes());
        let mut found = Vec::new();
        for candidate in self.store.blind_index_matches(category, &digest)? {
            let Ok(subject) = SubjectId::parse(&candidate) else {
                continue;
            };
            let record = self.store.subject_record(subject.as_str())?;
            let dek = match self.unwrap_key(&subject, record.state) {
                Ok(k) => k,
                Err(VaultError::SubjectErased | VaultError::SubjectNotFound) => continue,
                Err(e) => return Err(e),
            };
            let consents = to_records(record.consents)?;
            let field = [category.to_owned()];
            let decision = decide(
                &self.map,
                purpose,
                key.recipient.as_deref(),
                &consents,
                &field,
                now,
            );
            // Truncated digests can coincide: confirm by opening the stored value.
            let released = self.release(&dek, &subject, &decision.permit, record.fields)?;
            let Some((_, plain)) = released.into_iter().next() else {
                continue;
            };
            if normalise(category, &plain) != wanted {
                continue;
            }
            match self
                .log_event(
                    &dek,
                    principal,
                    &subject,
                    now,
                    EventKind::Accessed {
                        purpose: purpose_id.to_owned(),
                        recipient: key.recipient.clone(),
                        fields: vec![FieldOutcome {
                            field: category.to_owned(),
                            outcome: "lookup_match",
                        }],
                    },
                )
                .await
            {
                Ok(_) => found.push(subject),
                Err(VaultError::SubjectErased | VaultError::SubjectNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// The customer's own history, each event with an inclusion proof against the latest
    /// signed checkpoint.
    pub fn history(
        &self,
        principal: &Principal,
        subject: &SubjectId,
    ) -> Result<History, VaultError> {
        if !principal.is_subject(subject) {
            return Err(VaultError::Forbidden(
                "only the customer may read their history",
            ));
        }
        let dek = match self.store.subject(subject.as_str())? {
            SubjectState::Active { wrapped_key } => self
                .kek
                .unwrap(subject.as_str(), &wrapped_key)
                .map_err(|_| VaultError::Internal)?,
            SubjectState::Erased { .. } => return Err(VaultError::SubjectErased),
            SubjectState::Unknown => return Err(VaultError::SubjectNotFound),
        };
        // The checkpoint first, then the events: every event below its size was committed before
        // it was published, so the events read include all that its directory counts; later ones
        // are pending.
        let Some((cp, directory)) = self.published()? else {
            return Err(VaultError::SubjectNotFound);
        };
        let rows = self.store.events(subject.as_str())?;
        let hashes = candor_store::StoreHashes(&*self.store);
        let mut entries = Vec::with_capacity(rows.len());
        let pending = rows.iter().filter(|r| r.leaf_index >= cp.size).count();
        for row in rows.into_iter().filter(|r| r.leaf_index < cp.size) {
            let body = dek
                .open(subject.as_str(), SealContext::Event, &row.sealed_body)
                .map_err(|_| VaultError::Internal)?;
            if body.len() < 32 {
                return Err(StoreError::Corrupt("event body too short").into());
            }
            let nonce: [u8; 32] = body[..32].try_into().expect("checked length");
            let canonical_event =
                String::from_utf8(body[32..].to_vec()).map_err(|_| VaultError::Internal)?;
            let inclusion_proof = candor_log::inclusion_proof(row.leaf_index, cp.size, &hashes)?;
            entries.push(HistoryEntry {
                leaf_hash: leaf_hash(&row.commitment),
                receipt: Receipt {
                    extra: None,
                    index: row.leaf_index,
                    proof: inclusion_proof.clone(),
                    checkpoint: cp.note.clone(),
                },
                inclusion_proof,
                opening: LeafOpening {
                    leaf_index: row.leaf_index,
                    commitment: row.commitment,
                    nonce,
                    canonical_event,
                },
            });
        }
        let label = self.labels.label(subject.as_str());
        let completeness = match directory {
            Some(directory) => completeness_in(&directory, label),
            // A follower under a witness policy has not seen the cosigned checkpoint's directory;
            // the sequencer has.
            None => self.sequencing.completeness_from_sequencer(label, cp.size),
        };
        if let Some(c) = &completeness
            && c.head.size != entries.len() as u64
        {
            tracing::error!(
                subject = %subject,
                "the directory disagrees with the customer's stored events"
            );
            return Err(VaultError::Internal);
        }
        Ok(History {
            checkpoint: cp.note,
            tree_size: cp.size,
            entries,
            pending,
            completeness,
        })
    }

    /// Erases a customer: destroys their data key, fields, index entries, consents and event
    /// bodies in one durable step, and logs the erasure. The returned opening is the caller's only
    /// copy of the erasure event's nonce.
    pub async fn erase(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
    ) -> Result<LeafOpening, VaultError> {
        let allowed = match principal {
            Principal::Subject(s) => s == subject,
            Principal::Service(k) => k.can_erase,
            Principal::Admin { .. } => true,
        };
        if !allowed {
            return Err(VaultError::Forbidden(
                "this caller may not erase this subject",
            ));
        }
        // Fails with SubjectErased or SubjectNotFound as appropriate.
        drop(self.data_key(subject, false, now).await?);
        let event = self.event(principal, subject, now, EventKind::Erased);
        let (entry, nonce, canonical) = self.entry(None, subject, &event);
        let commitment = entry.commitment;
        let leaves = self
            .submit(WriteRequest {
                requires_active: Some(subject.as_str().to_owned()),
                mutations: vec![Mutation::Erase {
                    subject: subject.as_str().to_owned(),
                    at: now,
                }],
                entries: vec![entry],
            })
            .await?;
        Ok(LeafOpening {
            leaf_index: leaves[0],
            commitment,
            nonce,
            canonical_event: String::from_utf8(canonical).expect("canonical JSON is UTF-8"),
        })
    }

    /// Mints a short-lived session token for a customer, on a trusted service's word.
    pub fn mint_session(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
    ) -> Result<(String, i64), VaultError> {
        let key = principal.service()?;
        if !key.can_mint_sessions {
            return Err(VaultError::Forbidden(
                "this key may not mint customer sessions",
            ));
        }
        if let SubjectState::Erased { .. } = self.store.subject(subject.as_str())? {
            return Err(VaultError::SubjectErased);
        }
        let expires_at = now + SESSION_TTL_SECS;
        Ok((self.sessions.mint(subject.as_str(), expires_at), expires_at))
    }

    /// Creates a service key (admin only).
    pub async fn create_key(
        &self,
        principal: &Principal,
        spec: NewKeySpec,
        now: i64,
    ) -> Result<CreatedKey, VaultError> {
        if !matches!(principal, Principal::Admin { .. }) {
            return Err(VaultError::Forbidden("only the admin key may create keys"));
        }
        check_label("name", &spec.name)?;
        for p in &spec.purposes {
            if self.map.purpose(p).is_none() {
                return Err(VaultError::UnknownPurpose(p.clone()));
            }
        }
        if let Some(r) = &spec.recipient
            && !self.map.recipients.contains_key(r)
        {
            return Err(VaultError::RecipientNotDeclared(r.clone()));
        }
        self.insert_key("service", spec, now).await
    }

    /// Creates the admin key; `candor init` calls this once, no API reaches it.
    pub async fn create_admin_key(&self, now: i64) -> Result<CreatedKey, VaultError> {
        let spec = NewKeySpec {
            name: "admin".into(),
            purposes: vec![],
            recipient: None,
            can_mint_sessions: false,
            can_erase: true,
        };
        self.insert_key("admin", spec, now).await
    }

    async fn insert_key(
        &self,
        role: &str,
        spec: NewKeySpec,
        now: i64,
    ) -> Result<CreatedKey, VaultError> {
        let new = new_api_key();
        self.submit(WriteRequest {
            mutations: vec![Mutation::InsertApiKey(ApiKeyRow {
                id: new.id.clone(),
                secret_hash: new.secret_hash,
                role: role.to_owned(),
                name: spec.name,
                purposes: spec.purposes,
                recipient: spec.recipient,
                can_mint_sessions: spec.can_mint_sessions,
                can_erase: spec.can_erase,
                created_at: now,
            })],
            ..Default::default()
        })
        .await?;
        Ok(CreatedKey {
            id: new.id,
            token: new.token,
        })
    }
}
