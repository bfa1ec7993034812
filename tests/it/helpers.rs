//! The test harness: databases, a running service with a recording channel, and polling with deadlines.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cantina_notify::app::{AppError, Application};
use cantina_notify::channels::{Channel, Channels, OutgoingMessage, SendError, SendReceipt};
use cantina_notify::config::{LoadOptions, Settings};
use cantina_notify::domain::ChannelKind;
use cantina_notify::metrics::Metrics;
use cantina_notify::pg_cluster::PgCluster;
use tokio::sync::{Notify, OnceCell};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

/// Where test databases are created. Only URLs are kept: connections belong to each test's runtime.
struct Server {
    /// `fn(dbname) -> url`
    base: String,
    _cluster: Option<PgCluster>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            // Same server, other databases: replace the database name.
            let base = match url.split_once('?') {
                Some((head, _)) => head.to_string(),
                None => url.clone(),
            };
            let base = base.rsplit_once('/').map(|(h, _)| h.to_string()).unwrap_or(base);
            Server { base, _cluster: None }
        }
        None => {
            let cluster = PgCluster::start().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"));
            let base = cluster.url("postgres").rsplit_once('/').map(|(h, _)| h.to_string()).unwrap_or_default();
            Server { base, _cluster: Some(cluster) }
        }
    })
}

pub fn url_for(dbname: &str) -> String {
    format!("{}/{dbname}", server().base)
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A database with the reference schema and the service's migrations, copied from a template made once.
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("cn_template_{}", std::process::id());
            let admin = connect(&url_for("postgres")).await;
            admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create template");
            let mut c = connect(&url_for(&name)).await;
            cantina_notify::migrate::migrate(&mut c, true).await.expect("migrate template");
            drop(c);
            name
        })
        .await
}

pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A fresh, fully migrated database.
    pub async fn new() -> TestDb {
        let template = template().await;
        Self::create(Some(template)).await
    }

    /// A fresh empty database (for migration tests).
    pub async fn empty() -> TestDb {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> TestDb {
        let name = format!("cn_test_{}_{}", std::process::id(), fastrand::u64(..));
        let admin = connect(&url_for("postgres")).await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        // The template's last session may still be closing: retry while it is "being accessed by other users".
        poll_until("create test database", Duration::from_secs(20), || async {
            match admin.batch_execute(&sql).await {
                Ok(()) => Some(()),
                Err(e) if e.to_string().contains("being accessed") => None,
                Err(e) => panic!("{sql}: {e}"),
            }
        })
        .await;
        TestDb { url: url_for(&name), name }
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

pub struct Family {
    pub id_cliente: i32,

    pub nro_tarjeta: String,
}

/// One client, one student, one card.
pub async fn seed_family(c: &Client, email: Option<&str>, telefono: Option<&str>, saldo: i64) -> Family {
    let n = fastrand::u64(..);
    let id_cliente: i32 = c
        .query_one(
            "INSERT INTO clientes (nombres, apellidos, ruc_ci, email, telefono) VALUES ('Ana', 'Benítez', $1, $2, $3) RETURNING id_cliente",
            &[&format!("ci-{}", n % 1_000_000_000_000), &email, &telefono],
        )
        .await
        .expect("insert cliente")
        .get(0);
    let id_hijo: i32 = c
        .query_one(
            "INSERT INTO hijos (id_cliente_responsable, nombre, apellido) VALUES ($1, 'Luis', 'Benítez') RETURNING id_hijo",
            &[&id_cliente],
        )
        .await
        .expect("insert hijo")
        .get(0);
    let nro_tarjeta = format!("T{}", n % 10_000_000_000);
    c.execute(
        "INSERT INTO tarjetas (nro_tarjeta, id_hijo, saldo_actual) VALUES ($1, $2, $3)",
        &[&nro_tarjeta, &id_hijo, &saldo],
    )
    .await
    .expect("insert tarjeta");
    Family { id_cliente, nro_tarjeta }
}

pub async fn recharge(c: &Client, nro_tarjeta: &str, monto: i64) -> i64 {
    c.query_one(
        "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia) VALUES ($1, $2, 'CONFIRMADO', 'test') RETURNING id_carga",
        &[&nro_tarjeta, &monto],
    )
    .await
    .expect("insert recharge")
    .get(0)
}

pub async fn consume(c: &Client, nro_tarjeta: &str, monto: i64) {
    c.execute(
        "INSERT INTO consumos_tarjeta (nro_tarjeta, monto_consumido, detalle) VALUES ($1, $2, 'test')",
        &[&nro_tarjeta, &monto],
    )
    .await
    .expect("insert consumo");
}

pub async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

/// Polls `f` until it returns `Some`, or panics after `timeout` naming what was awaited.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `sql` (a single bigint) equals `expected`; the panic shows the last value seen.
pub async fn wait_count(c: &Client, sql: &str, expected: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let v: i64 = c.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0);
        if v == expected {
            return;
        }
        if Instant::now() >= deadline {
            let dump = |q: &'static str| async move {
                c.query(q, &[])
                    .await
                    .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>())
                    .unwrap_or_default()
            };
            let requests = dump("SELECT estado || ' intentos=' || intentos || ' ' || coalesce(ultimo_error, '') FROM solicitudes_notificacion ORDER BY 1 LIMIT 20").await;
            let events = dump("SELECT id || ' ' || coalesce(procesado_en::text, 'pendiente') || ' ' || coalesce(resultado, '') FROM cantina_notify_eventos ORDER BY id DESC LIMIT 10").await;
            panic!(
                "timed out after {timeout:?}: {sql} is {v}, expected {expected}\nrequests: {requests:#?}\nevents: {events:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a [`Recorder`] does with the next sends.
#[derive(Clone, Debug)]
pub enum Script {
    Fail(SendError),
    /// Wait until `release` is notified before succeeding (and tell `started`).
    Hold {
        started: Arc<Notify>,
        release: Arc<Notify>,
    },
}

/// A channel double: records every message, can be scripted to fail or to hold.
pub struct Recorder {
    kind: ChannelKind,
    provider: &'static str,
    pub sent: Mutex<Vec<OutgoingMessage>>,
    pub attempts: Mutex<HashMap<String, u32>>,
    script: Mutex<VecDeque<Script>>,
    always_fail: Mutex<Option<SendError>>,
}

impl Recorder {
    pub fn new(kind: ChannelKind) -> Arc<Recorder> {
        Self::with_provider(kind, "recorder")
    }

    /// A double that reports a real provider's name (whether receipts are awaited depends on it).
    pub fn with_provider(kind: ChannelKind, provider: &'static str) -> Arc<Recorder> {
        Arc::new(Recorder {
            kind,
            provider,
            sent: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
            script: Mutex::new(VecDeque::new()),
            always_fail: Mutex::new(None),
        })
    }

    pub fn then(&self, s: Script) {
        self.script.lock().unwrap().push_back(s);
    }

    pub fn always_fail(&self, e: SendError) {
        *self.always_fail.lock().unwrap() = Some(e);
    }

    pub fn sent_count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    /// Keys delivered more than once: must always be empty.
    pub fn duplicates(&self) -> Vec<String> {
        let mut seen = HashMap::<String, u32>::new();
        for m in self.sent.lock().unwrap().iter() {
            *seen.entry(m.idempotency_key.clone()).or_default() += 1;
        }
        seen.into_iter().filter(|(_, n)| *n > 1).map(|(k, _)| k).collect()
    }
}

#[async_trait]
impl Channel for Recorder {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn provider(&self) -> &'static str {
        self.provider
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        *self.attempts.lock().unwrap().entry(msg.idempotency_key.clone()).or_default() += 1;
        if let Some(e) = self.always_fail.lock().unwrap().clone() {
            return Err(e);
        }
        let next = self.script.lock().unwrap().pop_front();
        match next {
            Some(Script::Fail(e)) => return Err(e),
            Some(Script::Hold { started, release }) => {
                started.notify_one();
                release.notified().await;
            }
            None => {}
        }
        self.sent.lock().unwrap().push(msg.clone());
        Ok(SendReceipt::with_id(format!("rec-{}", msg.request_id)))
    }
}

/// The row-signing key of every service the tests start.
pub const TEST_SIGNING_KEY: &str = "test-signing-key-0123456789abcdef0123456789";

pub fn test_signer() -> cantina_notify::signing::RowSigner {
    cantina_notify::signing::RowSigner::new(TEST_SIGNING_KEY).expect("test key")
}

/// Signs, with the tests' key, every keyed request the test wrote by hand (as the service would have written it).
pub async fn sign_by_hand(c: &Client) {
    let rows = c
        .query(
            "SELECT id_solicitud, clave_dedup, destino, destinatario, tipo, datos, id_cliente, nro_tarjeta
             FROM solicitudes_notificacion WHERE clave_dedup IS NOT NULL AND firma IS NULL",
            &[],
        )
        .await
        .expect("unsigned rows");
    let signer = test_signer();
    for r in rows {
        let datos: Option<serde_json::Value> = r.get(5);
        let firma = signer.sign(&cantina_notify::signing::SignedFields {
            clave_dedup: r.get(1),
            id_cliente: r.get(6),
            nro_tarjeta: r.get(7),
            destino: r.get(2),
            destinatario: r.get(3),
            tipo: r.get(4),
            datos: datos.as_ref(),
        });
        c.execute(
            "UPDATE solicitudes_notificacion SET firma = $2 WHERE id_solicitud = $1",
            &[&r.get::<_, i64>(0), &firma],
        )
        .await
        .expect("sign");
    }
}

/// Settings for a test service: this database, an ephemeral port, fast retries and polls.
pub fn test_settings(db: &TestDb, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("DATABASE_URL", db.url.as_str()),
        ("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY),
        ("CANTINA__HTTP__ADDR", "127.0.0.1:0"),
        ("CANTINA__DATABASE__POOL_SIZE", "8"),
        ("CANTINA__DISPATCH__CONCURRENCY", "4"),
        ("CANTINA__DISPATCH__RETRY_BASE_MS", "20"),
        ("CANTINA__DISPATCH__RETRY_MAX_MS", "200"),
        ("CANTINA__DISPATCH__POLL_INTERVAL_MS", "50"),
        ("CANTINA__DISPATCH__SHUTDOWN_GRACE_SECONDS", "10"),
        ("CANTINA__LISTENER__RECONNECT_MIN_MS", "20"),
        ("CANTINA__LISTENER__RECONNECT_MAX_MS", "300"),
        // The scheduler's sweeps have their own tests (with a fake clock); here they would add notices by wall time.
        ("CANTINA__SCHEDULER__ENABLED", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load(&LoadOptions { env, ..Default::default() }).expect("test settings")
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    handle: JoinHandle<Result<(), AppError>>,
}

impl TestApp {
    pub async fn start(settings: Settings, recorder: &Arc<Recorder>) -> TestApp {
        let channels = Channels::new().with(recorder.clone() as Arc<dyn Channel>);
        Self::start_with(settings, Some(channels)).await
    }

    pub async fn start_with(settings: Settings, channels: Option<Channels>) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            cantina_notify::telemetry::init("text");
        }
        let app = Application::build(settings, channels).await.expect("build app");
        let addr = app.http_addr();
        let metrics = app.metrics();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        TestApp { addr, shutdown, metrics, handle }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        cantina_notify::http::get_url(&self.addr.to_string(), path, Duration::from_secs(5)).await.expect("http get")
    }

    /// Graceful stop; the service must exit cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(Duration::from_secs(30), self.handle).await.expect("service did not stop in 30 s");
        r.expect("service task panicked").expect("service returned an error");
    }
}

