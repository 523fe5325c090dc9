//! Customers signing in by a method the business's services cannot forge: an OpenID Connect ID
//! token from the business's identity provider, bound to a nonce Candor issued. Each sign-in is
//! a session of the customer's own, and its start is in their log.
//!
//! The ID token's signature, issuer, audience and expiry are checked where the provider's keys
//! are fetched (`candor-http`'s OIDC client); this slice checks the nonce, spends it once
//! (a one-time claim in the log, so a replayed token fails on every node) and starts the session.
//! Every refusal is the same [`SigninError::Failed`], so a caller learns nothing about which
//! customers exist or were erased.

use std::sync::Arc;

use candor_core::{EventKind, SubjectId};
use candor_crypto::{NonceKey, RootKey, SessionKey};
use candor_store::OnceClaim;
use sha2::{Digest, Sha256};

use crate::VaultError;
use crate::kernel::Journal;
use crate::keys::SESSION_TTL_SECS;
use crate::subjects::Customers;

/// How long a sign-in nonce may wait for the identity provider's answer.
pub const NONCE_TTL_SECS: i64 = 10 * 60;

/// Why a sign-in did not start a session.
#[derive(Debug, thiserror::Error)]
pub enum SigninError {
    /// The proof was not good for any customer Candor holds (401 `signin_failed`); why is for
    /// the operator's log alone.
    #[error("the sign-in could not be verified")]
    Failed,
    /// Candor failed (the store, the log).
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// A session a customer started.
#[derive(Debug)]
pub struct SignedIn {
    /// Who.
    pub subject: SubjectId,
    /// The session token.
    pub token: String,
    /// Unix seconds when it stops working.
    pub expires_at: i64,
}

/// Sign-in.
pub struct Signin {
    customers: Arc<Customers>,
    journal: Journal,
    nonces: NonceKey,
    sessions: SessionKey,
}

impl Signin {
    /// The use cases over their parts.
    pub fn new(root: &RootKey, customers: Arc<Customers>, journal: Journal) -> Signin {
        Signin {
            customers,
            journal,
            nonces: root.nonce_key(),
            sessions: root.session_key(),
        }
    }

    /// A fresh nonce for the identity provider to put in the ID token it issues.
    pub fn nonce(&self, now: i64) -> (String, i64) {
        let expires_at = now + NONCE_TTL_SECS;
        (self.nonces.issue(expires_at), expires_at)
    }

    /// Starts the session of the customer that a verified ID token names (`customer`, the
    /// value of the declared claim), if its `nonce` is one Candor issued, unexpired and unused.
    pub async fn with_verified_id_token(
        &self,
        customer: &str,
        nonce: &str,
        now: i64,
    ) -> Result<SignedIn, SigninError> {
        let nonce_expires = self.nonces.check(nonce, now).map_err(|_| {
            tracing::info!("sign-in refused: the nonce is not Candor's, or expired");
            SigninError::Failed
        })?;
        let subject = SubjectId::parse(customer).map_err(|_| {
            tracing::info!("sign-in refused: the token's customer claim is not a customer id");
            SigninError::Failed
        })?;
        let once = OnceClaim {
            digest: Sha256::new()
                .chain_update(b"candor.once.signin-nonce\0")
                .chain_update(nonce.as_bytes())
                .finalize()
                .into(),
            expires_at: nonce_expires,
            now,
        };
        self.start(&subject, "oidc", Some(once), now).await
    }

    async fn start(
        &self,
        subject: &SubjectId,
        method: &'static str,
        once: Option<OnceClaim>,
        now: i64,
    ) -> Result<SignedIn, SigninError> {
        let refused = |e: VaultError| match e {
            VaultError::SubjectNotFound
            | VaultError::SubjectErased
            | VaultError::AlreadyClaimed => {
                tracing::info!(reason = e.code(), "sign-in refused");
                SigninError::Failed
            }
            e => SigninError::Vault(e),
        };
        let dek = self
            .customers
            .data_key(subject, false, now)
            .await
            .map_err(refused)?;
        let expires_at = now + SESSION_TTL_SECS;
        let actor = candor_core::Actor::Subject {
            id: subject.as_str().to_owned(),
        };
        let kind = EventKind::SessionStarted { method, expires_at };
        let sealed = self.journal.seal(Some(&dek), actor, subject, now, kind);
        match once {
            Some(once) => self
                .journal
                .submit_once(subject, once, vec![], vec![sealed.entry])
                .await
                .map_err(refused)?,
            None => self
                .journal
                .submit(Some(subject), None, vec![], vec![sealed.entry])
                .await
                .map_err(refused)?,
        };
        Ok(SignedIn {
            subject: subject.clone(),
            token: self.sessions.mint(subject.as_str(), expires_at),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Principal;
    use crate::testing::{Fixture, NOW, OPS};

    #[test]
    fn a_nonce_starts_one_session_of_the_customer_own_and_is_spent() {
        let f = Fixture::new();
        let shop = f.service(&[OPS], false, false);
        let subject = f.customer("cus_a", &shop);
        let signin = f.vault.signin();
        let (nonce, _) = signin.nonce(NOW);
        let session = f
            .run(signin.with_verified_id_token("cus_a", &nonce, NOW))
            .unwrap();
        assert_eq!(
            f.vault.keys().authenticate(&session.token, NOW).unwrap(),
            Principal::Subject(subject)
        );
        // The same nonce again, a nonce not Candor's, an expired one: all refused alike.
        let (late, expires) = signin.nonce(NOW);
        for (nonce, at) in [
            (nonce.as_str(), NOW),
            ("cnn_forged", NOW),
            (late.as_str(), expires),
        ] {
            assert!(matches!(
                f.run(signin.with_verified_id_token("cus_a", nonce, at)),
                Err(SigninError::Failed)
            ));
        }
    }

    #[test]
    fn unknown_and_erased_customers_are_refused_alike() {
        let f = Fixture::new();
        let shop = f.service(&[OPS], false, true);
        let subject = f.customer("cus_a", &shop);
        f.run(f.vault.erasure().erase(&shop, &subject, NOW))
            .unwrap();
        let signin = f.vault.signin();
        for customer in ["cus_a", "cus_nobody", "not an id"] {
            let (nonce, _) = signin.nonce(NOW);
            assert!(matches!(
                f.run(signin.with_verified_id_token(customer, &nonce, NOW)),
                Err(SigninError::Failed)
            ));
        }
    }
}
