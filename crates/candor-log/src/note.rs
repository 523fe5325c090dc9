//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys, and the
//! C2SP tlog-checkpoint body (<https://c2sp.org/tlog-checkpoint>) they carry.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::hash::Hash;

/// The signature-type byte of Ed25519 note keys (signed-note §"Signature types").
const ED25519_TYPE: u8 = 0x01;
/// The em dash and space that open every signature line.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";

/// Why a key, note or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key string is not `name+hash+base64`, or its parts disagree.
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    /// The note's layout is wrong (no blank line, bad signature line, text not ending in newline).
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A known key's signature is present but does not verify.
    #[error("invalid signature by {0}")]
    InvalidSignature(String),
    /// No signature from any of the given keys.
    #[error("no signature from a known key")]
    NoKnownSignature,
    /// The checkpoint body is not origin, size and root hash.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

/// The 4-byte key ID: the start of SHA-256(name || "\n" || type || public key).
fn key_id_of(name: &str, key_type: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([key_type]);
    h.update(public);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn hex4(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits `name+hash+base64(type || key)` on the first two `+` (base64 itself may contain `+`)
/// and checks the type byte and a 32-byte key.
fn split_key_of(s: &str, key_type: u8) -> Result<(&str, [u8; 4], Vec<u8>), NoteError> {
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::BadKey("expected name+hash+key"));
    };
    if !valid_name(name) {
        return Err(NoteError::BadKey("invalid name"));
    }
    if hash.len() != 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::BadKey("key hash must be 8 hex digits"));
    }
    let mut id = [0u8; 4];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hash[2 * i..2 * i + 2], 16)
            .map_err(|_| NoteError::BadKey("key hash must be 8 hex digits"))?;
    }
    let key = B64
        .decode(key)
        .map_err(|_| NoteError::BadKey("key is not base64"))?;
    if key.len() != 33 || key[0] != key_type {
        return Err(NoteError::BadKey("not a key of the expected type"));
    }
    Ok((name, id, key))
}

/// A named Ed25519 signing key of one signature type, as both log and witness signers hold it.
pub(crate) struct NamedKey {
    pub(crate) name: String,
    pub(crate) id: [u8; 4],
    pub(crate) key: SigningKey,
}

