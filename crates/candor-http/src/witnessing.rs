//! The tlog-witness client: after each durable commit, the new checkpoint goes to the configured
//! witnesses with a consistency proof from the size each one last cosigned, and once a quorum
//! has cosigned it becomes the checkpoint customers are shown.
//!
//! Before anything is sent, the new checkpoint is proven consistent with the last published one
//! here, from the stored tree: a checkpoint that fails this is never published.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use candor_log::{Checkpoint, Hash, WitnessVerifier, verify_consistency, verify_cosignatures};
use candor_store::{StoreHashes, StoredCheckpoint};
use candor_vault::Vault;

/// A witness to send checkpoints to.
#[derive(Debug, Clone)]
pub struct WitnessEndpoint {
    /// Its base URL; `add-checkpoint` is appended.
    pub url: String,
    /// Its cosignature key.
    pub key: WitnessVerifier,
}

/// Publishes checkpoints through `witnesses` until the vault's writer stops, while this node
/// sequences the log; `quorum` of them must cosign. Runs on the async runtime; store reads and proofs go to the blocking pool.
pub async fn run(vault: Arc<Vault>, witnesses: Vec<WitnessEndpoint>, quorum: usize) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    // What each witness last cosigned, as it told us; None until it answers.
    let mut known: Vec<Option<u64>> = vec![None; witnesses.len()];
    let mut heads = vault.sequencing().heads();
    loop {
        // In a cluster only the sequencer sends checkpoints: a follower's view may lag it, and a
        // witness that has cosigned a newer checkpoint can never be shown an older one.
        if vault.sequencing().is_sequencer()
            && let Err(e) = publish(&vault, &client, &witnesses, &mut known, quorum).await
        {
            tracing::warn!(error = %e, "checkpoint not witnessed yet");
        }
        if heads.changed().await.is_err() {
            return;
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}

async fn publish(
    vault: &Arc<Vault>,
    client: &reqwest::Client,
    witnesses: &[WitnessEndpoint],
    known: &mut [Option<u64>],
    quorum: usize,
) -> Result<(), String> {
    // The checkpoint and its directory, as one committed head.
    let head = vault.sequencing().heads().borrow().clone();
    let Some(note) = head.note.clone() else {
        return Ok(());
    };
    let v = vault.clone();
    let published =
        blocking(move || v.db().log().latest_witnessed().map_err(|e| e.to_string())).await?;
    let new = Checkpoint::open(&note, vault.log_key()).map_err(|e| e.to_string())?;
    let (old_size, old_root) = match &published {
        Some(p) => {
            let cp = Checkpoint::open(&p.note, vault.log_key()).map_err(|e| e.to_string())?;
            (cp.size, cp.root)
        }
        None => (0, Hash::empty()),
    };
    if new.size <= old_size {
        // Already cosigned (say, before a restart): customers can be shown its directory.
        if new.size == old_size {
            vault
                .public_log()
                .record_witnessed_directory(new.size, head.directory);
        }
        return Ok(());
    }
    if old_size > 0 {
        let proof = prove(vault, old_size, new.size).await?;
        verify_consistency(old_size, new.size, &proof, &old_root.0, &new.root.0).map_err(|e| {
            tracing::error!(
                old_size,
                new_size = new.size,
                "refusing to publish an inconsistent checkpoint"
            );
            format!("own checkpoint inconsistent: {e}")
        })?;
    }

    let mut tasks = tokio::task::JoinSet::new();
    for (i, w) in witnesses.iter().enumerate() {
        let (vault, client, w, note) = (vault.clone(), client.clone(), w.clone(), note.to_string());
        let start = known[i].unwrap_or(old_size).min(new.size);
        tasks.spawn(async move { (i, cosign(&vault, &client, &w, &note, start, new.size).await) });
    }
    let mut lines = String::new();
    let mut cosigners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, result)) = joined else { continue };
        match result {
            Ok(line) => {
                known[i] = Some(new.size);
                lines.push_str(&line);
                cosigners.push(witnesses[i].key.name().to_owned());
            }
            Err(e) => {
                tracing::warn!(witness = witnesses[i].key.name(), error = %e, "no cosignature")
            }
        }
    }
    if cosigners.len() < quorum {
        return Err(format!(
            "{} of {quorum} witnesses cosigned size {}",
            cosigners.len(),
            new.size
        ));
    }
    let cosigned = StoredCheckpoint {
        size: new.size,
        note: format!("{note}{lines}"),
    };
    // The directory first: a history shown against the new checkpoint finds it at once.
    vault
        .public_log()
        .record_witnessed_directory(new.size, head.directory);
    let v = vault.clone();
    blocking(move || {
        v.db()
            .log()
            .record_witnessed(&cosigned)
            .map_err(|e| e.to_string())
    })
    .await?;
    tracing::info!(
        size = new.size,
        cosigners = cosigners.join(","),
        "checkpoint witnessed"
    );
    Ok(())
}

async fn prove(vault: &Arc<Vault>, old: u64, new: u64) -> Result<Vec<Hash>, String> {
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let v = vault.clone();
    blocking(move || {
        candor_log::consistency_proof(old, new, &StoreHashes(&*v.db().log()))
            .map_err(|e| e.to_string())
    })
    .await
}

/// Sends one add-checkpoint; follows the witness's own size once if it differs from ours.
async fn cosign(
    vault: &Arc<Vault>,
    client: &reqwest::Client,
    witness: &WitnessEndpoint,
    note: &str,
    mut old: u64,
    size: u64,
) -> Result<String, String> {
    let url = format!("{}/add-checkpoint", witness.url.trim_end_matches('/'));
    for _ in 0..2 {
        let mut body = format!("old {old}\n");
        for h in prove(vault, old, size).await? {
            body.push_str(&B64.encode(h.0));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let resp = client
            .post(&url)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if status == StatusCode::CONFLICT.as_u16() {
            // The witness is at another size: prove from there, if that is a size of ours.
            old = text
                .trim()
                .parse()
                .ok()
                .filter(|&s| s <= size)
                .ok_or("the witness knows a larger tree than ours")?;
            continue;
        }
        if status != 200 {
            return Err(format!("HTTP {status}: {}", text.trim()));
        }
        // Keep only this witness's lines, each checked: nothing else reaches the published note.
        let prefix = format!("\u{2014} {} ", witness.key.name());
        let lines: String = text
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        let found = verify_cosignatures(
            &format!("{note}{lines}"),
            std::slice::from_ref(&witness.key),
        )
        .map_err(|e| e.to_string())?;
        if found.is_empty() {
            return Err("the answer carries no cosignature by this witness's key".into());
        }
        return Ok(lines);
    }
    Err("the witness's size kept changing".into())
}
