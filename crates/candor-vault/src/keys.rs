//! Keys and sessions: the admin key, service keys bound to purposes, customer session tokens,
//! and authentication of every bearer token.

use std::collections::BTreeSet;
use std::sync::Arc;

use candor_core::{
    Actor, DataMap, EventKind, KeyId, PurposeId, RecipientId, ServiceRef, SubjectId,
};
use candor_crypto::{RootKey, SessionKey, ct_eq, new_api_key, parse_api_key};
use candor_store::{Change, Db, Migration, SchemaPart, StoreError, Tx, TxError, TypedChange};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::VaultError;
use crate::error::{check_label, invalid};
use crate::kernel::Journal;
use crate::operator::OperatorLog;
use crate::registry::{Slice, change};
use crate::subjects::Customers;
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
    /// What the customer sessions it mints may do beyond its own purposes (absent from nodes
    /// of builds before delegation: nothing).
    #[serde(default)]
    pub sessions: Delegation,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds from when it is refused, if it expires.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Unix seconds from when it was refused, once revoked.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// What a session a service mints for a customer (a delegated session) may do on the customer's
/// behalf besides reading what the service's purposes use and withdrawing their consents: each
/// of these only if the business allowed the key it explicitly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// Erase the customer.
    #[serde(default)]
    pub sessions_may_erase: bool,
    /// Read all their data and their whole history.
    #[serde(default)]
    pub sessions_may_export: bool,
    /// Grant consent, for the service's purposes.
    #[serde(default)]
    pub sessions_may_grant_consent: bool,
}

/// The slice, registered: its table and its change. API keys are not about a customer, so an
/// erasure leaves them.
pub(crate) const SLICE: Slice = Slice {
    schema: Some(SchemaPart {
        owner: "keys",
        migrations: &[
            Migration {
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
            },
            Migration {
                name: "what sessions a key mints may do for the customer",
                sqlite: r#"
ALTER TABLE api_keys ADD COLUMN sessions_may_erase INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN sessions_may_export INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN sessions_may_grant_consent INTEGER NOT NULL DEFAULT 0;
"#,
                postgres: r#"
ALTER TABLE api_keys ADD COLUMN sessions_may_erase BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE api_keys ADD COLUMN sessions_may_export BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE api_keys ADD COLUMN sessions_may_grant_consent BOOLEAN NOT NULL DEFAULT false;
"#,
            },
            Migration {
                name: "keys expire and are revoked",
                sqlite: r#"
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;
"#,
                postgres: r#"
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN revoked_at BIGINT;
"#,
            },
        ],
    }),
    changes: &[
        change::<InsertApiKey>(),
        change::<RevokeApiKey>(),
        change::<ExpireApiKey>(),
    ],
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
                       can_mint_sessions, can_erase, created_at, sessions_may_erase,
                       sessions_may_export, sessions_may_grant_consent, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
                    k.created_at,
                    k.sessions.sessions_may_erase,
                    k.sessions.sessions_may_export,
                    k.sessions.sessions_may_grant_consent,
                    k.expires_at
                ])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "INSERT INTO api_keys (id, secret_hash, role, name, purposes, recipient,
                       can_mint_sessions, can_erase, created_at, sessions_may_erase,
                       sessions_may_export, sessions_may_grant_consent, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
                        &k.sessions.sessions_may_erase,
                        &k.sessions.sessions_may_export,
                        &k.sessions.sessions_may_grant_consent,
                        &k.expires_at,
                    ],
                )?;
            }
        }
        Ok(())
    }
}

/// Revokes an API key: from this commit on, no node takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeApiKey {
    /// The key's id.
    pub id: KeyId,
    /// Unix seconds.
    pub at: i64,
}

impl TypedChange for RevokeApiKey {
    const KIND: &'static str = "revoke_api_key";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                )?
                .execute(params![self.at, self.id.as_str()])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                    &[&self.at, &self.id.as_str()],
                )?;
            }
        }
        Ok(())
    }
}

/// Brings a key's expiry forward (a rotation's overlap): from then on no node takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpireApiKey {
    /// The key's id.
    pub id: KeyId,
    /// Unix seconds from when it is refused.
    pub expires_at: i64,
}

