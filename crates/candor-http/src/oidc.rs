//! Verifying OpenID Connect ID tokens from the business's own identity provider: the signature
//! against the keys the provider publishes (its JWKS, found through its discovery document), the
//! issuer, the audience (Candor's client id at the provider), the expiry, and the claim that
//! names the Candor customer. The nonce is the sign-in slice's to check and spend.
//!
//! Keys are fetched when first needed and again when a token names a key id not yet seen (the
//! provider rotated), at most once per [`REFRESH_COOLDOWN`], so a flood of made-up key ids cannot
//! make Candor hammer the provider. Only asymmetric algorithms are taken (RS256, ES256, EdDSA):
//! an `HS256` token would be "signed" with a secret the business's services may know.

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

/// The shortest wait between two fetches of the provider's keys.
pub const REFRESH_COOLDOWN: Duration = Duration::from_secs(30);

/// How the business's identity provider is reached and what its tokens must say.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer (`iss`), whose `/.well-known/openid-configuration` names its keys.
    pub issuer: String,
    /// Candor's client id at the provider: the audience (`aud`) its tokens must name.
    pub audience: String,
    /// The claim whose value is the Candor customer id (`sub` unless the provider keeps it in
    /// another claim).
    pub customer_claim: String,
}

/// Why an ID token was not taken. Never carries the token or its claims' values.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The token failed a check (signature, issuer, audience, expiry, shape).
    #[error("the ID token was refused: {0}")]
    Refused(String),
    /// The provider's keys could not be fetched.
    #[error("the identity provider's keys could not be fetched: {0}")]
    Unreachable(String),
}

/// What a verified token says: the customer and the nonce it was issued for.
#[derive(Debug)]
pub struct VerifiedIdToken {
    /// The value of the customer claim.
    pub customer: String,
    /// The `nonce` claim.
    pub nonce: String,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The provider, with its keys as last fetched.
pub struct OidcProvider {
    settings: OidcSettings,
    http: reqwest::Client,
    keys: RwLock<Option<JwkSet>>,
    last_fetch: Mutex<Option<Instant>>,
}

impl OidcProvider {
    /// A provider; nothing is fetched until the first sign-in.
    pub fn new(settings: OidcSettings) -> Result<OidcProvider, OidcError> {
        // Keys fetched in the clear could be swapped by anyone on the path; only a provider on
        // this machine (a test's, a sidecar) is reached over plain HTTP.
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"];
        if !settings.issuer.starts_with("https://")
            && !loopback.iter().any(|l| settings.issuer.starts_with(l))
        {
            return Err(OidcError::Unreachable(
                "the issuer must be an https:// URL (plain http only on loopback)".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        Ok(OidcProvider {
            settings,
            http,
            keys: RwLock::new(None),
            last_fetch: Mutex::new(None),
        })
    }

    /// Checks `token` and returns what it says.
    pub async fn verify(&self, token: &str) -> Result<VerifiedIdToken, OidcError> {
        let known = self.keys.read().expect("OIDC keys poisoned").clone();
        if let Some(verified) = check_id_token(token, known.as_ref(), &self.settings)? {
            return Ok(verified);
        }
        // A key id not seen yet: the provider may have rotated its keys.
        self.refresh().await?;
        let known = self.keys.read().expect("OIDC keys poisoned").clone();
        check_id_token(token, known.as_ref(), &self.settings)?
            .ok_or_else(|| OidcError::Refused("no published key has this id".into()))
    }

    async fn refresh(&self) -> Result<(), OidcError> {
        {
            let mut last = self.last_fetch.lock().expect("OIDC fetch time poisoned");
            if last.is_some_and(|at| at.elapsed() < REFRESH_COOLDOWN) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let issuer = self.settings.issuer.trim_end_matches('/');
        let discovery: Discovery = self
            .get_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await?;
        // OpenID Connect Discovery §4.3: the document's issuer is the one asked for.
        if discovery.issuer != self.settings.issuer {
            return Err(OidcError::Unreachable(
                "the discovery document names another issuer".into(),
            ));
        }
        let keys: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        *self.keys.write().expect("OIDC keys poisoned") = Some(keys);
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let unreachable = |e: reqwest::Error| OidcError::Unreachable(e.without_url().to_string());
        self.http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unreachable)?
            .json()
            .await
            .map_err(unreachable)
    }
}

/// Checks an ID token against the provider's published `keys` and the deployment's settings:
/// the algorithm (RS256, ES256 or EdDSA only), the signature, issuer, audience and expiry (60 s
/// leeway), and that the customer claim and the nonce are text. `Ok(None)` when no published key
/// has the token's key id (fetch the keys again, then check again). Pure, so a fuzzer drives it.
pub fn check_id_token(
    token: &str,
    keys: Option<&JwkSet>,
    settings: &OidcSettings,
) -> Result<Option<VerifiedIdToken>, OidcError> {
    let header = decode_header(token).map_err(|e| OidcError::Refused(e.to_string()))?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
    ) {
        return Err(OidcError::Refused(format!(
            "algorithm {:?} is not taken",
            header.alg
        )));
    }
    let kid = header
        .kid
        .ok_or_else(|| OidcError::Refused("the token names no key id".into()))?;
    let Some(key) = keys.and_then(|keys| keys.find(&kid)) else {
        return Ok(None);
    };
    let key = DecodingKey::from_jwk(key).map_err(|e| OidcError::Refused(e.to_string()))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = 60;
    let claims = decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
        .map_err(|e| OidcError::Refused(e.to_string()))?
        .claims;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| OidcError::Refused(format!("the token has no `{name}` text")))
    };
    Ok(Some(VerifiedIdToken {
        customer: text(&settings.customer_claim)?,
        nonce: text("nonce")?,
    }))
}
