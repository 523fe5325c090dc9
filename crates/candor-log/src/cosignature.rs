//! Witness cosignatures, C2SP tlog-cosignature v1 with Ed25519 (<https://c2sp.org/tlog-cosignature>).
//!
//! A witness signs `"cosignature/v1\ntime <T>\n" || checkpoint text` after checking that the
//! checkpoint is consistent with every one it saw before. The signature line's bytes are the key ID
//! (SHA-256 of name, newline, `0x04` and the public key, first four bytes), the time as a
//! big-endian `u64` and the Ed25519 signature. Clients that see the same checkpoint cosigned by
//! several independent witnesses know the log is not showing them a view it hides from others.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::note::{
    NamedKey, NoteError, SIG_PREFIX, format_skey, format_vkey, parse_vkey, signature_lines,
};

/// The signature-type byte of tlog-cosignature v1 Ed25519 keys.
const COSIGNATURE_V1_TYPE: u8 = 0x04;
const SIGNATURE_LEN: usize = 4 + 8 + 64;

fn signed_message(checkpoint_text: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{checkpoint_text}")
}

/// A witness's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl WitnessVerifier {
    /// Parses `name+hash+base64(0x04 || public key)`.
    pub fn parse(vkey: &str) -> Result<WitnessVerifier, NoteError> {
        let (name, id, key) = parse_vkey(vkey, COSIGNATURE_V1_TYPE)?;
        Ok(WitnessVerifier { name, id, key })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vkey string.
    pub fn to_vkey(&self) -> String {
        format_vkey(&self.name, &self.id, &self.key, COSIGNATURE_V1_TYPE)
    }

    /// Checks this witness's cosignature in a signature line's bytes; returns the time it signed.
    fn check(&self, checkpoint_text: &str, raw: &[u8]) -> Result<u64, NoteError> {
        let bad = || NoteError::InvalidSignature(self.name.clone());
        if raw.len() != SIGNATURE_LEN {
            return Err(bad());
        }
        let time = u64::from_be_bytes(raw[4..12].try_into().expect("8 bytes"));
        let sig = Signature::from_slice(&raw[12..]).map_err(|_| bad())?;
        self.key
            .verify(signed_message(checkpoint_text, time).as_bytes(), &sig)
            .map_err(|_| bad())?;
        Ok(time)
    }
}

/// A witness's signing key; zeroised on drop and never printed.
pub struct WitnessSigner {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for WitnessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl From<NamedKey> for WitnessSigner {
    fn from(k: NamedKey) -> WitnessSigner {
        WitnessSigner {
            name: k.name,
            id: k.id,
            key: k.key,
        }
    }
}

impl WitnessSigner {
    /// Generates a fresh witness key named `name`.
    pub fn generate(name: &str) -> Result<WitnessSigner, NoteError> {
        NamedKey::generate(name, COSIGNATURE_V1_TYPE).map(WitnessSigner::from)
    }

    /// Parses `PRIVATE+KEY+name+hash+base64(0x04 || seed)`.
    pub fn parse(skey: &str) -> Result<WitnessSigner, NoteError> {
        NamedKey::parse(skey, COSIGNATURE_V1_TYPE).map(WitnessSigner::from)
    }

    /// The signer key string, for a 0600 file.
    pub fn to_skey(&self) -> zeroize::Zeroizing<String> {
        format_skey(&self.name, &self.id, &self.key, COSIGNATURE_V1_TYPE)
    }

    /// The matching public key.
    pub fn verifier(&self) -> WitnessVerifier {
        WitnessVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Cosigns a checkpoint's text at `time` (POSIX seconds); returns the signature line with its
    /// trailing newline, ready to append to the checkpoint note.
    pub fn cosign(&self, checkpoint_text: &str, time: u64) -> String {
        let sig = self
            .key
            .sign(signed_message(checkpoint_text, time).as_bytes());
        let mut raw = Vec::with_capacity(SIGNATURE_LEN);
        raw.extend_from_slice(&self.id);
        raw.extend_from_slice(&time.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }
}

/// A valid cosignature found on a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's name.
    pub witness: String,
    /// When it cosigned (POSIX seconds).
    pub time: u64,
}

/// Checks the cosignatures that `witnesses` put on a signed checkpoint note.
///
/// Lines from other keys are ignored (the log's own signature among them); a line that names a
/// given witness and carries its key ID but does not verify is an error, never silently skipped.
pub fn verify_cosignatures(
    note: &str,
    witnesses: &[WitnessVerifier],
) -> Result<Vec<Cosigned>, NoteError> {
    let signed = signature_lines(note)?;
    let mut found = Vec::new();
    for (name, raw) in &signed.signatures {
        let Some(w) = witnesses
            .iter()
            .find(|w| w.name == *name && w.id[..] == raw[..4])
        else {
            continue;
        };
        let time = w.check(signed.text, raw)?;
        if !found.iter().any(|c: &Cosigned| c.witness == w.name) {
            found.push(Cosigned {
                witness: w.name.clone(),
                time,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;

    #[test]
    fn a_cosigned_checkpoint_verifies_and_a_forgery_does_not() {
        let log = NoteSigner::generate("example.com/log").unwrap();
        let w1 = WitnessSigner::generate("w1.example").unwrap();
        let w2 = WitnessSigner::generate("w2.example").unwrap();
        let text = "example.com/log\n3\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n";
        let mut note = log.sign(text).unwrap();
        note.push_str(&w1.cosign(text, 1_700_000_000));
        let verifiers = [w1.verifier(), w2.verifier()];
        assert_eq!(
            verify_cosignatures(&note, &verifiers).unwrap(),
            vec![Cosigned {
                witness: "w1.example".into(),
                time: 1_700_000_000
            }]
        );
        // The log's signature still opens with the log key alone.
        crate::Checkpoint::open(&note, &log.verifier()).unwrap();

        let forged = note.replacen("\n3\n", "\n4\n", 1);
        assert!(verify_cosignatures(&forged, &verifiers).is_err());
        let round = WitnessVerifier::parse(&w1.verifier().to_vkey()).unwrap();
        assert_eq!(round, w1.verifier());
        let reparsed = WitnessSigner::parse(&w1.to_skey()).unwrap();
        assert_eq!(reparsed.verifier(), w1.verifier());
    }

    #[test]
    fn log_keys_and_witness_keys_do_not_mix() {
        let log = NoteSigner::generate("example.com/log").unwrap();
        assert!(WitnessVerifier::parse(&log.verifier().to_vkey()).is_err());
        let w = WitnessSigner::generate("w.example").unwrap();
        assert!(crate::NoteVerifier::parse(&w.verifier().to_vkey()).is_err());
    }
}
