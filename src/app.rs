//! The running service: listener + dispatcher + HTTP, sharing one pool, stopped by one cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::channels::Channels;
use crate::config::{RulesConfig, Settings, ValidationErrors};
use crate::db::{self, DbError};
use crate::dispatch::Dispatcher;
use crate::events::drain::sync_settings;
use crate::events::listener::Listener;
use crate::metrics::Metrics;
use crate::migrate::{self, MigrateError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(#[from] ValidationErrors),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("service task failed: {0}")]
    TaskFailed(String),
}

pub struct Application {
    settings: Settings,
    rules: RulesConfig,
    pool: Pool,
    listen_url: String,
    channels: Channels,
    metrics: Arc<Metrics>,
    http: TcpListener,
}

impl Application {
    /// Validates the configuration, connects, checks the schema, binds the HTTP port. `channels` replaces the
    /// configured adapters (tests inject doubles); `None` builds them from the configuration.
    pub async fn build(settings: Settings, channels: Option<Channels>) -> Result<Self, AppError> {
        let (rules, providers) = settings.validate(true)?;
        match crate::fds::raise_limit() {
            Ok((before, limit)) => {
                let (needed, _) = crate::fds::needed(&settings);
                tracing::info!("{}", crate::fds::limit_report(before, limit, needed));
                crate::fds::check_budget(&settings, limit).map_err(|e| ValidationErrors(vec![e]))?;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read or raise the file-descriptor limit; not checked"),
        }
        let url = settings.database.url.as_ref().map(|u| u.expose().to_string()).unwrap_or_default();
        let listen_url = settings.database.listen_url.as_ref().map_or_else(|| url.clone(), |u| u.expose().to_string());
        let timeout = Duration::from_secs(settings.database.connect_timeout_seconds);
        let pool = db::pool(&url, settings.database.pool_size, timeout)?;
        {
            let conn = pool.get().await.map_err(DbError::from)?;
            migrate::ensure_migrated(&conn).await?;
        }
        sync_settings(&pool, rules.umbral_saldo_bajo).await?;
        let signed = crate::dispatch::store::sign_pending_at_upgrade(&pool, &rules.signer).await?;
        if signed > 0 {
            tracing::info!(requests = signed, "signed the requests that were pending when migration 0018 ran");
        }
        let http = TcpListener::bind(&settings.http.addr)
            .await
            .map_err(|source| AppError::Bind { addr: settings.http.addr.clone(), source })?;
        let channels = match channels {
            Some(c) => c,
            None => Channels::from_settings(&settings, &providers, &pool).map_err(ValidationErrors)?,
        };
        let channels = if settings.dispatch.dry_run { dry_run(channels) } else { channels };
        if settings.scheduler.enabled {
            crate::scheduler::summary::check_channel(&settings.resumen_diario, &channels)
                .map_err(|e| ValidationErrors(vec![e]))?;
        }
        let metrics = Metrics::new();
        metrics.set_dry_run(settings.dispatch.dry_run);
        Ok(Self { settings, rules, pool, listen_url, channels, metrics, http })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets in-flight sends finish (within the grace
    /// period) and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let channels: Vec<&str> = self.channels.kinds().iter().map(|c| c.config_name()).collect();
        tracing::info!(addr = %self.http_addr(), channels = ?channels, "cantina-notify running");
        let wake = Arc::new(Notify::new());
        let rules_for_scheduler = self.rules.clone();
        let summary = crate::scheduler::summary::DailySummary::new(
            self.pool.clone(),
            &self.settings.resumen_diario,
            self.rules.umbral_saldo_bajo,
            &self.channels,
        )
        .map_err(|e| AppError::Config(ValidationErrors(vec![e])))?;
        let dispatcher = Arc::new(Dispatcher::new(
            self.pool.clone(),
            self.channels,
            &self.settings,
            self.rules.signer.clone(),
            self.metrics.clone(),
            wake.clone(),
        ));
        let listener = Listener {
            listen_url: self.listen_url,
            pool: self.pool.clone(),
            rules: self.rules.clone(),
            settings: self.settings.listener.clone(),
            metrics: self.metrics.clone(),
            dispatcher: wake,
            handoff: Some(dispatcher.handoff()),
        };
        let webhooks = crate::webhooks::WebhookState {
            pool: self.pool.clone(),
            twilio_auth_token: self.settings.twilio.auth_token.clone(),
            public_base_url: self.settings.webhooks.public_url.clone(),
            meta_app_secret: self.settings.webhooks.whatsapp_app_secret.clone(),
            meta_verify_token: self.settings.webhooks.whatsapp_verify_token.clone(),
            sendgrid_verification_key: self.settings.webhooks.sendgrid_verification_key.clone(),
            metrics: self.metrics.clone(),
        };
        let router = crate::http::router(self.metrics.clone(), self.pool.clone(), webhooks);
        let limits = crate::http::Limits::from_settings(&self.settings.http);
        let http_metrics = self.metrics.clone();

        let mut tasks: JoinSet<(&'static str, Result<(), String>)> = JoinSet::new();
        let s = shutdown.clone();
        tasks.spawn(async move {
            listener.run(s).await;
            ("listener", Ok(()))
        });
        let (s, d) = (shutdown.clone(), dispatcher.clone());
        tasks.spawn(async move {
            d.probe_paused(s).await;
            ("prober", Ok(()))
        });
        // Until this task's first successful read of the operators' pauses, the dispatcher and the drain's hand-off
        // treat every channel as closed (dispatch/pause.rs), so the tasks may start together.
        let (s, d) = (shutdown.clone(), dispatcher.clone());
        tasks.spawn(async move {
            d.watch_operator_pauses(s).await;
            ("operator pauses", Ok(()))
        });
        let (s, d, replica) = (shutdown.clone(), dispatcher.clone(), crate::channel_state::replica_id());
        tracing::info!(replica = %replica, "recording this replica's channel states");
        tasks.spawn(async move {
            d.record_channel_states(replica, s).await;
            ("channel states", Ok(()))
        });
        let (s, d) = (shutdown.clone(), dispatcher.clone());
        tasks.spawn(async move {
            d.housekeep(s).await;
            ("housekeeping", Ok(()))
        });
        let s = shutdown.clone();
        tasks.spawn(async move {
            dispatcher.run(s).await;
            ("dispatcher", Ok(()))
        });
        let (s, pool, alerts) = (shutdown.clone(), self.pool.clone(), self.settings.alerts.clone());
        tasks.spawn(async move {
            crate::alerts::run_failure_rate_checks(pool, alerts, s).await;
            ("failure-rate alerts", Ok(()))
        });
        if self.settings.scheduler.enabled {
            let replica = format!(
                "{}:{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "cantina-notify".into()),
                std::process::id()
            );
            let clock: Arc<dyn crate::scheduler::Clock> = Arc::new(crate::scheduler::SystemClock);
            let scheduler = crate::scheduler::Scheduler::new(
                self.pool.clone(),
                rules_for_scheduler,
                &self.settings.scheduler,
                &self.settings.retention,
                replica,
                clock,
            )
            .map_err(|e| AppError::Config(ValidationErrors(vec![e])))?;
            let scheduler = match summary {
                Some(summary) => scheduler.with_summary(summary),
                None => scheduler,
            };
            let s = shutdown.clone();
            tasks.spawn(async move {
                scheduler.run(s).await;
                ("scheduler", Ok(()))
            });
        }
        let (s, http) = (shutdown.clone(), self.http);
        tasks.spawn(async move {
            ("http", crate::http::serve(http, router, limits, http_metrics, s).await.map_err(|e| e.to_string()))
        });

        // Every task runs until shutdown. One that ends or panics before is a failure of the whole service: stop
        // the others and exit non-zero so the orchestrator restarts it, rather than run half-alive and look ready.
        let mut failure: Option<String> = None;
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {}
            Some(joined) = tasks.join_next() => {
                // A task that ends cleanly because shutdown was just requested is not a failure.
                let early = task_failure(joined).or_else(|| (!shutdown.is_cancelled()).then(|| "a task ended before shutdown".to_string()));
                if let Some(f) = early {
                    tracing::error!(failure = %f, "stopping the service");
                    failure = Some(f);
                }
                shutdown.cancel();
            }
        }
        tracing::info!("shutting down: no new claims; waiting for in-flight sends");
        while let Some(joined) = tasks.join_next().await {
            if let Some(f) = task_failure(joined) {
                failure.get_or_insert(f);
            }
        }
        self.pool.close();
        tracing::info!("stopped");
        match failure {
            Some(f) => Err(AppError::TaskFailed(f)),
            None => Ok(()),
        }
    }
}

/// Wraps every adapter so nothing is sent, and says so loudly: a dry run left on in production sends no notices.
fn dry_run(channels: Channels) -> Channels {
    let real: Vec<String> =
        channels.kinds().into_iter().filter_map(|k| channels.get(k).map(|c| format!("{k}={}", c.provider()))).collect();
    tracing::warn!(
        wrapped = ?real,
        "DRY_RUN: CANTINA__DISPATCH__DRY_RUN=true: requests are rendered and recorded as Enviado with proveedor 'simulacro'; NOTHING IS SENT to any provider"
    );
    channels.dry_run()
}

/// What went wrong with a finished task, if anything.
fn task_failure(joined: Result<(&'static str, Result<(), String>), tokio::task::JoinError>) -> Option<String> {
    match joined {
        Ok((_, Ok(()))) => None,
        Ok((name, Err(e))) => Some(format!("{name}: {e}")),
        Err(e) if e.is_panic() => Some(format!("a task panicked: {e}")),
        Err(e) => Some(format!("a task was cancelled: {e}")),
    }
}
