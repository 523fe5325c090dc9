//! Candor's transparency log, as values: hashing, the tree layout, proofs, commitments, C2SP
//! signed checkpoints, witness cosignatures, tiles and receipts.
//!
//! This crate does no IO and keeps no state beyond what is handed to it. Storage reads come in
//! through [`tree::HashReader`]; time and randomness come in as arguments, except key and
//! nonce generation, which ask the operating system.

pub mod commitment;
pub mod cosignature;
pub mod directory;
pub mod hash;
pub mod note;
pub mod receipt;
pub mod tile;
pub mod tree;

pub use cosignature::{Cosigned, WitnessSigner, WitnessVerifier, verify_cosignatures};
pub use hash::{Hash, leaf_hash, node_hash};
pub use note::{Checkpoint, NoteError, NoteSigner, NoteVerifier, OpenedNote, open_note};
pub use receipt::{Receipt, ReceiptError};
pub use tile::{
    Tile, TileError, TileHashReader, TilePath, parse_tile_path, split_stored_hash_index,
};
pub use tree::{
    Frontier, HashReader, MemoryHashes, ProofError, consistency_proof, inclusion_proof,
    stored_hash_count, stored_hash_index, tree_hash, verify_consistency, verify_inclusion,
};
