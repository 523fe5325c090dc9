//! The directory: which customer's tree holds how many of the log's entries, committed in every
//! checkpoint, so a customer can check that the history shown to them is all of it.
//!
//! Every log entry is about one customer, and each customer has a tree of their own (RFC 6962,
//! over their entries in log order). The directory maps each customer's private 32-byte label to
//! the head of that tree, `(size, root)`. It is a binary trie on the label's bits, compressed as
//! in Diem's Jellyfish Merkle tree: a subtree holding one leaf is that leaf. Every node also
//! commits to the sum of the sizes below it, so the root carries the number of entries the
//! directory attributes to anyone, which must equal the log's size.
//!
//! ```text
//! leaf   = SHA-256(0x00 || label || size (u64 BE) || root),          sum = size
//! branch = SHA-256(0x01 || left sum || left hash || right sum || right hash)
//! empty  = 32 zero bytes,                                           sum = 0
//! ```
//!
//! A proof is the siblings `(sum, hash)` from the root down to the leaf; the label's bits, most
//! significant first, say which side the path takes. The shape depends only on the set of labels,
//! so the root does not depend on the order in which customers arrived.
//!
//! Nodes are immutable and shared (`Arc`): an update copies only its path, so every published
//! checkpoint can keep its own directory at the cost of the paths changed since.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::hash::Hash;

/// The checkpoint extension line that carries the directory: `candor-directory <sum> <root>`.
const EXTENSION: &str = "candor-directory";

/// A customer's tree head as the directory records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// How many of the log's entries are the customer's.
    pub size: u64,
    /// The root of the customer's tree over those entries.
    pub root: Hash,
}

/// A subtree's commitment: the entries it attributes and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRef {
    /// Entries attributed in this subtree.
    pub sum: u64,
    /// Its hash.
    pub hash: Hash,
}

const EMPTY: NodeRef = NodeRef {
    sum: 0,
    hash: Hash([0; 32]),
};

enum Node {
    Leaf {
        label: [u8; 32],
        head: Head,
        at: NodeRef,
    },
    // INVARIANT: a branch's subtree holds at least two leaves.
    Branch {
        left: Option<Arc<Node>>,
        right: Option<Arc<Node>>,
        at: NodeRef,
    },
}

impl Node {
    fn at(&self) -> NodeRef {
        match self {
            Node::Leaf { at, .. } | Node::Branch { at, .. } => *at,
        }
    }
}

fn reference(node: &Option<Arc<Node>>) -> NodeRef {
    node.as_ref().map_or(EMPTY, |n| n.at())
}

/// The leaf commitment of a customer's head.
pub fn leaf(label: &[u8; 32], head: &Head) -> NodeRef {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(label);
    h.update(head.size.to_be_bytes());
    h.update(head.root.0);
    NodeRef {
        sum: head.size,
        hash: Hash(h.finalize().into()),
    }
}

/// The branch commitment over two subtrees.
pub fn branch(left: &NodeRef, right: &NodeRef) -> NodeRef {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.sum.to_be_bytes());
    h.update(left.hash.0);
    h.update(right.sum.to_be_bytes());
    h.update(right.hash.0);
    NodeRef {
        sum: left.sum + right.sum,
        hash: Hash(h.finalize().into()),
    }
}

fn bit(label: &[u8; 32], depth: usize) -> bool {
    label[depth / 8] & (0x80 >> (depth % 8)) != 0
}

fn make_branch(left: Option<Arc<Node>>, right: Option<Arc<Node>>) -> Arc<Node> {
    let at = branch(&reference(&left), &reference(&right));
    Arc::new(Node::Branch { left, right, at })
}

fn make_leaf(label: [u8; 32], head: Head) -> Arc<Node> {
    Arc::new(Node::Leaf {
        label,
        at: leaf(&label, &head),
        head,
    })
}

/// A directory snapshot; cloning shares every node.
#[derive(Clone, Default)]
pub struct Directory {
    root: Option<Arc<Node>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.root_ref();
        f.debug_struct("Directory")
            .field("sum", &r.sum)
            .field("root", &r.hash)
            .finish()
    }
}

