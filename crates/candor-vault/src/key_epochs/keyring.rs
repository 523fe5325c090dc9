//! The keyring: the chain key of the oldest epoch this node still holds, sealed under the root
//! key, in a file beside the root key and never in the database. A database copy carries the
//! wrapped customer keys but not the epochs that open them, so once the keyring has moved past
//! an epoch, a copy whose keys are wrapped under it stays shut.
//!
//! The file is one JSON object, `{"format":1,"oldest":N,"chain":"<base64>"}`, mode 0600.
//! Moving on writes the successor to a new file, syncs it, renames it over the old one and
//! syncs the directory, so a crash leaves one whole keyring or the other; then it overwrites
//! the old file's blocks (still open) with zeros and syncs them, so the destroyed chain key does
//! not linger in freed blocks of a file system that writes in place. (Copy-on-write file
//! systems and flash translation layers may keep old blocks anyway: ARCHITECTURE.md says so.)

use std::io::{Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use candor_crypto::{ChainKey, DataKey, EpochKey, KeyWrappingKey, KeyringKey, RootKey};
use serde::{Deserialize, Serialize};

/// How far past the oldest epoch held a wrapped key may name an epoch: more is a database
/// that does not belong to this keyring, not a reason to derive a billion keys.
const MAX_EPOCHS_AHEAD: u32 = 4096;

/// Why the keyring could not give a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The key is wrapped under an epoch this keyring has destroyed (or never reached): a copy
    /// of the database older than the erasure bound.
    #[error("the key is wrapped under key epoch {epoch}, which has been destroyed")]
    EpochDestroyed {
        /// The epoch the key names.
        epoch: u32,
    },
    /// The wrapped key failed to open: tampering, or a database of another deployment.
    #[error("the wrapped key does not open")]
    Unauthentic,
    /// The keyring file could not be read or written.
    #[error("keyring {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong (never key material).
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    format: u32,
    oldest: u32,
    chain: String,
}

/// The chain from the oldest epoch held, with the wrapping keys derived so far.
struct Chain {
    oldest: u32,
    chain: ChainKey,
    /// The wrapping keys of epochs `oldest ..`, in order, derived as far as used.
    keys: Vec<EpochKey>,
    /// The chain key of the epoch after the last in `keys`.
    next: ChainKey,
}

impl Chain {
    fn starting(oldest: u32, chain: ChainKey) -> Chain {
        Chain {
            oldest,
            keys: vec![chain.epoch_key(oldest)],
            next: chain.next(),
            chain,
        }
    }

    fn key(&self, epoch: u32) -> Option<&EpochKey> {
        self.keys.get(epoch.checked_sub(self.oldest)? as usize)
    }

    /// Derives wrapping keys up to `epoch`, which must be within reach.
    fn reach(&mut self, epoch: u32) {
        while self.oldest + (self.keys.len() as u32) <= epoch {
            let number = self.oldest + self.keys.len() as u32;
            self.keys.push(self.next.epoch_key(number));
            self.next = self.next.next();
        }
    }
}

