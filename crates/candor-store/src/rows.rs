//! Turning raw rows into the contract's types, shared by both backends so that a malformed row is
//! refused the same way whichever database it came from (validate stored data when loading it).

use std::collections::HashMap;

use candor_log::Hash;

use crate::{EventRow, StoreError, SubjectLog};

/// The hashes at `indexes`, in that order, from what one batched read `found` by position.
pub fn hashes_in_order(
    indexes: &[u64],
    found: &HashMap<u64, Vec<u8>>,
) -> Result<Vec<Hash>, StoreError> {
    indexes
        .iter()
        .map(|i| {
            let blob = found
                .get(i)
                .ok_or(StoreError::Corrupt("missing tree hash"))?;
            Hash::from_slice(blob).ok_or(StoreError::Corrupt("tree hash is not 32 bytes"))
        })
        .collect()
}

/// The commitments of `want` consecutive leaves.
pub fn commitments(blobs: Vec<Vec<u8>>, want: usize) -> Result<Vec<[u8; 32]>, StoreError> {
    if blobs.len() != want {
        return Err(StoreError::Corrupt("missing log entries"));
    }
    blobs.into_iter().map(commitment).collect()
}

fn commitment(blob: Vec<u8>) -> Result<[u8; 32], StoreError> {
    blob.try_into()
        .map_err(|_| StoreError::Corrupt("commitment is not 32 bytes"))
}

/// An `events` row.
pub fn event_row(
    (index, commitment_blob, sealed_body): (i64, Vec<u8>, Vec<u8>),
) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        leaf_index: index as u64,
        commitment: commitment(commitment_blob)?,
        sealed_body,
    })
}

/// A range of leaf indexes and a row limit as SQL integers; past `i64::MAX` means "no bound".
pub fn event_bounds(leaves: std::ops::Range<u64>, limit: usize) -> (i64, i64, i64) {
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    (
        int(leaves.start),
        int(leaves.end),
        int(limit.try_into().unwrap_or(u64::MAX)),
    )
}

/// A `COUNT(*)`, which is never negative.
pub fn count(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt("negative count"))
}

/// A `subject_logs` row.
pub fn subject_log(
    (label, size, peaks): (Vec<u8>, i64, Vec<u8>),
) -> Result<SubjectLog, StoreError> {
    let corrupt = || StoreError::Corrupt("malformed subject log");
    if peaks.len() % 32 != 0 {
        return Err(corrupt());
    }
    Ok(SubjectLog {
        label: label.try_into().map_err(|_| corrupt())?,
        size: size as u64,
        peaks: peaks
            .chunks_exact(32)
            .map(|c| Hash(c.try_into().expect("32 bytes")))
            .collect(),
    })
}
