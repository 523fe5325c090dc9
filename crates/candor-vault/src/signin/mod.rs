//! Customers signing in by a method the business's services cannot forge: an OpenID Connect ID
//! token from the business's identity provider, bound to a nonce Candor issued, or a one-time
//! link Candor sends to the customer's verified email address (`email.rs`). Each sign-in is a
//! session of the customer's own, and its start is in their log.
//!
//! The ID token's signature, issuer, audience and expiry are checked where the provider's keys
//! are fetched (`candor-http`'s OIDC client); this slice checks the nonce, spends it once
//! (a one-time claim in the log, so a replayed token fails on every node) and starts the session.
//! Every refusal is the same [`SigninError::Failed`], so a caller learns nothing about which
//! customers exist or were erased.

pub mod email;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use candor_core::{Actor, EventKind, SubjectId};
use candor_crypto::{BlindIndexKey, NonceKey, RootKey, SealContext, SessionKey};
use candor_store::{Change, Db, OnceClaim};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::VaultError;
use crate::error::invalid;
use crate::kernel::Journal;
use crate::keys::{Principal, SESSION_TTL_SECS};
use crate::registry::{Slice, change};
use crate::subjects::Customers;
use email::{LINK_TTL_SECS, PutSigninLink, SetSigninAddress, UseSigninLink};

/// The slice, registered: its tables (sign-in addresses and links; OIDC needs none), its
/// changes and its erasure hook.
pub(crate) const SLICE: Slice = Slice {
    schema: Some(email::SCHEMA),
    changes: &[
        change::<SetSigninAddress>(),
        change::<PutSigninLink>(),
        change::<UseSigninLink>(),
    ],
    on_erasure: Some(email::erase),
};

/// What the sealed sign-in address is bound to, beside the customer.
const ADDRESS_CONTEXT: SealContext<'static> = SealContext::Field("candor.signin.email");

/// A message for Candor to send: a one-time link to the customer's sign-in address.
pub struct LinkMail {
    /// The address (normalised).
    pub to: Zeroizing<String>,
    /// The link's secret, to put in the link.
    pub token: Zeroizing<String>,
    /// `sign_in`, or `verify_address` for an address just set.
    pub purpose: &'static str,
}

impl std::fmt::Debug for LinkMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkMail([redacted])")
    }
}

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
    db: Db,
    customers: Arc<Customers>,
    journal: Journal,
    nonces: NonceKey,
    sessions: SessionKey,
    addresses: BlindIndexKey,
}

