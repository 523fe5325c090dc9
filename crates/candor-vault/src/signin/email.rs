//! Signing in with a one-time link that Candor itself sends to the customer's verified email
//! address. The address is set by the customer signed in, or by the admin, and counts only once a
//! link sent to it was used, so no service can point a customer's sign-in at a mailbox of its
//! own. A link is good once, for [`LINK_TTL_SECS`]; sending one is in the customer's log.

use candor_store::{Db, Migration, SchemaPart, StoreError, Tx, TxError, TypedChange};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::wire::b64;

/// How long a sign-in link works.
pub const LINK_TTL_SECS: i64 = 15 * 60;

/// The slice's tables: each customer's sign-in address (its blind index, its copy sealed under
/// the customer's key, whether a link sent to it was used) and the links not yet used.
pub(crate) const SCHEMA: SchemaPart = SchemaPart {
    owner: "signin",
    migrations: &[Migration {
        name: "sign-in addresses and links",
        sqlite: r#"
CREATE TABLE signin_addresses (
    subject_id     TEXT PRIMARY KEY,
    address_index  BLOB NOT NULL,
    sealed_address BLOB NOT NULL,
    verified       INTEGER NOT NULL
) STRICT;
CREATE INDEX signin_addresses_by_index ON signin_addresses (address_index);
CREATE TABLE signin_links (
    digest     BLOB PRIMARY KEY,
    subject_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    verifies   BLOB
) STRICT;
CREATE INDEX signin_links_by_subject ON signin_links (subject_id);
"#,
        postgres: r#"
CREATE TABLE signin_addresses (
    subject_id     TEXT PRIMARY KEY,
    address_index  BYTEA NOT NULL,
    sealed_address BYTEA NOT NULL,
    verified       BOOLEAN NOT NULL
);
CREATE INDEX signin_addresses_by_index ON signin_addresses (address_index);
CREATE TABLE signin_links (
    digest     BYTEA PRIMARY KEY,
    subject_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    verifies   BYTEA
);
CREATE INDEX signin_links_by_subject ON signin_links (subject_id);
"#,
    }],
};

/// Sets the customer's sign-in address, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSigninAddress {
    /// Customer id.
    pub subject: String,
    /// Blind index of the normalised address.
    #[serde(with = "b64")]
    pub address_index: Vec<u8>,
    /// The address sealed under the customer's key.
    #[serde(with = "b64")]
    pub sealed_address: Vec<u8>,
}

impl TypedChange for SetSigninAddress {
    const KIND: &'static str = "set_signin_address";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        let (s, i, a) = (&self.subject, &self.address_index, &self.sealed_address);
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "INSERT INTO signin_addresses (subject_id, address_index, sealed_address, verified)
                     VALUES (?1, ?2, ?3, 0)
                     ON CONFLICT (subject_id) DO UPDATE SET address_index = excluded.address_index,
                       sealed_address = excluded.sealed_address, verified = 0",
                )?
                .execute(params![s, i, a])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "INSERT INTO signin_addresses (subject_id, address_index, sealed_address, verified)
                     VALUES ($1, $2, $3, false)
                     ON CONFLICT (subject_id) DO UPDATE SET address_index = excluded.address_index,
                       sealed_address = excluded.sealed_address, verified = false",
                    &[s, i, a],
                )?;
            }
        }
        Ok(())
    }
}

/// Stores a link Candor sent (its digest, never the link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSigninLink {
    /// SHA-256 of the link's secret.
    #[serde(with = "b64")]
    pub digest: Vec<u8>,
    /// Customer id.
    pub subject: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// For a link that verifies an address just set: that address's blind index.
    #[serde(default, with = "b64::option")]
    pub verifies: Option<Vec<u8>>,
}

