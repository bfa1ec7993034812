//! Fault injection: recharges flow at a steady rate into a throwaway PostgreSQL while the real service (the release
//! binary, a child process) is SIGKILLed and restarted, PostgreSQL is restarted, the listener's backend is
//! terminated again and again, the provider answers 503, then 429, then hangs, and finally the service is stopped
//! with SIGTERM under load. Then every confirmed recharge must have exactly one request that reached a final
//! state, and every extra delivery the provider saw must be explained by a SIGKILL.
//!
//! Usage: `fault_injection path/to/cantina-notify [--quick]` (`.ci/fault-injection` builds and runs it). Loopback
//! only; about three and a half minutes (`--quick`: shorter windows, about 70 s, for development). Prints a timeline
//! and a summary table and exits 1 if a check fails. `FAULT_INJECTION_SEED` repeats a run's fault plan; logs go to
//! `target/fault-injection/<seed>/` (or `FAULT_INJECTION_LOGS`).

#[path = "fault_injection/load.rs"]
mod load;
#[path = "fault_injection/reconcile.rs"]
mod reconcile;
#[path = "fault_injection/service.rs"]
mod service;
#[path = "fault_injection/sink.rs"]
mod sink;

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cantina_notify::pg_cluster::{ClusterError, PgCluster};
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

use reconcile::{DupCause, End, Figures};
use service::{Launcher, Service};
use sink::{Mode, Sink};

/// The whole run, setup and reconciliation included, may not take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// Service settings the checks depend on.
const SEND_TIMEOUT_SECONDS: u64 = 3;
/// Must exceed CONCURRENCY / 1 + SEND_TIMEOUT (the validation's bound with no rate limit).
const LEASE_SECONDS: u64 = 20;
const CONCURRENCY: u64 = 16;
const SHUTDOWN_GRACE_SECONDS: u64 = 10;
const FAMILIES: i64 = 300;
/// The channels every recharge gets a request on (one per type, no fallback list).
const CHANNELS: &[&str] = &["email"];

#[derive(Debug, thiserror::Error)]
pub enum FiError {
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("throwaway PostgreSQL: {0}")]
    Cluster(#[from] ClusterError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{0}")]
    Failed(String),
}

impl FiError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> FiError {
        let context = context.into();
        move |source| FiError::Io { context, source }
    }
}

/// The fault plan's timings.
struct Plan {
    warmup: Duration,
    kills: u32,
    /// Seconds between kills, uniform in this range.
    kill_gap: (f64, f64),
    /// Seconds from a kill to the restart, uniform in this range (an orchestrator's restart delay).
    restart_delay: (f64, f64),
    settle: Duration,
    listener_kill_every: Duration,
    listener_kill_for: Duration,
    unavailable_for: Duration,
    rate_limited_for: Duration,
    hang_for: Duration,
    recover: Duration,
    after_sigterm: Duration,
    drain_limit: Duration,
    inserters: u32,
    per_inserter_per_second: f64,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            warmup: Duration::from_secs(3),
            kills: 5,
            kill_gap: (3.0, 8.0),
            restart_delay: (0.2, 1.5),
            settle: Duration::from_secs(4),
            listener_kill_every: Duration::from_secs(2),
            listener_kill_for: Duration::from_secs(30),
            unavailable_for: Duration::from_secs(60),
            rate_limited_for: Duration::from_secs(20),
            hang_for: Duration::from_secs(10),
            recover: Duration::from_secs(10),
            after_sigterm: Duration::from_secs(5),
            drain_limit: Duration::from_secs(120),
            inserters: 2,
            per_inserter_per_second: 40.0,
        }
    }

    fn quick() -> Plan {
        Plan {
            warmup: Duration::from_secs(2),
            kill_gap: (1.5, 3.0),
            settle: Duration::from_secs(2),
            listener_kill_for: Duration::from_secs(6),
            unavailable_for: Duration::from_secs(8),
            rate_limited_for: Duration::from_secs(5),
            hang_for: Duration::from_secs(5),
            recover: Duration::from_secs(4),
            after_sigterm: Duration::from_secs(2),
            ..Plan::full()
        }
    }
}

