//! The `candor` command: `init`, `serve` and `check`. It wires the crates together and does
//! nothing else.

mod home;

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
    },
    /// Validate a data map and report the line of the first problem.
    Check {
        /// The data map file.
        file: PathBuf,
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
        Command::Init { dir, origin, json } => {
            let created = home::init(&dir, origin.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created.to_json())?);
            } else {
                created.print_human();
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { dir, listen, init } => {
            if init && !home::is_initialised(&dir) {
                home::init(&dir, None)?.print_human();
            }
            serve(dir, listen)?;
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
                        map.version,
                        map.categories.len(),
                        map.purposes.len(),
                        map.recipients.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}:{}:{}: {}", file.display(), e.line, e.column, e.message);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn serve(dir: PathBuf, listen: SocketAddr) -> anyhow::Result<()> {
    let vault = Arc::new(home::open(&dir)?);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        tracing::info!(
            address = %listener.local_addr()?,
            origin = vault.log_key().name(),
            "candor is serving"
        );
        candor_http::serve(listener, vault, shutdown_signal()).await?;
        anyhow::Ok(())
    })
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
