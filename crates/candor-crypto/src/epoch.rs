//! Tenant key epochs: what makes an erasure reach backups.
//!
//! Customer data keys are wrapped under the key of an epoch. Epoch keys come from a one-way
//! chain: the chain key of epoch `n + 1` is HKDF-Expand of the chain key of epoch `n`, and each
//! epoch's wrapping key is a second expansion of its chain key. Whoever holds the chain key of
//! epoch `m` derives every epoch from `m` on, and none before it (HMAC-SHA256 is a one-way PRF),
//! so destroying an epoch is replacing the stored chain key by its successor: a database copy
//! whose keys are wrapped under a destroyed epoch no longer opens, whatever else its holder
//! has. Every node of a deployment derives later epochs by itself, so a roll needs no key to
//! travel between nodes and a failover never finds an epoch missing.
//!
//! The chain key is kept sealed under a root-derived key ([`RootKey::keyring_key`]) in a
//! keyring outside the database; this module does no IO.
//!
//! [`RootKey::keyring_key`]: crate::RootKey::keyring_key

use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{CryptoError, DataKey, NONCE_LEN, associated_data, open_key, random, seal_key};

/// Version byte of a data key wrapped under an epoch (version 1, [`KeyWrappingKey`], wrapped
/// keys directly under a root-derived key, before epochs).
///
/// [`KeyWrappingKey`]: crate::KeyWrappingKey
const WRAPPED_V2: u8 = 2;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// The chain key of one epoch: the epoch's own wrapping key and every later epoch's come from it.
pub struct ChainKey(pub(crate) Zeroizing<[u8; 32]>);

impl ChainKey {
    /// A fresh random chain, for a new keyring.
    pub fn generate() -> ChainKey {
        ChainKey(Zeroizing::new(random()))
    }

    fn expand(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<Sha256>::from_prk(&*self.0).expect("a 32-byte PRK");
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(info, &mut *out)
            .expect("32 bytes is a valid HKDF length");
        out
    }

    /// The next epoch's chain key. This one cannot be recovered from it.
    pub fn next(&self) -> ChainKey {
        ChainKey(self.expand(b"candor.epoch.next"))
    }

    /// The key that wraps customer data keys in this epoch, numbered `epoch`.
    pub fn epoch_key(&self, epoch: u32) -> EpochKey {
        EpochKey {
            epoch,
            key: self.expand(b"candor.epoch.wrap"),
        }
    }
}

/// Wraps and unwraps customer data keys in one epoch.
pub struct EpochKey {
    epoch: u32,
    key: Zeroizing<[u8; 32]>,
}

impl EpochKey {
    fn ad(&self, subject: &str) -> Vec<u8> {
        associated_data(
            b"candor.dek.v2",
            &[subject.as_bytes(), &self.epoch.to_be_bytes()],
        )
    }

    /// Wraps `key` for `subject` with AES-256-GCM-SIV: `2 || epoch (u32, big-endian) || nonce
    /// || ciphertext`, the associated data naming the customer and the epoch.
    pub fn wrap(&self, subject: &str, key: &DataKey) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random();
        let ct = seal_key(&self.key, &nonce, &key.0, &self.ad(subject));
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(WRAPPED_V2);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Unwraps a data key wrapped for `subject` in this epoch.
    pub fn unwrap(&self, subject: &str, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        if wrapped_key_epoch(wrapped) != Some(self.epoch) || wrapped.len() < HEADER_LEN + 16 {
            return Err(CryptoError::Unauthentic);
        }
        let (header, ct) = wrapped.split_at(HEADER_LEN);
        let nonce: &[u8; NONCE_LEN] = header[5..].try_into().expect("header length");
        Ok(DataKey(open_key(&self.key, nonce, ct, &self.ad(subject))?))
    }
}

