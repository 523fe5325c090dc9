//! Customers and their fields: a customer's data key (created with their first write), fields
//! collected for a purpose and sealed under that key, and the blind index that finds a customer
//! by an exact value of a `lookup = true` category.

use std::collections::BTreeMap;
use std::sync::Arc;

use candor_core::{
    CategoryKey, ConsentState, DataMap, EventKind, LeafIndex, Purpose, SubjectId, consent_in_force,
};
use candor_crypto::{BlindIndexKey, DataKey, RootKey, SealContext};
use candor_store::customers;
use candor_store::{
    Change, Db, Migration, SchemaPart, Standing, StoreError, SubjectState, Tx, TxError, TypedChange,
};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::invalid;
use crate::kernel::{DECIDE_ATTEMPTS, Journal};
use crate::key_epochs::{self, Keyring, KeyringError};
use crate::keys::{Principal, ServiceKey};
use crate::registry::{Slice, change};
use crate::wire::b64;
use crate::{VaultError, consent};

/// The most fields one request may name.
pub const MAX_FIELDS: usize = 64;
/// The longest value one field may hold, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024;

/// Why fields were not collected.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The field is not a data category of the data map (400 `unknown_field`).
    #[error("field `{0}` is not a data category of the data map")]
    UnknownField(String),
    /// The purpose does not need this field (422 `field_not_needed_by_purpose`).
    #[error("purpose `{purpose}` does not need field `{field}`")]
    FieldNotNeeded {
        /// The field.
        field: String,
        /// The purpose.
        purpose: String,
    },
    /// The purpose needs consent that is not in force (403 `consent_required`).
    #[error("purpose `{0}` needs the customer's consent, which is not in force")]
    ConsentRequired(String),
    /// A reason every slice shares.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<StoreError> for CollectError {
    fn from(e: StoreError) -> CollectError {
        CollectError::Vault(e.into())
    }
}

/// Registers a customer with their new wrapped data key, unless they exist already or the
/// epoch it is wrapped under was retired meanwhile (the creator wraps it again in the current).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSubject {
    /// Customer id.
    pub subject: String,
    /// Their data key, wrapped under `key_epoch`.
    #[serde(with = "b64")]
    pub wrapped_key: Vec<u8>,
    /// The tenant key epoch; none from a node that predates epochs, whose key is wrapped under
    /// the root-derived key and rewrapped into an epoch at the next check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_epoch: Option<u32>,
    /// Unix seconds.
    pub at: i64,
}

impl TypedChange for CreateSubject {
    const KIND: &'static str = "create_subject";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        if let Some(epoch) = self.key_epoch
            && crate::key_epochs::is_retired(tx, epoch)?
        {
            return Ok(());
        }
        candor_store::customers::create(
            tx,
            &self.subject,
            &self.wrapped_key,
            self.key_epoch.map(i64::from),
            self.at,
        )
    }
    fn standing(&self) -> Option<(&str, Standing)> {
        Some((&self.subject, Standing::Created))
    }
}

/// Sets one sealed field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutField {
    /// Customer id.
    pub subject: String,
    /// Data category.
    pub category: String,
    /// The value sealed under the customer's key, bound to customer and category.
    #[serde(with = "b64")]
    pub sealed: Vec<u8>,
}

impl TypedChange for PutField {
    const KIND: &'static str = "put_field";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "INSERT INTO fields (subject_id, category, sealed) VALUES (?1, ?2, ?3)
                     ON CONFLICT (subject_id, category) DO UPDATE SET sealed = excluded.sealed",
                )?
                .execute(params![self.subject, self.category, self.sealed])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "INSERT INTO fields (subject_id, category, sealed) VALUES ($1, $2, $3)
                     ON CONFLICT (subject_id, category) DO UPDATE SET sealed = excluded.sealed",
                    &[&self.subject, &self.category, &self.sealed],
                )?;
            }
        }
        Ok(())
    }
}

