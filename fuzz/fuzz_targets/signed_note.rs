//! C2SP signed notes and checkpoints, as verifiers and witnesses receive them; the key is a
//! fuzzing fixture (its checkpoints are the seeds), so signed inputs reach the checkpoint parser.
#![no_main]

use candor_log::{Checkpoint, NoteVerifier, WitnessVerifier, open_note, verify_cosignatures};
use libfuzzer_sys::fuzz_target;

const LOG_KEY: &str =
    "fuzz.candor.example/log+db7a36eb+AZevxfbsXZDLUwc+7QSwZ2K/5yWFdniuZrH20Z+gEF0V";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = NoteVerifier::parse(LOG_KEY).expect("the fixture key parses");
    let _ = open_note(text, std::slice::from_ref(&key));
    let _ = Checkpoint::parse(text);
    if let Ok(cp) = Checkpoint::open(text, &key) {
        // What opened must print back to the text that was signed.
        let _ = cp.to_text();
        let _ = candor_log::directory::from_checkpoint_text(&cp.to_text());
    }
    let _ = NoteVerifier::parse(text);
    if let Ok(witness) = WitnessVerifier::parse(text.lines().next().unwrap_or("")) {
        let _ = verify_cosignatures(text, &[witness]);
    }
});
