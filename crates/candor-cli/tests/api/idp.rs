//! A small OpenID Connect identity provider the tests run: it signs ID tokens with a P-256 key of
//! its own (RustCrypto's `p256`, not the library Candor verifies with) and serves its discovery
//! document and JWKS over HTTP, as the business's provider would.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::RngCore;
use serde_json::{Value, json};

/// Candor's client id at the test provider.
pub const AUDIENCE: &str = "candor-test";

pub struct TestIdp {
    pub issuer: String,
    key: SigningKey,
}

fn fresh_key() -> SigningKey {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    SigningKey::from_slice(&bytes).expect("a random scalar is a key")
}

impl TestIdp {
    /// Starts serving on a free loopback port, for as long as the test runs.
    pub fn start() -> TestIdp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let key = fresh_key();
        let point = key.verifying_key().to_encoded_point(false);
        let jwks = json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "test-key-1",
            "x": B64URL.encode(point.x().unwrap()), "y": B64URL.encode(point.y().unwrap()),
        }]})
        .to_string();
        let discovery = json!({
            "issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
            "id_token_signing_alg_values_supported": ["ES256"],
        })
        .to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // The rest of the head, up to the blank line.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = match path {
                    "/.well-known/openid-configuration" => ("200 OK", discovery.as_str()),
                    "/jwks" => ("200 OK", jwks.as_str()),
                    _ => ("404 Not Found", "{}"),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TestIdp { issuer, key }
    }

    /// An ID token for customer `sub`, bound to `nonce`, valid for five minutes.
    pub fn id_token(&self, sub: &str, nonce: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        self.sign(&json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": sub, "nonce": nonce,
            "iat": now, "exp": now + 300,
        }))
    }

    /// A token with exactly these claims, signed with the provider's key.
    pub fn sign(&self, claims: &Value) -> String {
        sign_with(&self.key, "test-key-1", claims)
    }

    /// A token with these claims under the provider's key id, signed with a key it never
    /// published.
    pub fn forge(&self, claims: &Value) -> String {
        sign_with(&fresh_key(), "test-key-1", claims)
    }
}

fn sign_with(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64URL.encode(signature.to_bytes()))
}
