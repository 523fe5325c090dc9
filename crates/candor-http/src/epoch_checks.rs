//! The tenant key epochs' scheduled check, run by every node: the one that sequences the log
//! rolls, rewraps, retires and destroys epochs by the policy; the others destroy in their own
//! keyrings what the database says is destroyed.

use std::sync::Arc;
use std::time::Duration;

use candor_vault::Vault;

/// One check now, as the node's role says.
pub async fn check_once(vault: &Vault, now: i64) -> Result<(), candor_vault::VaultError> {
    if vault.sequencing().is_sequencer() {
        vault.key_epochs().check(now).await
    } else {
        vault.key_epochs().follow()
    }
}

/// Checks every `check_secs` of the policy, the first one a period from now (the server checks
/// once before it serves). A failed check is logged and tried again at the next.
pub async fn run(vault: Arc<Vault>) {
    let period = Duration::from_secs(vault.key_epochs().policy().check_secs.max(1) as u64);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = check_once(&vault, crate::now()).await {
            tracing::warn!(error = %e, "the key epoch check failed; it runs again at the next");
        }
    }
}
