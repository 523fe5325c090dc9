#![allow(missing_docs)] // criterion_group! generates undocumented items.

//! Durable log appends with group commit, and proof generation, against the machine's own limits
//! measured in the same run: fsyncs per second and SHA-256 hashes per second.
//!
//! `cargo bench -p candor-vault --bench append`

use std::io::Write;

use candor_log::{Frontier, MemoryHashes, NoteSigner, inclusion_proof};
use candor_store::{LogEntry, LogStore, SqliteStore, StoreHashes, WriteRequest};
use candor_vault::kernel::writer::LogSequencer;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

/// The log writer's own sequencer over an empty tree.
fn sequencer() -> LogSequencer {
    LogSequencer::new(
        Frontier::default(),
        NoteSigner::generate("bench.example/log").unwrap(),
        candor_crypto::RootKey::generate().directory_label_key(),
        Vec::new(),
    )
    .unwrap()
}

/// A group of `n` one-event requests with distinct commitments.
fn group(n: usize, salt: u64) -> Vec<WriteRequest> {
    (0..n)
        .map(|i| {
            let mut commitment = [0u8; 32];
            commitment[..8].copy_from_slice(&salt.to_be_bytes());
            commitment[8..16].copy_from_slice(&(i as u64).to_be_bytes());
            WriteRequest {
                requires_active: None,
                decided_on: None,
                once: None,
                changes: vec![],
                entries: vec![LogEntry {
                    subject: format!("s{}", i % 1000),
                    commitment: Sha256::digest(commitment).into(),
                    sealed_body: Some(vec![7; 120]),
                }],
            }
        })
        .collect()
}

fn baselines(c: &mut Criterion) {
    let mut g = c.benchmark_group("baseline");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sha256_65_bytes", |b| {
        let data = [1u8; 65];
        b.iter(|| Sha256::digest(std::hint::black_box(data)))
    });
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("f")).unwrap();
    g.bench_function("fsync_4k_write", |b| {
        b.iter(|| {
            f.write_all(&[0u8; 4096]).unwrap();
            f.sync_data().unwrap();
        })
    });
    g.finish();
}

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_append");
    for batch in [1usize, 64, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("b.db"), &candor_vault::schema()).unwrap();
        let mut seq = sequencer();
        let mut salt = 0;
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("batch_{batch}"), |b| {
            b.iter_batched(
                || {
                    salt += 1;
                    group(batch, salt)
                },
                |requests| store.commit(&requests, &mut seq).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let mut g = c.benchmark_group("inclusion_proof");
    // In memory at 10 million leaves: the proof's own cost, without storage.
    let size = 10_000_000u64;
    let mut f = Frontier::default();
    let mut m = MemoryHashes::default();
    for i in 0..size {
        m.extend(&f.append(&i.to_be_bytes()).1);
    }
    let mut i = 0u64;
    g.bench_function("memory_10M", |b| {
        b.iter(|| {
            i = (i + 7_654_321) % size;
            inclusion_proof(i, size, &m).unwrap()
        })
    });
    drop(m);

    // From SQLite at 10 million leaves: one batched read of at most 2·log2(n) stored hashes.
    // Building the log takes minutes (every group is a durable commit).
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("p.db"), &candor_vault::schema()).unwrap();
    let mut seq = sequencer();
    let size = 10_000_000u64;
    for salt in 0..size.div_ceil(1024) {
        store.commit(&group(1024, salt), &mut seq).unwrap();
    }
    let hashes = StoreHashes(&store);
    let size = seq_size(&store);
    g.bench_function("sqlite_10M", |b| {
        b.iter(|| {
            i = (i + 7_654_321) % size;
            inclusion_proof(i, size, &hashes).unwrap()
        })
    });
    g.finish();
}

/// The committed size (the last group fills past 10 million).
fn seq_size(store: &SqliteStore) -> u64 {
    store.latest_checkpoint().unwrap().unwrap().size
}

criterion_group!(benches, baselines, appends, proofs);
criterion_main!(benches);
