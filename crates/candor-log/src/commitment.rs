//! The salted commitment that stands in the log for an event.
//!
//! A leaf's entry is `SHA-256(DOMAIN || nonce || canonical_event)`. The nonce is 32 fresh random
//! bytes, so the commitment reveals nothing about the event, not even to someone who can guess it,
//! until the nonce is disclosed. Destroying the nonce (with the customer's key) makes that permanent.

use sha2::{Digest, Sha256};

/// Domain separation for Candor event commitments, version 1.
pub const COMMITMENT_DOMAIN: &[u8] = b"candor.event.commitment.v1\0";

/// The commitment to `canonical_event` under `nonce`.
pub fn commit(nonce: &[u8; 32], canonical_event: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(COMMITMENT_DOMAIN);
    h.update(nonce);
    h.update(canonical_event);
    h.finalize().into()
}

/// A fresh commitment nonce from `rand`'s thread-local CSPRNG (ChaCha12, seeded and periodically
/// reseeded by the operating system): a system call per event would cost more than the hashing.
pub fn fresh_nonce() -> [u8; 32] {
    use rand::RngCore;
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_hides_equal_events() {
        let event = br#"{"type":"access"}"#;
        assert_ne!(commit(&fresh_nonce(), event), commit(&fresh_nonce(), event));
        let nonce = [7u8; 32];
        assert_eq!(commit(&nonce, event), commit(&nonce, event));
    }
}