impl Directory {
    /// The root commitment.
    pub fn root_ref(&self) -> NodeRef {
        reference(&self.root)
    }

    /// Sets `label`'s head, returning the new directory; `self` is unchanged.
    pub fn with(&self, label: [u8; 32], head: Head) -> Directory {
        Directory {
            root: Some(insert(self.root.as_ref(), 0, label, head)),
        }
    }

    /// The head recorded for `label`.
    pub fn get(&self, label: &[u8; 32]) -> Option<Head> {
        let mut node = self.root.as_ref()?;
        let mut depth = 0;
        loop {
            match &**node {
                Node::Leaf { label: l, head, .. } => return (l == label).then_some(*head),
                Node::Branch { left, right, .. } => {
                    node = if bit(label, depth) { right } else { left }.as_ref()?;
                    depth += 1;
                }
            }
        }
    }

    /// The siblings on `label`'s path, root first, if the directory holds it.
    pub fn prove(&self, label: &[u8; 32]) -> Option<Vec<NodeRef>> {
        let mut node = self.root.as_ref()?;
        let mut depth = 0;
        let mut siblings = Vec::new();
        loop {
            match &**node {
                Node::Leaf { label: l, .. } => return (l == label).then_some(siblings),
                Node::Branch { left, right, .. } => {
                    let (next, other) = if bit(label, depth) {
                        (right, left)
                    } else {
                        (left, right)
                    };
                    siblings.push(reference(other));
                    node = next.as_ref()?;
                    depth += 1;
                }
            }
        }
    }
}

fn insert(node: Option<&Arc<Node>>, depth: usize, label: [u8; 32], head: Head) -> Arc<Node> {
    let Some(node) = node else {
        return make_leaf(label, head);
    };
    match &**node {
        Node::Leaf { label: l, .. } if *l == label => make_leaf(label, head),
        Node::Leaf { label: other, .. } => {
            // Two leaves: branch at the first bit where they differ, one-sided above it.
            let new = make_leaf(label, head);
            let mut d = depth;
            while bit(other, d) == bit(&label, d) {
                d += 1;
            }
            let mut sub = if bit(&label, d) {
                make_branch(Some(node.clone()), Some(new))
            } else {
                make_branch(Some(new), Some(node.clone()))
            };
            while d > depth {
                d -= 1;
                sub = if bit(&label, d) {
                    make_branch(None, Some(sub))
                } else {
                    make_branch(Some(sub), None)
                };
            }
            sub
        }
        Node::Branch { left, right, .. } => {
            if bit(&label, depth) {
                make_branch(
                    left.clone(),
                    Some(insert(right.as_ref(), depth + 1, label, head)),
                )
            } else {
                make_branch(
                    Some(insert(left.as_ref(), depth + 1, label, head)),
                    right.clone(),
                )
            }
        }
    }
}

/// Why a directory proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The path from the head does not reach the committed root.
    #[error("the directory proof does not reach the checkpoint's directory root")]
    RootMismatch,
    /// The checkpoint carries no directory line, or a malformed one.
    #[error("the checkpoint has no valid candor-directory line")]
    NoDirectory,
    /// The proof is longer than a label has bits.
    #[error("the directory proof is too long")]
    TooLong,
}

/// Checks that the directory with root `root` records `head` for `label`.
pub fn verify_membership(
    label: &[u8; 32],
    head: &Head,
    siblings: &[NodeRef],
    root: &NodeRef,
) -> Result<(), DirectoryError> {
    if siblings.len() > 256 {
        return Err(DirectoryError::TooLong);
    }
    let mut at = leaf(label, head);
    for (depth, sibling) in siblings.iter().enumerate().rev() {
        at = if bit(label, depth) {
            branch(sibling, &at)
        } else {
            branch(&at, sibling)
        };
    }
    if at.sum != root.sum || !at.hash.ct_eq(&root.hash) {
        return Err(DirectoryError::RootMismatch);
    }
    Ok(())
}

/// The checkpoint extension line for a directory root (no trailing newline).
pub fn extension_line(root: &NodeRef) -> String {
    format!("{EXTENSION} {} {}", root.sum, B64.encode(root.hash.0))
}

