//! Connections: a pool for queries and a way to open the dedicated LISTEN session. TLS follows the URL's `sslmode`
//! and the other TLS parameters with libpq's meaning (see [`tls`]).

mod conninfo;
mod peer_cert;
mod tls;

use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use conninfo::{ConnInfoError, SslMode};
pub use tls::TlsError;

/// The variants that carry a tokio-postgres or pool error say all of it in their message ([`describe`]) and do not
/// also expose it as their `source()`: a printer walking the chain would add tokio-postgres' bare `db error` or
/// rustls' debug text after the words that already say it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {}", describe(.0))]
    Url(tokio_postgres::Error),
    #[error("invalid database URL: {0}")]
    ConnInfo(#[from] ConnInfoError),
    #[error("invalid TLS settings in the database URL: {0}")]
    Tls(#[from] TlsError),
    #[error("{}", connect_message(*.mode, .error))]
    Connect { mode: SslMode, error: tokio_postgres::Error },
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    #[error("cannot get a database connection: {}", describe_checkout(.0))]
    Checkout(deadpool_postgres::PoolError),
    #[error("database error: {}", describe(.0))]
    Query(tokio_postgres::Error),
    /// Code that reads the rows panicked (an unexpected column type or value): treated like a data error so the
    /// row is set aside with this message instead of taking the service down.
    #[error("error interno al procesar: {0}")]
    Panic(String),
    /// A write shared with other callers (one statement for many rows) failed or was never answered.
    #[error("database error (shared write): {0}")]
    Shared(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Query(e)
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DbError::Checkout(e)
    }
}

/// tokio-postgres displays a server error as just "db error"; the server's own message is what helps. A refused
/// server certificate is said in its own words (with the sslmode), without what rustls and tokio-postgres wrap
/// around it.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        // A missing table of the service's own: the database was never migrated (or is another one).
        let hint = if db.code() == &tokio_postgres::error::SqlState::UNDEFINED_TABLE
            && db.message().contains("\"cantina_notify_")
        {
            "; the service's tables are missing: is this the Cantina database, and has `cantina-notify migrate` run on it?"
        } else {
            ""
        };
        return format!("{}: {} ({}){hint}", db.severity(), db.message(), db.code().code());
    }
    if let Some(certificate) = certificate_message(e) {
        return certificate;
    }
    // The cause (a refused connection, a timeout) is in the source chain, not in the message.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn certificate_message(e: &tokio_postgres::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(message) = tls::server_certificate_message(cause) {
            return Some(message);
        }
        source = cause.source();
    }
    None
}

/// The sslmode once: a certificate message names it already.
fn connect_message(mode: SslMode, e: &tokio_postgres::Error) -> String {
    match certificate_message(e) {
        Some(certificate) => format!("cannot connect to PostgreSQL: {certificate}"),
        None => format!("cannot connect to PostgreSQL (sslmode={mode}): {}", describe(e)),
    }
}

fn describe_checkout(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        e => e.to_string(),
    }
}

impl DbError {
    /// The SQLSTATE, when the server answered with an error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DbError::Query(e) => e.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// An error caused by the data of a row (SQLSTATE classes 22 data exception, 23 integrity violation, P0 raised
    /// by a trigger), which retrying the same row cannot fix. Not class 42 (permissions, missing tables): those
    /// break every row alike and must stop the work, not set rows aside.
    pub fn is_data_error(&self) -> bool {
        let code = match self {
            DbError::Panic(_) => return true,
            DbError::Query(e) => e.code(),
            DbError::Checkout(deadpool_postgres::PoolError::Backend(e)) => e.code(),
            _ => None,
        };
        code.is_some_and(|c| ["22", "23", "P0"].iter().any(|class| c.code().starts_with(class)))
    }
}

/// rustls needs a process-wide crypto provider; aws-lc-rs is the one shared with lettre and reqwest.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means another provider was installed first, which is just as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A parsed connection string: what tokio-postgres connects with, and the TLS it needs (libpq's meaning).
#[derive(Clone, Debug)]
pub struct Target {
    config: tokio_postgres::Config,
    tls: tls::Tls,
}