pub const LONG: Duration = Duration::from_secs(60);
pub const SHORT: Duration = Duration::from_secs(15);

/// What the POS "Notificar" button inserts: a `Pendiente` Email row with the staff's own text and no dedup key.
pub async fn pos_manual_request(c: &Client, fam: &Family) -> i64 {
    pos_request(c, fam, Some("Aviso manual"), None).await
}

/// A POS "Notificar" row by email for the family's card, with the staff's text and the type the POS may fill.
pub async fn pos_request(c: &Client, fam: &Family, mensaje: Option<&str>, tipo: Option<&str>) -> i64 {
    c.query_one(
        "INSERT INTO solicitudes_notificacion (id_cliente, nro_tarjeta, saldo_alerta, mensaje, tipo, destino, estado)
         VALUES ($1, $2, 3000, $3, $4, 'Email', 'Pendiente') RETURNING id_solicitud",
        &[&fam.id_cliente, &fam.nro_tarjeta, &mensaje, &tipo],
    )
    .await
    .expect("insert POS request")
    .get(0)
}

/// A rule of the live database the service does not know about: inserting a request for this card fails with a
/// data error ('tarjeta en auditoría').
pub async fn reject_requests_for_card(c: &Client, nro_tarjeta: &str) {
    c.batch_execute(&format!(
        "CREATE FUNCTION reject() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
             IF NEW.nro_tarjeta = '{nro_tarjeta}' THEN RAISE EXCEPTION 'tarjeta en auditoría'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER reject BEFORE INSERT ON solicitudes_notificacion FOR EACH ROW EXECUTE FUNCTION reject();"
    ))
    .await
    .expect("reject trigger");
}

/// The ledger as a scheduler started six hours (the default catch-up window) before `now` leaves it: a baseline
/// row for each schedule without history. Without it a scheduler's first tick only records its baseline.
pub async fn scheduler_started_before(c: &Client, now: jiff::Timestamp) {
    let started = std::time::SystemTime::from(now - jiff::SignedDuration::from_hours(6));
    for kind in cantina_notify::scheduler::SweepKind::ALL {
        c.execute(
            "INSERT INTO cantina_notify_ejecuciones
                 (programa, programada_en, estado, replica, iniciada_en, terminada_en, solicitudes, detalle)
             SELECT $1, $2, 'omitida', 'prueba', $2, $2, 0, $3
             WHERE NOT EXISTS (SELECT 1 FROM cantina_notify_ejecuciones WHERE programa = $1)",
            &[&kind.as_str(), &started, &cantina_notify::scheduler::ledger::BASELINE_DETAIL],
        )
        .await
        .unwrap();
    }
}

/// A child process (a `run` of the binary) killed and reaped when the test ends, whatever the test did.
pub struct ChildGuard(pub Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An instant written as RFC 3339 (`2026-12-01T11:00:00Z`).
pub fn at(s: &str) -> jiff::Timestamp {
    s.parse().expect("an RFC 3339 instant")
}

/// A fresh database, a client, a pool and the default rules: what a test that runs the sweeps itself needs.
pub async fn sweep_setup() -> (TestDb, Client, deadpool_postgres::Pool, cantina_notify::config::RulesConfig) {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (rules, _) = test_settings(&db, &[]).validate(true).expect("valid test settings");
    let pool = cantina_notify::db::pool(&db.url, 4, Duration::from_secs(5)).expect("a pool");
    (db, c, pool, rules)
}
