//! Candor's key hierarchy and sealing, built only from audited RustCrypto primitives.
//!
//! - [`RootKey`]: 32 random bytes that never enter the database. Everything else hangs off it
//!   through HKDF-SHA256 with a distinct label per use.
//! - [`DataKey`]: one random key per customer, stored only wrapped (AES-256-GCM-SIV, associated
//!   data naming the customer and the epoch) under a tenant key epoch ([`epoch`]). Destroying
//!   the wrapped copy is erasure; destroying the epoch reaches the copies in backups.
//! - Fields and event bodies are sealed under the data key with AES-256-GCM, random 96-bit nonces
//!   and associated data naming customer and field, so a ciphertext cannot be moved elsewhere.
//! - [`BlindIndexKey`]: keyed, truncated HMAC for equality lookup without plaintext.
//! - [`SessionKey`]: MACs short-lived customer session tokens.
//! - [`NonceKey`]: MACs the nonces Candor hands out for OpenID Connect sign-in, so any node can
//!   check one it did not issue.
//!
//! Every key type zeroises on drop and prints as `[redacted]`. This crate does no IO: randomness
//! comes from `rand`'s thread-local CSPRNG, seeded by the operating system.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub mod epoch;

pub use epoch::{ChainKey, EpochKey, KeyringKey, wrapped_key_epoch};

/// Version byte at the start of every sealed value, so keys and algorithms can rotate.
const SEAL_V1: u8 = 1;
pub(crate) const NONCE_LEN: usize = 12;

/// Why a cryptographic operation failed. Messages never include key or plaintext material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Key material had the wrong encoding or length.
    #[error("malformed key material")]
    MalformedKey,
    /// A ciphertext failed authentication: wrong key, wrong customer or field, or tampering.
    #[error("ciphertext failed authentication")]
    Unauthentic,
    /// A session token is malformed, forged or expired.
    #[error("invalid session token")]
    BadToken,
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::thread_rng().fill_bytes(&mut out);
    out
}

/// Length-prefixed concatenation, so no two (customer, field) pairs share associated data.
pub(crate) fn associated_data(label: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(64);
    ad.extend_from_slice(label);
    for part in parts {
        ad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        ad.extend_from_slice(part);
    }
    ad
}

macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), "([redacted])"))
            }
        }
    )*};
}
redacted_debug!(
    RootKey,
    DataKey,
    KeyWrappingKey,
    BlindIndexKey,
    SessionKey,
    NonceKey,
    LabelKey,
    NodeKey,
    ChainKey,
    EpochKey,
    KeyringKey
);

/// The root of the key hierarchy.
pub struct RootKey(Zeroizing<[u8; 32]>);

impl RootKey {
    /// A fresh random root key.
    pub fn generate() -> RootKey {
        RootKey(Zeroizing::new(random()))
    }

    /// Parses the base64 text form (as kept in the key file or the environment).
    pub fn from_base64(text: &str) -> Result<RootKey, CryptoError> {
        let raw = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::MalformedKey)?,
        );
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::MalformedKey)?;
        Ok(RootKey(Zeroizing::new(bytes)))
    }

    /// The base64 text form.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(*self.0))
    }

    fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"candor.root.v1"), &*self.0);
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(label, &mut *out)
            .expect("32 bytes is a valid HKDF length");
        out
    }

    /// The key that wrapped customer data keys before tenant key epochs: only to unwrap those
    /// until they are rewrapped into an epoch.
    pub fn key_wrapping_key(&self) -> KeyWrappingKey {
        KeyWrappingKey(self.derive(b"key-wrapping"))
    }

    /// The blind-index key for one data category; each category gets its own so equal values in
    /// different categories do not collide.
    pub fn blind_index_key(&self, category: &str) -> BlindIndexKey {
        let mut label = b"blind-index:".to_vec();
        label.extend_from_slice(category.as_bytes());
        BlindIndexKey(self.derive(&label))
    }

    /// The key that seals the keyring's chain key.
    pub fn keyring_key(&self) -> KeyringKey {
        KeyringKey(self.derive(b"keyring"))
    }

    /// The key that MACs customer session tokens.
    pub fn session_key(&self) -> SessionKey {
        SessionKey(self.derive(b"session-token"))
    }

    /// The key that MACs sign-in nonces.
    pub fn nonce_key(&self) -> NonceKey {
        NonceKey(self.derive(b"signin-nonce"))
    }

    /// The key that gives each customer their private label in the log's directory.
    pub fn directory_label_key(&self) -> LabelKey {
        LabelKey(self.derive(b"directory-label"))
    }

    /// The key Candor's nodes authenticate their requests to each other with.
    pub fn node_key(&self) -> NodeKey {
        NodeKey(self.derive(b"node-to-node"))
    }
}