/// The node's keyring.
pub struct Keyring {
    path: Option<PathBuf>,
    seal: KeyringKey,
    /// Unwraps keys wrapped before epochs, until they are rewrapped.
    legacy: KeyWrappingKey,
    chain: RwLock<Chain>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(oldest epoch {})", self.oldest())
    }
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> KeyringError {
    KeyringError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl Keyring {
    /// A new keyring at `path` (which must not exist), starting at epoch 1 with a random chain.
    pub fn create(path: &Path, root: &RootKey) -> Result<Keyring, KeyringError> {
        let keyring = Keyring::new(Some(path.to_owned()), root, 1, ChainKey::generate());
        keyring.write(&keyring.chain.read().expect("keyring poisoned"), true)?;
        Ok(keyring)
    }

    /// The keyring at `path`, as `create` or a later move left it.
    pub fn open(path: &Path, root: &RootKey) -> Result<Keyring, KeyringError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        let file: KeyringFile =
            serde_json::from_str(&text).map_err(|_| file_error(path, "not a Candor keyring"))?;
        if file.format != 1 {
            return Err(file_error(path, format!("unknown format {}", file.format)));
        }
        let sealed = STANDARD
            .decode(&file.chain)
            .map_err(|_| file_error(path, "not a Candor keyring"))?;
        let chain = root
            .keyring_key()
            .open(file.oldest, &sealed)
            .map_err(|_| file_error(path, "does not open under this root key"))?;
        Ok(Keyring::new(
            Some(path.to_owned()),
            root,
            file.oldest,
            chain,
        ))
    }

    /// A keyring held in memory only, for tests.
    pub fn in_memory(root: &RootKey) -> Keyring {
        Keyring::new(None, root, 1, ChainKey::generate())
    }

    fn new(path: Option<PathBuf>, root: &RootKey, oldest: u32, chain: ChainKey) -> Keyring {
        Keyring {
            path,
            seal: root.keyring_key(),
            legacy: root.key_wrapping_key(),
            chain: RwLock::new(Chain::starting(oldest, chain)),
        }
    }

    /// The oldest epoch this keyring still holds: every earlier one is destroyed here.
    pub fn oldest(&self) -> u32 {
        self.chain.read().expect("keyring poisoned").oldest
    }

    /// Runs `f` with the wrapping key of `epoch`, derived from the chain if need be.
    fn with_key<T>(&self, epoch: u32, f: impl FnOnce(&EpochKey) -> T) -> Result<T, KeyringError> {
        {
            let chain = self.chain.read().expect("keyring poisoned");
            if epoch < chain.oldest || epoch - chain.oldest > MAX_EPOCHS_AHEAD {
                return Err(KeyringError::EpochDestroyed { epoch });
            }
            if let Some(key) = chain.key(epoch) {
                return Ok(f(key));
            }
        }
        let mut chain = self.chain.write().expect("keyring poisoned");
        if epoch < chain.oldest {
            return Err(KeyringError::EpochDestroyed { epoch });
        }
        chain.reach(epoch);
        Ok(f(chain.key(epoch).expect("reached")))
    }

    /// `key` wrapped for `subject` under `epoch`.
    pub fn wrap(&self, epoch: u32, subject: &str, key: &DataKey) -> Result<Vec<u8>, KeyringError> {
        self.with_key(epoch, |k| k.wrap(subject, key))
    }

    /// Unwraps a customer's key as stored: under the epoch it names, or (wrapped before
    /// epochs) under the root-derived key.
    pub fn unwrap(&self, subject: &str, wrapped: &[u8]) -> Result<DataKey, KeyringError> {
        match candor_crypto::wrapped_key_epoch(wrapped) {
            Some(epoch) => self.with_key(epoch, |k| k.unwrap(subject, wrapped))?,
            None => self.legacy.unwrap(subject, wrapped),
        }
        .map_err(|_| KeyringError::Unauthentic)
    }

    /// Destroys every epoch before `oldest` here: the file is replaced by one holding the chain
    /// from `oldest` on, and the old file's blocks are zeroed. Moving back is not possible.
    pub fn move_to(&self, oldest: u32) -> Result<(), KeyringError> {
        let mut chain = self.chain.write().expect("keyring poisoned");
        if oldest <= chain.oldest {
            return Ok(());
        }
        let mut moved = chain.chain.next();
        for _ in chain.oldest + 1..oldest {
            moved = moved.next();
        }
        let moved = Chain::starting(oldest, moved);
        self.write(&moved, false)?;
        *chain = moved;
        Ok(())
    }

    fn write(&self, chain: &Chain, first: bool) -> Result<(), KeyringError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = serde_json::to_string(&KeyringFile {
            format: 1,
            oldest: chain.oldest,
            chain: STANDARD.encode(self.seal.seal(chain.oldest, &chain.chain)),
        })
        .expect("the keyring serialises");
        let error = |e: std::io::Error| file_error(path, e);
        let open_new = |p: &Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
        };
        if first {
            let mut f = open_new(path).map_err(error)?;
            f.write_all(text.as_bytes()).map_err(error)?;
            return f.sync_all().map_err(error);
        }
        let mut old = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(error)?;
        let staged = path.with_extension("next");
        // A stale staged file is a move that crashed before its rename: the keyring in place
        // is still whole.
        let _ = std::fs::remove_file(&staged);
        let mut f = open_new(&staged).map_err(error)?;
        f.write_all(text.as_bytes()).map_err(error)?;
        f.sync_all().map_err(error)?;
        std::fs::rename(&staged, path).map_err(error)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(error)?;
        }
        let len = old.seek(std::io::SeekFrom::End(0)).map_err(error)?;
        old.rewind().map_err(error)?;
        old.write_all(&vec![0u8; len as usize]).map_err(error)?;
        old.sync_all().map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_keyring_opens_only_the_epochs_from_its_oldest_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring");
        let root = RootKey::generate();
        let keyring = Keyring::create(&path, &root).unwrap();
        let dek = DataKey::generate();
        let in_one = keyring.wrap(1, "cus_1", &dek).unwrap();
        let in_three = keyring.wrap(3, "cus_1", &dek).unwrap();

        keyring.move_to(2).unwrap();
        assert!(matches!(
            keyring.unwrap("cus_1", &in_one),
            Err(KeyringError::EpochDestroyed { epoch: 1 })
        ));
        assert!(keyring.unwrap("cus_1", &in_three).is_ok());

        // The file says the same after a restart; moving back is a no-op.
        let reopened = Keyring::open(&path, &root).unwrap();
        assert_eq!(reopened.oldest(), 2);
        reopened.move_to(1).unwrap();
        assert!(reopened.unwrap("cus_1", &in_one).is_err());
        assert!(reopened.unwrap("cus_1", &in_three).is_ok());
        assert!(Keyring::open(&path, &RootKey::generate()).is_err());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0);
    }

    #[test]
    fn a_key_naming_an_epoch_far_ahead_is_refused_without_deriving_it() {
        let keyring = Keyring::in_memory(&RootKey::generate());
        let far = [2u8, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            keyring.unwrap("cus_1", &far),
            Err(KeyringError::EpochDestroyed { .. })
        ));
    }

    /// A home from before epochs: its customers' keys are wrapped under the root-derived key,
    /// and the first check moves them into epoch 1, where they still open.
    #[test]
    fn a_customer_wrapped_before_epochs_is_rewrapped_at_the_first_check_and_still_reads() {
        use std::sync::Arc;

        use candor_core::SubjectId;
        use candor_crypto::SealContext;
        use candor_store::SubjectState;

        use crate::subjects::{CreateSubject, PutField};
        use crate::testing::{Fixture, NOW, OPS, apply};

        let f = Fixture::new();
        let keyring = &f.vault.key_epochs().keyring;
        let dek = DataKey::generate();
        let create = CreateSubject {
            subject: "cus_old".into(),
            wrapped_key: keyring.legacy.wrap("cus_old", &dek),
            key_epoch: None,
            at: NOW,
        };
        let name = PutField {
            subject: "cus_old".into(),
            category: "user.name".into(),
            sealed: dek.seal("cus_old", SealContext::Field("user.name"), b"Old"),
        };
        apply(f.vault.db(), vec![Arc::new(create), Arc::new(name)]);
        f.run(f.vault.key_epochs().check(NOW)).unwrap();
        let SubjectState::Active { wrapped_key } = f.vault.db().log().subject("cus_old").unwrap()
        else {
            panic!("cus_old is active");
        };
        assert_eq!(candor_crypto::wrapped_key_epoch(&wrapped_key), Some(1));
        let ops = f.service(&[OPS], false, false);
        let subject = SubjectId::parse("cus_old").unwrap();
        let fields = ["user.name".to_owned()];
        let out = f
            .run(f.vault.access().access(&ops, &subject, OPS, &fields, NOW))
            .unwrap();
        assert_eq!(&*out.values[0].1, "Old");
    }

    #[test]
    fn keys_wrapped_before_epochs_still_open() {
        let root = RootKey::generate();
        let dek = DataKey::generate();
        let legacy = root.key_wrapping_key().wrap("cus_1", &dek);
        assert!(Keyring::in_memory(&root).unwrap("cus_1", &legacy).is_ok());
    }
}
