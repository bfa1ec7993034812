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
        /// Then set this runtime role's privileges (sql/grants/runtime.sql); overrides CANTINA__DATABASE__RUNTIME_ROLE.
        #[arg(long, value_name = "ROLE")]
        grant_to: Option<String>,
    },
    /// Show the whole flow on sample data: a recharge and a low balance notified through the console channel.
    Demo,
    /// Print the effective configuration (secrets masked) and any problems with it.
    CheckConfig,
    /// Create one sweep's requests now (saldo_bajo, cuenta_pendiente, recordatorio_deuda, tarjeta_por_vencer, or the
    /// opt-in consumo_realizado and resumen_consumos; saldo_bajo, recordatorio_deuda and tarjeta_por_vencer all send
    /// the families' daily message of whatever is due), deduplicated against the scheduled runs and itself, and exit;
    /// the running service sends them. `limpieza` runs the clean-up now
    /// (CANTINA__RETENTION__…) and prints what it deleted; `resumen_diario` emails yesterday's staff summary now
    /// to CANTINA__RESUMEN_DIARIO__DESTINATARIOS (outside the run ledger) and prints to whom (masked).
    Sweep {
        /// saldo_bajo, cuenta_pendiente, recordatorio_deuda, tarjeta_por_vencer, limpieza, resumen_diario,
        /// consumo_realizado or resumen_consumos.
        kind: String,
    },
    /// Send one rendered sample through the configured provider and print its answer (checks credentials).
    SendTest {
        /// email, sms, whatsapp or portal.
        #[arg(long)]
        channel: String,
        /// Email address, phone number (local or E.164), or for the portal the client id (id_cliente).
        #[arg(long)]
        to: String,
        /// Notification type of the sample.
        #[arg(long = "type", default_value = "recarga_exitosa")]
        kind: String,
    },
    /// Pause or resume a channel in every running replica (stored in the database), or list each channel's state.
    Channel {
        #[command(subcommand)]
        action: crate::operator_pauses::ChannelCommand,
    },
    /// Counts by type, channel and state over the period, success ratio and queue per channel, the oldest pending
    /// request, each channel's state (as `channel list` shows it) and the last error per channel.
    Stats {
        /// Period, by creation time: 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// Machine-readable output (stable keys, UTC times).
        #[arg(long)]
        json: bool,
    },
    /// List, inspect, resend or cancel notification requests.
    Requests {
        #[command(subcommand)]
        action: crate::ops::RequestsCommand,
    },
    /// List, set or unset a client's explicit notice preferences per type and channel (they win over the portal's
    /// and the defaults; consumo_realizado and resumen_consumos are sent only where they are set on).
    Preferences {
        #[command(subcommand)]
        action: crate::ops::preferences::PreferencesCommand,
    },
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
    let result = runtime.block_on(async {
        let result = dispatch(cli).await;
        // The commands' clients are dropped by now: let their sessions end before the process does.
        crate::db::finish_connections(Duration::from_secs(2)).await;
        result
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // Printed once, not logged too: the log may not be set up yet (a configuration error) and a filter in
            // RUST_LOG could hide it; stderr always shows it.
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: a layer's message often already quotes its source (the database
/// errors do), which `{:#}` would print a second time.
fn chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&LoadOptions::from_process(cli.config.clone())).context("loading configuration")?;
    crate::telemetry::init(&settings.log.format);
    if !matches!(cli.command, Command::Run | Command::Demo) {
        crate::db::close_pooled_connections_gracefully();
    }
    match cli.command {
        Command::Run => run(settings).await,
        Command::Migrate { reference_schema, grant_to } => migrate(settings, reference_schema, grant_to).await,
        Command::Demo => crate::demo::run(settings).await,
        Command::CheckConfig => Ok(check_config(&settings).await),
        Command::Sweep { kind } => sweep(settings, &kind).await,
        Command::SendTest { channel, to, kind } => send_test(&settings, &channel, &to, &kind).await,
        Command::Channel { action } => crate::operator_pauses::run_cli(&settings, &action).await,
        Command::Stats { since, json } => Ok(crate::ops::run_stats(&settings, &since, json).await?),
        Command::Requests { action } => Ok(crate::ops::run_requests(&settings, action).await?),
        Command::Preferences { action } => Ok(crate::ops::run_preferences(&settings, action).await?),
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

async fn sweep(settings: Settings, kind: &str) -> anyhow::Result<ExitCode> {
    use crate::scheduler::SweepKind;
    let kind = SweepKind::parse(kind).map_err(|e| anyhow::anyhow!(e))?;
    let (rules, _) = settings.validate(true)?;
    let url = settings.database.url.as_ref().context("DATABASE_URL: required")?;
    let pool = crate::db::pool(url.expose(), 2, Duration::from_secs(settings.database.connect_timeout_seconds))?;
    // Exhaustive: a new schedule must say here what `sweep <kind>` does.
    match kind {
        SweepKind::Limpieza => {
            let report = crate::scheduler::run_cleanup(&pool, &settings.retention, jiff::Timestamp::now()).await?;
            println!("sweep limpieza: {report}");
        }
        SweepKind::ResumenDiario => {
            let report = crate::scheduler::summary::send_from_cli(&settings, rules.umbral_saldo_bajo, pool)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("sweep resumen_diario: {report}");
            return Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        SweepKind::SaldoBajo
        | SweepKind::CuentaPendiente
        | SweepKind::RecordatorioDeuda
        | SweepKind::TarjetaPorVencer
        | SweepKind::ConsumoRealizado
        | SweepKind::ResumenConsumos => {
            let created = crate::scheduler::run_sweep(&pool, &rules, kind, jiff::Timestamp::now()).await?;
            println!("sweep {}: {created} solicitud(es) creadas", kind.as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn send_test(settings: &Settings, channel: &str, to: &str, kind: &str) -> anyhow::Result<ExitCode> {
    use crate::channels::{Channels, OutgoingMessage, SendError};
    use crate::domain::{ChannelKind, NotificationType};
    use crate::rules::{MessageData, Recipient};

    let channel = ChannelKind::parse(channel)?;
    let tipo = NotificationType::parse(kind)?;
    let providers = settings.channel_providers().map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    if channel == ChannelKind::Portal && settings.database.url.is_none() {
        anyhow::bail!("DATABASE_URL: required for the portal channel");
    }
    let pool = lazy_pool(settings)?;
    let channels = Channels::from_settings(settings, &providers, &pool).map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    let Some(adapter) = channels.get(channel) else {
        anyhow::bail!("no provider is configured for {channel}");
    };
    let stored = if channel == ChannelKind::Portal { format!("cliente:{to}") } else { to.to_string() };
    let recipient = Recipient::parse(channel, Some(&stored)).map_err(|e| anyhow::anyhow!(e))?;
    let data = MessageData::sample(tipo);
    let mut msg = OutgoingMessage::render(
        0,
        format!("send-test:{}", fastrand::u64(..)),
        channel,
        recipient,
        data,
        &settings.portal.base_url,
    )?;
    // What a parent would get, marked so that nobody takes it for a real notice.
    msg.mark_as_test();
    println!(
        "Enviando {tipo} de prueba por {} ({}) a {}…",
        channel.destino(),
        adapter.provider(),
        msg.recipient.masked()
    );
    match adapter.send(&msg).await {
        Ok(receipt) => {
            println!(
                "Aceptado. Id del proveedor: {}",
                receipt.provider_message_id.unwrap_or_else(|| "(ninguno)".into())
            );
            if let Some(warning) = receipt.warning {
                println!("{warning}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let class = match e {
                SendError::Transient { .. } => "temporal (se reintentaría)",
                SendError::Permanent { .. } => "permanente para este destinatario",
                SendError::OptedOut { .. } => "el destinatario se dio de baja (la solicitud quedaría Omitido)",
                SendError::Configuration { .. } => "de configuración (el canal se pausaría)",
            };
            println!("Rechazado, error {class}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn migrate(settings: Settings, reference_schema: bool, grant_to: Option<String>) -> anyhow::Result<ExitCode> {
    let url = settings.database.url.as_ref().context("DATABASE_URL: required")?;
    let role = crate::migrate::runtime_role(grant_to.as_deref(), settings.database.runtime_role.as_deref());
    let mut client = crate::db::connect(url.expose(), "cantina-notify-migrate").await?;
    let report = crate::migrate::migrate_and_grant(&mut client, reference_schema, role).await?;
    if report.reference_schema {
        println!("reference schema: ensured");
    }
    println!("migrations applied: {:?}; already present: {}", report.applied, report.already);
    if let Some(role) = &report.granted_to {
        println!("runtime role privileges: set for {role}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn check_config(settings: &Settings) -> ExitCode {
    match printable(settings) {
        Ok(s) => println!("{s}"),
        Err(e) => println!("(cannot print the configuration: {e})"),
    }
    let problems = match settings.validate(true) {
        // Build the adapters too (nothing is sent; the pool connects lazily), so missing provider keys show here.
        Ok((_, providers)) => match lazy_pool(settings) {
            Ok(pool) => crate::channels::Channels::from_settings(settings, &providers, &pool).err().unwrap_or_default(),
            Err(e) => vec![e.to_string()],
        },
        Err(e) => e.0,
    };
    if settings.dispatch.dry_run {
        println!(
            "# DRY RUN (CANTINA__DISPATCH__DRY_RUN=true): requests are rendered and recorded as Enviado with proveedor 'simulacro'; nothing is sent to any provider"
        );
    }
    if problems.is_empty() {
        println!("# configuration OK");
        ExitCode::SUCCESS
    } else {
        println!("# {}", crate::config::ValidationErrors(problems));
        ExitCode::FAILURE
    }
}

/// The configuration as `check-config` prints it (secrets masked by their types), with `[email]` showing the SMTP
/// host the backend really uses (SES's regional endpoint) and no host where none applies (SendGrid's API).
fn printable(settings: &Settings) -> Result<String, toml::ser::Error> {
    let mut shown = settings.clone();
    match settings.email_backend() {
        Ok(crate::config::EmailBackend::Ses) => match settings.email.ses_region() {
            Ok(Some(region)) => {
                shown.email.host = crate::channels::smtp::ses_smtp_host(&region);
                shown.email.port = Some(587);
                shown.email.aws_ses_region_name = Some(region);
            }
            _ => shown.email.host.clear(),
        },
        Ok(crate::config::EmailBackend::Sendgrid) => shown.email.host.clear(),
        _ => {}
    }
    toml::to_string_pretty(&shown)
}

/// A pool that connects only when first used (only the portal channel uses it outside `run`).
fn lazy_pool(settings: &Settings) -> Result<deadpool_postgres::Pool, crate::db::DbError> {
    let url = settings.database.url.as_ref().map_or("postgres://localhost/cantina", |u| u.expose());
    crate::db::pool(url, 2, Duration::from_secs(settings.database.connect_timeout_seconds))
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;
    use crate::domain::NotificationType;
    use crate::scheduler::SweepKind;

    /// A subcommand's long help (about and arguments), split into words.
    fn help_words(subcommand: &str) -> Vec<String> {
        let mut command = Cli::command();
        let sub = command.find_subcommand_mut(subcommand).unwrap_or_else(|| panic!("no subcommand {subcommand}"));
        let help = sub.render_long_help().to_string();
        help.split(|c: char| !(c.is_alphanumeric() || c == '_')).map(str::to_string).collect()
    }

    /// The help of `sweep` is written by hand: it must name every schedule `sweep <kind>` accepts.
    #[test]
    fn sweep_help_names_every_schedule() {
        let words = help_words("sweep");
        for kind in SweepKind::ALL {
            assert!(words.iter().any(|w| w == kind.as_str()), "`sweep --help` does not name {kind}");
        }
    }

    /// `send-test --help` names one type, its default; a list of types written there would have to name them all.
    #[test]
    fn send_test_help_names_the_default_type_or_every_type() {
        let words = help_words("send-test");
        let named: Vec<_> =
            NotificationType::ALL.into_iter().filter(|t| words.iter().any(|w| w == t.as_str())).collect();
        assert!(
            named == [NotificationType::RecargaExitosa] || named == NotificationType::ALL,
            "`send-test --help` names {named:?}"
        );
    }
}