/// What was injected when, printed as it happens and kept for the summary.
struct Timeline {
    start: Instant,
    events: Mutex<Vec<(Duration, String)>>,
}

impl Timeline {
    fn note(&self, what: impl Into<String>) {
        let at = self.start.elapsed();
        let what = what.into();
        println!("[{:6.1} s] {what}", at.as_secs_f64());
        let _ = std::io::stdout().flush();
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push((at, what));
    }
}

struct KillRecord {
    incarnation: u32,
    /// Claims the killed process held (leased, outcome not recorded): its sends in flight.
    in_flight: usize,
    /// Of those, the ones the provider had already accepted: each will be delivered once more.
    accepted_unrecorded: usize,
}

struct TermRecord {
    exit: Option<std::process::ExitStatus>,
    took: Duration,
    /// Claims still leased after the exit (not finished within the grace period, or never given back).
    held_after: usize,
    accepted_unrecorded: usize,
}

/// The orchestrator's state.
struct Run {
    tl: Arc<Timeline>,
    sink: Arc<Sink>,
    launcher: Launcher,
    db_url: String,
    service: Option<Service>,
    incarnations: u32,
    ends: HashMap<u32, End>,
    kills: Vec<KillRecord>,
    terms: Vec<TermRecord>,
    unexpected_exits: Vec<String>,
    counted_claims: HashSet<(String, i32)>,
    rng: fastrand::Rng,
}

impl Run {
    async fn start_service(&mut self) -> Result<(), FiError> {
        self.incarnations += 1;
        let n = self.incarnations;
        self.sink.set_incarnation(n);
        let s = self.launcher.start(n).await?;
        self.tl.note(format!("service #{n} ready (pid {})", s.pid));
        self.service = Some(s);
        Ok(())
    }