/// Sets the customer's blind-index digest for a category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBlindIndex {
    /// Customer id.
    pub subject: String,
    /// Data category.
    pub category: String,
    /// Truncated keyed HMAC of the normalised value.
    #[serde(with = "b64")]
    pub digest: Vec<u8>,
}

impl TypedChange for PutBlindIndex {
    const KIND: &'static str = "put_blind_index";

    fn apply(&self, tx: &mut Tx<'_>) -> Result<(), TxError> {
        match tx {
            Tx::Sqlite(c) => {
                c.prepare_cached(
                    "INSERT INTO blind_index (category, digest, subject_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT (category, subject_id) DO UPDATE SET digest = excluded.digest",
                )?
                .execute(params![self.category, self.digest, self.subject])?;
            }
            Tx::Postgres(c) => {
                c.execute(
                    "INSERT INTO blind_index (category, digest, subject_id) VALUES ($1, $2, $3)
                     ON CONFLICT (category, subject_id) DO UPDATE SET digest = excluded.digest",
                    &[&self.category, &self.digest, &self.subject],
                )?;
            }
        }
        Ok(())
    }
}

/// The slice, registered: its tables, its changes and its erasure of a customer.
pub(crate) const SLICE: Slice = Slice {
    schema: Some(SchemaPart {
        owner: "subjects",
        migrations: &[Migration {
            name: "customers' sealed fields and the blind index",
            sqlite: r#"
CREATE TABLE fields (
    subject_id TEXT NOT NULL REFERENCES subjects(id),
    category   TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    PRIMARY KEY (subject_id, category)
) STRICT, WITHOUT ROWID;
CREATE TABLE blind_index (
    category   TEXT NOT NULL,
    digest     BLOB NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id),
    PRIMARY KEY (category, subject_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX blind_index_lookup ON blind_index (category, digest);
"#,
            postgres: r#"
CREATE TABLE fields (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    category   TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    PRIMARY KEY (subject_id, category)
);
CREATE TABLE blind_index (
    category   TEXT NOT NULL,
    digest     BYTEA NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    PRIMARY KEY (category, subject_id)
);
CREATE INDEX blind_index_lookup ON blind_index (category, digest);
"#,
        }],
    }),
    changes: &[
        change::<CreateSubject>(),
        change::<PutField>(),
        change::<PutBlindIndex>(),
    ],
    on_erasure: Some(erase),
};

/// Erases the customer's fields and index entries (its [`SLICE`]'s `on_erasure`).
pub(crate) fn erase(tx: &mut Tx<'_>, subject: &str) -> Result<(), TxError> {
    match tx {
        Tx::Sqlite(c) => {
            c.prepare_cached("DELETE FROM fields WHERE subject_id = ?1")?
                .execute([subject])?;
            c.prepare_cached("DELETE FROM blind_index WHERE subject_id = ?1")?
                .execute([subject])?;
        }
        Tx::Postgres(c) => {
            c.execute("DELETE FROM fields WHERE subject_id = $1", &[&subject])?;
            c.execute("DELETE FROM blind_index WHERE subject_id = $1", &[&subject])?;
        }
    }
    Ok(())
}

/// The customer's sealed fields by category, on SQLite (PostgreSQL reads them with the
/// customer's record in one statement, see `access`).
pub(crate) fn fields_sqlite(
    c: &rusqlite::Connection,
    subject: &str,
) -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
    c.prepare_cached("SELECT category, sealed FROM fields WHERE subject_id = ?1")?
        .query_map([subject], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Customers whose blind-index digest for `category` equals `digest` (candidates: confirm them).
pub(crate) fn blind_index_matches(
    db: &Db,
    category: &str,
    digest: &[u8],
) -> Result<Vec<String>, StoreError> {
    let (owned_category, owned_digest) = (category.to_owned(), digest.to_vec());
    db.read(
        "read blind index",
        |c| {
            c.prepare_cached(
                "SELECT subject_id FROM blind_index WHERE category = ?1 AND digest = ?2
                 ORDER BY subject_id",
            )?
            .query_map(params![category, digest], |r| r.get(0))?
            .collect()
        },
        move |c| {
            Ok(c.query(
                "SELECT subject_id FROM blind_index WHERE category = $1 AND digest = $2
                 ORDER BY subject_id",
                &[&owned_category, &owned_digest],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        },
    )
}

/// The customer registry as the slices use it: whether a customer exists, and their data key.
pub struct Customers {
    db: Db,
    keyring: Arc<Keyring>,
    journal: Journal,
}

/// How many times a first write wraps a new customer's key again when the epoch it read was
/// retired before the key landed (each retry reads the epoch anew).
const CREATE_ATTEMPTS: usize = 3;

impl Customers {
    /// The registry over `db`, wrapping and unwrapping keys with the node's keyring.
    pub fn new(db: Db, keyring: Arc<Keyring>, journal: Journal) -> Customers {
        Customers {
            db,
            keyring,
            journal,
        }
    }

    /// The customer's standing.
    pub fn state(&self, subject: &SubjectId) -> Result<SubjectState, VaultError> {
        Ok(self.db.log().subject(subject.as_str())?)
    }

    /// The customer's standing and revision. Consents read after it are at least as new as
    /// that revision, so a decision on them logged as decided on it is stale if they were newer.
    pub fn standing_and_revision(
        &self,
        subject: &SubjectId,
    ) -> Result<(SubjectState, u64), VaultError> {
        let owned = subject.as_str().to_owned();
        let row = self.db.read(
            "read subject",
            |c| customers::row_sqlite(c, subject.as_str()),
            move |c| customers::row_postgres(c, &owned),
        )?;
        let revision = customers::revision(&row);
        Ok((customers::subject_state(row)?, revision))
    }

    /// Unwraps the key of an active customer; erased and unknown customers are errors.
    pub fn unwrap_key(
        &self,
        subject: &SubjectId,
        state: SubjectState,
    ) -> Result<DataKey, VaultError> {
        match state {
            SubjectState::Active { wrapped_key } => self
                .keyring
                .unwrap(subject.as_str(), &wrapped_key)
                .map_err(|e| match e {
                    KeyringError::EpochDestroyed { epoch } => {
                        tracing::error!(subject = %subject, epoch, "data key is wrapped under a destroyed key epoch");
                        VaultError::KeyEpochDestroyed
                    }
                    e => {
                        tracing::error!(subject = %subject, error = %e, "data key failed to unwrap");
                        VaultError::Internal
                    }
                }),
            SubjectState::Erased { .. } => Err(VaultError::SubjectErased),
            SubjectState::Unknown => Err(VaultError::SubjectNotFound),
        }
    }

    /// The customer's data key; with `create`, a first write creates the customer.
    pub async fn data_key(
        &self,
        subject: &SubjectId,
        create: bool,
        now: i64,
    ) -> Result<DataKey, VaultError> {
        let mut attempts = 0;
        loop {
            match self.state(subject)? {
                state @ (SubjectState::Active { .. } | SubjectState::Erased { .. }) => {
                    return self.unwrap_key(subject, state);
                }
                SubjectState::Unknown if create && attempts < CREATE_ATTEMPTS => {
                    // Concurrent first writes may race; whichever key lands first is re-read above.
                    let key_epoch = key_epochs::current(&self.db, &self.keyring)?;
                    let wrapped_key = self
                        .keyring
                        .wrap(key_epoch, subject.as_str(), &DataKey::generate())
                        .map_err(|_| VaultError::Internal)?;
                    let change = CreateSubject {
                        subject: subject.as_str().to_owned(),
                        wrapped_key,
                        key_epoch: Some(key_epoch),
                        at: now,
                    };
                    self.journal
                        .submit(None, None, vec![Arc::new(change)], vec![])
                        .await?;
                    attempts += 1;
                }
                SubjectState::Unknown => return Err(VaultError::SubjectNotFound),
            }
        }
    }
}

/// One blind-index key per category declared `lookup = true`.
pub struct BlindIndexes(BTreeMap<CategoryKey, BlindIndexKey>);

impl BlindIndexes {
    /// The keys for `map`'s lookup categories, derived from the root key.
    pub fn new(map: &DataMap, root: &RootKey) -> BlindIndexes {
        BlindIndexes(
            map.categories()
                .filter(|c| c.lookup())
                .map(|c| (c.key().clone(), root.blind_index_key(c.key().as_str())))
                .collect(),
        )
    }

    /// The digest of `value` in `category`, if the category is indexed.
    pub fn digest(&self, category: &str, value: &str) -> Option<Vec<u8>> {
        let key = self.0.get(category)?;
        Some(key.index(normalise(category, value).as_bytes()).to_vec())
    }
}

/// Normalises a value before blind indexing, so lookups match however the value was typed.
pub(crate) fn normalise(category: &str, value: &str) -> String {
    if category.starts_with("user.contact.email") {
        value.trim().to_lowercase()
    } else {
        value.trim().to_owned()
    }
}

/// Collecting fields for a purpose.
pub struct Collection {
    map: Arc<DataMap>,
    db: Db,
    customers: Arc<Customers>,
    blind: Arc<BlindIndexes>,
    journal: Journal,
}

impl Collection {
    /// The use case over its parts.
    pub fn new(
        map: Arc<DataMap>,
        db: Db,
        customers: Arc<Customers>,
        blind: Arc<BlindIndexes>,
        journal: Journal,
    ) -> Collection {
        Collection {
            map,
            db,
            customers,
            blind,
            journal,
        }
    }

    /// Stores fields for a customer, collected for `purpose`.
    pub async fn collect(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        purpose_id: &str,
        fields: Vec<(String, Zeroizing<String>)>,
        now: i64,
    ) -> Result<LeafIndex, CollectError> {
        let key = principal.service()?;
        if !key.purposes.contains(purpose_id) {
            return Err(VaultError::PurposeNotPermitted(purpose_id.to_owned()).into());
        }
        let purpose = self
            .map
            .purpose(purpose_id)
            .ok_or_else(|| VaultError::UnknownPurpose(purpose_id.to_owned()))?;
        // A third party collects only where the purpose shares data with it, as it reads.
        if let Some(recipient) = key.recipient()
            && !purpose.allows_recipient(recipient)
        {
            return Err(VaultError::RecipientNotDeclared(recipient.to_owned()).into());
        }
        if fields.is_empty() || fields.len() > MAX_FIELDS {
            return Err(invalid(format!("send 1 to {MAX_FIELDS} fields")).into());
        }
        for (field, value) in &fields {
            if self.map.category(field).is_none() {
                return Err(CollectError::UnknownField(field.clone()));
            }
            if !purpose.needs(field) {
                return Err(CollectError::FieldNotNeeded {
                    field: field.clone(),
                    purpose: purpose.id().as_str().to_owned(),
                });
            }
            if value.len() > MAX_VALUE_LEN {
                return Err(invalid(format!(
                    "field `{field}` is longer than {MAX_VALUE_LEN} bytes"
                ))
                .into());
            }
        }
        let mut decided_on = self.decide_consent(key, subject, purpose, now)?;
        let dek = self.customers.data_key(subject, true, now).await?;
        let mut changes: Vec<Arc<dyn Change>> = Vec::with_capacity(fields.len() * 2);
        for (field, value) in &fields {
            changes.push(Arc::new(PutField {
                subject: subject.as_str().to_owned(),
                category: field.clone(),
                sealed: dek.seal(
                    subject.as_str(),
                    SealContext::Field(field),
                    value.as_bytes(),
                ),
            }));
            if let Some(digest) = self.blind.digest(field, value) {
                changes.push(Arc::new(PutBlindIndex {
                    subject: subject.as_str().to_owned(),
                    category: field.clone(),
                    digest,
                }));
            }
        }
        let kind = EventKind::Collected {
            purpose: purpose_id.to_owned(),
            fields: fields.iter().map(|(f, _)| f.clone()).collect(),
        };
        let sealed = self
            .journal
            .seal(Some(&dek), principal.actor(), subject, now, kind);
        let mut attempt = 1;
        loop {
            match self
                .journal
                .submit(
                    Some(subject),
                    decided_on,
                    changes.clone(),
                    vec![sealed.entry.clone()],
                )
                .await
            {
                Err(VaultError::ConsentChanged) if attempt < DECIDE_ATTEMPTS => {
                    attempt += 1;
                    decided_on = self.decide_consent(key, subject, purpose, now)?;
                }
                submitted => return Ok(submitted?[0]),
            }
        }
    }

    /// Whether `key` may collect for `purpose` as far as the customer's consent goes, and, if
    /// that rests on their consent, the revision it was decided on: the write applies only while
    /// it is still theirs, so a withdrawal between the two makes the collection decide again.
    fn decide_consent(
        &self,
        key: &ServiceKey,
        subject: &SubjectId,
        purpose: &Purpose,
        now: i64,
    ) -> Result<Option<u64>, CollectError> {
        if !purpose.legal_basis().needs_consent() {
            return Ok(None);
        }
        let (state, revision) = self.customers.standing_and_revision(subject)?;
        let records = match state {
            SubjectState::Active { .. } => consent::records(&self.db, subject)?,
            _ => Vec::new(),
        };
        let purpose_id = purpose.id().as_str();
        if consent_in_force(&records, purpose_id, key.recipient(), now) != ConsentState::Granted {
            return Err(CollectError::ConsentRequired(purpose_id.to_owned()));
        }
        Ok(Some(revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{EMAIL, Fixture, NOW, OPS};

    fn name() -> Vec<(String, Zeroizing<String>)> {
        vec![("user.name".to_owned(), Zeroizing::new("Ada".to_owned()))]
    }

    #[test]
    fn only_a_service_bound_to_the_purpose_collects_and_only_what_it_needs() {
        let f = Fixture::new();
        let service = f.service(&[OPS, EMAIL], false, false);
        let subject = SubjectId::parse("cus_a").unwrap();
        let collection = f.vault.collection();
        let collect = |by: &Principal, purpose: &str, fields| {
            f.run(collection.collect(by, &subject, purpose, fields, NOW))
        };
        assert!(matches!(
            collect(&f.admin, OPS, name()),
            Err(CollectError::Vault(VaultError::Forbidden(_)))
        ));
        assert!(matches!(
            collect(&service, "analytics.reporting", name()),
            Err(CollectError::Vault(VaultError::PurposeNotPermitted(_)))
        ));
        let bank = vec![(
            "user.financial.bank_account".to_owned(),
            Zeroizing::new("x".to_owned()),
        )];
        assert!(matches!(
            collect(&service, OPS, bank),
            Err(CollectError::FieldNotNeeded { .. })
        ));
        let email = vec![(
            "user.contact.email".to_owned(),
            Zeroizing::new("a@b.org".to_owned()),
        )];
        assert!(matches!(
            collect(&service, EMAIL, email),
            Err(CollectError::ConsentRequired(_))
        ));
        assert!(matches!(
            collect(&service, OPS, vec![]),
            Err(CollectError::Vault(VaultError::Invalid(_)))
        ));
        assert_eq!(
            f.vault.collection().db.log().subject("cus_a").unwrap(),
            SubjectState::Unknown,
            "nothing refused created the customer"
        );
        // The first leaves are the operator log's: the two keys' creation.
        assert_eq!(collect(&service, OPS, name()).unwrap(), LeafIndex::new(2));
        assert!(matches!(
            f.vault.collection().customers.state(&subject).unwrap(),
            SubjectState::Active { .. }
        ));
    }

    #[test]
    fn the_blind_index_normalises_emails_and_indexes_only_lookup_categories() {
        let f = Fixture::new();
        let blind = &f.vault.collection().blind;
        assert_eq!(
            blind.digest("user.contact.email", " Ada@Example.org "),
            blind.digest("user.contact.email", "ada@example.org")
        );
        assert_ne!(
            blind.digest("user.contact.email", "ada@example.org"),
            blind.digest("user.contact.email", "bob@example.org")
        );
        assert_eq!(blind.digest("user.name", "Ada"), None);
    }
}