impl TypedChange for PutSigninLink {
    const KIND: &'static str = "put_signin_link";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        let (d, s, e, v) = (
            &self.digest,
            &self.subject,
            &self.expires_at,
            &self.verifies,
        );
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "INSERT INTO signin_links (digest, subject_id, expires_at, verifies)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![d, s, e, v])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "INSERT INTO signin_links (digest, subject_id, expires_at, verifies)
                     VALUES ($1, $2, $3, $4)",
                    &[d, s, e, v],
                )?;
            }
        }
        Ok(())
    }
}

/// Uses a link: it is gone, and the address it verifies (if it is still the customer's) counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseSigninLink {
    /// SHA-256 of the link's secret.
    #[serde(with = "b64")]
    pub digest: Vec<u8>,
    /// Customer id.
    pub subject: String,
    /// The blind index of the address it verifies.
    #[serde(default, with = "b64::option")]
    pub verifies: Option<Vec<u8>>,
}

impl TypedChange for UseSigninLink {
    const KIND: &'static str = "use_signin_link";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        let (d, s) = (&self.digest, &self.subject);
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached("DELETE FROM signin_links WHERE digest = ?1")?
                    .execute([d])?;
                if let Some(v) = &self.verifies {
                    c.prepare_cached(
                        "UPDATE signin_addresses SET verified = 1
                         WHERE subject_id = ?1 AND address_index = ?2",
                    )?
                    .execute(params![s, v])?;
                }
            }
            Tx::Postgres(c) => {
                c.execute("DELETE FROM signin_links WHERE digest = $1", &[d])?;
                if let Some(v) = &self.verifies {
                    c.execute(
                        "UPDATE signin_addresses SET verified = true
                         WHERE subject_id = $1 AND address_index = $2",
                        &[s, v],
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Erases the customer's sign-in address and links (the slice's `on_erasure`).
pub(crate) fn erase(tx: &mut Tx<'_>, subject: &str) -> Result<(), TxError> {
    match tx {
        Tx::Sqlite(c) => {
            c.prepare_cached("DELETE FROM signin_addresses WHERE subject_id = ?1")?
                .execute([subject])?;
            c.prepare_cached("DELETE FROM signin_links WHERE subject_id = ?1")?
                .execute([subject])?;
        }
        Tx::Postgres(c) => {
            c.execute(
                "DELETE FROM signin_addresses WHERE subject_id = $1",
                &[&subject],
            )?;
            c.execute(
                "DELETE FROM signin_links WHERE subject_id = $1",
                &[&subject],
            )?;
        }
    }
    Ok(())
}

/// The customers whose verified sign-in address has this blind index, with the sealed address
/// (to confirm, since an index may collide).
pub(crate) fn verified_owners(db: &Db, index: &[u8]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let owned = index.to_vec();
    db.read(
        "read sign-in addresses",
        |c| {
            c.prepare_cached(
                "SELECT subject_id, sealed_address FROM signin_addresses
                 WHERE address_index = ?1 AND verified = 1",
            )?
            .query_map([index], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        },
        move |c| {
            Ok(c.query(
                "SELECT subject_id, sealed_address FROM signin_addresses
                 WHERE address_index = $1 AND verified",
                &[&owned],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        },
    )
}

/// A link not yet used: its customer, expiry and the address index it verifies.
pub(crate) type LinkRow = (String, i64, Option<Vec<u8>>);

/// The link with this digest, if it was sent and not used.
pub(crate) fn link(db: &Db, digest: &[u8]) -> Result<Option<LinkRow>, StoreError> {
    let owned = digest.to_vec();
    db.read(
        "read sign-in link",
        |c| {
            c.prepare_cached(
                "SELECT subject_id, expires_at, verifies FROM signin_links WHERE digest = ?1",
            )?
            .query_row([digest], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
        },
        move |c| {
            Ok(c.query_opt(
                "SELECT subject_id, expires_at, verifies FROM signin_links WHERE digest = $1",
                &[&owned],
            )?
            .map(|r| (r.get(0), r.get(1), r.get(2))))
        },
    )
}
