//! Tile paths as the server receives them, and entry bundles as verifiers fetch them.
#![no_main]

use candor_log::parse_tile_path;
use candor_log::tile::{decode_entry_bundle, encode_entry_bundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        let _ = parse_tile_path(path);
    }
    if let Ok(entries) = decode_entry_bundle(data) {
        // A bundle that decodes encodes back to the same bytes.
        let again = encode_entry_bundle(entries.iter().map(Vec::as_slice));
        assert_eq!(again, data);
    }
});