impl Signin {
    /// The use cases over their parts.
    pub fn new(db: Db, root: &RootKey, customers: Arc<Customers>, journal: Journal) -> Signin {
        Signin {
            db,
            customers,
            journal,
            nonces: root.nonce_key(),
            sessions: root.session_key(),
            // A label no data category can have (categories are dotted keys).
            addresses: root.blind_index_key("candor:signin-email"),
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
        self.start(&subject, "oidc", once, vec![], now).await
    }

    /// Sets the address `subject` signs in with (the customer signed in, or the admin) and
    /// sends it a link that verifies it: until that link is used the address counts for nothing.
    pub async fn set_email(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        address: &str,
        now: i64,
    ) -> Result<LinkMail, VaultError> {
        if !principal.is_subject(subject) && !matches!(principal, Principal::Admin { .. }) {
            return Err(VaultError::Forbidden(
                "only the customer or the admin sets the address they sign in with",
            ));
        }
        let address = normalised_address(address)?;
        let dek = self.customers.data_key(subject, false, now).await?;
        let index = self.addresses.index(address.as_bytes()).to_vec();
        let (token, digest) = new_link();
        let set = self.journal.seal(
            Some(&dek),
            principal.actor(),
            subject,
            now,
            EventKind::SigninEmailSet,
        );
        let sent = self.journal.seal(
            Some(&dek),
            Actor::Candor,
            subject,
            now,
            EventKind::SigninLinkSent {
                purpose: "verify_address",
            },
        );
        let changes: Vec<Arc<dyn Change>> = vec![
            Arc::new(SetSigninAddress {
                subject: subject.as_str().to_owned(),
                address_index: index.clone(),
                sealed_address: dek.seal(subject.as_str(), ADDRESS_CONTEXT, address.as_bytes()),
            }),
            Arc::new(PutSigninLink {
                digest: digest.to_vec(),
                subject: subject.as_str().to_owned(),
                expires_at: now + LINK_TTL_SECS,
                verifies: Some(index),
            }),
        ];
        self.journal
            .submit(Some(subject), None, changes, vec![set.entry, sent.entry])
            .await?;
        Ok(LinkMail {
            to: address,
            token,
            purpose: "verify_address",
        })
    }

    /// A sign-in link for whoever holds `address`, if it is a customer's verified sign-in
    /// address; `None` otherwise, which the caller must not reveal.
    pub async fn email_link(
        &self,
        address: &str,
        now: i64,
    ) -> Result<Option<LinkMail>, VaultError> {
        let Ok(address) = normalised_address(address) else {
            return Ok(None);
        };
        let index = self.addresses.index(address.as_bytes());
        let mut owner = None;
        for (candidate, sealed) in email::verified_owners(&self.db, &index)? {
            let Ok(subject) = SubjectId::parse(&candidate) else {
                continue;
            };
            let Ok(dek) = self.customers.data_key(&subject, false, now).await else {
                continue;
            };
            // The index may collide; the sealed copy says whose address it really is.
            if dek
                .open(subject.as_str(), ADDRESS_CONTEXT, &sealed)
                .is_ok_and(|a| a.as_slice() == address.as_bytes())
            {
                owner = Some((subject, dek));
                break;
            }
        }
        let Some((subject, dek)) = owner else {
            return Ok(None);
        };
        let (token, digest) = new_link();
        let sent = self.journal.seal(
            Some(&dek),
            Actor::Candor,
            &subject,
            now,
            EventKind::SigninLinkSent { purpose: "sign_in" },
        );
        let link = PutSigninLink {
            digest: digest.to_vec(),
            subject: subject.as_str().to_owned(),
            expires_at: now + LINK_TTL_SECS,
            verifies: None,
        };
        match self
            .journal
            .submit(Some(&subject), None, vec![Arc::new(link)], vec![sent.entry])
            .await
        {
            Ok(_) => Ok(Some(LinkMail {
                to: address,
                token,
                purpose: "sign_in",
            })),
            Err(VaultError::SubjectErased | VaultError::SubjectNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts the session of the customer a link was sent to, once, while it is fresh; a link
    /// that verifies an address makes that address count.
    pub async fn with_link(&self, token: &str, now: i64) -> Result<SignedIn, SigninError> {
        let digest = link_digest(token);
        let row = email::link(&self.db, &digest).map_err(VaultError::from)?;
        let Some((subject, expires_at, verifies)) = row else {
            tracing::info!("sign-in refused: no such link, or it was used");
            return Err(SigninError::Failed);
        };
        if now >= expires_at {
            tracing::info!("sign-in refused: the link expired");
            return Err(SigninError::Failed);
        }
        let subject = SubjectId::parse(&subject).map_err(|_| {
            VaultError::from(candor_store::StoreError::Corrupt("a link's customer"))
        })?;
        let once = OnceClaim {
            digest,
            expires_at,
            now,
        };
        let used: Arc<dyn Change> = Arc::new(UseSigninLink {
            digest: digest.to_vec(),
            subject: subject.as_str().to_owned(),
            verifies,
        });
        self.start(&subject, "email_link", once, vec![used], now)
            .await
    }

    async fn start(
        &self,
        subject: &SubjectId,
        method: &'static str,
        once: OnceClaim,
        changes: Vec<Arc<dyn Change>>,
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
        let actor = Actor::Subject {
            id: subject.as_str().to_owned(),
        };
        let kind = EventKind::SessionStarted { method, expires_at };
        let sealed = self.journal.seal(Some(&dek), actor, subject, now, kind);
        self.journal
            .submit_once(subject, once, changes, vec![sealed.entry])
            .await
            .map_err(refused)?;
        Ok(SignedIn {
            subject: subject.clone(),
            token: self.sessions.mint(subject.as_str(), expires_at),
            expires_at,
        })
    }
}

/// An email address as Candor keeps it: trimmed and lower-cased, 3 to 254 characters, one `@`
/// with something on each side, no spaces or control characters.
fn normalised_address(raw: &str) -> Result<Zeroizing<String>, VaultError> {
    let address = Zeroizing::new(raw.trim().to_lowercase());
    let well_formed = (3..=254).contains(&address.len())
        && address.split('@').count() == 2
        && address.split('@').all(|part| !part.is_empty())
        && !address.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(invalid("email must be an email address"));
    }
    Ok(address)
}

/// A fresh link secret (`csl_…`) and its digest, which is all that is stored.
fn new_link() -> (Zeroizing<String>, [u8; 32]) {
    let mut secret = Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut *secret);
    let token = Zeroizing::new(format!("csl_{}", URL_SAFE_NO_PAD.encode(*secret)));
    let digest = link_digest(&token);
    (token, digest)
}

fn link_digest(token: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"candor.signin-link\0")
        .chain_update(token.as_bytes())
        .finalize()
        .into()
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

    #[test]
    fn an_address_counts_once_its_link_was_used_and_each_link_works_once() {
        let f = Fixture::new();
        let shop = f.service(&[OPS], false, true);
        let subject = f.customer("cus_a", &shop);
        let signin = f.vault.signin();
        let me = Principal::Subject(subject.clone());
        assert!(matches!(
            f.run(signin.set_email(&shop, &subject, "a@example.org", NOW)),
            Err(VaultError::Forbidden(_))
        ));
        let verify = f
            .run(signin.set_email(&me, &subject, " A@Example.org ", NOW))
            .unwrap();
        assert_eq!(
            (verify.to.as_str(), verify.purpose),
            ("a@example.org", "verify_address")
        );
        // Not verified yet: no link is sent for it.
        assert!(
            f.run(signin.email_link("a@example.org", NOW))
                .unwrap()
                .is_none()
        );
        let session = f.run(signin.with_link(&verify.token, NOW)).unwrap();
        assert_eq!(session.subject, subject);
        assert!(matches!(
            f.run(signin.with_link(&verify.token, NOW)),
            Err(SigninError::Failed)
        ));
        let link = f
            .run(signin.email_link("a@EXAMPLE.org", NOW))
            .unwrap()
            .expect("a verified address gets a link");
        assert!(
            f.run(signin.email_link("b@example.org", NOW))
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            f.run(signin.with_link(&link.token, NOW + email::LINK_TTL_SECS)),
            Err(SigninError::Failed)
        ));
        f.run(signin.with_link(&link.token, NOW)).unwrap();
        // Erasure takes the address with it.
        f.run(f.vault.erasure().erase(&shop, &subject, NOW))
            .unwrap();
        assert!(
            f.run(signin.email_link("a@example.org", NOW))
                .unwrap()
                .is_none()
        );
    }
}