impl TypedChange for ExpireApiKey {
    const KIND: &'static str = "expire_api_key";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        // Never later than an expiry it already had.
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "UPDATE api_keys SET expires_at = ?1
                     WHERE id = ?2 AND (expires_at IS NULL OR expires_at > ?1)",
                )?
                .execute(params![self.expires_at, self.id.as_str()])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "UPDATE api_keys SET expires_at = $1
                     WHERE id = $2 AND (expires_at IS NULL OR expires_at > $1)",
                    &[&self.expires_at, &self.id.as_str()],
                )?;
            }
        }
        Ok(())
    }
}

/// The columns of an `api_keys` row, as [`KeyColumns`] reads them.
macro_rules! key_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, secret_hash, role, name, purposes, recipient, can_mint_sessions,
               can_erase, created_at, sessions_may_erase, sessions_may_export,
               sessions_may_grant_consent, expires_at, revoked_at FROM api_keys ",
            $tail
        )
    };
}

/// Every API key, oldest first, in one read.
pub fn api_keys(db: &Db) -> Result<Vec<ApiKeyRow>, StoreError> {
    let rows: Vec<KeyColumns> = db.read(
        "list api keys",
        |c| {
            c.prepare_cached(key_select!("ORDER BY created_at, id"))?
                .query_map([], KeyColumns::sqlite)?
                .collect()
        },
        |c| {
            Ok(c.query(key_select!("ORDER BY created_at, id"), &[])?
                .iter()
                .map(KeyColumns::postgres)
                .collect())
        },
    )?;
    rows.into_iter().map(KeyColumns::into_row).collect()
}

/// An API key by id.
pub fn api_key(db: &Db, id: &KeyId) -> Result<Option<ApiKeyRow>, StoreError> {
    let owned = id.as_str().to_owned();
    db.read(
        "read api key",
        |c| {
            c.prepare_cached(key_select!("WHERE id = ?1"))?
                .query_row([id.as_str()], KeyColumns::sqlite)
                .optional()
        },
        move |c| {
            Ok(c.query_opt(key_select!("WHERE id = $1"), &[&owned])?
                .map(|r| KeyColumns::postgres(&r)))
        },
    )?
    .map(KeyColumns::into_row)
    .transpose()
}

