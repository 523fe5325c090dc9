//! The nodes of one deployment authenticate each other: a request between nodes carries a tag
//! under the root-derived node key over its time, a fresh nonce and its body.

use std::sync::Mutex;

use candor_crypto::{NodeKey, RootKey};

use crate::keys::AuthError;

/// How far a peer's request time may be from this node's clock.
pub const NODE_REQUEST_WINDOW_SECS: i64 = 30;

/// Nonces accepted within the last two windows, in the order accepted: a request that is
/// accepted at `now` carries a time within a window of it, so a replay of it is refused by
/// time from a window after that, and by its nonce until then.
#[derive(Default)]
struct RecentNonces {
    order: std::collections::VecDeque<(i64, [u8; 16])>,
    seen: std::collections::HashSet<[u8; 16]>,
}

impl RecentNonces {
    /// Remembers `nonce`; false if it was seen already.
    fn accept(&mut self, nonce: [u8; 16], now: i64) -> bool {
        while let Some(&(when, old)) = self.order.front() {
            if now - when <= 2 * NODE_REQUEST_WINDOW_SECS {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if !self.seen.insert(nonce) {
            return false;
        }
        self.order.push_back((now, nonce));
        true
    }
}

/// Checks peers' requests.
pub struct Nodes {
    key: NodeKey,
    nonces: Mutex<RecentNonces>,
}

impl Nodes {
    /// The node key derived from `root`.
    pub fn new(root: &RootKey) -> Nodes {
        Nodes {
            key: root.node_key(),
            nonces: Mutex::new(RecentNonces::default()),
        }
    }

    /// Checks a request from a peer node by its `Candor-Node-Auth` header: the tag under the
    /// node key, the time within [`NODE_REQUEST_WINDOW_SECS`] of `now`, and a nonce not seen
    /// before.
    pub fn authenticate(&self, header: &str, body: &[u8], now: i64) -> Result<(), AuthError> {
        let Some((at, nonce, tag)) = candor_crypto::parse_node_authorization(header) else {
            return Err(AuthError::Unauthenticated);
        };
        if !self.key.verify(at, &nonce, body, &tag) || (now - at).abs() > NODE_REQUEST_WINDOW_SECS {
            return Err(AuthError::Unauthenticated);
        }
        let fresh = self
            .nonces
            .lock()
            .expect("nonces poisoned")
            .accept(nonce, now);
        if !fresh {
            tracing::warn!("a peer's request was replayed; refused");
            return Err(AuthError::Unauthenticated);
        }
        Ok(())
    }
}
