//! `cargo bench --bench pipeline`: the benchmark, end to end, in one command.
//!
//! A throwaway PostgreSQL cluster, a loopback HTTP sink standing in for SendGrid (in this process), and the real
//! release binary as child processes (`cantina-notify run`, email through the SendGrid adapter, rate limit off).
//! Phases: (1) app overhead of the triggers, (2) backlog drain with (4) footprint, (3) steady-state latency,
//! (5) replicas. Progress and per-phase details go to stderr; the table goes to stdout. The `BENCH_*` variables
//! (see [`Config::from_env`] and docs/benchmark.md) scale it down for a quick run.

#[path = "pipeline/db.rs"]
mod db;
#[path = "pipeline/service.rs"]
mod service;
#[path = "pipeline/sink.rs"]
mod sink;

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cantina_notify::pg_cluster::PgCluster;
use tokio::task::JoinSet;
use tokio_postgres::types::ToSql;

use db::{Db, Schema};
use service::{CpuSnapshot, Memory, Service};
use sink::Sink;

/// The drain monitor's pace. Its trace (every `BENCH_TRACE_MS`) counts only pending outbox events (a partial index)
/// and reads the sink's count: a count over the whole requests table costs ~50 ms of server time at 100,000 rows and
/// would slow the drain it measures. The end is detected once the sink has every request, by a count of unfinished
/// rows (partial indexes, cheap by then) every `POLL`; the full counts run once, to check the result.
const POLL: Duration = Duration::from_millis(10);

/// Guaraníes per recharge: any positive amount does; balances only grow, so no low-balance notices.
const AMOUNT: i64 = 10_000;
const INSERT_RECHARGE: &str = "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia)
                               VALUES ($1, $2, 'CONFIRMADO', 'POS') RETURNING id_carga";

/// [`INSERT_RECHARGE`] or [`INSERT_SALE`] as the app sends it (see [`Protocol::Literal`]): the values in the text.
fn literal_insert(write: Write, card: u32) -> String {
    match write {
        Write::Recharge => format!(
            "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia) \
             VALUES ('B{card}', {AMOUNT}, 'CONFIRMADO', 'POS') RETURNING id_carga"
        ),
        Write::Sale => format!(
            "INSERT INTO consumos_tarjeta (nro_tarjeta, monto_consumido, detalle) \
             VALUES ('B{card}', {SALE_AMOUNT}, 'almuerzo') RETURNING id_consumo"
        ),
    }
}

/// Guaraníes per sale: the cards start at Gs. 100.000, so no sale brings one near a threshold.
const SALE_AMOUNT: i64 = 1;
const INSERT_SALE: &str = "INSERT INTO consumos_tarjeta (nro_tarjeta, monto_consumido, detalle)
                           VALUES ($1, $2, 'almuerzo') RETURNING id_consumo";

struct Config {
    phases: HashSet<String>,
    families: u32,
    backlog: u32,
    replica_backlog: u32,
    replicas: Vec<usize>,
    overhead_clients: usize,
    overhead_warmup: Duration,
    overhead_measure: Duration,
    overhead_rounds: usize,
    steady_rate: u32,
    steady_warmup: Duration,
    steady_measure: Duration,
    trace_every: Duration,
}

impl Config {
    /// Every knob, with the figures as defaults.
    fn from_env() -> Result<Config> {
        let backlog = num("BENCH_BACKLOG", 100_000)?;
        let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "overhead,drain,steady,replicas".to_string());
        let replicas = std::env::var("BENCH_REPLICAS").unwrap_or_else(|_| "1,2,3".to_string());
        let phases: HashSet<String> =
            phases.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
        if let Some(unknown) =
            phases.iter().find(|p| !["overhead", "drain", "steady", "replicas"].contains(&p.as_str()))
        {
            bail!("BENCH_PHASES: unknown phase '{unknown}' (overhead, drain, steady, replicas)");
        }
        Ok(Config {
            phases,
            families: num("BENCH_FAMILIES", 5_000)?,
            backlog,
            replica_backlog: num("BENCH_REPLICA_BACKLOG", backlog)?,
            replicas: replicas
                .split(',')
                .map(|r| r.trim().parse::<usize>().with_context(|| format!("BENCH_REPLICAS: '{r}'")))
                .collect::<Result<_>>()?,
            overhead_clients: num("BENCH_OVERHEAD_CLIENTS", 8)?,
            overhead_warmup: Duration::from_secs_f64(num("BENCH_OVERHEAD_WARMUP_SECONDS", 2.0)?),
            overhead_measure: Duration::from_secs_f64(num("BENCH_OVERHEAD_SECONDS", 6.0)?),
            overhead_rounds: num("BENCH_OVERHEAD_ROUNDS", 5)?,
            steady_rate: num("BENCH_STEADY_RATE", 200)?,
            steady_warmup: Duration::from_secs_f64(num("BENCH_STEADY_WARMUP_SECONDS", 2.0)?),
            steady_measure: Duration::from_secs_f64(num("BENCH_STEADY_SECONDS", 60.0)?),
            trace_every: Duration::from_millis(num("BENCH_TRACE_MS", 500)?),
        })
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.contains(phase)
    }
}