/// Authenticates requests between Candor's own nodes (a node handing a write to the node that
/// sequences the log). Only holders of the root key can derive it, and they can read the vault
/// anyway, so it admits exactly the processes already trusted with everything.
pub struct NodeKey(Zeroizing<[u8; 32]>);

impl NodeKey {
    /// The tag over a request made at `at` (Unix seconds) with a fresh `nonce` and `body`.
    pub fn tag(&self, at: i64, nonce: &[u8; 16], body: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("any key length");
        mac.update(b"candor.node.v1\0");
        mac.update(&at.to_be_bytes());
        mac.update(nonce);
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of that request, compared in constant time.
    pub fn verify(&self, at: i64, nonce: &[u8; 16], body: &[u8], tag: &[u8]) -> bool {
        bool::from(self.tag(at, nonce, body).ct_eq(tag))
    }

    /// The `Candor-Node-Auth` header value for sending `body` at `at`:
    /// `<at>.<base64url nonce>.<base64url tag>`, with a fresh random nonce.
    pub fn authorize(&self, at: i64, body: &[u8]) -> String {
        let nonce = random::<16>();
        let tag = self.tag(at, &nonce, body);
        format!(
            "{at}.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }
}

/// A `Candor-Node-Auth` header value split into its time, nonce and tag (not yet verified).
pub fn parse_node_authorization(value: &str) -> Option<(i64, [u8; 16], Vec<u8>)> {
    let mut parts = value.split('.');
    let (Some(at), Some(nonce), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let nonce = URL_SAFE_NO_PAD.decode(nonce).ok()?.try_into().ok()?;
    Some((at.parse().ok()?, nonce, URL_SAFE_NO_PAD.decode(tag).ok()?))
}

/// Makes customers' directory labels: HMAC-SHA256 of the customer id, so the public directory
/// says nothing about who is who to anyone without the root key. Each clone zeroises on drop.
#[derive(Clone)]
pub struct LabelKey(Zeroizing<[u8; 32]>);

impl LabelKey {
    /// The customer's 32-byte label.
    pub fn label(&self, subject: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("any key length");
        mac.update(subject.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Wraps and unwraps customer data keys directly under a root-derived key: how they were kept
/// before tenant key epochs (version 1), still read until they are rewrapped.
pub struct KeyWrappingKey(Zeroizing<[u8; 32]>);

impl KeyWrappingKey {
    /// Wraps `key` for `subject` with AES-256-GCM-SIV, which stays safe even if a nonce repeats.
    pub fn wrap(&self, subject: &str, key: &DataKey) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random();
        let ad = associated_data(b"candor.dek.v1", &[subject.as_bytes()]);
        frame(&nonce, &seal_key(&self.0, &nonce, &key.0, &ad))
    }

    /// Unwraps a data key wrapped for `subject`.
    pub fn unwrap(&self, subject: &str, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let (nonce, ct) = split_sealed(wrapped)?;
        let ad = associated_data(b"candor.dek.v1", &[subject.as_bytes()]);
        Ok(DataKey(open_key(&self.0, nonce, ct, &ad)?))
    }
}

/// Seals a 32-byte key under `wrapping` with AES-256-GCM-SIV: how every key is wrapped, because
/// it stays safe even if a random nonce repeats.
pub(crate) fn seal_key(
    wrapping: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    key: &[u8; 32],
    ad: &[u8],
) -> Vec<u8> {
    aes_gcm_siv::Aes256GcmSiv::new_from_slice(wrapping)
        .expect("32-byte key")
        .encrypt(nonce.into(), Payload { msg: key, aad: ad })
        .expect("AES-GCM-SIV encryption cannot fail for small inputs")
}

/// Opens a key [`seal_key`] sealed; anything but 32 authentic bytes is refused.
pub(crate) fn open_key(
    wrapping: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
    ad: &[u8],
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let raw = Zeroizing::new(
        aes_gcm_siv::Aes256GcmSiv::new_from_slice(wrapping)
            .expect("32-byte key")
            .decrypt(
                nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad: ad,
                },
            )
            .map_err(|_| CryptoError::Unauthentic)?,
    );
    let bytes: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::MalformedKey)?;
    Ok(Zeroizing::new(bytes))
}

/// `version || nonce || ciphertext`, the layout of every sealed value; [`split_sealed`] reverses it.
fn frame(nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    out.push(SEAL_V1);
    out.extend_from_slice(nonce);
    out.extend_from_slice(ciphertext);
    out
}

fn split_sealed(sealed: &[u8]) -> Result<(&[u8; NONCE_LEN], &[u8]), CryptoError> {
    match sealed {
        [SEAL_V1, rest @ ..] if rest.len() >= NONCE_LEN + 16 => {
            let (nonce, ct) = rest.split_at(NONCE_LEN);
            Ok((nonce.try_into().expect("split at nonce length"), ct))
        }
        _ => Err(CryptoError::Unauthentic),
    }
}

/// What a sealed value is, bound into its associated data.
#[derive(Clone, Copy, Debug)]
pub enum SealContext<'a> {
    /// A stored personal-data field of this data category.
    Field(&'a str),
    /// A log event body with its commitment nonce.
    Event,
}

/// One customer's data key.
pub struct DataKey(pub(crate) Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> DataKey {
        DataKey(Zeroizing::new(random()))
    }

    fn cipher(&self) -> aes_gcm::Aes256Gcm {
        aes_gcm::Aes256Gcm::new_from_slice(&*self.0).expect("32-byte key")
    }

    fn ad(subject: &str, context: SealContext<'_>) -> Vec<u8> {
        match context {
            SealContext::Field(category) => associated_data(
                b"candor.field.v1",
                &[subject.as_bytes(), category.as_bytes()],
            ),
            SealContext::Event => associated_data(b"candor.event.v1", &[subject.as_bytes()]),
        }
    }

    /// Seals `plaintext` for `subject` in `context` with AES-256-GCM.
    pub fn seal(&self, subject: &str, context: SealContext<'_>, plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random();
        let ad = Self::ad(subject, context);
        let ct = self
            .cipher()
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plaintext,
                    aad: &ad,
                },
            )
            .expect("AES-GCM encryption cannot fail below 64 GiB");
        frame(&nonce, &ct)
    }

    /// Opens a value sealed for the same `subject` and `context`.
    pub fn open(
        &self,
        subject: &str,
        context: SealContext<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (nonce, ct) = split_sealed(sealed)?;
        let ad = Self::ad(subject, context);
        self.cipher()
            .decrypt(nonce.into(), Payload { msg: ct, aad: &ad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Unauthentic)
    }
}

/// Bytes of HMAC kept in a blind index. 64 bits keeps false matches negligible for any one shop,
/// while the stored value is still useless without the key; candidates are confirmed by
/// decrypting, so a coincidence never returns the wrong customer.
pub const BLIND_INDEX_LEN: usize = 8;

/// The keyed blind-index function for one data category.
pub struct BlindIndexKey(Zeroizing<[u8; 32]>);

impl BlindIndexKey {
    /// The truncated HMAC-SHA256 of an already normalised value.
    pub fn index(&self, normalised: &[u8]) -> [u8; BLIND_INDEX_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("any key length");
        mac.update(normalised);
        let full = mac.finalize().into_bytes();
        full[..BLIND_INDEX_LEN].try_into().expect("truncation")
    }
}

/// MACs customer session tokens.
///
/// A token is `cst_<base64url(payload)>.<base64url(tag)>` with payload `1.<subject>.<expiry>` for
/// the customer's own session, or `2.<subject>.<expiry>.<key id>` for one a service minted for
/// them (delegated), the expiry in Unix seconds. Neither customer nor key ids contain dots, so
/// the payload splits unambiguously.
pub struct SessionKey(Zeroizing<[u8; 32]>);

/// A verified session: the customer it speaks for, through which service if delegated, and when
/// it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The customer id.
    pub subject: String,
    /// The id of the service key that minted it, for a delegated session.
    pub through: Option<String>,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
}

impl SessionKey {
    fn tag(&self, payload: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("any key length");
        mac.update(b"candor.session.v1\0");
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }

    fn token(&self, payload: &str) -> String {
        format!(
            "cst_{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.tag(payload.as_bytes()))
        )
    }

    /// Mints the customer's own token for `subject` valid until `expires_at`.
    pub fn mint(&self, subject: &str, expires_at: i64) -> String {
        self.token(&format!("1.{subject}.{expires_at}"))
    }

    /// Mints a token for `subject` on behalf of the service key `key_id`, valid until
    /// `expires_at`.
    pub fn mint_delegated(&self, subject: &str, key_id: &str, expires_at: i64) -> String {
        self.token(&format!("2.{subject}.{expires_at}.{key_id}"))
    }

    /// Verifies a token at time `now` (Unix seconds). The tag is compared in constant time.
    pub fn verify(&self, token: &str, now: i64) -> Result<Session, CryptoError> {
        let body = token.strip_prefix("cst_").ok_or(CryptoError::BadToken)?;
        let (payload, tag) = body.split_once('.').ok_or(CryptoError::BadToken)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CryptoError::BadToken)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| CryptoError::BadToken)?;
        if !bool::from(self.tag(&payload).ct_eq(&tag)) {
            return Err(CryptoError::BadToken);
        }
        let payload = String::from_utf8(payload).map_err(|_| CryptoError::BadToken)?;
        let parts: Vec<&str> = payload.split('.').collect();
        let (subject, expiry, through) = match parts[..] {
            ["1", subject, expiry] => (subject, expiry, None),
            ["2", subject, expiry, key] if !key.is_empty() => (subject, expiry, Some(key)),
            _ => return Err(CryptoError::BadToken),
        };
        let expires_at: i64 = expiry.parse().map_err(|_| CryptoError::BadToken)?;
        if now >= expires_at {
            return Err(CryptoError::BadToken);
        }
        Ok(Session {
            subject: subject.to_owned(),
            through: through.map(str::to_owned),
            expires_at,
        })
    }
}