/// The connection type every connection of the service has.
pub type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

impl Target {
    /// Parses a libpq URL or key=value string; the TLS files it names are read now. `application_name` and
    /// `connect_timeout` apply when the string does not set them.
    pub fn parse(url: &str, application_name: &str, connect_timeout: Duration) -> Result<Target, DbError> {
        let (rest, params) = conninfo::split(url)?;
        let mut config: tokio_postgres::Config = rest.parse().map_err(DbError::Url)?;
        let tls = tls::resolve(&params, tls::home().as_deref())?;
        if config.get_application_name().is_none() {
            config.application_name(application_name);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        // tokio-postgres knows disable/prefer/require; TLS is mandatory from require up. PostgreSQL has no TLS on
        // unix sockets and libpq does not ask for it there.
        let unix_only = config.get_hostaddrs().is_empty()
            && !config.get_hosts().is_empty()
            && config.get_hosts().iter().all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        config.ssl_mode(match tls.mode {
            _ if unix_only => PgSslMode::Disable,
            SslMode::Disable | SslMode::Allow => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        Ok(Target { config, tls })
    }

    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    pub fn sslmode(&self) -> SslMode {
        self.tls.mode
    }

    /// The start-up warning when another machine is reached without verifying its certificate.
    pub fn unverified_warning(&self) -> Option<String> {
        tls::unverified_warning(&self.config, &self.tls)
    }

    /// Logs [`unverified_warning`](Self::unverified_warning), prefixed with `context` (the setting's name), unless
    /// this process has already said it.
    pub fn warn_if_unverified(&self, context: &str) {
        warn_once(&self.config, &self.tls, context);
    }

    pub async fn connect(&self) -> Result<(tokio_postgres::Client, Connection), DbError> {
        warn_once(&self.config, &self.tls, "");
        connect_with(&self.config, &self.tls).await.map_err(|error| DbError::Connect { mode: self.tls.mode, error })
    }
}

/// Every command that connects warns of an unverified connection to another machine, once per process for each
/// warning (the pool connects many times; `run` checks its settings before it connects).
fn warn_once(config: &tokio_postgres::Config, tls: &tls::Tls, context: &str) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Some(warning) = tls::unverified_warning(config, tls) else { return };
    let mut warned = WARNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if warned.contains(&warning) {
        return;
    }
    if context.is_empty() {
        tracing::warn!("{warning}");
    } else {
        tracing::warn!("{context}: {warning}");
    }
    warned.push(warning);
}

async fn connect_with(
    config: &tokio_postgres::Config,
    tls: &tls::Tls,
) -> Result<(tokio_postgres::Client, Connection), tokio_postgres::Error> {
    match config.connect(tls.connector.clone()).await {
        // allow: plain first; if the server refuses that (a hostssl-only pg_hba.conf), TLS without verification.
        Err(e) if tls.mode == SslMode::Allow && e.as_db_error().is_some() => {
            let mut with_tls = config.clone();
            with_tls.ssl_mode(PgSslMode::Require);
            with_tls.connect(tls.connector.clone()).await
        }
        other => other,
    }
}

/// The pool's way to connect, so that pooled connections follow the same TLS rules.
struct PoolConnect(tls::Tls);

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>>
                + Send
                + '_,
        >,
    > {
        let config = pg_config.clone();
        Box::pin(async move {
            warn_once(&config, &self.0, "");
            let (client, conn) = connect_with(&config, &self.0).await?;
            let task = CONNECTIONS.spawn(PooledConnection(Some(conn)));
            Ok((client, task))
        })
    }
}

pub fn pool(url: &str, size: usize, connect_timeout: Duration) -> Result<Pool, DbError> {
    let target = Target::parse(url, "cantina-notify", connect_timeout)?;
    let mgr = Manager::from_connect(
        target.config,
        PoolConnect(target.tls),
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(mgr)
        .max_size(size)
        .wait_timeout(Some(connect_timeout))
        .create_timeout(Some(connect_timeout))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// A single connection outside the pool (migrations, one-off commands); the connection task is spawned. Dropping
/// the client ends the session (Terminate, then TLS close_notify); [`finish_connections`] waits for that.
pub async fn connect(url: &str, application_name: &str) -> Result<tokio_postgres::Client, DbError> {
    let (client, conn) = Target::parse(url, application_name, Duration::from_secs(10))?.connect().await?;
    CONNECTIONS.spawn(drive(conn));
    Ok(client)
}

/// The connection tasks of this process, so that a one-off command can wait for its sessions to end before it
/// exits: exiting with them open resets them, which the server logs (`could not receive data from client:
/// Connection reset by peer` over TLS) once per command run.
static CONNECTIONS: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// Set by a one-off command: its pooled connections, when the pool drops them, end their sessions properly instead
/// of being cut (see [`PooledConnection`]).
static CLOSE_POOLED_GRACEFULLY: AtomicBool = AtomicBool::new(false);

/// For a one-off command (not `run`): pooled connections end their sessions properly when dropped.
pub fn close_pooled_connections_gracefully() {
    CLOSE_POOLED_GRACEFULLY.store(true, Ordering::Relaxed);
}

/// Waits, at most `within`, for the sessions of the clients already dropped to end; a one-off command calls it
/// before it exits. Does nothing for `run` (see [`close_pooled_connections_gracefully`]).
pub async fn finish_connections(within: Duration) {
    if !CLOSE_POOLED_GRACEFULLY.load(Ordering::Relaxed) {
        return;
    }
    CONNECTIONS.close();
    if tokio::time::timeout(within, CONNECTIONS.wait()).await.is_err() {
        tracing::debug!("database sessions still closing at exit");
    }
}

async fn drive(conn: Connection) {
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "database connection closed");
    }
}

/// A pooled connection's task. deadpool aborts it when it drops the connection, which cuts the session at once
/// (what `run` relies on: a connection dropped mid-transaction must not go on to send what was queued, and the
/// server rolls the transaction back). In a one-off command that is ending, the connection is instead let finish:
/// its client is gone, so it sends Terminate and closes TLS with close_notify.
struct PooledConnection(Option<Connection>);

impl Future for PooledConnection {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let Some(conn) = self.0.as_mut() else { return std::task::Poll::Ready(()) };
        let result = std::task::ready!(Pin::new(conn).poll(cx));
        self.0 = None;
        if let Err(e) = result {
            tracing::debug!(error = %e, "database connection closed");
        }
        std::task::Poll::Ready(())
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take()
            && CLOSE_POOLED_GRACEFULLY.load(Ordering::Relaxed)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            CONNECTIONS.spawn_on(drive(conn), &runtime);
        }
    }
}