fn num<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map_err(|e| anyhow::anyhow!("{name}: '{v}': {e}")),
        Err(_) => Ok(default),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cfg = Config::from_env()?;
    eprintln!("starting a throwaway PostgreSQL cluster and the sink…");
    let cluster = PgCluster::start().context("throwaway PostgreSQL")?;
    let sink = Sink::start()?;
    // The driver runs on this (main) thread: the services are spawned from it (see `Service`), and a single thread
    // keeps the benchmark's own CPU use small and visible.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("runtime")?;
    let results = runtime.block_on(phases(&cfg, &cluster, &sink))?;
    println!("{}", table(&cfg, &results));
    Ok(())
}

#[derive(Default)]
struct Results {
    machine: String,
    overhead: Option<Overhead>,
    idle: Option<Memory>,
    drain: Option<Drain>,
    steady: Option<Steady>,
    replicas: Vec<Drain>,
}

async fn phases(cfg: &Config, cluster: &PgCluster, sink: &Sink) -> Result<Results> {
    let mut results = Results { machine: machine(cluster).await?, ..Default::default() };
    eprintln!("{}", results.machine);
    if cfg.runs("overhead") {
        results.overhead = Some(overhead(cfg, cluster).await?);
    }
    if cfg.runs("drain") {
        let (drain, idle) = drain(cfg, cluster, sink, 1, cfg.backlog, true).await?;
        results.drain = Some(drain);
        results.idle = idle;
    }
    if cfg.runs("steady") {
        results.steady = Some(steady(cfg, cluster, sink).await?);
    }
    if cfg.runs("replicas") {
        for &n in &cfg.replicas {
            results.replicas.push(drain(cfg, cluster, sink, n, cfg.replica_backlog, false).await?.0);
        }
    }
    Ok(results)
}

/// `nproc`, CPU model, RAM, PostgreSQL version and the load average at the start (other processes).
async fn machine(cluster: &PgCluster) -> Result<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let version = db::server_version(&db::connect(&cluster.url("postgres")).await?).await?;
    Ok(format!(
        "machine: {cores} cores ({model}), {ram_gib:.1} GiB RAM, PostgreSQL {version} \
         (throwaway cluster: fsync=off, synchronous_commit=off, shared_buffers=128MB); load average at start {}",
        load.join(" ")
    ))
}

// ---------------------------------------------------------------------------------------------------------------
// (1) App overhead

/// How the app's clients send their INSERT.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// The app's way: Django (psycopg2, or psycopg 3 with Django's default client-side binding) merges the values
    /// into the SQL text and sends it as one simple query, which the server parses and plans on every call.
    Literal,
    /// A server-side prepared statement, parsed and planned once per connection: a cheaper INSERT than the app's,
    /// so the triggers' share of each transaction is larger (the stricter figure).
    Prepared,
}

/// The app's write being measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    /// A confirmed recharge (`cargas_saldo`): the service's recharge trigger writes an event each time.
    Recharge,
    /// A sale (`consumos_tarjeta`, Gs. 1 off a card far above any threshold): the app's trigger lowers the card's
    /// balance, and the service's balance trigger runs its body to look for a threshold crossing, which it finds
    /// none of. The POS's most frequent write.
    Sale,
}

struct Variant {
    label: &'static str,
    write: Write,
    schema: Schema,
    /// `None`: the reference schema; `Some(true)`: a session holds the wake-up lock throughout (every commit
    /// NOTIFYs); `Some(false)`: nobody holds it (service stopped, or its listener draining: no NOTIFY).
    waiting: Option<bool>,
    protocol: Protocol,
    /// The variant without the service's triggers it is compared with (same protocol); `None` for those.
    baseline: Option<usize>,
}

