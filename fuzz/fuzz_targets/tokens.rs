//! Bearer tokens (API keys `cnd_…`, customer sessions `cst_…`) and the nodes' authorisation
//! header, as every request presents them.
#![no_main]

use std::sync::OnceLock;

use candor_crypto::{RootKey, SessionKey, parse_api_key, parse_node_authorization};
use libfuzzer_sys::fuzz_target;

fn sessions() -> &'static SessionKey {
    static KEY: OnceLock<SessionKey> = OnceLock::new();
    KEY.get_or_init(|| RootKey::generate().session_key())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_api_key(text);
    let _ = parse_node_authorization(text);
    let _ = candor_core::SubjectId::parse(text);
    let _ = candor_core::KeyId::parse(text);
    // A forged session never verifies: the fuzzer does not hold the key.
    assert!(sessions().verify(text, 0).is_err() || text.starts_with("cst_"));
});
