//! The sequencer's customers' trees: a bounded cache over the store's, so the writer's memory
//! does not grow with the number of customers (the directory of their heads still does).
//!
//! Before each group the writer reads the trees the group will grow and the cache lacks
//! ([`Trees::prepare`]); only `prepare` evicts, and it never evicts a tree its group needs. So
//! during a commit a tree missing from the cache belongs to a customer with no entries yet. The
//! store's trees cannot change behind the cache: only the sequencer writes them, and a takeover
//! reloads.

use std::collections::HashMap;

use candor_log::Frontier;
use candor_store::{LogStore, StoreError};

use super::writer::subject_tree;

/// How many customers' trees the writer keeps by default: about 20 MB of peaks.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Customers' trees by label, the least recently used evicted beyond the capacity.
pub(crate) struct Trees {
    trees: HashMap<[u8; 32], (Frontier, u64)>,
    // Bumped by each `prepare`: a tree's tick is the last group that needed it.
    tick: u64,
    capacity: usize,
}

impl Trees {
    pub(crate) fn new(capacity: usize) -> Trees {
        Trees {
            trees: HashMap::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    /// Holds `tree` for `label`, or forgets it (`None`: the customer has no entries).
    pub(crate) fn put(&mut self, label: [u8; 32], tree: Option<Frontier>) {
        match tree {
            Some(tree) => self.trees.insert(label, (tree, self.tick)),
            None => self.trees.remove(&label),
        };
    }

    /// Fills the cache from a full read of the store (start-up, takeover), up to its capacity.
    pub(crate) fn fill(&mut self, trees: impl IntoIterator<Item = ([u8; 32], Frontier)>) {
        self.trees.clear();
        for (label, tree) in trees.into_iter().take(self.capacity) {
            self.trees.insert(label, (tree, 0));
        }
    }

    /// The customer's tree, if cached.
    pub(crate) fn get(&self, label: &[u8; 32]) -> Option<&Frontier> {
        self.trees.get(label).map(|(t, _)| t)
    }

    /// The customer's tree to grow: cached, or a new one. Call [`Trees::prepare`] first.
    pub(crate) fn grow(&mut self, label: [u8; 32]) -> &mut Frontier {
        let tick = self.tick;
        &mut self
            .trees
            .entry(label)
            .or_insert((Frontier::default(), tick))
            .0
    }

    /// Makes sure every tree of `labels` that the store has is cached, reading the missing ones
    /// in one call, after evicting the least recently used beyond the capacity.
    pub(crate) fn prepare(
        &mut self,
        labels: &[[u8; 32]],
        store: &dyn LogStore,
    ) -> Result<(), StoreError> {
        self.tick += 1;
        let mut missing = Vec::new();
        for label in labels {
            match self.trees.get_mut(label) {
                Some((_, tick)) => *tick = self.tick,
                None => missing.push(*label),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        self.evict(missing.len());
        for log in store.subject_logs_of(&missing)? {
            let label = log.label;
            let (tree, _) = subject_tree(log)?;
            self.trees.insert(label, (tree, self.tick));
        }
        Ok(())
    }

    /// Makes room for `incoming` trees: drops the least recently used, an eighth of the capacity
    /// more than needed so eviction is rare, and never one this group needs.
    fn evict(&mut self, incoming: usize) {
        let Some(excess) = (self.trees.len() + incoming).checked_sub(self.capacity) else {
            return;
        };
        let mut old: Vec<(u64, [u8; 32])> = self
            .trees
            .iter()
            .filter(|(_, (_, tick))| *tick < self.tick)
            .map(|(label, (_, tick))| (*tick, *label))
            .collect();
        let drop = (excess + self.capacity / 8).min(old.len());
        if drop == 0 {
            return;
        }
        if drop < old.len() {
            old.select_nth_unstable(drop - 1);
        }
        for (_, label) in &old[..drop] {
            self.trees.remove(label);
        }
    }

    /// Keeps at most `capacity` trees from the next `prepare` on.
    #[cfg(test)]
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
    }

    /// How many trees are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.trees.len()
    }
}