const VARIANTS: [Variant; 7] = [
    Variant {
        label: "recharges, without the service's triggers, literal SQL (the app's way)",
        write: Write::Recharge,
        schema: Schema::Reference,
        waiting: None,
        protocol: Protocol::Literal,
        baseline: None,
    },
    Variant {
        label: "recharges, with triggers, no listener waiting (no NOTIFY), literal SQL",
        write: Write::Recharge,
        schema: Schema::WithService,
        waiting: Some(false),
        protocol: Protocol::Literal,
        baseline: Some(0),
    },
    Variant {
        label: "recharges, with triggers, a listener waiting throughout (every commit NOTIFYs), literal SQL",
        write: Write::Recharge,
        schema: Schema::WithService,
        waiting: Some(true),
        protocol: Protocol::Literal,
        baseline: Some(0),
    },
    Variant {
        label: "recharges, without the service's triggers, prepared statement",
        write: Write::Recharge,
        schema: Schema::Reference,
        waiting: None,
        protocol: Protocol::Prepared,
        baseline: None,
    },
    Variant {
        label: "recharges, with triggers, no listener waiting (no NOTIFY), prepared statement",
        write: Write::Recharge,
        schema: Schema::WithService,
        waiting: Some(false),
        protocol: Protocol::Prepared,
        baseline: Some(3),
    },
    Variant {
        label: "sales, without the service's triggers, literal SQL",
        write: Write::Sale,
        schema: Schema::Reference,
        waiting: None,
        protocol: Protocol::Literal,
        baseline: None,
    },
    Variant {
        label: "sales, with triggers, no listener waiting, literal SQL",
        write: Write::Sale,
        schema: Schema::WithService,
        waiting: Some(false),
        protocol: Protocol::Literal,
        baseline: Some(5),
    },
];

/// Indexes into [`VARIANTS`] of the four figures the table reports.
const QUIET_LITERAL: usize = 1;
const NOTIFY_LITERAL: usize = 2;
const QUIET_PREPARED: usize = 4;
const SALE_LITERAL: usize = 6;

/// One variant's result against its baseline.
struct Ratio {
    /// Median over the rounds of each round's ratio: robust to a round that other processes disturbed.
    median: f64,
    min: f64,
    max: f64,
    /// Transactions per second, averaged over the rounds: the variant and its baseline.
    tps: f64,
    baseline_tps: f64,
}

struct Overhead {
    /// Per variant (see [`VARIANTS`]); `None` for the baselines.
    ratios: Vec<Option<Ratio>>,
}

impl Overhead {
    fn get(&self, variant: usize) -> Option<&Ratio> {
        self.ratios.get(variant).and_then(Option::as_ref)
    }
}

async fn overhead(cfg: &Config, cluster: &PgCluster) -> Result<Overhead> {
    eprintln!(
        "\n(1) app overhead: {} clients inserting confirmed recharges or sales, {} rounds of {:?} (after {:?} warm-up) per \
         variant, interleaved; the service is not running",
        cfg.overhead_clients, cfg.overhead_rounds, cfg.overhead_measure, cfg.overhead_warmup
    );
    let mut dbs = Vec::new();
    // The sessions holding the wake-up lock (migration 0010) for the whole phase, as a waiting listener holds it.
    let mut waiters = Vec::new();
    for (i, v) in VARIANTS.iter().enumerate() {
        let db = Db::create(cluster, &format!("bench_overhead_{i}"), v.schema, cfg.families).await?;
        if let Some(waiting) = v.waiting {
            let c = db.client().await?;
            if let Ok(sql) = std::env::var("BENCH_OVERHEAD_SQL") {
                c.batch_execute(&sql).await.context("BENCH_OVERHEAD_SQL")?;
            }
            if waiting {
                c.batch_execute("LISTEN cantina_notify; SELECT pg_advisory_lock(1668183142, 1)").await?;
                waiters.push(c);
            }
        }
        dbs.push(db);
    }
    let n = VARIANTS.len();
    let mut sums = vec![0.0f64; n];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..cfg.overhead_rounds {
        let mut tps = vec![0.0f64; n];
        // Rotate the order so that drift (other processes, the machine) falls on every variant alike.
        for j in 0..n {
            let v = (round + j) % n;
            dbs[v].reset_recharges(VARIANTS[v].schema).await?;
            let started = Instant::now();
            let (rate, cpu) = insert_load(
                &dbs[v].url,
                &VARIANTS[v],
                cfg.overhead_clients,
                cfg.families,
                cfg.overhead_warmup,
                cfg.overhead_measure,
                cluster.dir(),
            )
            .await?;
            tps[v] = rate;
            eprintln!(
                "  round {}: {:>8.0} tx/s  {}  (PostgreSQL {:.2}, other processes {:.2} core-s in {:.1} s)",
                round + 1,
                rate,
                VARIANTS[v].label,
                cpu.postgres,
                cpu.others(),
                started.elapsed().as_secs_f64()
            );
            sums[v] += rate;
        }
        for (v, variant) in VARIANTS.iter().enumerate() {
            if let Some(b) = variant.baseline {
                ratios[v].push(tps[v] / tps[b]);
            }
        }
    }
    drop(waiters);
    for db in dbs {
        db.drop().await?;
    }
    let rounds = cfg.overhead_rounds.max(1) as f64;
    let o = Overhead {
        ratios: VARIANTS
            .iter()
            .enumerate()
            .map(|(v, variant)| {
                let b = variant.baseline?;
                let mut r = ratios[v].clone();
                r.sort_by(f64::total_cmp);
                Some(Ratio {
                    median: r.get(r.len() / 2).copied().unwrap_or(f64::NAN),
                    min: r.first().copied().unwrap_or(f64::NAN),
                    max: r.last().copied().unwrap_or(f64::NAN),
                    tps: sums[v] / rounds,
                    baseline_tps: sums[b] / rounds,
                })
            })
            .collect(),
    };
    for (v, variant) in VARIANTS.iter().enumerate() {
        if let Some(r) = o.get(v) {
            eprintln!(
                "  {}: ratio median {:.3} (rounds {:.3}–{:.3}); means {:.0} / {:.0} tx/s",
                variant.label, r.median, r.min, r.max, r.tps, r.baseline_tps
            );
        }
    }
    Ok(o)
}

