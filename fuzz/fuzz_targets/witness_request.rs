//! `candor witness`'s add-checkpoint requests (C2SP tlog-witness), from any log operator.
#![no_main]

use std::sync::OnceLock;

use candor_http::witness::Witness;
use candor_log::{NoteVerifier, WitnessSigner};
use libfuzzer_sys::fuzz_target;

const LOG_KEY: &str =
    "fuzz.candor.example/log+db7a36eb+AZevxfbsXZDLUwc+7QSwZ2K/5yWFdniuZrH20Z+gEF0V";

fn witness() -> &'static Witness {
    static WITNESS: OnceLock<(Witness, tempfile::TempDir)> = OnceLock::new();
    &WITNESS
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let signer = WitnessSigner::generate("fuzz.witness.example").expect("a witness key");
            let log = NoteVerifier::parse(LOG_KEY).expect("the fixture key parses");
            let witness = Witness::new(signer, vec![log], dir.path().join("state"))
                .expect("the witness starts");
            (witness, dir)
        })
        .0
}

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = std::str::from_utf8(data) {
        let _ = witness().add_checkpoint(body, 1_800_000_000);
    }
});