/// Finds and parses the directory line among a checkpoint text's extension lines.
pub fn from_checkpoint_text(text: &str) -> Result<NodeRef, DirectoryError> {
    let line = text
        .split('\n')
        .skip(3)
        .find_map(|l| l.strip_prefix(EXTENSION)?.strip_prefix(' '))
        .ok_or(DirectoryError::NoDirectory)?;
    let (sum, hash) = line.split_once(' ').ok_or(DirectoryError::NoDirectory)?;
    let sum = sum
        .parse()
        .ok()
        .filter(|_| sum.len() == 1 || !sum.starts_with('0'))
        .ok_or(DirectoryError::NoDirectory)?;
    let hash = B64
        .decode(hash)
        .ok()
        .and_then(|h| Hash::from_slice(&h))
        .ok_or(DirectoryError::NoDirectory)?;
    Ok(NodeRef { sum, hash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head(size: u64) -> Head {
        Head {
            size,
            root: Hash([size as u8; 32]),
        }
    }

    fn label(n: u64) -> [u8; 32] {
        Sha256::digest(n.to_be_bytes()).into()
    }

    #[test]
    fn one_customer_is_a_leaf_and_sums_add_up() {
        let d = Directory::default();
        assert_eq!(d.root_ref(), EMPTY);
        let d1 = d.with(label(1), head(3));
        assert_eq!(d1.root_ref(), leaf(&label(1), &head(3)));
        assert_eq!(d1.prove(&label(1)), Some(vec![]));
        let d2 = d1.with(label(2), head(4)).with(label(1), head(5));
        assert_eq!(d2.root_ref().sum, 9);
        assert_eq!(d2.get(&label(1)), Some(head(5)));
        assert_eq!(d1.get(&label(1)), Some(head(3)), "snapshots are unchanged");
        assert_eq!(d2.get(&label(3)), None);
        assert_eq!(d2.prove(&label(3)), None);
    }

    #[test]
    fn labels_sharing_a_long_prefix_split_where_they_differ() {
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        b[31] = 1;
        let d = Directory::default().with(a, head(1)).with(b, head(2));
        let proof = d.prove(&b).unwrap();
        assert_eq!(proof.len(), 256);
        verify_membership(&b, &head(2), &proof, &d.root_ref()).unwrap();
    }

    #[test]
    fn the_extension_line_round_trips() {
        let d = Directory::default().with(label(1), head(7));
        let text = format!("o\n7\nAAAA\n{}\n", extension_line(&d.root_ref()));
        assert_eq!(from_checkpoint_text(&text).unwrap(), d.root_ref());
        assert_eq!(
            from_checkpoint_text("o\n7\nAAAA\n"),
            Err(DirectoryError::NoDirectory)
        );
    }

    proptest! {
        #[test]
        fn proofs_verify_and_the_root_ignores_arrival_order(
            sizes in proptest::collection::vec(1u64..50, 1..60), seed in any::<u64>()
        ) {
            let mut forward = Directory::default();
            for (i, s) in sizes.iter().enumerate() {
                forward = forward.with(label(i as u64), head(*s));
            }
            let mut backward = Directory::default();
            for (i, s) in sizes.iter().enumerate().rev() {
                backward = backward.with(label(i as u64), head(*s));
            }
            prop_assert_eq!(forward.root_ref(), backward.root_ref());
            prop_assert_eq!(forward.root_ref().sum, sizes.iter().sum::<u64>());
            let pick = (seed as usize) % sizes.len();
            let proof = forward.prove(&label(pick as u64)).unwrap();
            let h = head(sizes[pick]);
            prop_assert_eq!(
                verify_membership(&label(pick as u64), &h, &proof, &forward.root_ref()), Ok(())
            );
            // A smaller size (an event left out) or another label does not verify.
            let fewer = Head { size: h.size - 1, ..h };
            prop_assert!(verify_membership(&label(pick as u64), &fewer, &proof, &forward.root_ref()).is_err());
            prop_assert!(verify_membership(&label(999), &h, &proof, &forward.root_ref()).is_err());
        }
    }
}
