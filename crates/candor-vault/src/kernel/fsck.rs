//! `candor fsck`: reread the whole stored log and recompute it.
//!
//! Every entry is hashed again and appended to a fresh tree; each tree hash that produces is
//! compared with the stored one, the root with the latest checkpoint's, the directory rebuilt
//! from every customer's stored tree with the checkpoint's directory line, and every stored
//! checkpoint's signature (and, under a witness policy, its cosignatures) is checked. The first
//! mismatch is reported by position, so a changed byte anywhere in the log's tables is found.
//! It reads through the [`LogStore`] contract, so it checks any backend.

use candor_log::directory::{Directory, Head, from_checkpoint_text};
use candor_log::note::signature_lines;
use candor_log::{
    Checkpoint, Frontier, NoteVerifier, split_stored_hash_index, tree_hash, verify_cosignatures,
};
use candor_store::{LogStore, StoreError, StoreHashes, StoredCheckpoint};

use crate::WitnessPolicy;

/// Entries read per batch.
const CHUNK: u64 = 4096;

/// What a clean check covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckReport {
    /// Leaves rehashed.
    pub entries: u64,
    /// Stored tree hashes compared.
    pub hashes: u64,
    /// Checkpoints whose signatures and roots were checked.
    pub checkpoints: usize,
}

/// The first problem found.
#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored tree hash differs from the one its entries give.
    #[error(
        "tree hash at stored position {position} (level {level}, index {index}) differs from the one recomputed from the entries{hint}"
    )]
    HashMismatch {
        /// Stored-hash position.
        position: u64,
        /// Tree level.
        level: u32,
        /// Index within the level.
        index: u64,
        /// Which leaf is at fault, where the mismatch is a leaf hash.
        hint: String,
    },
    /// A checkpoint fails its signature or disagrees with the tree.
    #[error("{which} checkpoint (size {size}): {problem}")]
    Checkpoint {
        /// `latest` or `witnessed`.
        which: &'static str,
        /// The size it claims (0 if unreadable).
        size: u64,
        /// What is wrong.
        problem: String,
    },
}

/// Checks the whole log in `store` against the log's key and the witness policy.
pub fn fsck(
    store: &dyn LogStore,
    log_key: &NoteVerifier,
    policy: Option<&WitnessPolicy>,
) -> Result<FsckReport, FsckError> {
    let Some(latest) = store.latest_checkpoint()? else {
        return Ok(FsckReport {
            entries: 0,
            hashes: 0,
            checkpoints: 0,
        });
    };
    let cp = open_checkpoint("latest", &latest, log_key, None)?;
    let mut frontier = Frontier::default();
    let mut hashes = 0;
    let mut start = 0;
    while start < cp.size {
        let end = (start + CHUNK).min(cp.size);
        let entries = store.entries(start..end)?;
        let mut recomputed = Vec::with_capacity(entries.len() * 2);
        for entry in &entries {
            recomputed.extend(frontier.append(entry).1);
        }
        let indexes: Vec<u64> = recomputed.iter().map(|(i, _)| *i).collect();
        let stored = store.read_hashes(&indexes)?;
        for ((position, want), got) in recomputed.iter().zip(&stored) {
            if !want.ct_eq(got) {
                let (level, index) = split_stored_hash_index(*position);
                let hint = if level == 0 {
                    format!(": the entry of leaf {index} or its stored leaf hash was changed")
                } else {
                    String::new()
                };
                return Err(FsckError::HashMismatch {
                    position: *position,
                    level,
                    index,
                    hint,
                });
            }
        }
        hashes += indexes.len() as u64;
        start = end;
    }
    let mismatch = |which, size, problem: &str| FsckError::Checkpoint {
        which,
        size,
        problem: problem.to_owned(),
    };
    if !frontier.root().ct_eq(&cp.root) {
        return Err(mismatch(
            "latest",
            cp.size,
            "root differs from the recomputed tree",
        ));
    }
    // The directory: every customer's stored head, rebuilt, must be the checkpoint's, and must
    // attribute every entry.
    let mut directory = Directory::default();
    for log in store.subject_logs()? {
        let tree = Frontier::from_parts(log.size, log.peaks).ok_or_else(|| {
            mismatch(
                "latest",
                cp.size,
                "a customer's stored tree has the wrong peaks",
            )
        })?;
        let head = Head {
            size: tree.size(),
            root: tree.root(),
        };
        directory = directory.with(log.label, head);
    }
    let text = signature_lines(&latest.note)
        .map_err(|e| mismatch("latest", cp.size, &e.to_string()))?
        .text;
    let committed =
        from_checkpoint_text(text).map_err(|e| mismatch("latest", cp.size, &e.to_string()))?;
    if committed != directory.root_ref() {
        return Err(mismatch(
            "latest",
            cp.size,
            "directory differs from the one rebuilt from the customers' trees",
        ));
    }
    if committed.sum != cp.size {
        return Err(mismatch(
            "latest",
            cp.size,
            "directory does not attribute every entry",
        ));
    }
    let mut checkpoints = 1;
    if let Some(witnessed) = store.latest_witnessed()? {
        let w = open_checkpoint("witnessed", &witnessed, log_key, policy)?;
        if w.size > cp.size {
            return Err(mismatch(
                "witnessed",
                w.size,
                "is larger than the latest checkpoint",
            ));
        }
        // Every stored hash below cp.size was just checked, so the stored tree can be trusted here.
        if !tree_hash(w.size, &StoreHashes(store))?.ct_eq(&w.root) {
            return Err(mismatch(
                "witnessed",
                w.size,
                "root differs from the recomputed tree",
            ));
        }
        checkpoints += 1;
    }
    Ok(FsckReport {
        entries: cp.size,
        hashes,
        checkpoints,
    })
}

fn open_checkpoint(
    which: &'static str,
    stored: &StoredCheckpoint,
    log_key: &NoteVerifier,
    policy: Option<&WitnessPolicy>,
) -> Result<Checkpoint, FsckError> {
    let fail = |problem: String| FsckError::Checkpoint {
        which,
        size: stored.size,
        problem,
    };
    let cp = Checkpoint::open(&stored.note, log_key).map_err(|e| fail(e.to_string()))?;
    if cp.size != stored.size {
        return Err(fail(format!("the note says size {}", cp.size)));
    }
    if let Some(policy) = policy {
        let cosigned = verify_cosignatures(&stored.note, &policy.witnesses)
            .map_err(|e| fail(e.to_string()))?;
        if cosigned.len() < policy.quorum {
            return Err(fail(format!(
                "{} of the {} cosignatures the witness policy needs",
                cosigned.len(),
                policy.quorum
            )));
        }
    }
    Ok(cp)
}
