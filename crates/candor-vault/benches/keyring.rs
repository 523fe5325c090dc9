#![allow(missing_docs)] // criterion_group! generates undocumented items.

//! What tenant key epochs cost a read: unwrapping a customer's key through the keyring (an
//! epoch's key, found under a read lock), beside unwrapping one wrapped directly under the
//! root-derived key as before epochs, and beside sealing one field, in the same run.
//!
//! `cargo bench -p candor-vault --bench keyring`

use candor_crypto::{DataKey, RootKey, SealContext};
use candor_vault::Keyring;
use criterion::{Criterion, criterion_group, criterion_main};

fn unwraps(c: &mut Criterion) {
    let root = RootKey::generate();
    let keyring = Keyring::in_memory(&root);
    let dek = DataKey::generate();
    let legacy = root.key_wrapping_key();
    let before = legacy.wrap("cus_bench", &dek);
    // Three epochs on: the keyring derives them once, then finds them.
    let in_epoch = keyring.wrap(4, "cus_bench", &dek).unwrap();
    let mut g = c.benchmark_group("unwrap");
    g.bench_function("root_derived_key (before epochs)", |b| {
        b.iter(|| legacy.unwrap("cus_bench", &before).unwrap())
    });
    g.bench_function("keyring epoch key", |b| {
        b.iter(|| keyring.unwrap("cus_bench", &in_epoch).unwrap())
    });
    g.bench_function("baseline: seal a 64-byte field", |b| {
        b.iter(|| dek.seal("cus_bench", SealContext::Field("user.name"), &[7u8; 64]))
    });
    g.finish();
}

criterion_group!(benches, unwraps);
criterion_main!(benches);