impl NamedKey {
    pub(crate) fn generate(name: &str, key_type: u8) -> Result<NamedKey, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey("invalid name"));
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let id = key_id_of(name, key_type, key.verifying_key().as_bytes());
        Ok(NamedKey {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+name+hash+base64(type || seed)`.
    pub(crate) fn parse(skey: &str, key_type: u8) -> Result<NamedKey, NoteError> {
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::BadKey("signer key must start with PRIVATE+KEY+"))?;
        let (name, id, raw) = split_key_of(rest, key_type)?;
        let seed: zeroize::Zeroizing<[u8; 32]> =
            zeroize::Zeroizing::new(raw[1..].try_into().expect("length checked"));
        let key = SigningKey::from_bytes(&seed);
        if key_id_of(name, key_type, key.verifying_key().as_bytes()) != id {
            return Err(NoteError::BadKey("key hash does not match the key"));
        }
        Ok(NamedKey {
            name: name.to_owned(),
            id,
            key,
        })
    }
}

/// Parses a vkey `name+hash+base64(type || public key)` of one signature type.
pub(crate) fn parse_vkey(
    vkey: &str,
    key_type: u8,
) -> Result<(String, [u8; 4], VerifyingKey), NoteError> {
    let (name, id, key) = split_key_of(vkey, key_type)?;
    let public: [u8; 32] = key[1..].try_into().expect("length checked");
    if key_id_of(name, key_type, &public) != id {
        return Err(NoteError::BadKey("key hash does not match the key"));
    }
    let key =
        VerifyingKey::from_bytes(&public).map_err(|_| NoteError::BadKey("not a curve point"))?;
    Ok((name.to_owned(), id, key))
}

/// Formats a vkey `name+hash+base64(type || public key)`.
pub(crate) fn format_vkey(name: &str, id: &[u8; 4], key: &VerifyingKey, key_type: u8) -> String {
    let mut raw = vec![key_type];
    raw.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", hex4(id), B64.encode(raw))
}

/// Formats `PRIVATE+KEY+name+hash+base64(type || seed)`.
pub(crate) fn format_skey(
    name: &str,
    id: &[u8; 4],
    key: &SigningKey,
    key_type: u8,
) -> zeroize::Zeroizing<String> {
    let mut raw = zeroize::Zeroizing::new(vec![key_type]);
    raw.extend_from_slice(key.as_bytes());
    zeroize::Zeroizing::new(format!(
        "PRIVATE+KEY+{name}+{}+{}",
        hex4(id),
        B64.encode(&*raw)
    ))
}

/// A note verifier: a name and an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a C2SP vkey string, `name+hash+base64(0x01 || public key)`.
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let (name, id, key) = parse_vkey(vkey, ED25519_TYPE)?;
        Ok(NoteVerifier { name, id, key })
    }

    /// The key's name, which is also the log origin for checkpoint keys.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vkey string.
    pub fn to_vkey(&self) -> String {
        format_vkey(&self.name, &self.id, &self.key, ED25519_TYPE)
    }
}

/// A note signer. The private key is zeroised on drop (each clone's too) and never printed.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl From<NamedKey> for NoteSigner {
    fn from(k: NamedKey) -> NoteSigner {
        NoteSigner {
            name: k.name,
            id: k.id,
            key: k.key,
        }
    }
}

impl NoteSigner {
    /// Generates a fresh key named `name` from the operating system's random source.
    pub fn generate(name: &str) -> Result<NoteSigner, NoteError> {
        NamedKey::generate(name, ED25519_TYPE).map(NoteSigner::from)
    }

    /// Parses `PRIVATE+KEY+name+hash+base64(0x01 || seed)`.
    pub fn parse(skey: &str) -> Result<NoteSigner, NoteError> {
        NamedKey::parse(skey, ED25519_TYPE).map(NoteSigner::from)
    }

    /// The signer key string, for storing in a 0600 file.
    pub fn to_skey(&self) -> zeroize::Zeroizing<String> {
        format_skey(&self.name, &self.id, &self.key, ED25519_TYPE)
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs `text` (which must end in a newline) and returns the whole signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig: Signature = self.key.sign(text.as_bytes());
        let mut raw = Vec::with_capacity(68);
        raw.extend_from_slice(&self.id);
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(raw)
        ))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("text must end with a newline"));
    }
    Ok(())
}

/// A note whose signature by at least one known key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Names of the known keys whose signatures verified.
    pub verified_by: Vec<String>,
    /// How many signatures were from keys not given (left unchecked).
    pub unverified: usize,
}

/// A signed note split into its text and its signature lines (name, raw key ID and signature).
pub struct SignedNote<'a> {
    /// The signed text, ending in a newline.
    pub text: &'a str,
    /// Each signature line's key name and decoded bytes, in order.
    pub signatures: Vec<(&'a str, Vec<u8>)>,
}

/// Splits a note into text and signature lines, checking the layout but no signature.
pub fn signature_lines(note: &str) -> Result<SignedNote<'_>, NoteError> {
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before signatures"))?;
    let text = &note[..split + 1];
    let sigs = &note[split + 2..];
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed(
            "signature block must end with newline",
        ));
    }
    let mut signatures = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
            "signature line must start with an em dash",
        ))?;
        let (name, sig) = rest.split_once(' ').ok_or(NoteError::Malformed(
            "signature line needs name and signature",
        ))?;
        if !valid_name(name) {
            return Err(NoteError::Malformed("invalid signer name"));
        }
        let raw = B64
            .decode(sig)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if raw.len() < 4 {
            return Err(NoteError::Malformed("signature too short"));
        }
        signatures.push((name, raw));
    }
    Ok(SignedNote { text, signatures })
}

/// Parses a signed note and checks its signatures against `verifiers`.
///
/// Signatures from unknown keys are counted but not checked; a bad signature from a known key
/// is an error, and so is a note that no known key signed (as Go's `note.Open`).
pub fn open_note(note: &str, verifiers: &[NoteVerifier]) -> Result<OpenedNote, NoteError> {
    let SignedNote { text, signatures } = signature_lines(note)?;
    let mut verified_by = Vec::new();
    let mut unverified = 0;
    for (name, raw) in signatures {
        let Some(v) = verifiers
            .iter()
            .find(|v| v.name == name && v.id[..] == raw[..4])
        else {
            unverified += 1;
            continue;
        };
        let sig = Signature::from_slice(&raw[4..])
            .map_err(|_| NoteError::InvalidSignature(name.to_owned()))?;
        v.key
            .verify(text.as_bytes(), &sig)
            .map_err(|_| NoteError::InvalidSignature(name.to_owned()))?;
        verified_by.push(name.to_owned());
    }
    if verified_by.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok(OpenedNote {
        text: text.to_owned(),
        verified_by,
        unverified,
    })
}

/// A checkpoint body: the log's origin, its size and its root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique, schema-less URL-like name.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The RFC 6962 root of those leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.0)
        )
    }

    /// Parses a checkpoint body; extension lines after the root are allowed and ignored.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty());
        let size = lines.next();
        let root = lines.next();
        let (Some(origin), Some(size), Some(root)) = (origin, size, root) else {
            return Err(NoteError::BadCheckpoint("need origin, size and root lines"));
        };
        if !text.ends_with('\n') {
            return Err(NoteError::BadCheckpoint("must end with a newline"));
        }
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(NoteError::BadCheckpoint("size must be a decimal number"));
        }
        let size = size
            .parse()
            .map_err(|_| NoteError::BadCheckpoint("size too large"))?;
        let root = B64
            .decode(root)
            .ok()
            .and_then(|r| Hash::from_slice(&r))
            .ok_or(NoteError::BadCheckpoint("root must be 32 bytes of base64"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Opens a signed checkpoint note with the log's key and parses it; the origin must be the
    /// key's name, so one log's key cannot vouch for another log's checkpoints.
    pub fn open(note: &str, log_key: &NoteVerifier) -> Result<Checkpoint, NoteError> {
        let opened = open_note(note, std::slice::from_ref(log_key))?;
        let checkpoint = Checkpoint::parse(&opened.text)?;
        if checkpoint.origin != log_key.name {
            return Err(NoteError::BadCheckpoint("origin differs from the key name"));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_open_round_trips() {
        let signer = NoteSigner::generate("example.com/log").unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 7,
            root: Hash([9; 32]),
        };
        let note = signer.sign(&cp.to_text()).unwrap();
        assert_eq!(Checkpoint::open(&note, &signer.verifier()).unwrap(), cp);
        let reparsed = NoteSigner::parse(&signer.to_skey()).unwrap();
        assert_eq!(reparsed.verifier(), signer.verifier());
    }

    #[test]
    fn a_tampered_checkpoint_is_refused() {
        let signer = NoteSigner::generate("example.com/log").unwrap();
        let note = signer
            .sign("example.com/log\n7\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n")
            .unwrap();
        let forged = note.replacen("\n7\n", "\n8\n", 1);
        assert!(matches!(
            Checkpoint::open(&forged, &signer.verifier()),
            Err(NoteError::InvalidSignature(_))
        ));
    }

    #[test]
    fn checkpoint_sizes_are_canonical_decimals() {
        let root = B64.encode([0u8; 32]);
        for bad in ["", "01", "-1", "1e3", " 1"] {
            assert!(
                Checkpoint::parse(&format!("o\n{bad}\n{root}\n")).is_err(),
                "{bad:?}"
            );
        }
        assert!(Checkpoint::parse(&format!("o\n0\n{root}\n")).is_ok());
    }
}
