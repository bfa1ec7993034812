//! The command line: `run`, `migrate`, `demo`, `check-config`, `healthcheck`. `main` only calls [`main`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::Application;
use crate::config::{LoadOptions, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "cantina-notify",
    version,
    about = "Notices for Cantina Tita parents: recharges, low balances, blocked cards"
)]
pub struct Cli {
    /// TOML configuration file (also CANTINA_NOTIFY_CONFIG). Environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: listen for events, create requests, dispatch them, serve /metrics /healthz /readyz.
    Run,
    /// Apply the service's migrations (idempotent; safe from several replicas at once).
    Migrate {
        /// Also create the Cantina Tita tables (for an empty dev or test database).
        #[arg(long)]
        reference_schema: bool,
    },
    /// Show the whole flow on sample data: a recharge and a low balance notified through the console channel.
    Demo,
    /// Print the effective configuration (secrets masked) and any problems with it.
    CheckConfig,
    /// Exit 0 if the service at CANTINA__HTTP__ADDR answers /healthz, 1 otherwise (container HEALTHCHECK).
    Healthcheck {
        /// Address to check instead of the configured one.
        #[arg(long)]
        addr: Option<String>,
        #[arg(long, default_value_t = 3)]
        timeout_seconds: u64,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&LoadOptions::from_process(cli.config.clone())).context("loading configuration")?;
    crate::telemetry::init(&settings.log.format);
    match cli.command {
        Command::Run => run(settings).await,
        Command::Migrate { reference_schema } => migrate(settings, reference_schema).await,
        Command::Demo => crate::demo::run(settings).await,
        Command::CheckConfig => Ok(check_config(&settings)),
        Command::Healthcheck { addr, timeout_seconds } => Ok(healthcheck(&settings, addr, timeout_seconds).await),
    }
}

async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    // Handlers first: a SIGTERM that arrives while we start must still mean a graceful stop.
    let shutdown = CancellationToken::new();
    let signals = Signals::install()?;
    tokio::spawn(signals.cancel(shutdown.clone()));
    let app = Application::build(settings, None).await?;
    app.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (Kubernetes) and Ctrl-C, registered before anything else starts.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    pub async fn cancel(mut self, token: CancellationToken) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("interrupt received"),
        }
        token.cancel();
    }
}

async fn migrate(settings: Settings, reference_schema: bool) -> anyhow::Result<ExitCode> {
    let url = settings.database.url.as_ref().context("DATABASE_URL: required")?;
    let mut client = crate::db::connect(url.expose(), "cantina-notify-migrate").await?;
    let report = crate::migrate::migrate(&mut client, reference_schema).await?;
    if report.reference_schema {
        println!("reference schema: ensured");
    }
    println!("migrations applied: {:?}; already present: {}", report.applied, report.already);
    Ok(ExitCode::SUCCESS)
}

fn check_config(settings: &Settings) -> ExitCode {
    match toml::to_string_pretty(settings) {
        Ok(s) => println!("{s}"),
        Err(e) => println!("(cannot print the configuration: {e})"),
    }
    match settings.validate(true) {
        Ok(_) => {
            println!("# configuration OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("# {e}");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(settings: &Settings, addr: Option<String>, timeout_seconds: u64) -> ExitCode {
    let addr = addr.unwrap_or_else(|| settings.http.addr.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]"));
    match crate::http::get_url(&addr, "/healthz", Duration::from_secs(timeout_seconds)).await {
        Ok((200, _)) => ExitCode::SUCCESS,
        Ok((status, _)) => {
            eprintln!("unhealthy: /healthz answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
