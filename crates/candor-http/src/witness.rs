//! `candor witness`: a C2SP tlog-witness (<https://c2sp.org/tlog-witness>) that a second party
//! runs (an auditor, a consumer group) so a log cannot show customers a history it hides from
//! everyone else.
//!
//! `POST /add-checkpoint` takes `old <size>`, a consistency proof from that size and the new
//! signed checkpoint. The witness cosigns only if the log's signature verifies and the checkpoint
//! extends the last one it cosigned for that log; it records the new size durably (write, fsync,
//! rename) before it answers, so a crash never lets it cosign a fork of what it already vouched for.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_log::{Checkpoint, Hash, NoteVerifier, WitnessSigner, verify_consistency};

/// A running witness: its key, the logs it follows and where it keeps their sizes.
pub struct Witness {
    signer: WitnessSigner,
    logs: HashMap<String, NoteVerifier>,
    state_dir: PathBuf,
    // Serialises check-then-record, so two submissions can never both extend the same size.
    lock: Mutex<()>,
}

impl Witness {
    /// A witness of `logs` (keyed by origin) keeping its state in `state_dir`.
    pub fn new(
        signer: WitnessSigner,
        logs: Vec<NoteVerifier>,
        state_dir: PathBuf,
    ) -> std::io::Result<Witness> {
        std::fs::create_dir_all(&state_dir)?;
        Ok(Witness {
            signer,
            logs: logs.into_iter().map(|l| (l.name().to_owned(), l)).collect(),
            state_dir,
            lock: Mutex::new(()),
        })
    }

    fn state_path(&self, origin: &str) -> PathBuf {
        let name: String = sha2_hex(origin.as_bytes());
        self.state_dir.join(name)
    }

    /// The last size and root cosigned for `origin` (size 0 before the first).
    fn load(&self, origin: &str) -> std::io::Result<(u64, Hash)> {
        match std::fs::read_to_string(self.state_path(origin)) {
            Ok(text) => {
                let cp = Checkpoint::parse(&text).map_err(std::io::Error::other)?;
                Ok((cp.size, cp.root))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, Hash::empty())),
            Err(e) => Err(e),
        }
    }

    /// Records `cp` durably: a crash leaves either the old state or the new one.
    fn store(&self, cp: &Checkpoint) -> std::io::Result<()> {
        let path = self.state_path(&cp.origin);
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, cp.to_text().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.state_dir)?.sync_all()
    }

    /// Handles one add-checkpoint body; returns the status, content type and body to send.
    pub fn add_checkpoint(&self, body: &str, now: u64) -> (StatusCode, &'static str, String) {
        let text = |s: StatusCode, msg: &str| (s, "text/plain; charset=utf-8", format!("{msg}\n"));
        let Some((head, note)) = body.split_once("\n\n") else {
            return text(
                StatusCode::BAD_REQUEST,
                "expected old size, proof, blank line, checkpoint",
            );
        };
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| n.parse::<u64>().ok());
        let proof: Option<Vec<Hash>> = lines
            .map(|l| B64.decode(l).ok().and_then(|b| Hash::from_slice(&b)))
            .collect();
        let (Some(old), Some(proof)) = (old, proof) else {
            return text(StatusCode::BAD_REQUEST, "malformed old size or proof");
        };
        let origin = note.split('\n').next().unwrap_or_default();
        let Some(log_key) = self.logs.get(origin) else {
            return text(StatusCode::NOT_FOUND, "unknown log");
        };
        let cp = match Checkpoint::open(note, log_key) {
            Ok(cp) => cp,
            Err(_) => return text(StatusCode::FORBIDDEN, "the log's signature does not verify"),
        };
        if old > cp.size {
            return text(
                StatusCode::BAD_REQUEST,
                "old size is larger than the checkpoint",
            );
        }
        let _guard = self.lock.lock().expect("witness lock poisoned");
        let (known, known_root) = match self.load(origin) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "witness state unreadable");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "state unreadable");
            }
        };
        if old != known {
            return (
                StatusCode::CONFLICT,
                "text/x.tlog.size",
                format!("{known}\n"),
            );
        }
        let consistent = if known == 0 {
            proof.is_empty()
        } else {
            verify_consistency(known, cp.size, &proof, &known_root.0, &cp.root.0).is_ok()
        };
        if !consistent {
            return text(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the checkpoint is not consistent with the last one cosigned",
            );
        }
        if cp.size > known
            && let Err(e) = self.store(&cp)
        {
            tracing::error!(error = %e, "witness state not recorded");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "state not recorded");
        }
        tracing::info!(origin, size = cp.size, "cosigned");
        let signed = candor_log::note::signature_lines(note).map_or(note, |n| n.text);
        (
            StatusCode::OK,
            "text/x.tlog.cosignatures",
            self.signer.cosign(signed, now),
        )
    }
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The witness's HTTP API.
pub fn witness_app(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(axum::extract::DefaultBodyLimit::max(crate::MAX_BODY_BYTES))
        .with_state(witness)
}

/// Serves the witness on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    witness: Arc<Witness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, witness_app(witness))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: String) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Files are written and fsynced: keep that off the async workers.
    let answer = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, now)).await;
    match answer {
        Ok((status, content_type, body)) => {
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