    /// Waits `d` while watching the service: one that exits on its own is recorded and restarted.
    async fn hold(&mut self, d: Duration) -> Result<(), FiError> {
        let until = Instant::now() + d;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200).min(until.saturating_duration_since(Instant::now()))).await;
            let exited = self.service.as_mut().and_then(|s| s.exited().map(|st| (s.incarnation, st)));
            if let Some((n, status)) = exited {
                self.service = None;
                self.ends.insert(n, End::Crashed);
                let what = format!("service #{n} exited on its own ({status})");
                self.tl.note(format!("FAILURE: {what}; restarting it"));
                self.unexpected_exits.push(what);
                self.start_service().await?;
            }
        }
        Ok(())
    }

    async fn sigkill(&mut self, number: u32) -> Result<(), FiError> {
        let Some(s) = self.service.take() else {
            return Err(FiError::Failed("no service to kill".into()));
        };
        let n = s.incarnation;
        let open = self.sink.open();
        s.sigkill().await?;
        self.ends.insert(n, End::SigKill);
        let (in_flight, accepted_unrecorded) = self.held_claims(n).await?;
        self.tl.note(format!(
            "SIGKILL #{number} → service #{n}: {in_flight} send(s) in flight (claims under lease), \
             {accepted_unrecorded} of them already accepted by the provider ({open} open at the provider)"
        ));
        self.kills.push(KillRecord { incarnation: n, in_flight, accepted_unrecorded });
        Ok(())
    }

    async fn sigterm(&mut self) -> Result<(), FiError> {
        let Some(s) = self.service.take() else {
            return Err(FiError::Failed("no service to stop".into()));
        };
        let n = s.incarnation;
        self.tl
            .note(format!("SIGTERM → service #{n} (under load; {} request(s) open at the provider)", self.sink.open()));
        let (exit, took) = s.sigterm(Duration::from_secs(SHUTDOWN_GRACE_SECONDS + 10)).await?;
        self.ends.insert(n, End::SigTerm);
        let (held_after, accepted_unrecorded) = self.held_claims(n).await?;
        let how = match exit {
            Some(st) => format!("exited ({st}) after {:.2} s", took.as_secs_f64()),
            None => format!("did not exit within {:.0} s; killed", took.as_secs_f64()),
        };
        self.tl.note(format!(
            "service #{n} {how}; {held_after} claim(s) left under lease, {accepted_unrecorded} accepted but not recorded"
        ));
        self.terms.push(TermRecord { exit, took, held_after, accepted_unrecorded });
        Ok(())
    }

    /// Claims under lease now (no process runs, so they are the stopped process's sends in flight, plus earlier
    /// ones still counted), counting each claim once; and how many of the new ones the provider accepted while
    /// process `n` ran. A claim is a row whose `proximo_intento` is exactly the lease past `actualizado_en`
    /// (both set by the claim in one statement); a retry's delay never equals the lease.
    async fn held_claims(&mut self, n: u32) -> Result<(usize, usize), FiError> {
        let c = connect(&self.db_url).await?;
        let rows = c
            .query(
                "SELECT clave_dedup, intentos FROM solicitudes_notificacion
                 WHERE estado = 'Pendiente' AND clave_dedup IS NOT NULL AND proximo_intento > now()
                   AND proximo_intento - actualizado_en = make_interval(secs => $1)",
                &[&(LEASE_SECONDS as f64)],
            )
            .await?;
        let (mut new, mut accepted) = (0, 0);
        for r in rows {
            let claim: (String, i32) = (r.get(0), r.get(1));
            if self.counted_claims.contains(&claim) {
                continue;
            }
            new += 1;
            if self.sink.accepted_during(&claim.0, n) {
                accepted += 1;
            }
            self.counted_claims.insert(claim);
        }
        Ok((new, accepted))
    }

    fn secs(&mut self, (lo, hi): (f64, f64)) -> Duration {
        Duration::from_secs_f64(lo + (hi - lo) * self.rng.f64())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(bin) = args.first().filter(|a| !a.starts_with('-')).map(PathBuf::from) else {
        eprintln!("usage: fault_injection path/to/cantina-notify [--quick]");
        return ExitCode::from(2);
    };
    let plan = if args.iter().any(|a| a == "--quick") { Plan::quick() } else { Plan::full() };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The orchestration runs on this (the main) thread: the service children are spawned from it, which is what
    // their parent-death signal is tied to.
    match runtime.block_on(async move { tokio::time::timeout(RUN_LIMIT, run(bin, plan)).await }) {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(e)) => {
            eprintln!("fault injection could not run: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("fault injection did not finish within {} s", RUN_LIMIT.as_secs());
            ExitCode::FAILURE
        }
    }
}