/// `clients` connections each committing single-row recharge inserts (autocommit: one statement, one transaction)
/// as fast as they can; returns the commits per second inside the measured window.
async fn insert_load(
    url: &str,
    variant: &Variant,
    clients: usize,
    families: u32,
    warmup: Duration,
    measure: Duration,
    cluster_dir: &std::path::Path,
) -> Result<(f64, CpuSnapshot)> {
    let (write, protocol) = (variant.write, variant.protocol);
    let mut connections = Vec::new();
    for _ in 0..clients {
        let c = db::connect(url).await?;
        let statement = match protocol {
            Protocol::Prepared => {
                let sql = match write {
                    Write::Recharge => INSERT_RECHARGE,
                    Write::Sale => INSERT_SALE,
                };
                Some(c.prepare(sql).await.context("prepare insert")?)
            }
            Protocol::Literal => None,
        };
        connections.push((c, statement));
    }
    let cpu_before = CpuSnapshot::take(&[], cluster_dir);
    let from = Instant::now() + warmup;
    let until = from + measure;
    let mut tasks = JoinSet::new();
    for (c, statement) in connections {
        tasks.spawn(async move {
            let mut rng = fastrand::Rng::new();
            let mut n = 0u64;
            loop {
                let card = rng.u32(1..=families);
                match &statement {
                    Some(statement) => {
                        let card = format!("B{card}");
                        let amount = match write {
                            Write::Recharge => AMOUNT,
                            Write::Sale => SALE_AMOUNT,
                        };
                        c.query_one(statement, &[&card as &(dyn ToSql + Sync), &amount]).await.context("insert")?;
                    }
                    None => {
                        let rows = c.simple_query(&literal_insert(write, card)).await.context("insert")?;
                        if !rows.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))) {
                            bail!("the literal insert returned no id");
                        }
                    }
                }
                let now = Instant::now();
                if now >= until {
                    // The connection goes back with the count: its backend's CPU time is read before it exits.
                    return Ok::<_, anyhow::Error>((n, c));
                }
                if now >= from {
                    n += 1;
                }
            }
        });
    }
    let mut total = 0;
    let mut done = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (n, c) = r.context("inserter task")??;
        total += n;
        done.push(c);
    }
    let cpu = CpuSnapshot::take(&[], cluster_dir).since(&cpu_before);
    drop(done);
    Ok((total as f64 / measure.as_secs_f64(), cpu))
}

// ---------------------------------------------------------------------------------------------------------------
// (2) Backlog drain, (4) footprint, (5) replicas

struct Drain {
    replicas: usize,
    backlog: u32,
    /// From spawning the service(s) to every request `Enviado` in the database.
    elapsed: Duration,
    /// Peak resident memory (VmHWM) of each process.
    peaks: Vec<Memory>,
    receipts: usize,
    distinct: usize,
}

impl Drain {
    fn rate(&self) -> f64 {
        self.backlog as f64 / self.elapsed.as_secs_f64()
    }

    fn duplicates(&self) -> usize {
        self.receipts - self.distinct
    }

    fn peak_mib(&self) -> f64 {
        self.peaks.iter().map(|m| m.hwm_kib).max().unwrap_or(0) as f64 / 1024.0
    }
}