/// An `api_keys` row as both backends read it, before its checks.
struct KeyColumns {
    id: String,
    secret_hash: Vec<u8>,
    role: String,
    name: String,
    purposes: String,
    recipient: Option<String>,
    can_mint_sessions: bool,
    can_erase: bool,
    created_at: i64,
    sessions: Delegation,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl KeyColumns {
    fn sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyColumns> {
        Ok(KeyColumns {
            id: r.get(0)?,
            secret_hash: r.get(1)?,
            role: r.get(2)?,
            name: r.get(3)?,
            purposes: r.get(4)?,
            recipient: r.get(5)?,
            can_mint_sessions: r.get(6)?,
            can_erase: r.get(7)?,
            created_at: r.get(8)?,
            sessions: Delegation {
                sessions_may_erase: r.get(9)?,
                sessions_may_export: r.get(10)?,
                sessions_may_grant_consent: r.get(11)?,
            },
            expires_at: r.get(12)?,
            revoked_at: r.get(13)?,
        })
    }

    fn postgres(r: &postgres::Row) -> KeyColumns {
        KeyColumns {
            id: r.get(0),
            secret_hash: r.get(1),
            role: r.get(2),
            name: r.get(3),
            purposes: r.get(4),
            recipient: r.get(5),
            can_mint_sessions: r.get(6),
            can_erase: r.get(7),
            created_at: r.get(8),
            sessions: Delegation {
                sessions_may_erase: r.get(9),
                sessions_may_export: r.get(10),
                sessions_may_grant_consent: r.get(11),
            },
            expires_at: r.get(12),
            revoked_at: r.get(13),
        }
    }

    fn into_row(self) -> Result<ApiKeyRow, StoreError> {
        Ok(ApiKeyRow {
            id: KeyId::parse(&self.id).map_err(|_| StoreError::Corrupt("a stored key id"))?,
            secret_hash: self
                .secret_hash
                .try_into()
                .map_err(|_| StoreError::Corrupt("secret hash is not 32 bytes"))?,
            role: Role::parse(&self.role)?,
            name: self.name,
            purposes: self
                .purposes
                .split('\n')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            recipient: self.recipient,
            can_mint_sessions: self.can_mint_sessions,
            can_erase: self.can_erase,
            sessions: self.sessions,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        })
    }
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
    /// What the sessions it mints may do for the customer.
    pub sessions: Delegation,
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
    /// A customer, through a session of their own (they signed in).
    Subject(SubjectId),
    /// A customer, through a session a service minted for them: it may do what the service's
    /// purposes and its [`Delegation`] allow, and every event names the service.
    Delegated {
        /// The customer.
        subject: SubjectId,
        /// The service key that minted the session, as it stands now.
        through: ServiceKey,
    },
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
            Principal::Delegated { subject, through } => Actor::Delegate {
                id: subject.as_str().to_owned(),
                through: ServiceRef {
                    id: through.id.as_str().to_owned(),
                    name: through.name.clone(),
                },
            },
        }
    }

    pub(crate) fn service(&self) -> Result<&ServiceKey, VaultError> {
        match self {
            Principal::Service(k) => Ok(k),
            _ => Err(VaultError::Forbidden("only service keys may do this")),
        }
    }

    /// Whether this is `subject` themself, signed in.
    pub(crate) fn is_subject(&self, subject: &SubjectId) -> bool {
        matches!(self, Principal::Subject(s) if s == subject)
    }

    /// The service acting for `subject` through a delegated session, if that is who this is.
    pub(crate) fn delegate_for(&self, subject: &SubjectId) -> Option<&ServiceKey> {
        match self {
            Principal::Delegated {
                subject: s,
                through,
            } if s == subject => Some(through),
            _ => None,
        }
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
    /// What the sessions it mints may do for the customer.
    pub sessions: Delegation,
    /// Unix seconds from when it is refused, if it should expire.
    pub expires_at: Option<i64>,
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
    customers: Arc<Customers>,
    journal: Journal,
    operator: Arc<OperatorLog>,
    sessions: SessionKey,
}

impl Keys {
    /// The use cases over their parts; sessions are MACed with the root's session key.
    pub fn new(
        map: Arc<DataMap>,
        db: Db,
        root: &RootKey,
        customers: Arc<Customers>,
        journal: Journal,
        operator: Arc<OperatorLog>,
    ) -> Keys {
        Keys {
            map,
            db,
            customers,
            journal,
            operator,
            sessions: root.session_key(),
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
            let Some(through) = session.through else {
                return Ok(Principal::Subject(subject));
            };
            // A delegated session is as good as the key that minted it, as that key stands now.
            let id = KeyId::parse(&through).map_err(|_| AuthError::Unauthenticated)?;
            return match self.live_key(&id, now)?.map(|row| self.principal(row)) {
                Some(Ok(Principal::Service(key))) if key.can_mint_sessions => {
                    Ok(Principal::Delegated {
                        subject,
                        through: key,
                    })
                }
                Some(Err(e)) => Err(e),
                _ => Err(AuthError::Unauthenticated),
            };
        }
        let (id, presented) = parse_api_key(token).ok_or(AuthError::Unauthenticated)?;
        let id = KeyId::parse(id).map_err(|_| AuthError::Unauthenticated)?;
        // Known, unknown, revoked and expired ids take the same path: one read of the store (no
        // process keeps a copy that could outlive a revocation, or answer faster for a known
        // id), then a comparison against a dummy when there is no live key.
        let row = self.live_key(&id, now)?;
        let stored = row.as_ref().map_or([0u8; 32], |r| r.secret_hash);
        if !ct_eq(&stored, &presented) {
            return Err(AuthError::Unauthenticated);
        }
        self.principal(row.ok_or(AuthError::Unauthenticated)?)
    }

    /// A key's row, read from the store at every request, if it is neither revoked nor expired.
    fn live_key(&self, id: &KeyId, now: i64) -> Result<Option<ApiKeyRow>, AuthError> {
        Ok(api_key(&self.db, id)?
            .filter(|r| r.revoked_at.is_none() && r.expires_at.is_none_or(|e| now < e)))
    }

