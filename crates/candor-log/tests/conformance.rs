//! Conformance against vectors from independent implementations, carried in this crate's
//! `testdata/conformance` (their source, commit and licence are in its README):
//! - `tlog/testdata`: transparency-dev's inclusion and consistency proof vectors;
//! - `signed-note/vectors.json`: Go's `sumdb/note` keys and signatures.
//!
//! Every test runs on the carried copy, and again on each extra source that is present: the
//! team's `../shared/conformance` beside the repository, or `CANDOR_CONFORMANCE`, so a newer set
//! of vectors there is checked too without this crate depending on it.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_log::{Hash, NoteSigner, NoteVerifier, open_note, verify_consistency, verify_inclusion};
use serde::Deserialize;

/// The carried vectors, then any extra source that exists.
fn conformance_dirs() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let carried = manifest.join("testdata/conformance");
    assert!(
        carried.is_dir(),
        "the carried vectors are missing at {}",
        carried.display()
    );
    let mut dirs = vec![carried];
    match std::env::var("CANDOR_CONFORMANCE") {
        Ok(extra) => {
            let extra = PathBuf::from(extra);
            assert!(
                extra.is_dir(),
                "CANDOR_CONFORMANCE names no folder: {}",
                extra.display()
            );
            dirs.push(extra);
        }
        Err(_) => {
            let shared = manifest.join("../../../shared/conformance");
            if shared.is_dir() {
                dirs.push(shared);
            }
        }
    }
    dirs
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(json_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn b64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap_or_else(|_| s.as_bytes().to_vec())
}

/// A proof whose elements are not all 32 bytes cannot be parsed, which is itself a failure.
fn parse_proof(proof: &Option<Vec<String>>) -> Option<Vec<Hash>> {
    proof
        .iter()
        .flatten()
        .map(|p| Hash::from_slice(&b64(p)))
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[test]
fn inclusion_vectors() {
    for dir in conformance_dirs() {
        inclusion_vectors_in(&dir.join("tlog/testdata/inclusion"));
    }
}

fn inclusion_vectors_in(dir: &Path) {
    let files = json_files(dir);
    assert!(
        files.len() > 50,
        "expected the full inclusion suite, found {}",
        files.len()
    );
    for path in files {
        let case: InclusionCase = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let outcome = match (
            parse_proof(&case.proof),
            Hash::from_slice(&b64(&case.leaf_hash)),
        ) {
            (Some(proof), Some(leaf)) => verify_inclusion(
                case.leaf_idx,
                case.tree_size,
                &leaf,
                &proof,
                &b64(&case.root),
            )
            .is_ok(),
            _ => false,
        };
        assert_eq!(outcome, !case.want_err, "{}: {}", path.display(), case.desc);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[test]
fn consistency_vectors() {
    for dir in conformance_dirs() {
        consistency_vectors_in(&dir.join("tlog/testdata/consistency"));
    }
}

fn consistency_vectors_in(dir: &Path) {
    let files = json_files(dir);
    assert!(
        files.len() > 50,
        "expected the full consistency suite, found {}",
        files.len()
    );
    for path in files {
        let case: ConsistencyCase = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let outcome = match parse_proof(&case.proof) {
            Some(proof) => verify_consistency(
                case.size1,
                case.size2,
                &proof,
                &b64(&case.root1),
                &b64(&case.root2),
            )
            .is_ok(),
            None => false,
        };
        assert_eq!(outcome, !case.want_err, "{}: {}", path.display(), case.desc);
    }
}

#[derive(Deserialize)]
struct NoteVectors {
    keys: Vec<KeyVector>,
    notes: Vec<NoteVector>,
    bad_verifier_keys: Vec<String>,
}

#[derive(Deserialize)]
struct KeyVector {
    name: String,
    signer_key: Option<String>,
    verifier_key: String,
}

#[derive(Deserialize)]
struct NoteVector {
    desc: String,
    text: Option<String>,
    signed: String,
}

fn note_vectors() -> Vec<NoteVectors> {
    conformance_dirs()
        .into_iter()
        .map(|dir| {
            let path = dir.join("signed-note/vectors.json");
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn signed_note_keys_parse_and_match() {
    for vectors in note_vectors() {
        keys_parse_and_match(&vectors);
    }
}

fn keys_parse_and_match(vectors: &NoteVectors) {
    for key in &vectors.keys {
        let verifier = NoteVerifier::parse(&key.verifier_key).unwrap();
        assert_eq!(verifier.name(), key.name);
        assert_eq!(verifier.to_vkey(), key.verifier_key);
        if let Some(skey) = &key.signer_key {
            let signer = NoteSigner::parse(skey).unwrap();
            assert_eq!(signer.verifier(), verifier);
            assert_eq!(&*signer.to_skey(), skey);
        }
    }
    for bad in &vectors.bad_verifier_keys {
        assert!(NoteVerifier::parse(bad).is_err(), "accepted bad key {bad}");
    }
}

#[test]
fn signed_note_signatures_match_go() {
    for vectors in note_vectors() {
        signatures_match_go(&vectors);
    }
}

fn signatures_match_go(vectors: &NoteVectors) {
    let verifiers: Vec<NoteVerifier> = vectors
        .keys
        .iter()
        .map(|k| NoteVerifier::parse(&k.verifier_key).unwrap())
        .collect();
    let signer_vector = vectors
        .keys
        .iter()
        .find(|k| k.signer_key.is_some())
        .unwrap();
    let signer = NoteSigner::parse(signer_vector.signer_key.as_ref().unwrap()).unwrap();
    for note in &vectors.notes {
        if let Some(text) = &note.text {
            assert_eq!(signer.sign(text).unwrap(), note.signed, "{}", note.desc);
        }
        let all = open_note(&note.signed, &verifiers).unwrap();
        assert_eq!(all.unverified, 0, "{}", note.desc);
        let only_signer =
            open_note(&note.signed, std::slice::from_ref(&signer.verifier())).unwrap();
        assert_eq!(only_signer.verified_by, vec![signer.name().to_owned()]);
        assert_eq!(
            only_signer.unverified,
            all.verified_by.len() - 1,
            "{}",
            note.desc
        );

        let mut tampered = note.signed.clone();
        tampered.replace_range(0..2, "if");
        assert!(open_note(&tampered, &verifiers).is_err(), "{}", note.desc);
    }
}
