//! Receipts in the C2SP tlog-proof format (<https://c2sp.org/tlog-proof>): a leaf index, its
//! inclusion proof and the (cosigned) checkpoint it is proven against, in one text that verifies
//! offline against the log's and the witnesses' public keys.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]
//! index <N>
//! <base64 proof hash>…
//!
//! <signed checkpoint note>
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::hash::{Hash, leaf_hash};
use crate::note::{Checkpoint, NoteError, NoteVerifier};
use crate::tree::{ProofError, verify_inclusion};

const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed receipt; nothing in it is trusted until [`Receipt::verify`] succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Application data, opaque to the format.
    pub extra: Option<Vec<u8>>,
    /// The leaf's index.
    pub index: u64,
    /// The inclusion proof, leaf side first.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, with any cosignatures.
    pub checkpoint: String,
}

/// Why a receipt did not parse or verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not the tlog-proof layout.
    #[error("malformed receipt: {0}")]
    Malformed(&'static str),
    /// The checkpoint is not signed by the log, or does not parse.
    #[error("receipt checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// The inclusion proof does not verify.
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
}

impl Receipt {
    /// The text form.
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", B64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&B64.encode(h.0));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Receipt, ReceiptError> {
        let (head, checkpoint) = text.split_once("\n\n").ok_or(ReceiptError::Malformed(
            "no blank line before the checkpoint",
        ))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(ReceiptError::Malformed(
                "first line must be c2sp.org/tlog-proof@v1",
            ));
        }
        let mut line = lines.next();
        let mut extra = None;
        if let Some(rest) = line.and_then(|l| l.strip_prefix("extra ")) {
            extra = Some(
                B64.decode(rest)
                    .map_err(|_| ReceiptError::Malformed("extra is not base64"))?,
            );
            line = lines.next();
        }
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .filter(|n| n.len() == 1 || !n.starts_with('0'))
            .and_then(|n| n.parse().ok())
            .ok_or(ReceiptError::Malformed("expected `index <decimal>`"))?;
        let proof = lines
            .map(|l| {
                B64.decode(l).ok().and_then(|b| Hash::from_slice(&b)).ok_or(
                    ReceiptError::Malformed("proof lines are base64 of 32 bytes"),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Receipt {
            extra,
            index,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Verifies the log's signature on the checkpoint and that `entry` is at `index` in its tree;
    /// returns the checkpoint. Cosignatures are the caller's to check, against its witness policy.
    pub fn verify(&self, entry: &[u8], log_key: &NoteVerifier) -> Result<Checkpoint, ReceiptError> {
        let checkpoint = Checkpoint::open(&self.checkpoint, log_key)?;
        verify_inclusion(
            self.index,
            checkpoint.size,
            &leaf_hash(entry),
            &self.proof,
            &checkpoint.root.0,
        )?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;
    use crate::tree::{Frontier, MemoryHashes, inclusion_proof};

    fn log_of(n: u64) -> (NoteSigner, String, MemoryHashes) {
        let signer = NoteSigner::generate("example.com/log").unwrap();
        let mut f = Frontier::default();
        let mut m = MemoryHashes::default();
        for i in 0..n {
            m.extend(&f.append(&i.to_be_bytes()).1);
        }
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: n,
            root: f.root(),
        };
        let note = signer.sign(&cp.to_text()).unwrap();
        (signer, note, m)
    }

    #[test]
    fn a_receipt_round_trips_and_verifies_offline() {
        let (signer, note, m) = log_of(11);
        for (index, extra) in [(0u64, None), (6, Some(b"hello".to_vec())), (10, None)] {
            let receipt = Receipt {
                extra,
                index,
                proof: inclusion_proof(index, 11, &m).unwrap(),
                checkpoint: note.clone(),
            };
            let text = receipt.to_text();
            let parsed = Receipt::parse(&text).unwrap();
            assert_eq!(parsed, receipt);
            let cp = parsed
                .verify(&index.to_be_bytes(), &signer.verifier())
                .unwrap();
            assert_eq!(cp.size, 11);
            assert!(matches!(
                parsed.verify(&(index + 1).to_be_bytes(), &signer.verifier()),
                Err(ReceiptError::Proof(_))
            ));
        }
    }

    #[test]
    fn a_single_leaf_log_has_an_empty_proof() {
        let (signer, note, _) = log_of(1);
        let text = format!("{HEADER}\nindex 0\n\n{note}");
        let receipt = Receipt::parse(&text).unwrap();
        assert!(receipt.proof.is_empty());
        receipt
            .verify(&0u64.to_be_bytes(), &signer.verifier())
            .unwrap();
    }

    #[test]
    fn malformed_receipts_are_refused() {
        let (_, note, _) = log_of(2);
        for bad in [
            format!("c2sp.org/tlog-proof@v2\nindex 0\n\n{note}"),
            format!("{HEADER}\nindex 01\n\n{note}"),
            format!("{HEADER}\nindex -1\n\n{note}"),
            format!("{HEADER}\nindex 0\nnot-base64\n\n{note}"),
            format!("{HEADER}\nindex 0\n{note}"),
        ] {
            assert!(Receipt::parse(&bad).is_err(), "{bad}");
        }
    }
}
