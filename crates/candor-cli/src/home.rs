//! The Candor home directory and what lives in it.
//!
//! ```text
//! DIR/datamap.toml   the data map (kept if present before init)
//! DIR/root.key       root key, base64, mode 0600 (absent when CANDOR_ROOT_KEY is set)
//! DIR/keyring        the tenant key epochs' chain, sealed under the root key, mode 0600: back
//!                    it up apart from the database, kept no longer than the database's backups
//! DIR/log.key        the log's C2SP signer key, mode 0600
//! DIR/candor.db      SQLite: ciphertexts, consents, log (plus -wal and -shm files), unless
//!                    the data lives in PostgreSQL (`--database`)
//! DIR/candor.db.lock held (an OS lock) by the one process that sequences the SQLite log
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use candor_core::{DataMap, SAMPLE_DATA_MAP};
use candor_crypto::RootKey;
use candor_log::{NoteSigner, NoteVerifier, WitnessSigner};
use candor_store::{Db, LogStore, PgSettings, PgStore, SqliteStore};
use candor_vault::{Keyring, SequencerClaim, Vault};
use zeroize::Zeroizing;

const DATA_MAP: &str = "datamap.toml";
const ROOT_KEY: &str = "root.key";
const LOG_KEY: &str = "log.key";
const KEYRING: &str = "keyring";
const DATABASE: &str = "candor.db";
/// Overrides `root.key`, for deployments that inject secrets through the environment.
const ROOT_KEY_ENV: &str = "CANDOR_ROOT_KEY";

/// Where the data lives: embedded SQLite in the home directory, or a PostgreSQL server.
#[derive(Debug, Clone)]
pub enum Database {
    /// `DIR/candor.db`.
    Embedded,
    /// A PostgreSQL server, and how long this node's claim to sequence its log lasts unrenewed.
    Postgres(PgSettings, Duration),
}

impl Database {
    /// This process's claim to sequence the log: unique per process, and on PostgreSQL lapsing
    /// when unrenewed (on SQLite an operating-system lock, released when the process ends).
    fn claim(&self) -> SequencerClaim {
        self.claim_as(&format!("pid {}", std::process::id()))
    }

    /// The claim of a process known as `name` (in a cluster, the URL its peers reach it at,
    /// which they read from the claim); a random suffix keeps two processes apart even if
    /// they were given one name.
    fn claim_as(&self, name: &str) -> SequencerClaim {
        let nonce: String = candor_log::commitment::fresh_nonce()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let ttl = match self {
            // An operating-system lock: it never lapses while its process lives, so the lifetime
            // only bounds how long a second process waits before it gives up.
            Database::Embedded => Duration::from_secs(1),
            Database::Postgres(_, ttl) => *ttl,
        };
        SequencerClaim {
            holder: format!("{name} ({nonce})"),
            ttl,
        }
    }

    fn open(&self, dir: &Path) -> anyhow::Result<Db> {
        Ok(match self {
            Database::Embedded => Db::Sqlite(Arc::new(SqliteStore::open(
                &dir.join(DATABASE),
                &candor_vault::schema(),
            )?)),
            // The error names the operation and the driver's cause, never the URL.
            Database::Postgres(settings, _) => {
                Db::Postgres(Arc::new(PgStore::open(settings, &candor_vault::schema())?))
            }
        })
    }
}

/// Has `init` already run in `dir`? (The log key is made by `init` whatever the database.)
pub fn is_initialised(dir: &Path) -> bool {
    dir.join(LOG_KEY).exists()
}

/// Applies pending schema migrations and returns; a newer schema is an error.
pub fn migrate(dir: &Path, database: &Database) -> anyhow::Result<()> {
    database.open(dir).map(drop)
}

/// What `init` made.
pub struct Created {
    dir: String,
    origin: String,
    admin_key: Zeroizing<String>,
    log_public_key: String,
    root_key_file: Option<String>,
}

