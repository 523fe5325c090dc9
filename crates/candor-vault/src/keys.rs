//! Keys and sessions: the admin key, service keys bound to purposes, customer session tokens,
//! and authentication of every bearer token.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use candor_core::{Actor, DataMap, KeyId, PurposeId, RecipientId, SubjectId};
use candor_crypto::{RootKey, SessionKey, ct_eq, new_api_key, parse_api_key};
use candor_store::{Db, Migration, SchemaPart, StoreError, SubjectState, Tx, TxError, TypedChange};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::VaultError;
use crate::error::check_label;
use crate::kernel::Journal;
use crate::registry::{Slice, change};
use crate::wire::b64;

/// Why a caller was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No valid credentials (401 `unauthenticated`).
    #[error("missing or invalid credentials")]
    Unauthenticated,
    /// Checking them failed for a shared reason (the store).
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> AuthError {
        AuthError::Vault(e.into())
    }
}

/// How long a customer session token lasts.
pub const SESSION_TTL_SECS: i64 = 15 * 60;

/// What an API key is: the business's administrator, or one of its (or a recipient's) services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages keys and erasure; reads no personal data.
    Admin,
    /// Reads and writes through the purposes it is bound to.
    Service,
}

impl Role {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }

    /// The role a stored name names; any other name is corrupt data, never a service.
    pub fn parse(stored: &str) -> Result<Role, StoreError> {
        match stored {
            "admin" => Ok(Role::Admin),
            "service" => Ok(Role::Service),
            _ => Err(StoreError::Corrupt("unknown API key role")),
        }
    }
}

/// An API key as stored: the hash of its secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRow {
    /// Public id.
    pub id: KeyId,
    /// SHA-256 of the secret.
    #[serde(with = "b64")]
    pub secret_hash: [u8; 32],
    /// Admin or service.
    pub role: Role,
    /// Display name (shown to customers as who read their data).
    pub name: String,
    /// Purposes the key may name.
    pub purposes: Vec<String>,
    /// The recipient this key acts for, for third parties and processors.
    pub recipient: Option<String>,
    /// May mint customer session tokens.
    pub can_mint_sessions: bool,
    /// May erase customers.
    pub can_erase: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// The slice, registered: its table and its change. API keys are not about a customer, so an
/// erasure leaves them.
pub(crate) const SLICE: Slice = Slice {
    schema: Some(SchemaPart {
        owner: "keys",
        migrations: &[Migration {
            name: "API keys",
            sqlite: r#"
CREATE TABLE api_keys (
    id                TEXT PRIMARY KEY,
    secret_hash       BLOB NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('admin', 'service')),
    name              TEXT NOT NULL,
    purposes          TEXT NOT NULL,   -- newline-separated purpose ids
    recipient         TEXT,
    can_mint_sessions INTEGER NOT NULL,
    can_erase         INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
) STRICT;
"#,
            postgres: r#"
CREATE TABLE api_keys (
    id                TEXT PRIMARY KEY,
    secret_hash       BYTEA NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('admin', 'service')),
    name              TEXT NOT NULL,
    purposes          TEXT NOT NULL,
    recipient         TEXT,
    can_mint_sessions BOOLEAN NOT NULL,
    can_erase         BOOLEAN NOT NULL,
    created_at        BIGINT NOT NULL
);
"#,
        }],
    }),
    changes: &[change::<InsertApiKey>()],
    on_erasure: None,
};

/// Stores a new API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InsertApiKey(pub ApiKeyRow);

impl TypedChange for InsertApiKey {
    const KIND: &'static str = "insert_api_key";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        let k = &self.0;
        let purposes = k.purposes.join("\n");
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "INSERT INTO api_keys (id, secret_hash, role, name, purposes, recipient,
                       can_mint_sessions, can_erase, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    k.id.as_str(),
                    k.secret_hash,
                    k.role.as_str(),
                    k.name,
                    purposes,
                    k.recipient,
                    k.can_mint_sessions,
                    k.can_erase,
                    k.created_at
                ])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "INSERT INTO api_keys (id, secret_hash, role, name, purposes, recipient,
                       can_mint_sessions, can_erase, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &k.id.as_str(),
                        &&k.secret_hash[..],
                        &k.role.as_str(),
                        &k.name,
                        &purposes,
                        &k.recipient,
                        &k.can_mint_sessions,
                        &k.can_erase,
                        &k.created_at,
                    ],
                )?;
            }
        }
        Ok(())
    }
}

/// The columns of an `api_keys` row, as both backends read them.
type KeyColumns = (
    Vec<u8>,
    String,
    String,
    String,
    Option<String>,
    bool,
    bool,
    i64,
);

