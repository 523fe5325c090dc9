//! RFC 6962 / RFC 9162 §2.1.1 hashing: leaves and interior nodes are domain-separated by a
//! one-byte prefix so a leaf can never be passed off as a node.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A SHA-256 tree hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
    pub fn empty() -> Hash {
        Hash(Sha256::digest([]).into())
    }

    /// Parses exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        bytes.try_into().ok().map(Hash)
    }

    /// Compares in constant time: roots and proofs are checked against attacker-supplied values.
    pub fn ct_eq(&self, other: &Hash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// `SHA-256(0x00 || data)`, the hash of a leaf whose entry is `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`, the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let hex: String = Hash::empty().0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_and_node_are_domain_separated() {
        let a = leaf_hash(b"x");
        let b = leaf_hash(b"y");
        let mut concat = Vec::new();
        concat.extend_from_slice(&a.0);
        concat.extend_from_slice(&b.0);
        assert_ne!(node_hash(&a, &b), leaf_hash(&concat));
    }
}
