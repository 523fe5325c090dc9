//! OpenID Connect ID tokens as customers present them to sign in, checked against a published
//! key set; nothing the fuzzer makes up may verify.
#![no_main]

use candor_http::oidc::{OidcSettings, check_id_token};
use jsonwebtoken::jwk::JwkSet;
use libfuzzer_sys::fuzz_target;

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
  "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys: JwkSet = serde_json::from_str(JWKS).expect("the fixture key set parses");
    let settings = OidcSettings {
        issuer: "https://id.shop.example".into(),
        audience: "candor".into(),
        customer_claim: "sub".into(),
    };
    let verified = check_id_token(token, Some(&keys), &settings);
    assert!(
        !matches!(verified, Ok(Some(_))),
        "a token nobody signed verified"
    );
    let _ = check_id_token(token, None, &settings);
});
