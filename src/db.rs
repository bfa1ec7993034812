//! Connections: a pool for queries and a way to open the dedicated LISTEN session. TLS follows the URL's `sslmode`.

use std::sync::Once;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    #[error("cannot get a database connection: {0}")]
    Checkout(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
}

/// rustls needs a process-wide crypto provider; aws-lc-rs is the one shared with lettre and reqwest.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means another provider was installed first, which is just as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

pub fn tls() -> MakeRustlsConnect {
    install_crypto_provider();
    MakeRustlsConnect::with_webpki_roots()
}

pub fn parse_url(url: &str, application_name: &str, connect_timeout: Duration) -> Result<tokio_postgres::Config, DbError> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(DbError::Url)?;
    if cfg.get_application_name().is_none() {
        cfg.application_name(application_name);
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(connect_timeout);
    }
    Ok(cfg)
}

pub fn pool(url: &str, size: usize, connect_timeout: Duration) -> Result<Pool, DbError> {
    let cfg = parse_url(url, "cantina-notify", connect_timeout)?;
    let mgr = Manager::from_config(cfg, tls(), ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(mgr)
        .max_size(size)
        .wait_timeout(Some(connect_timeout))
        .create_timeout(Some(connect_timeout))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// A single connection outside the pool (migrations, one-off commands); the connection task is spawned.
pub async fn connect(url: &str, application_name: &str) -> Result<tokio_postgres::Client, DbError> {
    let cfg = parse_url(url, application_name, Duration::from_secs(10))?;
    let (client, conn) = cfg.connect(tls()).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}