    /// Who a key's row makes the caller.
    fn principal(&self, row: ApiKeyRow) -> Result<Principal, AuthError> {
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
                sessions: row.sessions,
            }),
        })
    }

    /// Mints a short-lived delegated session for a customer, on a trusted service's word: it
    /// acts for the customer within what the service's purposes and the key's [`Delegation`]
    /// allow, and its start is in the customer's log, naming the service.
    pub async fn mint_session(
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
        let expires_at = now + SESSION_TTL_SECS;
        // A session is for a customer Candor holds: a service cannot make up a customer and then
        // act as them. Logging the start fails for the unknown and the erased.
        let dek = self.customers.data_key(subject, false, now).await?;
        let kind = EventKind::SessionStarted {
            method: "delegated",
            expires_at,
        };
        let theirs = self
            .journal
            .seal(Some(&dek), principal.actor(), subject, now, kind)
            .entry;
        let operators = self
            .operator
            .entry(
                principal.actor(),
                EventKind::SessionDelegated {
                    key: key_ref(&key.id, &key.name),
                    expires_at,
                },
                now,
            )
            .await?;
        self.journal
            .submit(Some(subject), None, vec![], vec![theirs, operators])
            .await?;
        let token = self
            .sessions
            .mint_delegated(subject.as_str(), key.id.as_str(), expires_at);
        Ok((token, expires_at))
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
        if spec.expires_at.is_some_and(|e| e <= now) {
            return Err(invalid("expires_at must be in the future"));
        }
        for (i, p) in spec.purposes.iter().enumerate() {
            if self.map.purpose(p).is_none() {
                return Err(VaultError::UnknownPurpose(p.clone()));
            }
            if spec.purposes[..i].contains(p) {
                return Err(invalid(format!("the purpose {p} is named twice")));
            }
        }
        if let Some(r) = &spec.recipient
            && self.map.recipient(r).is_none()
        {
            return Err(VaultError::RecipientNotDeclared(r.clone()));
        }
        self.insert(Role::Service, spec, principal.actor(), now)
            .await
    }

    /// Every key, for the admin (their secrets are not kept, so none is shown).
    pub fn list(&self, principal: &Principal) -> Result<Vec<ApiKeyRow>, VaultError> {
        if !matches!(principal, Principal::Admin { .. }) {
            return Err(VaultError::Forbidden("only the admin key may list keys"));
        }
        Ok(api_keys(&self.db)?)
    }

    /// Revokes a service key (admin only): from this commit on no node takes it, nor the
    /// sessions it minted. The admin key is replaced from the command line, not revoked here.
    pub async fn revoke(
        &self,
        principal: &Principal,
        id: &KeyId,
        now: i64,
    ) -> Result<ApiKeyRow, VaultError> {
        if !matches!(principal, Principal::Admin { .. }) {
            return Err(VaultError::Forbidden("only the admin key may revoke keys"));
        }
        let Some(mut row) = api_key(&self.db, id)? else {
            return Err(VaultError::KeyNotFound);
        };
        if row.role == Role::Admin {
            return Err(VaultError::Forbidden(
                "the admin key is not revoked through the API",
            ));
        }
        if row.revoked_at.is_none() {
            let change = RevokeApiKey {
                id: id.clone(),
                at: now,
            };
            let kind = EventKind::KeyRevoked {
                key: key_ref(&row.id, &row.name),
            };
            let entry = self.operator.entry(principal.actor(), kind, now).await?;
            self.journal
                .submit(None, None, vec![Arc::new(change)], vec![entry])
                .await?;
            row.revoked_at = Some(now);
        }
        Ok(row)
    }

    /// Rotates a service key (admin only): a successor with the same name, purposes, recipient
    /// and rights, while the key itself keeps working for `overlap_secs` (never past an expiry
    /// it had), so the services holding it can move over without an outage.
    pub async fn rotate(
        &self,
        principal: &Principal,
        id: &KeyId,
        overlap_secs: i64,
        successor_expires_at: Option<i64>,
        now: i64,
    ) -> Result<Rotated, VaultError> {
        if !matches!(principal, Principal::Admin { .. }) {
            return Err(VaultError::Forbidden("only the admin key may rotate keys"));
        }
        if !(0..=MAX_ROTATION_OVERLAP_SECS).contains(&overlap_secs) {
            return Err(invalid(format!(
                "overlap_secs is 0 to {MAX_ROTATION_OVERLAP_SECS}"
            )));
        }
        if successor_expires_at.is_some_and(|e| e <= now) {
            return Err(invalid("expires_at must be in the future"));
        }
        let Some(old) = api_key(&self.db, id)? else {
            return Err(VaultError::KeyNotFound);
        };
        if old.role == Role::Admin {
            return Err(VaultError::Forbidden(
                "the admin key is replaced with `candor admin-key`",
            ));
        }
        if old.revoked_at.is_some() || old.expires_at.is_some_and(|e| e <= now) {
            return Err(VaultError::KeyNotLive);
        }
        let expires_at = old
            .expires_at
            .map_or(now + overlap_secs, |e| e.min(now + overlap_secs));
        let new = new_api_key();
        let successor = ApiKeyRow {
            id: KeyId::parse(&new.id).expect("new_api_key makes 16 hex digits"),
            secret_hash: new.secret_hash,
            created_at: now,
            expires_at: successor_expires_at,
            revoked_at: None,
            ..old.clone()
        };
        let kind = EventKind::KeyRotated {
            key: key_ref(&old.id, &old.name),
            successor: successor.id.as_str().to_owned(),
            expires_at,
        };
        let entry = self.operator.entry(principal.actor(), kind, now).await?;
        let changes: Vec<Arc<dyn Change>> = vec![
            Arc::new(InsertApiKey(successor.clone())),
            Arc::new(ExpireApiKey {
                id: old.id.clone(),
                expires_at,
            }),
        ];
        self.journal
            .submit(None, None, changes, vec![entry])
            .await?;
        Ok(Rotated {
            successor: CreatedKey {
                id: successor.id,
                token: new.token,
            },
            expires_at,
        })
    }

    /// Replaces the admin key, for whoever holds the home (`candor admin-key`): a new admin key,
    /// and every earlier one revoked, in one commit.
    pub async fn replace_admin_key(&self, now: i64) -> Result<CreatedKey, VaultError> {
        let earlier: Vec<ApiKeyRow> = api_keys(&self.db)?
            .into_iter()
            .filter(|k| k.role == Role::Admin && k.revoked_at.is_none())
            .collect();
        let (row, created) = new_key_row(Role::Admin, admin_spec(), now);
        let mut changes: Vec<Arc<dyn Change>> = vec![Arc::new(InsertApiKey(row.clone()))];
        let mut entries = vec![
            self.operator
                .entry(Actor::CommandLine, key_created(&row), now)
                .await?,
        ];
        for old in earlier {
            changes.push(Arc::new(RevokeApiKey {
                id: old.id.clone(),
                at: now,
            }));
            let kind = EventKind::KeyRevoked {
                key: key_ref(&old.id, &old.name),
            };
            entries.push(self.operator.entry(Actor::CommandLine, kind, now).await?);
        }
        self.journal.submit(None, None, changes, entries).await?;
        Ok(created)
    }

    /// Creates the admin key; `candor init` calls this once, no API reaches it.
    pub async fn create_admin_key(&self, now: i64) -> Result<CreatedKey, VaultError> {
        self.insert(Role::Admin, admin_spec(), Actor::CommandLine, now)
            .await
    }

    async fn insert(
        &self,
        role: Role,
        spec: NewKeySpec,
        actor: Actor,
        now: i64,
    ) -> Result<CreatedKey, VaultError> {
        let (row, created) = new_key_row(role, spec, now);
        let entry = self.operator.entry(actor, key_created(&row), now).await?;
        self.journal
            .submit(None, None, vec![Arc::new(InsertApiKey(row))], vec![entry])
            .await?;
        Ok(created)
    }
}

