//! The running service: listener + dispatcher + HTTP, sharing one pool, stopped by one cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
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
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
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
        let url = settings
            .database
            .url
            .as_ref()
            .map(|u| u.expose().to_string())
            .unwrap_or_default();
        let listen_url = settings
            .database
            .listen_url
            .as_ref()
            .map_or_else(|| url.clone(), |u| u.expose().to_string());
        let timeout = Duration::from_secs(settings.database.connect_timeout_seconds);
        let pool = db::pool(&url, settings.database.pool_size, timeout)?;
        {
            let conn = pool.get().await.map_err(DbError::from)?;
            migrate::ensure_migrated(&conn).await?;
        }
        sync_settings(&pool, rules.umbral_saldo_bajo).await?;
        let http = TcpListener::bind(&settings.http.addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: settings.http.addr.clone(),
                source,
            })?;
        let channels = channels.unwrap_or_else(|| Channels::from_settings(&settings, &providers));
        Ok(Self {
            settings,
            rules,
            pool,
            listen_url,
            channels,
            metrics: Metrics::new(),
            http,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets in-flight sends finish (within the grace
    /// period) and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let channels: Vec<&str> = self
            .channels
            .kinds()
            .iter()
            .map(|c| c.config_name())
            .collect();
        tracing::info!(addr = %self.http_addr(), channels = ?channels, "cantina-notify running");
        let wake = Arc::new(Notify::new());
        let listener = Listener {
            listen_url: self.listen_url,
            pool: self.pool.clone(),
            rules: self.rules,
            settings: self.settings.listener.clone(),
            metrics: self.metrics.clone(),
            dispatcher: wake.clone(),
        };
        let dispatcher = Arc::new(Dispatcher::new(
            self.pool.clone(),
            self.channels,
            &self.settings,
            self.metrics.clone(),
            wake,
        ));
        let router = crate::http::router(self.metrics.clone(), self.pool.clone());

        let listener_task = tokio::spawn(listener.run(shutdown.clone()));
        let prober_task = tokio::spawn(dispatcher.clone().probe_paused(shutdown.clone()));
        let dispatcher_task = tokio::spawn(dispatcher.run(shutdown.clone()));
        let http_task = tokio::spawn(crate::http::serve(self.http, router, shutdown.clone()));

        shutdown.cancelled().await;
        tracing::info!("shutting down: no new claims; waiting for in-flight sends");
        let _ = listener_task.await;
        let _ = dispatcher_task.await;
        let _ = prober_task.await;
        let http = http_task.await;
        self.pool.close();
        tracing::info!("stopped");
        match http {
            Ok(Err(e)) => Err(AppError::Http(e)),
            _ => Ok(()),
        }
    }
}