/// An API key by id.
pub fn api_key(db: &Db, id: &KeyId) -> Result<Option<ApiKeyRow>, StoreError> {
    let owned = id.as_str().to_owned();
    let row: Option<KeyColumns> = db.read(
        "read api key",
        |c| {
            c.prepare_cached(
                "SELECT secret_hash, role, name, purposes, recipient, can_mint_sessions,
                   can_erase, created_at FROM api_keys WHERE id = ?1",
            )?
            .query_row([id.as_str()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .optional()
        },
        move |c| {
            Ok(c.query_opt(
                "SELECT secret_hash, role, name, purposes, recipient, can_mint_sessions,
                   can_erase, created_at FROM api_keys WHERE id = $1",
                &[&owned],
            )?
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                )
            }))
        },
    )?;
    let Some((hash, role, name, purposes, recipient, can_mint_sessions, can_erase, created_at)) =
        row
    else {
        return Ok(None);
    };
    Ok(Some(ApiKeyRow {
        id: id.clone(),
        secret_hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("secret hash is not 32 bytes"))?,
        role: Role::parse(&role)?,
        name,
        purposes: purposes
            .split('\n')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        recipient,
        can_mint_sessions,
        can_erase,
        created_at,
    }))
}

/// A service API key's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKey {
    /// Public key id.
    pub id: KeyId,
    /// Display name.
    pub name: String,
    /// Purposes it may name.
    pub purposes: BTreeSet<PurposeId>,
    /// The recipient it acts for, if it is not the business itself.
    pub recipient: Option<RecipientId>,
    /// May mint customer sessions.
    pub can_mint_sessions: bool,
    /// May erase customers.
    pub can_erase: bool,
}

impl ServiceKey {
    /// The recipient it acts for, as text.
    pub(crate) fn recipient(&self) -> Option<&str> {
        self.recipient.as_ref().map(RecipientId::as_str)
    }
}

/// Who is calling, after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The business's administrator: manages keys and erasure, reads no personal data.
    Admin {
        /// Key id.
        id: KeyId,
        /// Display name.
        name: String,
    },
    /// A service of the business or a recipient.
    Service(ServiceKey),
    /// A customer, through a session token.
    Subject(SubjectId),
}

impl Principal {
    /// Who the log records as the actor.
    pub(crate) fn actor(&self) -> Actor {
        match self {
            Principal::Admin { id, name } => Actor::Admin {
                id: id.as_str().to_owned(),
                name: name.clone(),
            },
            Principal::Service(k) => Actor::Service {
                id: k.id.as_str().to_owned(),
                name: k.name.clone(),
            },
            Principal::Subject(s) => Actor::Subject {
                id: s.as_str().to_owned(),
            },
        }
    }

    pub(crate) fn service(&self) -> Result<&ServiceKey, VaultError> {
        match self {
            Principal::Service(k) => Ok(k),
            _ => Err(VaultError::Forbidden("only service keys may do this")),
        }
    }

    pub(crate) fn is_subject(&self, subject: &SubjectId) -> bool {
        matches!(self, Principal::Subject(s) if s == subject)
    }
}

/// A new API key's grants.
#[derive(Debug, Clone)]
pub struct NewKeySpec {
    /// Display name, shown to customers in their history.
    pub name: String,
    /// Purposes it may name.
    pub purposes: Vec<String>,
    /// The recipient it acts for.
    pub recipient: Option<String>,
    /// May mint customer sessions.
    pub can_mint_sessions: bool,
    /// May erase customers.
    pub can_erase: bool,
}

/// A freshly created key; the token is shown once.
pub struct CreatedKey {
    /// Public id.
    pub id: KeyId,
    /// The secret bearer token.
    pub token: Zeroizing<String>,
}

/// Authentication, keys and customer sessions.
pub struct Keys {
    map: Arc<DataMap>,
    db: Db,
    journal: Journal,
    sessions: SessionKey,
    // API keys by id. Keys are immutable once created (there is no revocation yet), so a cached
    // row is never stale; this saves a database read on every request.
    cache: RwLock<HashMap<KeyId, ApiKeyRow>>,
}

