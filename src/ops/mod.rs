//! Staff and operator commands: `stats`, `requests list|show|resend|cancel`, `preferences list|set|unset`. Read-only queries and small, explicit
//! writes over one database connection; the running service does the sending. What staff read is Spanish, with
//! times in America/Asuncion; `--json` gives the same facts for scripts, with times in UTC (RFC 3339).

pub mod format;
pub use crate::present::mask;
pub mod preferences;
pub mod requests;
pub mod stats;

use std::process::ExitCode;

use clap::Subcommand;
use tokio_postgres::Client;

use crate::config::Settings;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("DATABASE_URL: requerido")]
    NoDatabaseUrl,
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("no se pudo escribir la salida JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<tokio_postgres::Error> for OpsError {
    fn from(e: tokio_postgres::Error) -> Self {
        OpsError::Db(DbError::from(e))
    }
}

/// `cantina-notify requests …`
#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// List requests, newest first (addresses masked unless --reveal).
    List(requests::ListArgs),
    /// Every column of one request, its history (attempts, provider answers, receipts, operator actions).
    Show {
        id: i64,
        /// Show addresses in full.
        #[arg(long)]
        reveal: bool,
        #[arg(long)]
        json: bool,
    },
    /// Put `Error` or `Omitido` requests back to `Pendiente` with fresh attempts (the running service sends them).
    Resend {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<i64>,
        /// Why, for the history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Mark `Pendiente` requests `Omitido` with the operator's reason (no fallback channel is tried after it).
    Cancel {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<i64>,
        /// Why (required): stored as `cancelado por operador: <reason>`.
        #[arg(long, required = true)]
        reason: String,
    },
}

/// One connection for a command, in UTC so timestamps read back unambiguously (formatting converts them).
pub async fn connect(settings: &Settings) -> Result<Client, OpsError> {
    let url = settings.database.url.as_ref().ok_or(OpsError::NoDatabaseUrl)?;
    let client = crate::db::connect(url.expose(), "cantina-notify-ops").await?;
    client.batch_execute("SET TimeZone = 'UTC'").await?;
    Ok(client)
}

/// `cantina-notify stats`.
pub async fn run_stats(settings: &Settings, since: &str, json: bool) -> Result<ExitCode, OpsError> {
    let since = format::parse_duration(since)?;
    let client = connect(settings).await?;
    let stats = stats::gather(&client, since).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print!("{}", format::terminal_safe(&stats::render(&stats)));
    }
    Ok(ExitCode::SUCCESS)
}

/// `cantina-notify requests …`: exit 1 when a resend or cancel refused any ID (the others are still processed).
pub async fn run_requests(settings: &Settings, command: RequestsCommand) -> Result<ExitCode, OpsError> {
    let mut client = connect(settings).await?;
    match command {
        RequestsCommand::List(args) => {
            let filter = args.filter()?;
            let rows = requests::list(&client, &filter).await?;
            if args.json {
                let out: Vec<_> = rows.iter().map(|r| r.to_json(args.reveal)).collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", format::terminal_safe(&requests::render_list(&rows, args.reveal)));
            }
            Ok(ExitCode::SUCCESS)
        }
        RequestsCommand::Show { id, reveal, json } => match requests::show(&client, id).await? {
            None => {
                eprintln!("#{id}: no existe esa solicitud");
                Ok(ExitCode::FAILURE)
            }
            Some(detail) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&detail.to_json(reveal))?);
                } else {
                    print!("{}", format::terminal_safe(&requests::render_show(&detail, reveal)));
                }
                Ok(ExitCode::SUCCESS)
            }
        },
        RequestsCommand::Resend { ids, reason } => {
            let who = requests::operator();
            let results = requests::resend(&mut client, &ids, reason.as_deref(), who.as_deref()).await?;
            Ok(report_actions(&results))
        }
        RequestsCommand::Cancel { ids, reason } => {
            let who = requests::operator();
            let results = requests::cancel(&mut client, &ids, &reason, who.as_deref()).await?;
            Ok(report_actions(&results))
        }
    }
}

/// `cantina-notify preferences …`: exit 1 on a bad argument or an unknown client (printed on stderr by `main`).
pub async fn run_preferences(
    settings: &Settings,
    command: preferences::PreferencesCommand,
) -> Result<ExitCode, OpsError> {
    let url = settings.database.url.as_ref().ok_or(OpsError::NoDatabaseUrl)?;
    let timeout = std::time::Duration::from_secs(settings.database.connect_timeout_seconds);
    let pool = crate::db::pool(url.expose(), 1, timeout)?;
    let client = pool.get().await.map_err(DbError::from)?;
    let out = preferences::run(&client, command, &settings.preferences, requests::operator()).await?;
    print!("{}", format::terminal_safe(&out));
    Ok(ExitCode::SUCCESS)
}

fn report_actions(results: &[requests::ActionResult]) -> ExitCode {
    let mut refused = false;
    for r in results {
        for w in &r.warnings {
            eprintln!("#{}: aviso: {w}", r.id);
        }
        match &r.outcome {
            Ok(done) => println!("#{}: {done}", r.id),
            Err(why) => {
                refused = true;
                eprintln!("#{}: rechazada: {why}", r.id);
            }
        }
    }
    if refused { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
