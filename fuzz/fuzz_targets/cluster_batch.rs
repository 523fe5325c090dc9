//! The nodes' protocol: a batch of write requests a follower hands the sequencer (checked for
//! its node signature first in the server; here the body alone, as an attacker inside the
//! network would send it).
#![no_main]

use candor_http::cluster::wire::{CommitBatch, CommitOutcomes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = serde_json::from_slice::<CommitBatch>(data) {
        let _ = batch.into_requests();
    }
    if let Ok(outcomes) = serde_json::from_slice::<CommitOutcomes>(data) {
        for outcome in &outcomes.outcomes {
            let _ = outcome.outcome();
        }
    }
});