impl Created {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "dir": self.dir,
            "origin": self.origin,
            "admin_key": *self.admin_key,
            "log_public_key": self.log_public_key,
            "root_key_file": self.root_key_file,
        })
    }

    pub fn print_human(&self) {
        println!("Initialised a Candor home in {}", self.dir);
        println!();
        println!("  data map        {}/{DATA_MAP}", self.dir);
        match &self.root_key_file {
            Some(f) => println!("  root key        {f} (mode 0600; back it up, never commit it)"),
            None => println!("  root key        from ${ROOT_KEY_ENV}"),
        }
        println!("  log origin      {}", self.origin);
        println!("  log public key  {}", self.log_public_key);
        println!();
        println!("Admin key (shown once; create service keys with it via POST /v1/keys):");
        println!("  {}", *self.admin_key);
    }
}

fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

/// Reads a secret file, refusing one that others may read (as ssh does).
fn read_secret(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    refuse_if_shared(path)?;
    Ok(Zeroizing::new(std::fs::read_to_string(path)?))
}

/// Refuses a secret file that others may read.
fn refuse_if_shared(path: &Path) -> anyhow::Result<()> {
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by others (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

fn root_key(dir: &Path) -> anyhow::Result<RootKey> {
    if let Ok(text) = std::env::var(ROOT_KEY_ENV) {
        let text = Zeroizing::new(text);
        return RootKey::from_base64(&text).context(format!("${ROOT_KEY_ENV} is not a root key"));
    }
    let text = read_secret(&dir.join(ROOT_KEY))?;
    RootKey::from_base64(&text).context("root.key is not a root key")
}

fn data_map(dir: &Path) -> anyhow::Result<DataMap> {
    let path = dir.join(DATA_MAP);
    let source =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    DataMap::parse(&source).map_err(|errors| {
        let lines: Vec<String> = errors
            .all()
            .iter()
            .map(|e| format!("{}:{e}", path.display()))
            .collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })
}

/// Creates a Candor home in `dir`.
pub fn init(dir: &Path, origin: Option<&str>, database: &Database) -> anyhow::Result<Created> {
    if is_initialised(dir) {
        bail!("{} is already a Candor home", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if !dir.join(DATA_MAP).exists() {
        std::fs::write(dir.join(DATA_MAP), SAMPLE_DATA_MAP)?;
    }
    let map = data_map(dir)?;

    let root_key_file = if std::env::var_os(ROOT_KEY_ENV).is_some() {
        None
    } else {
        write_secret(&dir.join(ROOT_KEY), &RootKey::generate().to_base64())?;
        Some(dir.join(ROOT_KEY).display().to_string())
    };
    let root = root_key(dir)?;

    let origin = match origin {
        Some(o) => o.to_owned(),
        None => {
            let suffix: String = candor_log::commitment::fresh_nonce()[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("candor.local/{suffix}")
        }
    };
    let signer = NoteSigner::generate(&origin).context("invalid origin")?;
    let log_public_key = signer.verifier().to_vkey();
    write_secret(&dir.join(LOG_KEY), &signer.to_skey())?;

    let store = database.open(dir)?;
    let keyring = keyring(dir, &store, &root)?;
    let vault = Vault::open(store, map, &root, keyring, signer, &database.claim())
        .map_err(|e| anyhow::anyhow!("opening the vault: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let admin = runtime
        .block_on(vault.keys().create_admin_key(now()))
        .map_err(|e| anyhow::anyhow!("creating the admin key: {e}"))?;
    runtime
        .block_on(vault.key_epochs().check(now()))
        .map_err(|e| anyhow::anyhow!("starting the first key epoch: {e}"))?;
    // `serve` may start right after: it must not wait for this process's claim to lapse.
    vault
        .sequencing()
        .release()
        .map_err(|e| anyhow::anyhow!("releasing the log: {e}"))?;
    Ok(Created {
        dir: dir.display().to_string(),
        origin,
        admin_key: admin.token,
        log_public_key,
        root_key_file,
    })
}

/// Replaces the admin key of an initialised home, revoking every earlier one; the new key's
/// token is returned, to be shown once.
pub fn replace_admin_key(dir: &Path, database: &Database) -> anyhow::Result<Zeroizing<String>> {
    let vault = open(dir, database, None)
        .context("opening the home (a server sequencing this log must be stopped first)")?;
    let admin = tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(vault.keys().replace_admin_key(now()))
        .map_err(|e| anyhow::anyhow!("replacing the admin key: {e}"))?;
    vault
        .sequencing()
        .release()
        .map_err(|e| anyhow::anyhow!("releasing the log: {e}"))?;
    Ok(admin.token)
}

/// Opens the vault of an initialised home. With `advertise` (the URL its peers reach this
/// process at), it is one node of a cluster on a shared database: it sequences the log if no
/// other node does, and otherwise hands its writes to the one that does.
pub fn open(dir: &Path, database: &Database, advertise: Option<&str>) -> anyhow::Result<Vault> {
    if !is_initialised(dir) {
        bail!(
            "{} is not a Candor home; run `candor init --dir {}` first",
            dir.display(),
            dir.display()
        );
    }
    let map = data_map(dir)?;
    let root = root_key(dir)?;
    let skey = read_secret(&dir.join(LOG_KEY))?;
    let signer = NoteSigner::parse(skey.trim()).context("log.key is not a signer key")?;
    let store = database.open(dir)?;
    let keyring = keyring(dir, &store, &root)?;
    match advertise {
        None => Vault::open(store, map, &root, keyring, signer, &database.claim()),
        Some(url) => {
            let forwarder = Arc::new(candor_http::cluster::HttpForwarder::new(root.node_key()));
            let claim = database.claim_as(url);
            Vault::open_in_cluster(store, map, &root, keyring, signer, &claim, forwarder)
        }
    }
    .map_err(|e| anyhow::anyhow!("opening the vault: {e}"))
}

/// The home's keyring, made on first use; a home whose keys already hang off a keyring that is
/// missing is refused rather than given a new one that opens none of them.
fn keyring(dir: &Path, store: &Db, root: &RootKey) -> anyhow::Result<Keyring> {
    let path = dir.join(KEYRING);
    if path.exists() {
        refuse_if_shared(&path)?;
        return Keyring::open(&path, root).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let in_use = candor_vault::key_epochs::in_use(store)
        .map_err(|e| anyhow::anyhow!("reading the key epochs: {e}"))?;
    if in_use {
        bail!(
            "{} is missing, and this database's customer keys are wrapped under its epochs: \
             restore it from its backup (a new keyring would open none of them)",
            path.display()
        );
    }
    tracing::info!(path = %path.display(), "created the keyring for tenant key epochs");
    Keyring::create(&path, root).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Opens only the log of an initialised home: its store and the log's public key. `fsck` uses
/// this, because the vault itself refuses to start on a tree that disagrees with its checkpoint.
pub fn open_log(
    dir: &Path,
    database: &Database,
) -> anyhow::Result<(Arc<dyn LogStore>, NoteVerifier)> {
    if !is_initialised(dir) {
        bail!("{} is not a Candor home", dir.display());
    }
    let skey = read_secret(&dir.join(LOG_KEY))?;
    let signer = NoteSigner::parse(skey.trim()).context("log.key is not a signer key")?;
    let store = database.open(dir)?.log();
    Ok((store, signer.verifier()))
}

/// The witness key in `dir`, created (named `name`) on first use, with its public key beside it.
pub fn witness_key(dir: &Path, name: Option<&str>) -> anyhow::Result<WitnessSigner> {
    let path = dir.join("witness.key");
    if path.exists() {
        let skey = read_secret(&path)?;
        return WitnessSigner::parse(skey.trim()).context("witness.key is not a witness key");
    }
    let name = name.context("the first run needs --name for the witness key")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let signer = WitnessSigner::generate(name).context("invalid witness name")?;
    write_secret(&path, &signer.to_skey())?;
    std::fs::write(
        dir.join("witness.vkey"),
        format!("{}\n", signer.verifier().to_vkey()),
    )?;
    Ok(signer)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