/// Runs `f`, turning a panic into [`DbError::Panic`].
pub async fn guarded<T>(f: impl std::future::Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(f).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => Err(DbError::Panic(panic_message(payload.as_ref()))),
    }
}

pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "pánico sin mensaje".to_string())
}

/// How the hot statements (the drain, claims, recorded sends) begin their transactions, in the same round trip as
/// their first statement. Generic plans: a custom plan per execution costs more to make than to run for these
/// small statements. No sequential scans where an index serves: a plan cached while a table was small (a new
/// installation, an empty outbox before its first ANALYZE) would otherwise keep scanning the whole table as it
/// grows, once per statement.
pub const BEGIN_HOT: &str = concat!("BEGIN; ", hot_settings!());

/// [`BEGIN_HOT`] for a transaction whose loss in a database crash costs nothing (it is redone from the outbox),
/// whose statements write their rows' history themselves (the drain: see [`BEGIN_HOT_OWN_HISTORY`]).
pub const BEGIN_HOT_ASYNC_OWN_HISTORY: &str = begin_hot_async_own_history!();

/// [`BEGIN_HOT`] for a statement that writes its rows' history itself: the history triggers skip them (migrations
/// 0011 and 0012). Only for a transaction whose every change to the requests is such a statement, or that takes the
/// mark off ([`HISTORY_BY_TRIGGER`]) before any other change.
pub const BEGIN_HOT_OWN_HISTORY: &str =
    concat!("BEGIN; ", hot_settings!(), "; SET LOCAL cantina_notify.historial = 'propio'");

