//! The Merkle tree of RFC 9162 §2.1 over a store of complete-subtree hashes.
//!
//! Every complete, aligned subtree (level `l`, index `n`: leaves `n·2^l .. (n+1)·2^l`) is stored once,
//! at the position given by [`stored_hash_index`], the layout of Go's `golang.org/x/mod/sumdb/tlog`.
//! A tree of any size, and any proof, is then a fold over at most `2·log2(n)` stored hashes.
//! Appending needs no reads: [`Frontier`] keeps the right edge of the tree in memory.
//!
//! This module only computes; the hashes come from a [`HashReader`] that the caller implements.

use crate::hash::{Hash, leaf_hash, node_hash};

/// Position of the hash of subtree `(level, n)` in the stored-hash sequence.
///
/// Level `l`'s `n`th hash is written right after level `l-1`'s `2n+1`th hash, so the sequence is
/// append-only and each leaf adds itself plus the subtrees it completes.
pub fn stored_hash_index(level: u32, mut n: u64) -> u64 {
    for _ in 0..level {
        n = 2 * n + 1;
    }
    let mut i = 0;
    while n > 0 {
        i += n;
        n >>= 1;
    }
    i + u64::from(level)
}

/// How many hashes a tree of `size` leaves stores.
pub fn stored_hash_count(size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    let mut count = stored_hash_index(0, size - 1) + 1;
    let mut i = size - 1;
    while i & 1 == 1 {
        count += 1;
        i >>= 1;
    }
    count
}

/// Reads stored hashes by position. Implemented by storage backends and in-memory test trees.
pub trait HashReader {
    /// The backend's error.
    type Error;
    /// Returns the hashes at `indexes`, in the same order. Every index is below
    /// [`stored_hash_count`] of a size the caller knows is committed.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error>;
}

/// The largest power of two strictly below `n` (RFC 9162's `k`), for `n > 1`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// The stored subtrees that cover leaves `lo..hi`, left to right.
///
/// Only ranges produced by RFC 9162's recursive splits are passed here, so each piece is aligned.
fn cover(mut lo: u64, hi: u64, out: &mut Vec<u64>) {
    while lo < hi {
        let width = hi - lo;
        let level = 63 - width.leading_zeros();
        let k = 1u64 << level;
        debug_assert_eq!(lo & (k - 1), 0, "unaligned subtree");
        out.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
}

/// Computes the hashes of ranges `lo..hi` with one batched read.
fn range_hashes<R: HashReader>(ranges: &[(u64, u64)], reader: &R) -> Result<Vec<Hash>, R::Error> {
    let mut indexes = Vec::new();
    let mut counts = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let before = indexes.len();
        cover(lo, hi, &mut indexes);
        counts.push(indexes.len() - before);
    }
    let hashes = reader.read_hashes(&indexes)?;
    let mut out = Vec::with_capacity(ranges.len());
    let mut at = 0;
    for count in counts {
        let pieces = &hashes[at..at + count];
        at += count;
        let mut h = pieces[count - 1];
        for left in pieces[..count - 1].iter().rev() {
            h = node_hash(left, &h);
        }
        out.push(h);
    }
    Ok(out)
}