/// The longest a rotated key may keep working beside its successor: 30 days.
pub const MAX_ROTATION_OVERLAP_SECS: i64 = 30 * 24 * 60 * 60;

/// A rotation's outcome.
pub struct Rotated {
    /// The successor, with its token (shown once).
    pub successor: CreatedKey,
    /// When the rotated key stops working.
    pub expires_at: i64,
}

fn admin_spec() -> NewKeySpec {
    NewKeySpec {
        name: "admin".into(),
        purposes: vec![],
        recipient: None,
        can_mint_sessions: false,
        can_erase: true,
        sessions: Delegation::default(),
        expires_at: None,
    }
}

/// A fresh key's row, and its token for the caller.
fn new_key_row(role: Role, spec: NewKeySpec, now: i64) -> (ApiKeyRow, CreatedKey) {
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
        sessions: spec.sessions,
        created_at: now,
        expires_at: spec.expires_at,
        revoked_at: None,
    };
    (
        row,
        CreatedKey {
            id,
            token: new.token,
        },
    )
}

fn key_ref(id: &KeyId, name: &str) -> ServiceRef {
    ServiceRef {
        id: id.as_str().to_owned(),
        name: name.to_owned(),
    }
}

/// The operator log's record of a new key: who it is and everything it may do.
fn key_created(row: &ApiKeyRow) -> EventKind {
    let rights = [
        (row.can_erase, "can_erase"),
        (row.can_mint_sessions, "can_mint_sessions"),
        (row.sessions.sessions_may_erase, "sessions_may_erase"),
        (row.sessions.sessions_may_export, "sessions_may_export"),
        (
            row.sessions.sessions_may_grant_consent,
            "sessions_may_grant_consent",
        ),
    ];
    EventKind::KeyCreated {
        key: key_ref(&row.id, &row.name),
        role: row.role.as_str(),
        purposes: row.purposes.clone(),
        recipient: row.recipient.clone(),
        rights: rights
            .into_iter()
            .filter(|(held, _)| *held)
            .map(|(_, right)| right)
            .collect(),
        expires_at: row.expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{EMAIL, Fixture, NOW, OPS, apply, on_every_backend};

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
            expires_at: None,
            sessions: Delegation::default(),
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
            expires_at: None,
            sessions: Delegation::default(),
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
    fn sessions_are_minted_only_by_keys_allowed_to_and_never_for_the_erased_or_unknown() {
        let f = Fixture::new();
        let minter = f.service(&[OPS], true, true);
        let plain = f.service(&[OPS], false, false);
        let subject = f.customer("cus_a", &minter);
        let keys = f.vault.keys();
        assert!(matches!(
            f.run(keys.mint_session(&plain, &subject, NOW)),
            Err(VaultError::Forbidden(_))
        ));
        assert!(matches!(
            f.run(keys.mint_session(&f.admin, &subject, NOW)),
            Err(VaultError::Forbidden(_))
        ));
        let nobody = SubjectId::parse("cus_nobody").unwrap();
        assert!(matches!(
            f.run(keys.mint_session(&minter, &nobody, NOW)),
            Err(VaultError::SubjectNotFound)
        ));
        let (token, expires_at) = f.run(keys.mint_session(&minter, &subject, NOW)).unwrap();
        assert_eq!(expires_at, NOW + SESSION_TTL_SECS);
        let Principal::Service(key) = &minter else {
            unreachable!()
        };
        assert_eq!(
            keys.authenticate(&token, NOW).unwrap(),
            Principal::Delegated {
                subject: subject.clone(),
                through: key.clone(),
            }
        );
        assert!(matches!(
            keys.authenticate(&token, expires_at + 1),
            Err(AuthError::Unauthenticated)
        ));
        f.run(f.vault.erasure().erase(&minter, &subject, NOW))
            .unwrap();
        assert!(matches!(
            f.run(keys.mint_session(&minter, &subject, NOW)),
            Err(VaultError::SubjectErased)
        ));
    }

    /// What the customer's log says happened: each event's actor and type, in order.
    fn actors_and_types(f: &Fixture, subject: &SubjectId) -> Vec<String> {
        let me = Principal::Subject(subject.clone());
        let history = f
            .vault
            .histories()
            .history(&me, subject, crate::Page::FIRST)
            .unwrap();
        history
            .entries
            .iter()
            .map(|e| {
                let event: serde_json::Value =
                    serde_json::from_str(&e.opening.canonical_event).unwrap();
                format!("{} {}", event["actor"]["kind"], event["type"])
            })
            .collect()
    }

    #[test]
    fn a_delegated_session_acts_within_its_service_and_is_named_in_the_log() {
        use crate::consent::ConsentChange;
        use candor_core::{ConsentAction, Evidence};
        let f = Fixture::new();
        let minter = f.service(&[OPS, EMAIL], true, true);
        let subject = f.customer("cus_a", &minter);
        // A key bound to email marketing only; its sessions have no extra rights.
        let mailer = f.service(&[EMAIL], true, false);
        let (token, _) = f
            .run(f.vault.keys().mint_session(&mailer, &subject, NOW))
            .unwrap();
        let through = f.vault.keys().authenticate(&token, NOW).unwrap();
        let change = |action| ConsentChange {
            purpose: EMAIL.into(),
            recipient: None,
            action,
            expires_at: None,
            evidence: Some(Evidence {
                channel: "mailer_app".into(),
                notice_version: "2026-11".into(),
            }),
        };
        let consents = f.vault.consents();
        assert!(matches!(
            f.run(consents.record(
                &through,
                &subject,
                vec![change(ConsentAction::Grant)],
                false,
                NOW
            )),
            Err(VaultError::Forbidden(_))
        ));
        f.run(consents.record(
            &through,
            &subject,
            vec![change(ConsentAction::Withdraw)],
            false,
            NOW,
        ))
        .unwrap();
        let mut unbound = change(ConsentAction::Withdraw);
        unbound.purpose = "analytics.reporting".into();
        assert!(matches!(
            f.run(consents.record(&through, &subject, vec![unbound], false, NOW)),
            Err(VaultError::PurposeNotPermitted(_))
        ));
        // The customer's name is not used by email marketing: it is not the mailer's to show.
        let (values, _) = f
            .run(f.vault.access().own_data(&through, &subject, NOW))
            .unwrap();
        assert!(values.is_empty(), "{values:?}");
        assert!(matches!(
            f.vault
                .histories()
                .history(&through, &subject, crate::Page::FIRST),
            Err(VaultError::Forbidden(_))
        ));
        assert!(matches!(
            f.run(f.vault.erasure().erase(&through, &subject, NOW)),
            Err(VaultError::Forbidden(_))
        ));
        assert_eq!(
            actors_and_types(&f, &subject),
            [
                "\"service\" \"collected\"",
                "\"service\" \"session_started\"",
                "\"delegate\" \"consent_changed\"",
                "\"delegate\" \"accessed\"",
            ]
        );

        // A key whose sessions may do each of these explicitly.
        let trusted = f.minter(
            &[OPS, EMAIL],
            true,
            false,
            Delegation {
                sessions_may_erase: true,
                sessions_may_export: true,
                sessions_may_grant_consent: true,
            },
        );
        let (token, _) = f
            .run(f.vault.keys().mint_session(&trusted, &subject, NOW))
            .unwrap();
        let through = f.vault.keys().authenticate(&token, NOW).unwrap();
        f.run(consents.record(
            &through,
            &subject,
            vec![change(ConsentAction::Grant)],
            false,
            NOW,
        ))
        .unwrap();
        let (values, _) = f
            .run(f.vault.access().own_data(&through, &subject, NOW))
            .unwrap();
        assert_eq!(values.len(), 1);
        f.vault
            .histories()
            .history(&through, &subject, crate::Page::FIRST)
            .unwrap();
        f.run(f.vault.erasure().erase(&through, &subject, NOW))
            .unwrap();
    }

    #[test]
    fn a_revoked_or_expired_key_and_its_sessions_are_refused() {
        let f = Fixture::new();
        let keys = f.vault.keys();
        let spec = |expires_at| NewKeySpec {
            name: "svc".into(),
            purposes: vec![OPS.into()],
            recipient: None,
            can_mint_sessions: true,
            can_erase: false,
            sessions: Delegation::default(),
            expires_at,
        };
        assert!(matches!(
            f.run(keys.create_key(&f.admin, spec(Some(NOW)), NOW)),
            Err(VaultError::Invalid(_))
        ));
        let expiring = f
            .run(keys.create_key(&f.admin, spec(Some(NOW + 60)), NOW))
            .unwrap();
        assert!(keys.authenticate(&expiring.token, NOW + 59).is_ok());
        assert!(matches!(
            keys.authenticate(&expiring.token, NOW + 60),
            Err(AuthError::Unauthenticated)
        ));
        let key = f.run(keys.create_key(&f.admin, spec(None), NOW)).unwrap();
        let service = keys.authenticate(&key.token, NOW).unwrap();
        let subject = f.customer("cus_a", &service);
        let (session, _) = f.run(keys.mint_session(&service, &subject, NOW)).unwrap();
        assert!(matches!(
            f.run(keys.revoke(&service, &key.id, NOW)),
            Err(VaultError::Forbidden(_))
        ));
        let Principal::Admin { id: admin_id, .. } = &f.admin else {
            unreachable!()
        };
        assert!(matches!(
            f.run(keys.revoke(&f.admin, admin_id, NOW)),
            Err(VaultError::Forbidden(_))
        ));
        let revoked = f.run(keys.revoke(&f.admin, &key.id, NOW + 1)).unwrap();
        assert_eq!(revoked.revoked_at, Some(NOW + 1));
        for token in [key.token.as_str(), session.as_str()] {
            assert!(matches!(
                keys.authenticate(token, NOW + 1),
                Err(AuthError::Unauthenticated)
            ));
        }
        // Revoking again changes nothing; the list shows when.
        f.run(keys.revoke(&f.admin, &key.id, NOW + 5)).unwrap();
        let listed = keys.list(&f.admin).unwrap();
        let row = listed.iter().find(|k| k.id == key.id).unwrap();
        assert_eq!(row.revoked_at, Some(NOW + 1));
        assert!(keys.list(&service).is_err());
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
            sessions: Delegation {
                sessions_may_export: true,
                ..Delegation::default()
            },
            created_at: 3,
            expires_at: Some(9),
            revoked_at: None,
        };
        apply(db, vec![Arc::new(InsertApiKey(key.clone()))]);
        assert_eq!(api_key(db, &key.id).unwrap(), Some(key.clone()));
        assert_eq!(api_key(db, &KeyId::parse("k2").unwrap()).unwrap(), None);
        // An expiry is brought forward, never pushed back; a revocation is kept.
        let expire = |at| -> Arc<dyn Change> {
            Arc::new(ExpireApiKey {
                id: key.id.clone(),
                expires_at: at,
            })
        };
        apply(db, vec![expire(20)]);
        assert_eq!(api_key(db, &key.id).unwrap().unwrap().expires_at, Some(9));
        apply(db, vec![expire(5)]);
        assert_eq!(api_key(db, &key.id).unwrap().unwrap().expires_at, Some(5));
        apply(
            db,
            vec![Arc::new(RevokeApiKey {
                id: key.id.clone(),
                at: 6,
            })],
        );
        assert_eq!(api_key(db, &key.id).unwrap().unwrap().revoked_at, Some(6));
    }

    on_every_backend!(keys_round_trip);

    #[test]
    fn a_rotated_key_never_outlives_the_expiry_it_had() {
        let f = Fixture::new();
        let keys = f.vault.keys();
        let spec = |expires_at| NewKeySpec {
            name: "checkout".into(),
            purposes: vec![OPS.into()],
            recipient: None,
            can_mint_sessions: false,
            can_erase: false,
            sessions: Delegation::default(),
            expires_at,
        };
        let soon = f
            .run(keys.create_key(&f.admin, spec(Some(NOW + 100)), NOW))
            .unwrap();
        let rotated = f
            .run(keys.rotate(&f.admin, &soon.id, 3600, None, NOW))
            .unwrap();
        assert_eq!(rotated.expires_at, NOW + 100, "not extended by the overlap");
        let later = f.run(keys.create_key(&f.admin, spec(None), NOW)).unwrap();
        let rotated = f
            .run(keys.rotate(&f.admin, &later.id, 3600, None, NOW))
            .unwrap();
        assert_eq!(rotated.expires_at, NOW + 3600);
        assert!(keys.authenticate(&later.token, NOW + 3599).is_ok());
        assert!(keys.authenticate(&later.token, NOW + 3600).is_err());
        assert!(
            keys.authenticate(&rotated.successor.token, NOW + 3600)
                .is_ok()
        );
        let service = keys.authenticate(&rotated.successor.token, NOW).unwrap();
        assert!(matches!(
            f.run(keys.rotate(&service, &later.id, 0, None, NOW)),
            Err(VaultError::Forbidden(_))
        ));
    }
}
