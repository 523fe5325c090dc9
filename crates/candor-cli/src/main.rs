//! The `candor` command: `init`, `serve`, `migrate`, `check`, `verify`, `fsck` and `witness`. It wires the crates
//! together and does nothing else.

mod home;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "candor",
    version,
    about = "Purpose-bound personal-data vault with a verifiable access log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; without `--database`, embedded SQLite in the home directory.
#[derive(clap::Args, Clone)]
struct DatabaseArgs {
    /// A PostgreSQL (or CockroachDB, YugabyteDB) URL, `postgres://user:password@host/db`, to keep
    /// the data there instead of in embedded SQLite (one node sequences it at a time).
    #[arg(long, env = "CANDOR_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// PostgreSQL reader connections per node (the writer has one more).
    #[arg(long, env = "CANDOR_DB_POOL_SIZE", default_value_t = 16)]
    db_pool_size: usize,
    /// PostgreSQL statement timeout, in milliseconds.
    #[arg(long, env = "CANDOR_DB_STATEMENT_TIMEOUT_MS", default_value_t = 10_000)]
    db_statement_timeout_ms: u64,
    /// How long to keep retrying the first PostgreSQL connection, in seconds.
    #[arg(long, env = "CANDOR_DB_CONNECT_RETRY_SECS", default_value_t = 30)]
    db_connect_retry_secs: u64,
    /// A PostgreSQL schema to keep Candor's tables in (created if missing).
    #[arg(long, env = "CANDOR_DB_SCHEMA")]
    db_schema: Option<String>,
    /// On PostgreSQL, how long this node's claim to sequence the log lasts unrenewed, in
    /// milliseconds: after a crash, the next node takes over within about this.
    #[arg(long, env = "CANDOR_SEQUENCER_LEASE_MS", default_value_t = 3_000)]
    sequencer_lease_ms: u64,
}