/// A fresh database; `backlog` confirmed recharges written while no service runs; then `replicas` services started
/// together, timed until every request is `Enviado`. With `idle`, first starts one service on the empty database,
/// and reads its resident memory once it is ready and settled (returned as the idle footprint).
async fn drain(
    cfg: &Config,
    cluster: &PgCluster,
    sink: &Sink,
    replicas: usize,
    backlog: u32,
    idle: bool,
) -> Result<(Drain, Option<Memory>)> {
    let label = if idle { "(2) backlog drain".to_string() } else { format!("(5) replicas: {replicas}") };
    eprintln!("\n{label}: {backlog} confirmed recharges over {} families, service stopped", cfg.families);
    let db =
        Db::create(cluster, &format!("bench_drain_{replicas}_{}", u8::from(idle)), Schema::WithService, cfg.families)
            .await?;

    let idle_memory = if idle {
        let mut service = Service::spawn(&db.url, &sink.url())?;
        service.wait_ready(Duration::from_secs(30)).await?;
        // Start-up work (first drain, settings sync, housekeeping) is done within a second or two.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let memory = service.memory()?;
        eprintln!(
            "  idle after start-up: RSS {:.1} MiB (peak so far {:.1} MiB)",
            memory.rss_kib as f64 / 1024.0,
            memory.hwm_kib as f64 / 1024.0
        );
        let status = service.stop().await?;
        if !status.success() {
            bail!("the idle service exited with {status}");
        }
        Some(memory)
    } else {
        None
    };

    let started = Instant::now();
    db.insert_backlog(cfg.families, backlog, 10_000).await?;
    let insert_time = started.elapsed();
    eprintln!(
        "  backlog written in {:.2} s ({:.0} rows/s, bulk INSERT … SELECT in chunks of 10,000, triggers per row)",
        insert_time.as_secs_f64(),
        backlog as f64 / insert_time.as_secs_f64()
    );

    let profile = std::env::var_os("BENCH_PG_LOG_STATEMENTS").is_some();
    let server_log = cluster.dir().join("server.log");
    if profile {
        db::log_statements(&db).await?;
    }
    let log_from = std::fs::metadata(&server_log).map_or(0, |m| m.len());
    let client = db.client().await?;
    let before = db::counts(&client).await?;
    if before.events_pending != i64::from(backlog) {
        bail!("expected {backlog} outbox events before the start, found {}", before.events_pending);
    }
    drop(sink.take());
    let cpu_before = CpuSnapshot::take(&[], cluster.dir());
    let t0 = Instant::now();
    let mut services = Vec::new();
    for _ in 0..replicas {
        services.push(Service::spawn(&db.url, &sink.url())?);
    }
    let pids: Vec<u32> = services.iter().map(Service::pid).collect();

    // Budget: a generous 1,000 notices/s plus start-up; a slower run fails instead of hanging.
    let deadline = t0 + Duration::from_secs(60 + u64::from(backlog) / 1_000);
    // (since spawn, outbox events not yet turned into requests, requests at the sink)
    let mut trace: Vec<(Duration, i64, usize)> = Vec::new();
    let mut next_trace = t0;
    let (done, cpu_end) = loop {
        for s in &mut services {
            s.check_alive()?;
        }
        let now = Instant::now();
        let at_sink = sink.count();
        if now >= next_trace {
            trace.push((t0.elapsed(), db::outbox_pending(&client).await?, at_sink));
            next_trace = now + cfg.trace_every;
        }
        // Every request reached the sink: only the outcome writes can be outstanding, so a cheap count, often.
        if at_sink >= backlog as usize && db::unfinished(&client).await? == 0 {
            let t = t0.elapsed();
            break (t, CpuSnapshot::take(&pids, cluster.dir()));
        }
        if now >= deadline {
            bail!(
                "drain not finished after {:?}: {:?}, {} at the sink; failures: {:?}",
                now - t0,
                db::counts(&client).await?,
                sink.count(),
                db::failures(&client).await?
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let (analyzed_ago, vacuumed_ago) = db::autovacuum_ago(&client).await?;
    let since_start = t0.elapsed().as_secs_f64();
    let autovacuum = |ago: Option<f64>| match ago {
        Some(ago) if ago < since_start => format!("{:.1} s after the start", since_start - ago),
        _ => "not during the drain".to_string(),
    };
    let counts = db::counts(&client).await?;
    trace.push((done, counts.events_pending, sink.count()));
    if counts.enviado != i64::from(backlog) || counts.pendiente > 0 || counts.other > 0 {
        bail!("{counts:?} after the drain; failures: {:?}", db::failures(&client).await?);
    }
    let mut peaks = Vec::new();
    for s in &services {
        peaks.push(s.memory()?);
    }
    for s in services {
        let status = s.stop().await?;
        if !status.success() {
            bail!("a service exited with {status} after the drain");
        }
    }
    let receipts = sink.take();
    let distinct: HashSet<&str> = receipts.iter().filter_map(|r| r.key.as_deref()).collect();
    let unexpected = distinct.iter().filter(|k| !(k.starts_with("recarga_exitosa:") && k.ends_with(":email"))).count();
    if distinct.len() != backlog as usize || unexpected > 0 {
        bail!(
            "the sink saw {} distinct keys ({unexpected} unexpected, {} without a key) for {backlog} recharges",
            distinct.len(),
            receipts.iter().filter(|r| r.key.is_none()).count()
        );
    }
    let result = Drain { replicas, backlog, elapsed: done, peaks, receipts: receipts.len(), distinct: distinct.len() };

    // Where the time went.
    let first_rules = trace.iter().find(|(_, pending, _)| *pending < i64::from(backlog)).map(|(t, _, _)| *t);
    let outbox_empty = trace.iter().find(|(_, pending, _)| *pending == 0).map(|(t, _, _)| *t);
    let first_send = receipts.iter().map(|r| r.at).min().map(|at| at.saturating_duration_since(t0));
    let last_send = receipts.iter().map(|r| r.at).max().map(|at| at.saturating_duration_since(t0));
    let secs = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
    eprintln!("     t   outbox   requests    at sink   (outbox: events not yet turned into requests)");
    let mut printed: Option<Duration> = None;
    for (i, (t, pending, s)) in trace.iter().enumerate() {
        if printed.is_none_or(|p| *t >= p + Duration::from_millis(990)) || i + 1 == trace.len() {
            printed = Some(*t);
            eprintln!("  {:5.1}s {pending:8} {:10} {s:10}", t.as_secs_f64(), i64::from(backlog) - pending);
        }
    }
    eprintln!(
        "  milestones after spawn (sampled every {:?}): rules started ≤ {}, outbox empty ≤ {}, first send {}, \
         last send {}, all Enviado {}",
        cfg.trace_every,
        secs(first_rules),
        secs(outbox_empty),
        secs(first_send),
        secs(last_send),
        secs(Some(done))
    );
    if let (Some(first), Some(last)) = (first_send, last_send) {
        eprintln!(
            "  sends between first and last: {:.0}/s; end to end: {:.0} notices/s",
            backlog as f64 / (last - first).as_secs_f64().max(1e-9),
            result.rate()
        );
    }
    eprintln!("  {}", cpu_end.since(&cpu_before).describe(done));
    eprintln!(
        "  autovacuum on solicitudes_notificacion: analyze {}, vacuum {}",
        autovacuum(analyzed_ago),
        autovacuum(vacuumed_ago)
    );
    eprintln!(
        "  peak RSS: {} MiB; sink: {} requests, {} distinct keys, {} duplicates",
        result.peaks.iter().map(|m| format!("{:.1}", m.hwm_kib as f64 / 1024.0)).collect::<Vec<_>>().join(" / "),
        result.receipts,
        result.distinct,
        result.duplicates()
    );
    if profile {
        print_profile(&server_log, log_from)?;
    }
    drop(client);
    db.drop().await?;
    Ok((result, idle_memory))
}

/// `BENCH_PG_LOG_STATEMENTS=1`: the statements that took the most time inside the server since `log_from`.
fn print_profile(server_log: &std::path::Path, log_from: u64) -> Result<()> {
    let statements = db::statement_profile(server_log, log_from)?;
    let total: f64 = statements.iter().map(|s| s.2).sum();
    eprintln!("  statements by time inside the server (total {total:.0} ms, the benchmark's own included):");
    for (what, n, ms) in statements.iter().take(15) {
        eprintln!("  {ms:9.0} ms {n:8} × {:7.3} ms  {what}", ms / *n as f64);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// (3) Steady state

struct Steady {
    measured: usize,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    lost: usize,
}

async fn steady(cfg: &Config, cluster: &PgCluster, sink: &Sink) -> Result<Steady> {
    eprintln!(
        "\n(3) steady state: {}/s for {:?} (after {:?} warm-up, not counted), one paced inserter, the service running",
        cfg.steady_rate, cfg.steady_measure, cfg.steady_warmup
    );
    let db = Db::create(cluster, "bench_steady", Schema::WithService, cfg.families).await?;
    let profile = std::env::var_os("BENCH_PG_LOG_STATEMENTS").is_some();
    let server_log = cluster.dir().join("server.log");
    if profile {
        db::log_statements(&db).await?;
    }
    let mut service = Service::spawn(&db.url, &sink.url())?;
    service.wait_ready(Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(sink.take());
    let log_from = std::fs::metadata(&server_log).map_or(0, |m| m.len());

    let c = db.client().await?;
    let statement = c.prepare(INSERT_RECHARGE).await.context("prepare insert")?;
    let warm = (cfg.steady_warmup.as_secs_f64() * f64::from(cfg.steady_rate)).round() as usize;
    let total = warm + (cfg.steady_measure.as_secs_f64() * f64::from(cfg.steady_rate)).round() as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(cfg.steady_rate.max(1))));
    let mut rng = fastrand::Rng::new();
    // (id_carga, the instant the commit returned to this client)
    let mut commits: Vec<(i64, Instant)> = Vec::with_capacity(total);
    let mut measure_start = None;
    let mut cpu_before = CpuSnapshot::default();
    for i in 0..total {
        tick.tick().await;
        let card = format!("B{}", rng.u32(1..=cfg.families));
        // Autocommit: the row comes back after ReadyForQuery, i.e. after the commit.
        let row = c.query_one(&statement, &[&card as &(dyn ToSql + Sync), &AMOUNT]).await.context("insert recharge")?;
        let at = Instant::now();
        if i == warm {
            measure_start = Some(at);
            cpu_before = CpuSnapshot::take(&[service.pid()], cluster.dir());
        }
        commits.push((row.get(0), at));
        if i % 200 == 0 {
            service.check_alive()?;
        }
    }
    let measure_end = Instant::now();
    let measured_wall = measure_end - measure_start.unwrap_or(measure_end);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.count() < total && Instant::now() < deadline {
        service.check_alive()?;
        tokio::time::sleep(POLL).await;
    }
    let cpu = CpuSnapshot::take(&[service.pid()], cluster.dir()).since(&cpu_before);
    let memory = service.memory()?;
    let status = service.stop().await?;
    if !status.success() {
        bail!("the service exited with {status} after the steady state");
    }
    let first_measured = commits.get(warm).map_or(i64::MAX, |(id, _)| *id);
    let breakdown = db::latency_breakdown(&c, first_measured).await?;
    let receipts = sink.take();
    let mut received: HashMap<&str, Instant> = HashMap::with_capacity(receipts.len());
    for r in &receipts {
        if let Some(k) = r.key.as_deref() {
            received.entry(k).and_modify(|at| *at = (*at).min(r.at)).or_insert(r.at);
        }
    }
    let mut latencies: Vec<f64> = Vec::with_capacity(total - warm);
    let mut lost = 0;
    for (id, committed) in &commits[warm..] {
        match received.get(format!("recarga_exitosa:{id}:email").as_str()) {
            // Signed: the service can beat this client to the commit's result by a few microseconds.
            Some(at) if *at >= *committed => latencies.push((*at - *committed).as_secs_f64() * 1e3),
            Some(at) => latencies.push(-(*committed - *at).as_secs_f64() * 1e3),
            None => lost += 1,
        }
    }
    if latencies.is_empty() {
        bail!("no request of the measured window reached the sink");
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1];
    let s = Steady {
        measured: total - warm,
        rate: (total - warm) as f64 / measured_wall.as_secs_f64().max(1e-9),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: latencies[latencies.len() - 1],
        lost,
    };
    eprintln!(
        "  {} recharges at {:.1}/s; commit → sink: min {:.3} ms, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, \
         p99.9 {:.3} ms, max {:.3} ms; {} not received",
        s.measured,
        s.rate,
        latencies[0],
        s.p50_ms,
        pct(0.90),
        s.p99_ms,
        pct(0.999),
        s.max_ms,
        s.lost
    );
    eprintln!(
        "  database timestamps: recharge start → rules start p50 {:.3} ms, p99 {:.3} ms; rules start → outcome \
         recorded (send done) p50 {:.3} ms, p99 {:.3} ms",
        breakdown[0], breakdown[1], breakdown[2], breakdown[3]
    );
    eprintln!("  {}", cpu.describe(measured_wall));
    eprintln!(
        "  service RSS at the end {:.1} MiB, peak {:.1} MiB",
        memory.rss_kib as f64 / 1024.0,
        memory.hwm_kib as f64 / 1024.0
    );
    if profile {
        print_profile(&server_log, log_from)?;
    }
    drop(c);
    db.drop().await?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------------------------
// The table

fn table(cfg: &Config, r: &Results) -> String {
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut row = |metric: &str, result: String, target: &str, ok: Option<bool>, gw: &str, celery: &str| {
        let verdict = match ok {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        rows.push([metric, &result, target, verdict, gw, celery].map(str::to_string));
    };
    if let Some(o) = &r.overhead {
        let rounds = cfg.overhead_rounds;
        let shown = |r: &Ratio| {
            format!(
                "{:.3} (means {} / {} tx/s; rounds {:.3}–{:.3})",
                r.median,
                int(r.tps),
                int(r.baseline_tps),
                r.min,
                r.max
            )
        };
        let headline = format!(
            "App overhead: recharge tx/s with triggers ÷ without ({} clients, median of {rounds} rounds), the INSERT \
             sent as the app (Django) sends it: literal SQL, parsed and planned on each call; no listener waiting \
             (service stopped, or its listener draining)",
            cfg.overhead_clients
        );
        // (variant, metric, target): the target is for recharges.
        let figures: [(usize, &str, Option<f64>); 4] = [
            (QUIET_LITERAL, &headline, Some(0.85)),
            (
                QUIET_PREPARED,
                "App overhead, the INSERT as a prepared statement (cheaper than the app's, so the triggers weigh \
                 more: the stricter figure)",
                Some(0.85),
            ),
            (
                SALE_LITERAL,
                "App overhead on sales (`consumos_tarjeta`, literal SQL; no crossing, so no event: the balance \
                 trigger's body runs and writes nothing)",
                None,
            ),
            (
                NOTIFY_LITERAL,
                "App overhead, literal SQL, a listener waiting throughout (every commit NOTIFYs; a running listener \
                 stops waiting once a wake-up finds 2 events)",
                None,
            ),
        ];
        for (variant, metric, target) in figures {
            if let Some(r) = o.get(variant) {
                let target_text = target.map_or(String::new(), |t| format!("≥ {t:.2}"));
                row(metric, shown(r), &target_text, target.map(|t| r.median >= t), "", "");
            }
        }
    }
    if let Some(d) = &r.drain {
        row(
            &format!("Backlog drain: {} recharges → all `Enviado`, notices/s", int(f64::from(d.backlog))),
            format!("{} ({:.2} s)", int(d.rate()), d.elapsed.as_secs_f64()),
            "≥ 10,000",
            Some(d.rate() >= 10_000.0),
            "9,300",
            "740",
        );
    }
    if let Some(s) = &r.steady {
        let window = format!("{}/s for {:.0} s", cfg.steady_rate, cfg.steady_measure.as_secs_f64());
        row(
            &format!("Steady state ({window}): commit → provider, p50"),
            format!("{:.3} ms", s.p50_ms),
            "≤ 0.75 ms",
            Some(s.p50_ms <= 0.75),
            "0.75 ms",
            "2.1 ms",
        );
        row("Steady state: p99", format!("{:.3} ms", s.p99_ms), "≤ 2.7 ms", Some(s.p99_ms <= 2.7), "2.7 ms", "4.8 ms");
        row(
            "Steady state: max (recharges measured at the achieved rate, not received)",
            format!("{:.3} ms ({} at {:.1}/s, {} lost)", s.max_ms, int(s.measured as f64), s.rate, s.lost),
            "0 lost",
            Some(s.lost == 0),
            "",
            "",
        );
    }
    if let Some(m) = &r.idle {
        let mib = m.rss_kib as f64 / 1024.0;
        row(
            "Footprint: RSS idle (after start-up)",
            format!("{mib:.1} MiB"),
            "≤ 30 MiB",
            Some(mib <= 30.0),
            "140 MiB",
            "150 MiB",
        );
    }
    if let Some(d) = &r.drain {
        let mib = d.peak_mib();
        row(
            "Footprint: RSS peak during the drain (VmHWM)",
            format!("{mib:.1} MiB"),
            "≤ 64 MiB",
            Some(mib <= 64.0),
            "140 MiB",
            "150 MiB",
        );
    }
    if !r.replicas.is_empty() {
        let backlog = r.replicas[0].backlog;
        row(
            &format!("Replicas {}: drain of {} notices/s", replicas_label(&r.replicas), int(f64::from(backlog))),
            r.replicas.iter().map(|d| int(d.rate())).collect::<Vec<_>>().join(" / "),
            "flat (2 cores shared with PostgreSQL)",
            None,
            "",
            "",
        );
        row(
            &format!("Replicas {}: duplicates (sink requests − distinct keys)", replicas_label(&r.replicas)),
            r.replicas.iter().map(|d| d.duplicates().to_string()).collect::<Vec<_>>().join(" / "),
            "0",
            Some(r.replicas.iter().all(|d| d.duplicates() == 0)),
            "",
            "",
        );
        row(
            &format!("Replicas {}: peak RSS per process", replicas_label(&r.replicas)),
            r.replicas.iter().map(|d| format!("{:.1}", d.peak_mib())).collect::<Vec<_>>().join(" / ") + " MiB",
            "≤ 64 MiB",
            Some(r.replicas.iter().all(|d| d.peak_mib() <= 64.0)),
            "",
            "",
        );
    }
    let header = ["metric", "result", "target", "met", "Graphile Worker 0.18", "Celery + Redis"];
    let mut out = format!("\n{}\n\n", r.machine);
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

fn replicas_label(replicas: &[Drain]) -> String {
    replicas.iter().map(|d| d.replicas.to_string()).collect::<Vec<_>>().join("/")
}

/// 12345.6 → "12,346"
fn int(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