async fn run(bin: PathBuf, plan: Plan) -> Result<bool, FiError> {
    let started = Instant::now();
    let seed = std::env::var("FAULT_INJECTION_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1)
    });
    let log_dir = match std::env::var_os("FAULT_INJECTION_LOGS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from("target/fault-injection").join(seed.to_string()),
    };
    std::fs::create_dir_all(&log_dir).map_err(FiError::io(format!("creating {}", log_dir.display())))?;
    let log_dir = log_dir.canonicalize().map_err(FiError::io(format!("resolving {}", log_dir.display())))?;
    println!(
        "fault injection: seed {seed} (FAULT_INJECTION_SEED={seed} repeats the plan), logs in {}",
        log_dir.display()
    );

    // Setup: cluster, schema, families, the provider sink.
    let mut cluster = tokio::task::spawn_blocking(PgCluster::start)
        .await
        .map_err(|e| FiError::Failed(format!("cluster start panicked: {e}")))??;
    connect(&cluster.url("postgres")).await?.batch_execute("CREATE DATABASE cantina").await?;
    let db_url = cluster.url("cantina");
    let sink = Sink::new(started, (20, 60));
    let sink_addr = sink::spawn(sink.clone()).map_err(FiError::io("starting the provider sink"))?;
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db_url.clone()),
        ("CANTINA__DATABASE__SIGNING_KEY", "fault-injection-signing-key-0123456789abcdef".to_string()),
        ("EMAIL_BACKEND", "sendgrid".into()),
        ("SENDGRID_API_KEY", "fault-injection".into()),
        ("SENDGRID_API_URL", format!("http://{sink_addr}")),
        ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", CHANNELS.join(",")),
        ("CANTINA__LIMITS__EMAIL__PER_SECOND", "0".into()),
        ("CANTINA__DISPATCH__CONCURRENCY", CONCURRENCY.to_string()),
        ("CANTINA__DISPATCH__SEND_TIMEOUT_SECONDS", SEND_TIMEOUT_SECONDS.to_string()),
        ("CANTINA__DISPATCH__LEASE_SECONDS", LEASE_SECONDS.to_string()),
        // Fast retries, and enough attempts to outlast the 60 s outage (about 13 at this schedule).
        ("CANTINA__DISPATCH__RETRY_BASE_MS", "250".into()),
        ("CANTINA__DISPATCH__RETRY_MAX_MS", "10000".into()),
        ("CANTINA__DISPATCH__MAX_ATTEMPTS", "30".into()),
        ("CANTINA__DISPATCH__SHUTDOWN_GRACE_SECONDS", SHUTDOWN_GRACE_SECONDS.to_string()),
        ("CANTINA__SCHEDULER__ENABLED", "false".into()),
        ("RUST_LOG", "warn".into()),
        ("NO_COLOR", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // The service runs in the log directory (so no stray `.env` is read): the binary's path must not be relative.
    let bin = bin.canonicalize().map_err(FiError::io(format!("finding {}", bin.display())))?;
    let launcher = Launcher::new(bin, env, log_dir.clone())?;
    launcher.run_once(&["migrate", "--reference-schema"]).await?;
    let admin = connect(&db_url).await?;
    admin
        .batch_execute(&format!(
            "INSERT INTO clientes (nombres, apellidos, ruc_ci, email, telefono)
             SELECT 'Ana', 'Benítez ' || g, 'fi-' || g, 'familia' || g || '@example.com', '0981 ' || lpad(g::text, 6, '0')
             FROM generate_series(1, {FAMILIES}) g;
             INSERT INTO hijos (id_cliente_responsable, nombre, apellido) SELECT id_cliente, 'Luis', apellidos FROM clientes;
             INSERT INTO tarjetas (nro_tarjeta, id_hijo, saldo_actual) SELECT 'FI' || id_hijo, id_hijo, 10000 FROM hijos;"
        ))
        .await?;
    let cards: Arc<Vec<String>> =
        Arc::new(admin.query("SELECT nro_tarjeta FROM tarjetas", &[]).await?.iter().map(|r| r.get(0)).collect());
    drop(admin);

    let tl = Arc::new(Timeline { start: started, events: Mutex::default() });
    let mut run = Run {
        tl: tl.clone(),
        sink: sink.clone(),
        launcher,
        db_url: db_url.clone(),
        service: None,
        incarnations: 0,
        ends: HashMap::new(),
        kills: Vec::new(),
        terms: Vec::new(),
        unexpected_exits: Vec::new(),
        counted_claims: HashSet::new(),
        rng: fastrand::Rng::with_seed(seed),
    };
    tl.note(format!(
        "setup done: PostgreSQL on port {}, {FAMILIES} families, provider sink on {sink_addr}",
        cluster.port()
    ));
    run.start_service().await?;

    // Load.
    let ledger = Arc::new(load::Ledger::default());
    let stop_load = CancellationToken::new();
    let mut inserters = Vec::new();
    for i in 0..plan.inserters {
        inserters.push(tokio::spawn(load::inserter(
            db_url.clone(),
            cards.clone(),
            plan.per_inserter_per_second,
            seed.wrapping_add(u64::from(i) + 1),
            ledger.clone(),
            stop_load.clone(),
        )));
    }
    let load_started = Instant::now();
    tl.note(format!(
        "load: {} inserters × {}/s, single-row transactions",
        plan.inserters, plan.per_inserter_per_second
    ));
    run.hold(plan.warmup).await?;

    // 1. SIGKILL at random points, restart each time.
    for k in 1..=plan.kills {
        let gap = run.secs(plan.kill_gap);
        run.hold(gap).await?;
        run.sigkill(k).await?;
        let delay = run.secs(plan.restart_delay);
        tokio::time::sleep(delay).await;
        run.start_service().await?;
    }
    run.hold(plan.settle).await?;

    // 2. PostgreSQL restart, fast shutdown.
    let pg_from = started.elapsed();
    tl.note("PostgreSQL: restart with fast shutdown");
    cluster = tokio::task::spawn_blocking(move || cluster.restart_fast().map(|()| cluster))
        .await
        .map_err(|e| FiError::Failed(format!("restart panicked: {e}")))??;
    let pg_to = started.elapsed();
    tl.note(format!("PostgreSQL: accepting connections again after {:.2} s", (pg_to - pg_from).as_secs_f64()));
    // Outcome writes are retried for about 8 s; a 202 received up to then may still be recorded.
    let pg_window = (pg_from.saturating_sub(Duration::from_secs(1)), pg_to + Duration::from_secs(10));
    run.hold(plan.settle).await?;

    // 3. The listener's backend terminated every 2 s for 30 s.
    tl.note(format!(
        "listener: pg_terminate_backend every {} s for {} s",
        plan.listener_kill_every.as_secs(),
        plan.listener_kill_for.as_secs()
    ));
    let (mut ticks, mut terminated) = (0u32, 0u64);
    let until = Instant::now() + plan.listener_kill_for;
    while Instant::now() < until {
        let c = connect(&db_url).await?;
        let n: i64 = c
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = 'cantina-notify-listener'",
                &[],
            )
            .await?
            .get(0);
        drop(c);
        ticks += 1;
        terminated += n.unsigned_abs();
        run.hold(plan.listener_kill_every).await?;
    }
    tl.note(format!("listener: {terminated} backend(s) terminated in {ticks} rounds"));
    run.hold(plan.settle).await?;

    // 4–6. The provider: 503, then 429 with Retry-After, then hanging.
    for (mode, d) in [
        (Mode::Unavailable, plan.unavailable_for),
        (Mode::RateLimited, plan.rate_limited_for),
        (Mode::Hang, plan.hang_for),
    ] {
        sink.set_mode(mode);
        tl.note(format!("provider: {} for {} s", mode.describe(), d.as_secs()));
        run.hold(d).await?;
        sink.set_mode(Mode::Normal);
        tl.note("provider: back to normal");
        run.hold(plan.recover).await?;
    }

    // 7. SIGTERM under load; restart.
    run.sigterm().await?;
    run.start_service().await?;
    run.hold(plan.after_sigterm).await?;

    // The load stops; everything must reach a final state.
    stop_load.cancel();
    for i in inserters {
        let _ = i.await;
    }
    let load_secs = load_started.elapsed().as_secs_f64();
    tl.note(format!(
        "load stopped: {} recharges committed in {load_secs:.0} s ({:.0}/s), {} failed transactions retried",
        ledger.committed_count(),
        ledger.committed_count() as f64 / load_secs,
        ledger.failed_transactions.load(std::sync::atomic::Ordering::Relaxed)
    ));
    let all_final = wait_final(&db_url, &tl, plan.drain_limit).await?;
    run.hold(Duration::ZERO).await?;
    // A last graceful stop (not a fault: its figures are not counted).
    if let Some(s) = run.service.take() {
        let (exit, _) = s.sigterm(Duration::from_secs(SHUTDOWN_GRACE_SECONDS + 10)).await?;
        if !exit.is_some_and(|e| e.success()) {
            run.unexpected_exits.push(format!("the final SIGTERM: {exit:?}"));
        }
    }

    // Reconciliation.
    let db = reconcile::gather(&connect(&db_url).await?).await?;
    let snapshot = sink.snapshot();
    let (committed, unknown) = (ledger.committed(), ledger.commit_unknown());
    let f = reconcile::reconcile(
        &db,
        &reconcile::Inputs {
            committed: &committed,
            commit_unknown: &unknown,
            sink: &snapshot,
            ends: &run.ends,
            pg_window: Some(pg_window),
            channels: CHANNELS,
        },
    );
    let passed = report(&run, &f, &ledger, all_final, sink.malformed(), started.elapsed());
    drop(cluster);
    Ok(passed)
}