/// MACs sign-in nonces: `cnn_<base64url(expiry_be8 || random16 || tag32)>`, the expiry in Unix
/// seconds. A valid tag proves Candor issued it; that it is used only once is the log's job
/// (a one-time claim on its digest).
pub struct NonceKey(Zeroizing<[u8; 32]>);

impl NonceKey {
    fn tag(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("any key length");
        mac.update(b"candor.signin-nonce.v1\0");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// A fresh nonce valid until `expires_at`.
    pub fn issue(&self, expires_at: i64) -> String {
        let mut raw = [0u8; 56];
        raw[..8].copy_from_slice(&expires_at.to_be_bytes());
        rand::thread_rng().fill_bytes(&mut raw[8..24]);
        let tag = self.tag(&raw[..24]);
        raw[24..].copy_from_slice(&tag);
        format!("cnn_{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// Checks a nonce at `now`; returns when it expires. The tag is compared in constant time.
    pub fn check(&self, nonce: &str, now: i64) -> Result<i64, CryptoError> {
        let raw = nonce
            .strip_prefix("cnn_")
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|r| r.len() == 56)
            .ok_or(CryptoError::BadToken)?;
        if !bool::from(self.tag(&raw[..24]).ct_eq(&raw[24..])) {
            return Err(CryptoError::BadToken);
        }
        let expires_at = i64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        if now >= expires_at {
            return Err(CryptoError::BadToken);
        }
        Ok(expires_at)
    }
}

/// A newly minted API key: the public id, the full secret token shown once, and the hash stored.
pub struct NewApiKey {
    /// Public identifier, safe to log.
    pub id: String,
    /// `cnd_<id>_<secret>`, handed to the caller once and never stored.
    pub token: Zeroizing<String>,
    /// SHA-256 of the secret part, what the database keeps.
    pub secret_hash: [u8; 32],
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// API keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
pub fn new_api_key() -> NewApiKey {
    let id: [u8; 8] = random();
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(random::<32>()));
    NewApiKey {
        token: Zeroizing::new(format!("cnd_{id}_{}", &*secret)),
        secret_hash: hash_api_secret(&secret),
        id,
    }
}

/// Splits `cnd_<id>_<secret>` into its id and the hash of its secret.
pub fn parse_api_key(token: &str) -> Option<(&str, [u8; 32])> {
    let rest = token.strip_prefix("cnd_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && !secret.is_empty()).then(|| (id, hash_api_secret(secret)))
}

fn hash_api_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time equality for secret hashes and tags.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_fields_are_bound_to_customer_and_field() {
        let key = DataKey::generate();
        let sealed = key.seal("cus_1", SealContext::Field("user.contact.email"), b"a@b.c");
        let opened = key
            .open("cus_1", SealContext::Field("user.contact.email"), &sealed)
            .unwrap();
        assert_eq!(opened.as_slice(), b"a@b.c");
        assert!(
            key.open("cus_2", SealContext::Field("user.contact.email"), &sealed)
                .is_err()
        );
        assert!(
            key.open("cus_1", SealContext::Field("user.name"), &sealed)
                .is_err()
        );
        assert!(key.open("cus_1", SealContext::Event, &sealed).is_err());
        assert!(
            DataKey::generate()
                .open("cus_1", SealContext::Field("user.contact.email"), &sealed)
                .is_err()
        );
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let key = DataKey::generate();
        let sealed = key.seal("s", SealContext::Event, b"body");
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(key.open("s", SealContext::Event, &bad).is_err(), "bit {i}");
        }
    }

    #[test]
    fn wrapped_keys_only_unwrap_for_their_customer() {
        let root = RootKey::generate();
        let kek = root.key_wrapping_key();
        let dek = DataKey::generate();
        let wrapped = kek.wrap("cus_1", &dek);
        let back = kek.unwrap("cus_1", &wrapped).unwrap();
        assert_eq!(*back.0, *dek.0);
        assert!(kek.unwrap("cus_2", &wrapped).is_err());
        assert!(
            RootKey::generate()
                .key_wrapping_key()
                .unwrap("cus_1", &wrapped)
                .is_err()
        );
    }

    #[test]
    fn root_key_round_trips_and_never_prints() {
        let root = RootKey::generate();
        let again = RootKey::from_base64(&root.to_base64()).unwrap();
        assert_eq!(*again.0, *root.0);
        assert_eq!(format!("{root:?}"), "RootKey([redacted])");
        assert!(RootKey::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn blind_indexes_are_keyed_per_category() {
        let root = RootKey::generate();
        let email = root.blind_index_key("user.contact.email");
        assert_eq!(email.index(b"a@b.c"), email.index(b"a@b.c"));
        assert_ne!(
            email.index(b"a@b.c"),
            root.blind_index_key("user.name").index(b"a@b.c")
        );
        assert_ne!(
            email.index(b"a@b.c"),
            RootKey::generate()
                .blind_index_key("user.contact.email")
                .index(b"a@b.c")
        );
    }

    #[test]
    fn session_tokens_expire_and_resist_forgery() {
        let key = RootKey::generate().session_key();
        let token = key.mint("cus_1", 1000);
        assert_eq!(key.verify(&token, 999).unwrap().subject, "cus_1");
        assert_eq!(key.verify(&token, 1000), Err(CryptoError::BadToken));
        let forged = key.mint("cus_2", 1000);
        let (forged_payload, _) = forged.split_once('.').unwrap();
        let (_, real_tag) = token.split_once('.').unwrap();
        assert!(
            key.verify(&format!("{forged_payload}.{real_tag}"), 0)
                .is_err()
        );
        assert!(RootKey::generate().session_key().verify(&token, 0).is_err());
    }

    #[test]
    fn nonces_are_checked_by_tag_and_expiry() {
        let key = RootKey::generate().nonce_key();
        let nonce = key.issue(1000);
        assert_eq!(key.check(&nonce, 999), Ok(1000));
        assert_ne!(key.issue(1000), nonce, "each nonce is fresh");
        assert_eq!(key.check(&nonce, 1000), Err(CryptoError::BadToken));
        assert!(RootKey::generate().nonce_key().check(&nonce, 0).is_err());
        // A later expiry cannot be written into a nonce.
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce[4..]).unwrap();
        raw[..8].copy_from_slice(&5000i64.to_be_bytes());
        let stretched = format!("cnn_{}", URL_SAFE_NO_PAD.encode(&raw));
        assert!(key.check(&stretched, 1500).is_err());
        for junk in ["", "cnn_", "cnn_AAAA", "xyz"] {
            assert!(key.check(junk, 0).is_err(), "{junk}");
        }
    }

    #[test]
    fn a_delegated_session_names_its_service_and_an_own_one_does_not() {
        let key = RootKey::generate().session_key();
        let own = key.verify(&key.mint("cus_1", 1000), 0).unwrap();
        assert_eq!(own.through, None);
        let delegated = key
            .verify(&key.mint_delegated("cus_1", "0011aabb", 1000), 0)
            .unwrap();
        assert_eq!(
            (delegated.subject.as_str(), delegated.through.as_deref()),
            ("cus_1", Some("0011aabb"))
        );
        // The service cannot be dropped from a delegated token to make it the customer's own.
        let delegated = key.mint_delegated("cus_1", "0011aabb", 1000);
        let (_, tag) = delegated.split_once('.').unwrap();
        let own_payload = URL_SAFE_NO_PAD.encode(b"1.cus_1.1000");
        assert!(key.verify(&format!("cst_{own_payload}.{tag}"), 0).is_err());
        for payload in [
            "2.cus_1.1000.",
            "2.cus_1.1000",
            "1.cus_1.1000.k",
            "3.cus_1.1000",
        ] {
            let token = key.token(payload);
            assert!(key.verify(&token, 0).is_err(), "{payload}");
        }
    }

    #[test]
    fn node_tags_bind_time_nonce_and_body() {
        let root = RootKey::generate();
        let key = root.node_key();
        let tag = key.tag(100, &[1; 16], b"body");
        assert!(key.verify(100, &[1; 16], b"body", &tag));
        assert!(!key.verify(101, &[1; 16], b"body", &tag));
        assert!(!key.verify(100, &[2; 16], b"body", &tag));
        assert!(!key.verify(100, &[1; 16], b"bodY", &tag));
        assert!(!key.verify(100, &[1; 16], b"body", &tag[..31]));
        assert!(
            !RootKey::generate()
                .node_key()
                .verify(100, &[1; 16], b"body", &tag)
        );

        let header = key.authorize(100, b"body");
        let (at, nonce, tag) = parse_node_authorization(&header).unwrap();
        assert_eq!(at, 100);
        assert!(key.verify(at, &nonce, b"body", &tag));
        assert_ne!(
            header,
            key.authorize(100, b"body"),
            "a fresh nonce each time"
        );
        assert!(
            parse_node_authorization("100.AAAA.AAAA").is_none(),
            "short nonce"
        );
        assert!(parse_node_authorization(&format!("{header}.x")).is_none());
    }

    #[test]
    fn api_keys_parse_to_their_hash() {
        let key = new_api_key();
        let (id, hash) = parse_api_key(&key.token).unwrap();
        assert_eq!(id, key.id);
        assert!(ct_eq(&hash, &key.secret_hash));
        assert!(parse_api_key("cnd_short_x").is_none());
    }
}