/// The root hash of the first `size` leaves.
pub fn tree_hash<R: HashReader>(size: u64, reader: &R) -> Result<Hash, R::Error> {
    if size == 0 {
        return Ok(Hash::empty());
    }
    Ok(range_hashes(&[(0, size)], reader)?[0])
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1).
pub fn inclusion_proof<R: HashReader>(
    index: u64,
    size: u64,
    reader: &R,
) -> Result<Vec<Hash>, R::Error> {
    assert!(index < size, "leaf {index} is not in a tree of {size}");
    let mut ranges = Vec::new();
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    range_hashes(&ranges, reader)
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` (RFC 9162 §2.1.4.1).
pub fn consistency_proof<R: HashReader>(
    old: u64,
    new: u64,
    reader: &R,
) -> Result<Vec<Hash>, R::Error> {
    assert!(
        old <= new,
        "cannot prove {old} consistent with smaller {new}"
    );
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: each step either finishes or descends one side.
    let mut ranges = Vec::new();
    let (mut m, mut lo, mut hi, mut whole) = (old, 0, new, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !whole {
                ranges.push((lo, hi));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            m -= k;
            lo += k;
            whole = false;
        }
    }
    ranges.reverse();
    range_hashes(&ranges, reader)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The sizes cannot be proven consistent (the first is zero or larger than the second).
    #[error("cannot prove size {old} consistent with size {new}")]
    BadSizes {
        /// The earlier size.
        old: u64,
        /// The later size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has the wrong length")]
    WrongLength,
    /// The recomputed root differs from the expected one.
    #[error("recomputed root does not match")]
    RootMismatch,
}

/// Compares a computed hash with a root given as raw bytes (any length: a wrong length never matches).
fn matches(computed: &Hash, expected: &[u8]) -> bool {
    Hash::from_slice(expected).is_some_and(|e| computed.ct_eq(&e))
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if !matches(&r, root) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `new` leaves with root `new_root` extends the tree of `old` leaves with
/// root `old_root` (RFC 9162 §2.1.4.2). A proof from the empty tree proves nothing and is refused.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &[u8],
    new_root: &[u8],
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if subtle::ConstantTimeEq::ct_eq(old_root, new_root).into() {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let old_hash = Hash::from_slice(old_root).ok_or(ProofError::RootMismatch)?;
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(old_hash);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if !fr.ct_eq(&old_hash) || !matches(&sr, new_root) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of the tree: the roots of its complete subtrees, largest first.
///
/// Appending a leaf merges equal-sized subtrees, like a binary counter carrying, and yields every
/// newly complete subtree hash with its stored position, so the store only ever inserts.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    size: u64,
    // INVARIANT: peaks[i] is the root of a complete subtree whose level is the i-th set bit of
    // `size`, counting from the most significant.
    peaks: Vec<Hash>,
}

impl Frontier {
    /// Rebuilds the frontier of a committed tree of `size` leaves from storage.
    pub fn load<R: HashReader>(size: u64, reader: &R) -> Result<Frontier, R::Error> {
        let mut indexes = Vec::new();
        cover(0, size, &mut indexes);
        let peaks = reader.read_hashes(&indexes)?;
        Ok(Frontier { size, peaks })
    }

    /// A frontier from its stored parts: the size and the peaks, largest first. `None` unless
    /// there is one peak per set bit of `size`.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Option<Frontier> {
        (peaks.len() == size.count_ones() as usize).then_some(Frontier { size, peaks })
    }

    /// The peaks, largest first: with the size, all that is needed to keep appending.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of the whole tree.
    pub fn root(&self) -> Hash {
        let Some((last, rest)) = self.peaks.split_last() else {
            return Hash::empty();
        };
        rest.iter()
            .rev()
            .fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// Appends a leaf whose entry is `data`; returns its index and the stored hashes to write.
    pub fn append(&mut self, data: &[u8]) -> (u64, Vec<(u64, Hash)>) {
        let index = self.size;
        let mut h = leaf_hash(data);
        let mut stored = vec![(stored_hash_index(0, index), h)];
        let mut level = 0;
        let mut n = index;
        while n & 1 == 1 {
            let left = self.peaks.pop().expect("a set bit has a peak");
            h = node_hash(&left, &h);
            level += 1;
            n >>= 1;
            stored.push((stored_hash_index(level, n), h));
        }
        self.peaks.push(h);
        self.size += 1;
        (index, stored)
    }
}

/// An in-memory stored-hash sequence, for tests and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct MemoryHashes(pub Vec<Hash>);

impl MemoryHashes {
    /// Records hashes produced by [`Frontier::append`].
    pub fn extend(&mut self, stored: &[(u64, Hash)]) {
        for &(i, h) in stored {
            assert_eq!(
                i,
                self.0.len() as u64,
                "stored hashes must be appended in order"
            );
            self.0.push(h);
        }
    }
}

impl HashReader for MemoryHashes {
    type Error = std::convert::Infallible;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error> {
        Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(n: u64) -> (Frontier, MemoryHashes) {
        let mut f = Frontier::default();
        let mut m = MemoryHashes::default();
        for i in 0..n {
            let (_, stored) = f.append(&i.to_be_bytes());
            m.extend(&stored);
        }
        (f, m)
    }

    /// MTH(D[lo:hi]) straight from RFC 9162 §2.1.1, the reference the stored layout must agree with.
    fn reference_root(lo: u64, hi: u64) -> Hash {
        match hi - lo {
            0 => Hash::empty(),
            1 => leaf_hash(&lo.to_be_bytes()),
            n => {
                let k = split_point(n);
                node_hash(&reference_root(lo, lo + k), &reference_root(lo + k, hi))
            }
        }
    }

    #[test]
    fn stored_layout_matches_go_tlog() {
        // Values from golang.org/x/mod/sumdb/tlog's documentation of StoredHashIndex.
        assert_eq!(stored_hash_index(0, 0), 0);
        assert_eq!(stored_hash_index(0, 1), 1);
        assert_eq!(stored_hash_index(1, 0), 2);
        assert_eq!(stored_hash_index(0, 2), 3);
        assert_eq!(stored_hash_index(0, 3), 4);
        assert_eq!(stored_hash_index(1, 1), 5);
        assert_eq!(stored_hash_index(2, 0), 6);
        for n in 0..200 {
            assert_eq!(build(n).1.0.len() as u64, stored_hash_count(n));
        }
    }

    #[test]
    fn roots_match_the_rfc_definition() {
        for n in 0..130 {
            let (f, m) = build(n);
            assert_eq!(f.root(), reference_root(0, n), "size {n}");
            assert_eq!(tree_hash(n, &m).unwrap(), reference_root(0, n));
            let reloaded = Frontier::load(n, &m).unwrap();
            assert_eq!(reloaded.root(), f.root());
            let parts = Frontier::from_parts(n, f.peaks().to_vec()).unwrap();
            assert_eq!(parts.root(), f.root());
        }
    }

    proptest! {
        #[test]
        fn inclusion_proofs_verify(size in 1u64..600, seed in any::<u64>()) {
            let index = seed % size;
            let (f, m) = build(size);
            let proof = inclusion_proof(index, size, &m).unwrap();
            let leaf = leaf_hash(&index.to_be_bytes());
            prop_assert_eq!(verify_inclusion(index, size, &leaf, &proof, &f.root().0), Ok(()));
        }

        #[test]
        fn consistency_proofs_verify(new in 1u64..600, seed in any::<u64>()) {
            let old = seed % new + 1;
            let (f, m) = build(new);
            let old_root = tree_hash(old, &m).unwrap();
            let proof = consistency_proof(old, new, &m).unwrap();
            prop_assert_eq!(verify_consistency(old, new, &proof, &old_root.0, &f.root().0), Ok(()));
        }

        #[test]
        fn any_changed_byte_breaks_an_inclusion_proof(
            size in 2u64..300, seed in any::<u64>(), byte in 0usize..32, bit in 0u8..8, in_root in any::<bool>()
        ) {
            let index = seed % size;
            let (f, m) = build(size);
            let mut proof = inclusion_proof(index, size, &m).unwrap();
            let mut root = f.root().0;
            if in_root || proof.is_empty() {
                root[byte] ^= 1 << bit;
            } else {
                let at = (seed as usize / 7) % proof.len();
                proof[at].0[byte] ^= 1 << bit;
            }
            let leaf = leaf_hash(&index.to_be_bytes());
            prop_assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_err());
        }

        #[test]
        fn any_changed_byte_breaks_a_consistency_proof(
            new in 3u64..300, seed in any::<u64>(), byte in 0usize..32, bit in 0u8..8, target in 0u8..3
        ) {
            let old = seed % (new - 1) + 1;
            let (f, m) = build(new);
            let mut old_root = tree_hash(old, &m).unwrap().0;
            let mut new_root = f.root().0;
            let mut proof = consistency_proof(old, new, &m).unwrap();
            match target {
                0 => old_root[byte] ^= 1 << bit,
                1 => new_root[byte] ^= 1 << bit,
                _ => {
                    let at = (seed as usize / 7) % proof.len();
                    proof[at].0[byte] ^= 1 << bit;
                }
            }
            prop_assert!(verify_consistency(old, new, &proof, &old_root, &new_root).is_err());
        }
    }
}