/// Polls until nothing is pending (no unprocessed event, no `Pendiente` request, a request for every confirmed
/// recharge) or `limit` passes; prints progress.
async fn wait_final(url: &str, tl: &Timeline, limit: Duration) -> Result<bool, FiError> {
    let deadline = Instant::now() + limit;
    let mut last_print = Instant::now();
    loop {
        let c = connect(url).await?;
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL),
                        (SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Pendiente'),
                        (SELECT count(*) FROM cargas_saldo WHERE estado = 'CONFIRMADO'),
                        (SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'recarga_exitosa')",
                &[],
            )
            .await?;
        let (events, pending, recharges, requests): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let expected = recharges * CHANNELS.len() as i64;
        if events == 0 && pending == 0 && requests >= expected {
            tl.note(format!("every request final: {requests} requests for {recharges} confirmed recharges"));
            return Ok(true);
        }
        if Instant::now() >= deadline {
            tl.note(format!(
                "NOT FINAL after {} s: {events} unprocessed events, {pending} pending requests, {requests} of {expected} requests",
                limit.as_secs()
            ));
            return Ok(false);
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            tl.note(format!(
                "draining: {events} unprocessed events, {pending} pending, {requests} of {expected} requests"
            ));
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn connect(url: &str) -> Result<Client, FiError> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Prints the timeline, the figures and the checks; returns whether every check passed.
fn report(run: &Run, f: &Figures, ledger: &load::Ledger, all_final: bool, malformed: u64, took: Duration) -> bool {
    let in_flight: usize = run.kills.iter().map(|k| k.in_flight).sum();
    let accepted_unrecorded: usize = run.kills.iter().map(|k| k.accepted_unrecorded).sum();
    let by = |c: DupCause| f.duplicates_by_cause.get(&c).copied().unwrap_or(0);
    let after_term = by(DupCause::SigTerm);

    println!("\n== timeline");
    for (at, what) in run.tl.events.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("  {:6.1} s  {what}", at.as_secs_f64());
    }

    println!("\n== figures");
    let rows: Vec<(&str, String)> = vec![
        ("duration", format!("{:.0} s", took.as_secs_f64())),
        ("recharges committed (COMMIT returned)", f.committed.to_string()),
        (
            "COMMIT without an answer (in the database / not)",
            format!("{} / {}", f.commit_unknown_in_db, f.commit_unknown - f.commit_unknown_in_db),
        ),
        (
            "failed transactions retried",
            ledger.failed_transactions.load(std::sync::atomic::Ordering::Relaxed).to_string(),
        ),
        ("confirmed recharges in the database", f.db_confirmed.to_string()),
        ("recharges checked", f.recharges_checked.to_string()),
        ("requests by state", format!("{:?}", f.by_state)),
        (
            "provider receipts: 202 / 503 / 429 / hung",
            format!("{} / {} / {} / {}", f.receipts_202, f.receipts_503, f.receipts_429, f.receipts_hung),
        ),
        ("keys accepted by the provider", f.keys_accepted.to_string()),
        (
            "SIGKILLs: sends in flight at each kill",
            format!("{:?}", run.kills.iter().map(|k| (k.incarnation, k.in_flight)).collect::<Vec<_>>()),
        ),
        ("in flight at the kills (total)", in_flight.to_string()),
        ("of them accepted before the kill", accepted_unrecorded.to_string()),
        ("duplicates (202s beyond the first per key)", f.duplicates.to_string()),
        ("  after SIGKILL (expected: = accepted before the kill)", by(DupCause::SigKill).to_string()),
        ("  after SIGTERM", after_term.to_string()),
        ("  around the PostgreSQL restart", by(DupCause::PgRestart).to_string()),
        ("  after an unexpected exit", by(DupCause::Crash).to_string()),
        ("  unexplained", by(DupCause::Unexplained).to_string()),
        (
            "SIGTERM: exit, time, claims left, accepted-unrecorded",
            run.terms
                .iter()
                .map(|t| {
                    format!(
                        "{} in {:.2} s, {}, {}",
                        t.exit.map_or("no exit".to_string(), |e| e.to_string()),
                        t.took.as_secs_f64(),
                        t.held_after,
                        t.accepted_unrecorded
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ("lost (no request, not final, or missing)", f.lost().to_string()),
    ];
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (k, v) in &rows {
        println!("  {k:<width$}  {v}");
    }
    for d in &f.duplicate_examples {
        println!("  duplicate: {d}");
    }

    let sigterm_clean = run.terms.iter().all(|t| t.exit.is_some_and(|e| e.success()));
    let checks: Vec<(String, bool)> = vec![
        (format!("lost = {} (target 0)", f.lost()), f.lost() == 0),
        (
            format!("every request final: {all_final}; {} still pending", f.not_final.len()),
            all_final && f.not_final.is_empty(),
        ),
        (format!("unprocessed events = {}", f.unprocessed_events), f.unprocessed_events == 0),
        (
            format!(
                "recharges without exactly one request per channel = {}",
                f.without_request.len() + f.not_exactly_one.len()
            ),
            f.without_request.is_empty() && f.not_exactly_one.is_empty(),
        ),
        (
            format!("Error/Omitido without a reason = {}", f.final_without_reason.len()),
            f.final_without_reason.is_empty(),
        ),
        (format!("duplicates after SIGTERM = {after_term} (target 0)"), after_term == 0),
        (format!("duplicates {} ≤ in flight at the kills {in_flight}", f.duplicates), f.duplicates <= in_flight),
        (format!("unexplained duplicates = {}", by(DupCause::Unexplained)), by(DupCause::Unexplained) == 0),
        (format!("SIGTERM exits 0 within the grace period: {sigterm_clean}"), sigterm_clean),
        (format!("unexpected service exits = {}", run.unexpected_exits.len()), run.unexpected_exits.is_empty()),
        (format!("Enviado without a 202 = {}", f.sent_without_receipt.len()), f.sent_without_receipt.is_empty()),
        (format!("202 without Enviado = {}", f.receipt_not_sent.len()), f.receipt_not_sent.is_empty()),
        (
            format!("requests with unexpected keys = {}, malformed provider calls = {malformed}", f.unknown_keys.len()),
            f.unknown_keys.is_empty() && malformed == 0,
        ),
    ];
    println!("\n== checks");
    for (what, ok) in &checks {
        println!("  {} {what}", if *ok { "PASS" } else { "FAIL" });
    }
    for (label, list) in [
        ("without a request", f.without_request.iter().map(i64::to_string).collect::<Vec<_>>()),
        ("not final", f.not_final.clone()),
        ("without a reason", f.final_without_reason.clone()),
        ("Enviado without a 202", f.sent_without_receipt.clone()),
        ("202 without Enviado", f.receipt_not_sent.clone()),
        ("unexpected exits", run.unexpected_exits.clone()),
    ] {
        if !list.is_empty() {
            println!("  {label}: {}", list.iter().take(10).cloned().collect::<Vec<_>>().join(", "));
        }
    }
    let passed = checks.iter().all(|(_, ok)| *ok);
    println!("\nfault injection {}", if passed { "PASSED" } else { "FAILED" });
    passed
}
