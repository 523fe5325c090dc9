//! The log as the public sees it: the published checkpoint (cosigned, under a witness policy),
//! tiles, receipts and consistency proofs. None of it holds personal data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use candor_log::directory::Directory;
use candor_log::tile::encode_entry_bundle;
use candor_log::{Hash, Receipt, TilePath, WitnessVerifier};
use candor_store::{LogStore, StoreHashes, StoredCheckpoint};

use crate::VaultError;
use crate::error::invalid;
use crate::history::{Completeness, completeness_in};
use crate::kernel::sequencing::Sequencing;

/// Why a tile was not served.
#[derive(Debug, thiserror::Error)]
pub enum PublicLogError {
    /// The tile or entry bundle is not (yet) in the log (404 `tile_not_found`).
    #[error("no such tile in the log's current tree")]
    TileNotFound,
    /// The leaf is not in the published checkpoint (yet) (404 `leaf_not_found`).
    #[error("this leaf is not in the published checkpoint (yet)")]
    LeafNotFound,
    /// No consistency proof joins these sizes: the earlier is past the later, or the later past
    /// the published checkpoint (404 `proof_not_found`).
    #[error(
        "no consistency proof from {from} to {to}: need from <= to <= {size}, the latest checkpoint's size"
    )]
    ProofNotFound {
        /// The earlier size asked for.
        from: u64,
        /// The later size asked for.
        to: u64,
        /// The latest checkpoint's size.
        size: u64,
    },
    /// A reason every slice shares.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<candor_store::StoreError> for PublicLogError {
    fn from(e: candor_store::StoreError) -> PublicLogError {
        PublicLogError::Vault(e.into())
    }
}

/// Which witnesses must cosign a checkpoint before customers are shown it.
#[derive(Debug, Clone)]
pub struct WitnessPolicy {
    /// The witnesses' public keys.
    pub witnesses: Vec<WitnessVerifier>,
    /// How many of them must cosign (1 to the number of witnesses).
    pub quorum: usize,
}

/// How many full tiles (8 KiB each, a little more for entry bundles) stay in memory.
const FULL_TILE_CACHE: usize = 4096;

/// The published log.
pub struct PublicLog {
    store: Arc<dyn LogStore>,
    sequencing: Arc<Sequencing>,
    // With a policy, customers see only checkpoints it accepted; without, the latest one. Set
    // once, before serving.
    witness_policy: OnceLock<WitnessPolicy>,
    // The directories of the last two checkpoints the witness policy accepted, with their sizes:
    // the newer is recorded just before the store has its checkpoint.
    witnessed_directory: RwLock<Vec<(u64, Directory)>>,
    // Full tiles by path. Their bytes never change, so a cached one is never stale; bounded by
    // FULL_TILE_CACHE entries, evicting an arbitrary one when full.
    full_tiles: Mutex<HashMap<TilePath, Arc<[u8]>>>,
}

impl PublicLog {
    /// The published view of the log `sequencing` writes to `store`.
    pub fn new(store: Arc<dyn LogStore>, sequencing: Arc<Sequencing>) -> PublicLog {
        PublicLog {
            store,
            sequencing,
            witness_policy: OnceLock::new(),
            witnessed_directory: RwLock::new(Vec::new()),
            full_tiles: Mutex::new(HashMap::new()),
        }
    }

    /// Shows customers only checkpoints that `policy` accepted; once, before serving.
    pub fn set_witness_policy(&self, policy: WitnessPolicy) {
        assert!(
            self.witness_policy.set(policy).is_ok(),
            "the witness policy is set once"
        );
    }

    /// The witness policy, if any.
    pub fn witness_policy(&self) -> Option<&WitnessPolicy> {
        self.witness_policy.get()
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
    pub fn published(&self) -> Result<Option<(StoredCheckpoint, Option<Directory>)>, VaultError> {
        if self.witness_policy().is_none() {
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

    /// The checkpoint published to customers and auditors: the latest one the witness policy
    /// accepted, cosignatures included, or the latest signed one where there is no policy.
    pub fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, VaultError> {
        Ok(match self.witness_policy() {
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
    pub fn tile(&self, path: TilePath) -> Result<Arc<[u8]>, PublicLogError> {
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
            _ => return Err(PublicLogError::TileNotFound),
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
    pub fn receipt(&self, index: u64) -> Result<Receipt, PublicLogError> {
        let cp = self
            .checkpoint()?
            .filter(|cp| index < cp.size)
            .ok_or(PublicLogError::LeafNotFound)?;
        let proof = candor_log::inclusion_proof(index, cp.size, &StoreHashes(&*self.store))?;
        Ok(Receipt {
            extra: None,
            index,
            proof,
            checkpoint: cp.note,
        })
    }

    /// A consistency proof from tree size `from` to `to`, both at most the latest checkpoint's.
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, PublicLogError> {
        let size = self.store.latest_checkpoint()?.map_or(0, |c| c.size);
        if from == 0 {
            return Err(invalid("from is a tree size of at least 1").into());
        }
        if from > to || to > size {
            return Err(PublicLogError::ProofNotFound { from, to, size });
        }
        Ok(candor_log::consistency_proof(
            from,
            to,
            &StoreHashes(&*self.store),
        )?)
    }
}
