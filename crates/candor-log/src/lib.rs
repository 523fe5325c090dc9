//! Candor's transparency log, as values: hashing, the tree layout, proofs, commitments and
//! C2SP signed checkpoints.
//!
//! This crate does no IO and keeps no state beyond what is handed to it. Storage reads come in
//! through [`tree::HashReader`]; time and randomness come in as arguments, except key and
//! nonce generation, which ask the operating system.

pub mod commitment;
pub mod hash;
pub mod note;
pub mod tree;

pub use hash::{Hash, leaf_hash, node_hash};
pub use note::{Checkpoint, NoteError, NoteSigner, NoteVerifier, OpenedNote, open_note};
pub use tree::{
    Frontier, HashReader, MemoryHashes, ProofError, consistency_proof, inclusion_proof,
    stored_hash_count, stored_hash_index, tree_hash, verify_consistency, verify_inclusion,
};