impl DatabaseArgs {
    fn database(&self) -> home::Database {
        match &self.database {
            None => home::Database::Embedded,
            Some(url) => home::Database::Postgres(
                candor_store::PgSettings {
                    url: url.clone(),
                    pool_size: self.db_pool_size,
                    statement_timeout: std::time::Duration::from_millis(
                        self.db_statement_timeout_ms,
                    ),
                    connect_retry: std::time::Duration::from_secs(self.db_connect_retry_secs),
                    schema: self.db_schema.clone(),
                },
                std::time::Duration::from_millis(self.sequencer_lease_ms),
            ),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a Candor home: sample data map, root key, log signing key, database and admin key.
    Init {
        /// The directory to create (kept as is if it already holds a datamap.toml).
        #[arg(long, default_value = "candor-data")]
        dir: PathBuf,
        /// The log's origin, the name its checkpoints and key carry.
        #[arg(long)]
        origin: Option<String>,
        /// Print what was created as JSON (includes the admin key: keep it safe).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Replace a lost or leaked admin key: make a new one and revoke every earlier one, in one
    /// commit that the operator log records. Needs the home (its root key); run it while no
    /// server sequences the log (stop `candor serve` first).
    AdminKey {
        /// The Candor home.
        #[arg(long, default_value = "candor-data")]
        dir: PathBuf,
        /// Print `{"admin_key": …}` for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Apply pending database migrations and exit (serve also applies them at start-up).
    Migrate {
        /// The Candor home (its `candor.db` unless `--database` is given).
        #[arg(long, default_value = "candor-data")]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Serve the API.
    Serve {
        /// The Candor home made by `init`.
        #[arg(long, default_value = "candor-data")]
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Run `init` first if the directory is not yet a Candor home.
        #[arg(long)]
        init: bool,
        /// A witness to cosign checkpoints, as `URL=VKEY`; repeat for several. With witnesses,
        /// customers are shown only checkpoints that a quorum of them cosigned.
        #[arg(long = "witness", value_name = "URL=VKEY")]
        witnesses: Vec<String>,
        /// How many witnesses must cosign (default: all).
        #[arg(long)]
        witness_quorum: Option<usize>,
        /// Join a cluster of nodes sharing one PostgreSQL database; this is the URL the other
        /// nodes reach this one at (`http://10.0.0.5:8080`; a port of 0 stands for the port
        /// `--listen` bound). One node sequences the log and the others hand their writes to it;
        /// if it dies, another takes over within the lease.
        #[arg(
            long,
            env = "CANDOR_ADVERTISE_URL",
            requires = "database",
            value_name = "URL"
        )]
        advertise_url: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        signin: SigninArgs,
        #[command(flatten)]
        connections: ConnectionArgs,
        #[command(flatten)]
        epochs: EpochArgs,
    },
    /// Run a C2SP tlog-witness for other parties' logs: cosign each checkpoint that extends the
    /// last one cosigned, refuse anything else.
    Witness {
        /// Where the witness keeps its key (`witness.key`, `witness.vkey`) and each log's size.
        #[arg(long, default_value = "candor-witness")]
        dir: PathBuf,
        /// The witness's name, used when its key is first created.
        #[arg(long)]
        name: Option<String>,
        /// The public key of a log to witness; repeat for several.
        #[arg(long = "log", value_name = "VKEY")]
        logs: Vec<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
    },
    /// Validate a data map and report the line of the first problem.
    Check {
        /// The data map file.
        file: PathBuf,
    },
    /// Verify a C2SP transparency log offline: checkpoint signature, cosignatures, tiles,
    /// a receipt and its entry, and consistency with the checkpoint seen last time.
    Verify(verify::VerifyArgs),
    /// Reread the whole stored log, recompute every hash and root, check every stored checkpoint.
    Fsck {
        /// The Candor home.
        #[arg(long, default_value = "candor-data")]
        dir: PathBuf,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CANDOR_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("candor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init {
            dir,
            origin,
            json,
            db,
        } => {
            let created = home::init(&dir, origin.as_deref(), &db.database())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created.to_json())?);
            } else {
                created.print_human();
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            dir,
            listen,
            init,
            witnesses,
            witness_quorum,
            advertise_url,
            db,
            signin,
            connections,
            epochs,
        } => {
            let database = db.database();
            if init && !home::is_initialised(&dir) {
                home::init(&dir, None, &database)?.print_human();
            }
            let witnesses = witnesses
                .iter()
                .map(|w| parse_witness(w))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let quorum = witness_quorum.unwrap_or(witnesses.len());
            if quorum > witnesses.len() || (quorum == 0 && !witnesses.is_empty()) {
                anyhow::bail!(
                    "--witness-quorum must be 1 to {}, the number of witnesses",
                    witnesses.len()
                );
            }
            if let Some(url) = &advertise_url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                anyhow::bail!("--advertise-url must be an http:// or https:// URL");
            }
            serve(
                dir,
                &database,
                listen,
                advertise_url.as_deref(),
                (witnesses, quorum),
                signin,
                Policies {
                    limits: connections.limits(),
                    epochs: epochs.policy(),
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Witness {
            dir,
            name,
            logs,
            listen,
        } => {
            let logs = logs
                .iter()
                .map(|l| {
                    candor_log::NoteVerifier::parse(l)
                        .map_err(|e| anyhow::anyhow!("--log {l}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if logs.is_empty() {
                anyhow::bail!("name at least one --log to witness");
            }
            let signer = home::witness_key(&dir, name.as_deref())?;
            let vkey = signer.verifier().to_vkey();
            let witness = candor_http::witness::Witness::new(signer, logs, dir.join("logs"))?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                tracing::info!(address = %listener.local_addr()?, key = %vkey, "witness is serving");
                candor_http::witness::serve(listener, Arc::new(witness), shutdown_signal()).await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { file } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            match candor_core::DataMap::parse(&source) {
                Ok(map) => {
                    println!(
                        "{}: ok (version {}: {} categories, {} purposes, {} recipients)",
                        file.display(),
                        map.version(),
                        map.categories().count(),
                        map.purposes().count(),
                        map.recipients().count()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in errors.all() {
                        eprintln!("{}:{}:{}: {}", file.display(), e.line, e.column, e.message);
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Verify(args) => Ok(match verify::run(&args) {
            Ok(()) => {
                println!("verified");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("FAIL  {e:#}");
                ExitCode::FAILURE
            }
        }),
        Command::AdminKey { dir, json, db } => {
            let token = home::replace_admin_key(&dir, &db.database())?;
            if json {
                println!("{}", serde_json::json!({ "admin_key": *token }));
            } else {
                println!("new admin key (shown once; every earlier admin key is revoked):");
                println!("  {}", *token);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { dir, db } => {
            home::migrate(&dir, &db.database())?;
            println!("the database schema is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Fsck { dir, db } => {
            let (store, log_key) = home::open_log(&dir, &db.database())?;
            Ok(match candor_vault::fsck::fsck(&*store, &log_key, None) {
                Ok(r) => {
                    println!(
                        "ok: {} entries rehashed, {} tree hashes compared, {} checkpoints checked",
                        r.entries, r.hashes, r.checkpoints
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("FAIL: {e}");
                    ExitCode::FAILURE
                }
            })
        }
    }
}

fn parse_witness(spec: &str) -> anyhow::Result<candor_http::witnessing::WitnessEndpoint> {
    let (url, vkey) = spec
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--witness {spec}: expected URL=VKEY"))?;
    let key = candor_log::WitnessVerifier::parse(vkey)
        .map_err(|e| anyhow::anyhow!("--witness {spec}: {e}"))?;
    Ok(candor_http::witnessing::WitnessEndpoint {
        url: url.to_owned(),
        key,
    })
}

/// How the server bounds its clients and keeps its key epochs.
struct Policies {
    limits: candor_http::ConnectionLimits,
    epochs: candor_vault::EpochPolicy,
}

fn serve(
    dir: PathBuf,
    database: &home::Database,
    listen: SocketAddr,
    advertise: Option<&str>,
    (witnesses, quorum): (Vec<candor_http::witnessing::WitnessEndpoint>, usize),
    signin: SigninArgs,
    Policies { limits, epochs }: Policies,
) -> anyhow::Result<()> {
    // Bound before the vault opens, so a cluster node that listens on port 0 can advertise the
    // port it got.
    let listener =
        std::net::TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let advertise = advertise.map(|url| match url.strip_suffix(":0") {
        Some(host) => format!("{host}:{}", bound.port()),
        None => url.to_owned(),
    });
    let mut vault = home::open(&dir, database, advertise.as_deref())?;
    if !witnesses.is_empty() {
        vault = vault.with_witness_policy(candor_vault::WitnessPolicy {
            witnesses: witnesses.iter().map(|w| w.key.clone()).collect(),
            quorum,
        });
    }
    let signin = signin.methods(vault.data_map().controller_name())?;
    vault.key_epochs().set_policy(epochs);
    let vault = Arc::new(vault);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        // Before serving, so a home that predates epochs has one before its first request.
        candor_http::epoch_checks::check_once(&vault, home::now())
            .await
            .map_err(|e| anyhow::anyhow!("checking the key epochs: {e}"))?;
        tokio::spawn(candor_http::epoch_checks::run(vault.clone()));
        if !witnesses.is_empty() {
            tokio::spawn(candor_http::witnessing::run(
                vault.clone(),
                witnesses,
                quorum,
            ));
        }
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tracing::info!(
            address = %bound,
            origin = vault.log_key().name(),
            sequencer = vault.sequencing().is_sequencer(),
            "candor is serving"
        );
        candor_http::serve(listener, vault.clone(), signin, limits, shutdown_signal()).await?;
        // Drained: no more writes. The next node need not wait for the claim to lapse.
        vault
            .sequencing()
            .release()
            .map_err(|e| anyhow::anyhow!("releasing the log: {e}"))?;
        anyhow::Ok(())
    })
}

/// How many clients are served at once, and how long each may take.
#[derive(clap::Args, Debug)]
struct ConnectionArgs {
    /// Connections served at once; more wait to be accepted until one ends. Keep it well under
    /// the process's file descriptor limit (`ulimit -n`).
    #[arg(long, env = "CANDOR_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a client may take to send a request's head, and a connection may sit idle
    /// between requests, before it is closed.
    #[arg(long, env = "CANDOR_HEADER_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_secs: u64,
    /// Seconds a client may take to send a request's body, counted from its head (408 after).
    #[arg(long, env = "CANDOR_BODY_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_secs: u64,
}

impl ConnectionArgs {
    fn limits(&self) -> candor_http::ConnectionLimits {
        candor_http::ConnectionLimits {
            max_connections: self.max_connections.max(1),
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
            body_timeout: std::time::Duration::from_secs(self.body_timeout_secs),
        }
    }
}

/// How often tenant key epochs roll and how long retired ones are kept: a database copy taken
/// before an erasure stops opening the customer's data at most epoch length + retention + one
/// check interval after it.
#[derive(clap::Args, Debug)]
struct EpochArgs {
    /// Days from one key epoch's start to the next's.
    #[arg(long, env = "CANDOR_KEY_EPOCH_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    key_epoch_days: u32,
    /// Days the database's backups are kept: a retired epoch is destroyed this long after it
    /// stopped wrapping live keys, so every backup still kept opens. Keep the keyring's own
    /// backups no longer than this.
    #[arg(long, env = "CANDOR_BACKUP_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3650))]
    backup_retention_days: u32,
    /// Seconds between the checks that roll, rewrap, retire and destroy epochs.
    #[arg(long, env = "CANDOR_KEY_EPOCH_CHECK_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    key_epoch_check_secs: u32,
}

impl EpochArgs {
    fn policy(&self) -> candor_vault::EpochPolicy {
        candor_vault::EpochPolicy {
            epoch_secs: i64::from(self.key_epoch_days) * 86_400,
            retention_secs: i64::from(self.backup_retention_days) * 86_400,
            check_secs: i64::from(self.key_epoch_check_secs),
        }
    }
}

/// How customers sign in: with the business's OpenID Connect provider, and with one-time links
/// Candor mails them.
#[derive(clap::Args, Debug)]
struct SigninArgs {
    /// The business's OpenID Connect provider (its issuer URL, https), through which customers
    /// sign in; its keys are found through its discovery document.
    #[arg(
        long,
        env = "CANDOR_OIDC_ISSUER",
        value_name = "URL",
        requires = "oidc_audience"
    )]
    oidc_issuer: Option<String>,
    /// Candor's client id at the provider: the audience its ID tokens must name.
    #[arg(long, env = "CANDOR_OIDC_AUDIENCE", value_name = "CLIENT_ID")]
    oidc_audience: Option<String>,
    /// The ID token claim that holds the Candor customer id.
    #[arg(long, env = "CANDOR_OIDC_CUSTOMER_CLAIM", default_value = "sub")]
    oidc_customer_claim: String,
    /// The mail server sign-in links go out through (`smtp://host:port`, `smtps://host`, or
    /// `smtp://host?tls=required`); with it customers may sign in by a link sent to their
    /// verified address.
    #[arg(long, env = "CANDOR_SMTP_URL", value_name = "URL", requires_all = ["mail_from", "public_url"])]
    smtp_url: Option<String>,
    /// The sender of sign-in links (`Shop Privacy <privacy@shop.example>`).
    #[arg(long, env = "CANDOR_MAIL_FROM", value_name = "MAILBOX")]
    mail_from: Option<String>,
    /// Where customers reach Candor's privacy center, for the links (`https://privacy.shop.example`).
    #[arg(long, env = "CANDOR_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
}

impl SigninArgs {
    fn methods(self, business: &str) -> anyhow::Result<candor_http::SigninMethods> {
        let email = match (self.smtp_url, self.mail_from, self.public_url) {
            (Some(smtp_url), Some(from), Some(public_url)) => Some(Arc::new(
                candor_http::mail::Mailer::new(candor_http::mail::MailSettings {
                    smtp_url,
                    from,
                    public_url,
                    business: business.to_owned(),
                })?,
            )),
            (None, _, _) => None,
            _ => anyhow::bail!("--smtp-url needs --mail-from and --public-url"),
        };
        let oidc = match (self.oidc_issuer, self.oidc_audience) {
            (Some(issuer), Some(audience)) => Some(candor_http::oidc::OidcProvider::new(
                candor_http::oidc::OidcSettings {
                    issuer,
                    audience,
                    customer_claim: self.oidc_customer_claim,
                },
            )?),
            (None, None) => None,
            _ => anyhow::bail!("--oidc-issuer and --oidc-audience go together"),
        };
        Ok(candor_http::SigninMethods { oidc, email })
    }
}

/// Completes on SIGINT or SIGTERM, so the server drains in-flight requests before exiting.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