/// The epoch a wrapped data key names, or `None` for a key wrapped before epochs (version 1)
/// or bytes that are no wrapped key at all.
pub fn wrapped_key_epoch(wrapped: &[u8]) -> Option<u32> {
    match wrapped {
        [WRAPPED_V2, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Seals the keyring's chain key, bound to its epoch, under a root-derived key.
pub struct KeyringKey(pub(crate) Zeroizing<[u8; 32]>);

impl KeyringKey {
    /// `nonce || ciphertext` of `chain`, the chain key of `epoch`.
    pub fn seal(&self, epoch: u32, chain: &ChainKey) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random();
        let ad = associated_data(b"candor.keyring.v1", &[&epoch.to_be_bytes()]);
        [nonce.as_slice(), &seal_key(&self.0, &nonce, &chain.0, &ad)].concat()
    }

    /// Opens the chain key of `epoch` that [`KeyringKey::seal`] sealed.
    pub fn open(&self, epoch: u32, sealed: &[u8]) -> Result<ChainKey, CryptoError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Unauthentic);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().expect("split at nonce length");
        let ad = associated_data(b"candor.keyring.v1", &[&epoch.to_be_bytes()]);
        Ok(ChainKey(open_key(&self.0, nonce, ct, &ad)?))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::RootKey;

    #[test]
    fn a_wrapped_key_opens_only_in_its_epoch_for_its_customer() {
        let chain = ChainKey::generate();
        let (one, two) = (chain.epoch_key(1), chain.next().epoch_key(2));
        let dek = DataKey::generate();
        let wrapped = one.wrap("cus_1", &dek);
        assert_eq!(wrapped_key_epoch(&wrapped), Some(1));
        assert_eq!(*one.unwrap("cus_1", &wrapped).unwrap().0, *dek.0);
        assert!(one.unwrap("cus_2", &wrapped).is_err());
        assert!(two.unwrap("cus_1", &wrapped).is_err());
        // Renumbering the header does not move a key to another epoch of the same key.
        let mut renumbered = wrapped.clone();
        renumbered[4] = 2;
        assert!(chain.epoch_key(2).unwrap("cus_1", &renumbered).is_err());
        for i in 0..wrapped.len() * 8 {
            let mut bad = wrapped.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(one.unwrap("cus_1", &bad).is_err(), "bit {i}");
        }
    }

    #[test]
    fn the_chain_moves_forward_to_keys_that_differ_every_epoch() {
        let first = ChainKey::generate();
        let second = first.next();
        assert_ne!(*first.0, *second.0);
        assert_ne!(*first.epoch_key(1).key, *second.epoch_key(2).key);
        assert_ne!(
            *first.epoch_key(1).key,
            *first.0,
            "the wrapping key is not the chain key"
        );
        // Deterministic: every node holding epoch 1 derives the same epoch 3.
        let again = ChainKey(first.0.clone());
        assert_eq!(*first.next().next().0, *again.next().next().0);
    }

    #[test]
    fn keys_wrapped_before_epochs_name_none() {
        let legacy = RootKey::generate()
            .key_wrapping_key()
            .wrap("cus_1", &DataKey::generate());
        assert_eq!(wrapped_key_epoch(&legacy), None);
        assert_eq!(wrapped_key_epoch(&[]), None);
    }

    #[test]
    fn the_keyring_seal_is_bound_to_its_epoch_and_root() {
        let root = RootKey::generate();
        let chain = ChainKey::generate();
        let sealed = root.keyring_key().seal(7, &chain);
        assert_eq!(*root.keyring_key().open(7, &sealed).unwrap().0, *chain.0);
        assert!(root.keyring_key().open(8, &sealed).is_err());
        assert!(RootKey::generate().keyring_key().open(7, &sealed).is_err());
        assert!(root.keyring_key().open(7, &sealed[..20]).is_err());
    }

    proptest! {
        #[test]
        fn wrapping_round_trips_in_any_epoch(epoch in any::<u32>(), subject in "[a-z_0-9]{1,32}") {
            let key = ChainKey::generate().epoch_key(epoch);
            let dek = DataKey::generate();
            let wrapped = key.wrap(&subject, &dek);
            prop_assert_eq!(wrapped_key_epoch(&wrapped), Some(epoch));
            prop_assert_eq!(*key.unwrap(&subject, &wrapped).unwrap().0, *dek.0);
        }
    }
}
