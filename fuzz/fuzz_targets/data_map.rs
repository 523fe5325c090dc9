//! The data map: TOML a business writes, parsed and checked by `candor check` and at start-up.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // Every error must carry a position inside the text it was given.
        if let Err(errors) = candor_core::DataMap::parse(text) {
            let _ = errors.to_string();
        }
    }
});