impl Keys {
    /// The use cases over their parts; sessions are MACed with the root's session key.
    pub fn new(map: Arc<DataMap>, db: Db, root: &RootKey, journal: Journal) -> Keys {
        Keys {
            map,
            db,
            journal,
            sessions: root.session_key(),
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Checks a bearer token: a customer session (`cst_…`) or an API key (`cnd_…`).
    pub fn authenticate(&self, token: &str, now: i64) -> Result<Principal, AuthError> {
        if token.starts_with("cst_") {
            let session = self
                .sessions
                .verify(token, now)
                .map_err(|_| AuthError::Unauthenticated)?;
            let subject =
                SubjectId::parse(&session.subject).map_err(|_| AuthError::Unauthenticated)?;
            return Ok(Principal::Subject(subject));
        }
        let (id, presented) = parse_api_key(token).ok_or(AuthError::Unauthenticated)?;
        // The cache holds only well-formed ids, so a hit needs no parse (and no allocation).
        let cached = self
            .cache
            .read()
            .expect("key cache poisoned")
            .get(id)
            .cloned();
        let row = match cached {
            Some(row) => Some(row),
            None => {
                let id = KeyId::parse(id).map_err(|_| AuthError::Unauthenticated)?;
                let row = api_key(&self.db, &id)?;
                if let Some(r) = &row {
                    let mut keys = self.cache.write().expect("key cache poisoned");
                    keys.insert(r.id.clone(), r.clone());
                }
                row
            }
        };
        // Compare against a dummy when the id is unknown, so timing does not reveal valid ids.
        let stored = row.as_ref().map_or([0u8; 32], |r| r.secret_hash);
        if !ct_eq(&stored, &presented) {
            return Err(AuthError::Unauthenticated);
        }
        let row = row.ok_or(AuthError::Unauthenticated)?;
        Ok(match row.role {
            Role::Admin => Principal::Admin {
                id: row.id,
                name: row.name,
            },
            Role::Service => Principal::Service(ServiceKey {
                id: row.id,
                name: row.name,
                // A stored key names only purposes and a recipient checked when it was made.
                purposes: row
                    .purposes
                    .iter()
                    .map(|p| PurposeId::parse(p))
                    .collect::<Result<_, _>>()
                    .map_err(|_| StoreError::Corrupt("a stored key's purpose"))?,
                recipient: row
                    .recipient
                    .as_deref()
                    .map(RecipientId::parse)
                    .transpose()
                    .map_err(|_| StoreError::Corrupt("a stored key's recipient"))?,
                can_mint_sessions: row.can_mint_sessions,
                can_erase: row.can_erase,
            }),
        })
    }

    /// Mints a short-lived session token for a customer, on a trusted service's word.
    pub fn mint_session(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        now: i64,
    ) -> Result<(String, i64), VaultError> {
        let key = principal.service()?;
        if !key.can_mint_sessions {
            return Err(VaultError::Forbidden(
                "this key may not mint customer sessions",
            ));
        }
        // A session is for a customer Candor holds: a service cannot make up a customer and then
        // act as them.
        match self.db.log().subject(subject.as_str())? {
            SubjectState::Active { .. } => {}
            SubjectState::Erased { .. } => return Err(VaultError::SubjectErased),
            SubjectState::Unknown => return Err(VaultError::SubjectNotFound),
        }
        let expires_at = now + SESSION_TTL_SECS;
        Ok((self.sessions.mint(subject.as_str(), expires_at), expires_at))
    }

    /// Creates a service key (admin only).
    pub async fn create_key(
        &self,
        principal: &Principal,
        spec: NewKeySpec,
        now: i64,
    ) -> Result<CreatedKey, VaultError> {
        if !matches!(principal, Principal::Admin { .. }) {
            return Err(VaultError::Forbidden("only the admin key may create keys"));
        }
        check_label("name", &spec.name)?;
        for p in &spec.purposes {
            if self.map.purpose(p).is_none() {
                return Err(VaultError::UnknownPurpose(p.clone()));
            }
        }
        if let Some(r) = &spec.recipient
            && self.map.recipient(r).is_none()
        {
            return Err(VaultError::RecipientNotDeclared(r.clone()));
        }
        self.insert(Role::Service, spec, now).await
    }

    /// Creates the admin key; `candor init` calls this once, no API reaches it.
    pub async fn create_admin_key(&self, now: i64) -> Result<CreatedKey, VaultError> {
        let spec = NewKeySpec {
            name: "admin".into(),
            purposes: vec![],
            recipient: None,
            can_mint_sessions: false,
            can_erase: true,
        };
        self.insert(Role::Admin, spec, now).await
    }

    async fn insert(
        &self,
        role: Role,
        spec: NewKeySpec,
        now: i64,
    ) -> Result<CreatedKey, VaultError> {
        let new = new_api_key();
        let id = KeyId::parse(&new.id).expect("new_api_key makes 16 hex digits");
        let row = ApiKeyRow {
            id: id.clone(),
            secret_hash: new.secret_hash,
            role,
            name: spec.name,
            purposes: spec.purposes,
            recipient: spec.recipient,
            can_mint_sessions: spec.can_mint_sessions,
            can_erase: spec.can_erase,
            created_at: now,
        };
        self.journal
            .submit(None, None, vec![Arc::new(InsertApiKey(row))], vec![])
            .await?;
        Ok(CreatedKey {
            id,
            token: new.token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, NOW, OPS, apply, on_every_backend};

    #[test]
    fn only_the_admin_creates_keys_and_only_for_declared_purposes() {
        let f = Fixture::new();
        let service = f.service(&[OPS], true, false);
        let spec = |purposes: Vec<String>| NewKeySpec {
            name: "x".into(),
            purposes,
            recipient: None,
            can_mint_sessions: false,
            can_erase: false,
        };
        let by_service = f.run(f.vault.keys().create_key(&service, spec(vec![]), NOW));
        assert!(matches!(by_service, Err(VaultError::Forbidden(_))));
        let customer = Principal::Subject(f.customer("cus_a", &service));
        let by_customer = f.run(f.vault.keys().create_key(&customer, spec(vec![]), NOW));
        assert!(matches!(by_customer, Err(VaultError::Forbidden(_))));
        let undeclared = f.run(f.vault.keys().create_key(
            &f.admin,
            spec(vec!["no.such.purpose".into()]),
            NOW,
        ));
        assert!(matches!(undeclared, Err(VaultError::UnknownPurpose(_))));
        let mut bad_name = spec(vec![]);
        bad_name.name = "\u{7}".into();
        let bad = f.run(f.vault.keys().create_key(&f.admin, bad_name, NOW));
        assert!(matches!(bad, Err(VaultError::Invalid(_))));
    }

    #[test]
    fn a_token_authenticates_only_with_its_own_secret() {
        let f = Fixture::new();
        let spec = NewKeySpec {
            name: "svc".into(),
            purposes: vec![OPS.into()],
            recipient: None,
            can_mint_sessions: false,
            can_erase: false,
        };
        let key = f
            .run(f.vault.keys().create_key(&f.admin, spec, NOW))
            .unwrap();
        assert!(matches!(
            f.vault.keys().authenticate(&key.token, NOW),
            Ok(Principal::Service(_))
        ));
        let mut forged = key.token.to_string();
        let last = forged.pop().unwrap();
        forged.push(if last == 'a' { 'b' } else { 'a' });
        for token in [forged.as_str(), "cnd_nobody_secret", "cst_nonsense", ""] {
            assert!(
                matches!(
                    f.vault.keys().authenticate(token, NOW),
                    Err(AuthError::Unauthenticated)
                ),
                "{token}"
            );
        }
    }

    #[test]
    fn sessions_are_minted_only_by_keys_allowed_to_and_never_for_the_erased() {
        let f = Fixture::new();
        let minter = f.service(&[OPS], true, true);
        let plain = f.service(&[OPS], false, false);
        let subject = f.customer("cus_a", &minter);
        assert!(matches!(
            f.vault.keys().mint_session(&plain, &subject, NOW),
            Err(VaultError::Forbidden(_))
        ));
        assert!(matches!(
            f.vault.keys().mint_session(&f.admin, &subject, NOW),
            Err(VaultError::Forbidden(_))
        ));
        let (token, expires_at) = f.vault.keys().mint_session(&minter, &subject, NOW).unwrap();
        assert_eq!(expires_at, NOW + SESSION_TTL_SECS);
        assert_eq!(
            f.vault.keys().authenticate(&token, NOW).unwrap(),
            Principal::Subject(subject.clone())
        );
        assert!(matches!(
            f.vault.keys().authenticate(&token, expires_at + 1),
            Err(AuthError::Unauthenticated)
        ));
        f.run(f.vault.erasure().erase(&minter, &subject, NOW))
            .unwrap();
        assert!(matches!(
            f.vault.keys().mint_session(&minter, &subject, NOW),
            Err(VaultError::SubjectErased)
        ));
    }

    #[test]
    fn an_unknown_stored_role_is_corrupt_data_never_a_service() {
        assert_eq!(Role::parse("admin").unwrap(), Role::Admin);
        assert_eq!(Role::parse("service").unwrap(), Role::Service);
        for stored in ["root", "Service", ""] {
            assert!(matches!(Role::parse(stored), Err(StoreError::Corrupt(_))));
        }
    }

    fn keys_round_trip(db: &Db) {
        let key = ApiKeyRow {
            id: KeyId::parse("k1").unwrap(),
            secret_hash: [9; 32],
            role: Role::Service,
            name: "shop".into(),
            purposes: vec!["p1".into(), "p2".into()],
            recipient: Some("r".into()),
            can_mint_sessions: true,
            can_erase: false,
            created_at: 3,
        };
        apply(db, vec![Arc::new(InsertApiKey(key.clone()))]);
        assert_eq!(api_key(db, &key.id).unwrap(), Some(key.clone()));
        assert_eq!(api_key(db, &KeyId::parse("k2").unwrap()).unwrap(), None);
    }

    on_every_backend!(keys_round_trip);
}