/// [`BEGIN_HOT_ASYNC_OWN_HISTORY`] for a transaction that waits for row locks instead of skipping them, a bounded
/// while (a lock it cannot get in time fails the statement with `lock_not_available`, not a data error).
pub const BEGIN_HOT_ASYNC_OWN_HISTORY_WAITING: &str =
    concat!(begin_hot_async_own_history!(), "; SET LOCAL lock_timeout = '5s'");

/// Takes off the mark of [`BEGIN_HOT_OWN_HISTORY`] for the rest of the transaction: the triggers record again.
pub const HISTORY_BY_TRIGGER: &str = "SET LOCAL cantina_notify.historial = ''";

macro_rules! hot_settings {
    () => {
        "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off"
    };
}
use hot_settings;

macro_rules! begin_hot_async_own_history {
    () => {
        concat!(
            "BEGIN; SET LOCAL synchronous_commit = off; ",
            hot_settings!(),
            "; SET LOCAL cantina_notify.historial = 'propio'"
        )
    };
}
use begin_hot_async_own_history;

/// A pooled connection inside a transaction begun by hand (so that BEGIN shares a round trip with the first
/// statements and COMMIT with the last). Unless [`finish`](Self::finish)ed, dropping it (an error, a panic, a
/// cancelled future) closes the connection instead of returning it to the pool mid-transaction; the server then
/// rolls the transaction back.
pub struct OpenTransaction(Option<deadpool_postgres::Object>);

impl OpenTransaction {
    pub fn new(conn: deadpool_postgres::Object) -> Self {
        Self(Some(conn))
    }

    pub fn client(&self) -> Result<&deadpool_postgres::Object, DbError> {
        self.0.as_ref().ok_or_else(|| DbError::Shared("the transaction's connection is gone".into()))
    }

    /// Committed or rolled back: the connection may go back to the pool.
    pub fn finish(&mut self) {
        drop(self.0.take());
    }
}

/// One statement in its own hot transaction: BEGIN ([`BEGIN_HOT`]), the statement and COMMIT in one round trip.
pub async fn query_hot(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    query_hot_with(pool, BEGIN_HOT, sql, params).await
}

/// [`query_hot`] with another way to begin (one of the `BEGIN_HOT` constants).
pub async fn query_hot_with(
    pool: &deadpool_postgres::Pool,
    begin: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    let mut guard = OpenTransaction::new(pool.get().await?);
    let conn = guard.client()?;
    // Prepared first: a prepare inside the pipeline would let COMMIT overtake the statement.
    let stmt = conn.prepare_cached(sql).await?;
    let (_, rows, _) = tokio::try_join!(
        biased;
        conn.batch_execute(begin),
        conn.query(&stmt, params),
        conn.batch_execute("COMMIT")
    )?;
    guard.finish();
    Ok(rows)
}

/// [`query_hot_with`], then a second statement in the same transaction and round trip (it sees the first's rows).
pub async fn query_hot_then(
    pool: &deadpool_postgres::Pool,
    begin: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    then: &str,
    then_params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    let mut guard = OpenTransaction::new(pool.get().await?);
    let conn = guard.client()?;
    // Prepared first: a prepare inside the pipeline would let COMMIT overtake the statements.
    let (stmt, then_stmt) = (conn.prepare_cached(sql).await?, conn.prepare_cached(then).await?);
    let (_, rows, _, _) = tokio::try_join!(
        biased;
        conn.batch_execute(begin),
        conn.query(&stmt, params),
        conn.query(&then_stmt, then_params),
        conn.batch_execute("COMMIT")
    )?;
    guard.finish();
    Ok(rows)
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}
