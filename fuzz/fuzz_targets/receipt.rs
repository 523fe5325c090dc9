//! `c2sp.org/tlog-proof@v1` receipts, as customers save them and `candor verify --receipt` reads
//! them; the log key is the fuzzing fixture the seeds are signed with.
#![no_main]

use candor_log::{NoteVerifier, Receipt};
use libfuzzer_sys::fuzz_target;

const LOG_KEY: &str =
    "fuzz.candor.example/log+db7a36eb+AZevxfbsXZDLUwc+7QSwZ2K/5yWFdniuZrH20Z+gEF0V";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(receipt) = Receipt::parse(text) {
        // What parses prints back to text that parses to the same receipt.
        let again = Receipt::parse(&receipt.to_text()).expect("a printed receipt parses");
        assert_eq!(again.index, receipt.index);
        let key = NoteVerifier::parse(LOG_KEY).expect("the fixture key parses");
        let _ = receipt.verify(&[0u8; 32], &key);
    }
});
