//! Scheduler and sweeps over the real database.

use std::sync::{Arc, Mutex};

use cantina_notify::config::{RetentionSettings, RulesConfig};
use cantina_notify::events::drain::drain_batch;
use cantina_notify::scheduler::{
    CleanupReport, Clock, FiringOutcome, Scheduler, SchedulerSettings, SweepKind, cleanup, run_sweep,
};
use deadpool_postgres::Pool;
use jiff::{SignedDuration, Timestamp};
use tokio_postgres::Client;

use crate::helpers::{TestDb, count, scheduler_started_before, seed_family, test_settings};

struct FakeClock(Mutex<Timestamp>);

impl FakeClock {
    fn new(t: Timestamp) -> Arc<FakeClock> {
        Arc::new(FakeClock(Mutex::new(t)))
    }
    fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap() = t;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn st(t: Timestamp) -> std::time::SystemTime {
    t.into()
}

async fn setup() -> (TestDb, Client, Pool, RulesConfig) {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Until 0004 is in MIGRATIONS (idempotent, harmless afterwards).
    c.batch_execute(include_str!("../../sql/migrations/0004_ledger.sql")).await.unwrap();
    let settings = test_settings(&db, &[]);
    let (rules, _) = settings.validate(true).unwrap();
    let pool = cantina_notify::db::pool(&db.url, 4, std::time::Duration::from_secs(5)).unwrap();
    (db, c, pool, rules)
}

/// A client with a sale on account of `saldo_pendiente` at `fecha`.
async fn sale(c: &Client, id_cliente: i32, fecha: Timestamp, saldo_pendiente: i64, estado_pago: &str, estado: &str) {
    c.execute(
        "INSERT INTO ventas (id_cliente, fecha, monto_total, tipo_venta, saldo_pendiente, estado_pago, estado)
         VALUES ($1, $2, $3, 'CREDITO', $4, $5, $6)",
        &[&id_cliente, &st(fecha), &saldo_pendiente.max(1), &saldo_pendiente, &estado_pago, &estado],
    )
    .await
    .unwrap();
}

/// A card allowed to `saldo` (negative) by an authorisation at `fecha`; returns its id.
async fn authorise(c: &Client, nro_tarjeta: &str, saldo: i64, fecha: Timestamp) -> i64 {
    c.execute(
        "UPDATE tarjetas SET permite_saldo_negativo = true, limite_credito = 100000, saldo_actual = $2 WHERE nro_tarjeta = $1",
        &[&nro_tarjeta, &saldo],
    )
    .await
    .unwrap();
    c.query_one(
        "INSERT INTO autorizacion_saldo_negativo (nro_tarjeta, saldo_anterior, monto_venta, saldo_resultante, fecha_autorizacion)
         VALUES ($1, 0, $2, $3, $4) RETURNING id_autorizacion",
        &[&nro_tarjeta, &-saldo, &saldo, &st(fecha)],
    )
    .await
    .unwrap()
    .get(0)
}

/// The firings these tests are about: the opt-in spending schedules (one of them every minute) have their own tests
/// (tests/it/spending.rs).
fn not_spending(out: Vec<FiringOutcome>) -> Vec<FiringOutcome> {
    out.into_iter()
        .filter(|o| {
            let (FiringOutcome::Ran { kind, .. } | FiringOutcome::Skipped { kind, .. }) = o;
            !matches!(kind, SweepKind::ConsumoRealizado | SweepKind::ResumenConsumos)
        })
        .collect()
}

async fn ticked(s: &Scheduler) -> Vec<FiringOutcome> {
    not_spending(s.tick().await.unwrap())
}

async fn keys(c: &Client, tipo: &str) -> Vec<String> {
    c.query("SELECT clave_dedup FROM solicitudes_notificacion WHERE tipo = $1 ORDER BY clave_dedup", &[&tipo])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn ledger(c: &Client, programa: &str) -> Vec<(String, String)> {
    c.query(
        "SELECT to_char(programada_en AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI'), estado
         FROM cantina_notify_ejecuciones WHERE programa = $1 AND detalle IS DISTINCT FROM $2 ORDER BY programada_en",
        &[&programa, &cantina_notify::scheduler::ledger::BASELINE_DETAIL],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn two_replicas_over_a_simulated_week_run_each_firing_once() {
    let (_db, c, pool, rules) = setup().await;
    // Low balance card; account debt with a sale 10 days before the week; a negative balance authorised on
    // Friday 2026-11-20 10:00 local (day 3 = Monday 23, day 7 = Friday 27, day 15 = 5 Dec: outside the week).
    let low = seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    let debtor = seed_family(&c, Some("pedro@example.com"), None, 50_000).await;
    sale(&c, debtor.id_cliente, at("2026-11-12T15:00:00Z"), 30_000, "PENDIENTE", "PROCESADO").await;
    let neg = seed_family(&c, Some("rosa@example.com"), None, 50_000).await;
    let id_aut = authorise(&c, &neg.nro_tarjeta, -12_000, at("2026-11-20T13:00:00Z")).await;
    c.execute("UPDATE tarjetas SET notificar_saldo_bajo = false WHERE nro_tarjeta = $1", &[&neg.nro_tarjeta])
        .await
        .unwrap();

    // Sunday 2026-11-22 00:00 local to the next Sunday, in 30-minute steps; both replicas tick concurrently.
    let start = at("2026-11-22T03:00:00Z");
    let clock = FakeClock::new(start);
    scheduler_started_before(&c, clock.now()).await;
    let settings = SchedulerSettings::default();
    let retention = RetentionSettings::default();
    let a = Scheduler::new(pool.clone(), rules.clone(), &settings, &retention, "replica-a", clock.clone()).unwrap();
    let b = Scheduler::new(pool.clone(), rules.clone(), &settings, &retention, "replica-b", clock.clone()).unwrap();
    let mut ran = Vec::new();
    let mut t = start;
    while t <= start + SignedDuration::from_hours(24 * 7) {
        clock.set(t);
        let (ra, rb) = tokio::join!(a.tick(), b.tick());
        ran.extend(not_spending(ra.unwrap()));
        ran.extend(not_spending(rb.unwrap()));
        t += SignedDuration::from_mins(30);
    }
    assert!(ran.iter().all(|o| matches!(o, FiringOutcome::Ran { result: Ok(_), .. })), "{ran:?}");
    // 7 daily low-balance, 1 weekly account, 7 daily reminder, 7 daily expiry firings and the Sunday 02:00
    // clean-up: each exactly once across both replicas.
    assert_eq!(ran.len(), 23, "{ran:?}");
    let mut firings: Vec<_> = ran
        .iter()
        .map(|o| match o {
            FiringOutcome::Ran { kind, at, .. } | FiringOutcome::Skipped { kind, at } => (*kind, *at),
        })
        .collect();
    firings.sort_by_key(|(k, t)| (k.as_str(), *t));
    firings.dedup();
    assert_eq!(firings.len(), 23);

    let saldo = ledger(&c, "saldo_bajo").await;
    assert_eq!(saldo.len(), 7);
    assert_eq!(saldo[0], ("2026-11-22T21:00".to_string(), "completada".to_string()));
    assert!(saldo.iter().all(|(_, e)| e == "completada"));
    assert_eq!(ledger(&c, "cuenta_pendiente").await, [("2026-11-23T12:00".to_string(), "completada".to_string())]);
    assert_eq!(ledger(&c, "recordatorio_deuda").await.len(), 7);
    assert_eq!(ledger(&c, "limpieza").await, [("2026-11-22T05:00".to_string(), "completada".to_string())]);

    // Notices: the low card (no crossing on record) as a crossing on the first firing of Sunday, then its first
    // reminder the next day (the next is due on the 30th, after the week).
    assert_eq!(
        keys(&c, "saldo_bajo").await,
        [
            format!("saldo_bajo:{}:2026-11-22:email", low.nro_tarjeta),
            format!("saldo_bajo:recordatorio:{}:2026-11-23:email", low.nro_tarjeta)
        ]
    );
    assert_eq!(keys(&c, "cuenta_pendiente").await, [format!("cuenta_pendiente:{}:2026-W48:email", debtor.id_cliente)]);
    assert_eq!(
        keys(&c, "recordatorio_deuda").await,
        [
            format!("recordatorio_deuda:{}:{id_aut}:3:email", neg.id_cliente),
            format!("recordatorio_deuda:{}:{id_aut}:7:email", neg.id_cliente)
        ]
    );
    let total: i64 =
        c.query_one("SELECT sum(solicitudes)::int8 FROM cantina_notify_ejecuciones", &[]).await.unwrap().get(0);
    assert_eq!(total, 5);
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 5);
}

/// The cut-over: Celery beat sent Monday's 18:00 low-balance notices and was stopped; the service starts at 18:30.
/// Its first tick records where each schedule starts and runs nothing before it; Tuesday's firing runs.
#[tokio::test]
async fn a_schedules_first_start_runs_nothing_scheduled_before_it() {
    let (_db, c, pool, rules) = setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    let clock = FakeClock::new(at("2026-11-23T21:30:00Z")); // Monday 18:30 local
    let s = Scheduler::new(
        pool.clone(),
        rules,
        &SchedulerSettings::default(),
        &RetentionSettings::default(),
        "r1",
        clock.clone(),
    )
    .unwrap();
    assert_eq!(ticked(&s).await, []);
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 0);
    let baselines: Vec<(String, String, String)> = c
        .query("SELECT programa, estado, detalle FROM cantina_notify_ejecuciones ORDER BY programa", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected: Vec<(String, String, String)> = [
        "consumo_realizado",
        "cuenta_pendiente",
        "limpieza",
        "recordatorio_deuda",
        "resumen_consumos",
        "saldo_bajo",
        "tarjeta_por_vencer",
    ]
    .iter()
    .map(|p| (p.to_string(), "omitida".to_string(), cantina_notify::scheduler::ledger::BASELINE_DETAIL.to_string()))
    .collect();
    assert_eq!(baselines, expected);

    // A restart an hour later does not go back either; Tuesday 18:00 runs.
    clock.set(at("2026-11-23T22:30:00Z"));
    assert_eq!(ticked(&s).await, []);
    clock.set(at("2026-11-24T21:01:00Z"));
    let out = ticked(&s).await;
    assert!(
        out.contains(&FiringOutcome::Ran { kind: SweepKind::SaldoBajo, at: at("2026-11-24T21:00:00Z"), result: Ok(1) }),
        "{out:?}"
    );
    assert_eq!(keys(&c, "saldo_bajo").await, [format!("saldo_bajo:{}:2026-11-24:email", fam.nro_tarjeta)]);
}

#[tokio::test]
async fn a_missed_firing_runs_once_within_the_window_and_is_skipped_beyond_it() {
    let (_db, c, pool, rules) = setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    let clock = FakeClock::new(at("2026-11-23T21:30:00Z")); // Monday 18:30 local
    scheduler_started_before(&c, clock.now()).await;
    let s = Scheduler::new(
        pool.clone(),
        rules,
        &SchedulerSettings::default(),
        &RetentionSettings::default(),
        "r1",
        clock.clone(),
    )
    .unwrap();
    ticked(&s).await;
    assert_eq!(ledger(&c, "saldo_bajo").await, [("2026-11-23T21:00".to_string(), "completada".to_string())]);

    // Down across Tuesday 18:00, back at 20:00 (within 6 h): runs once.
    clock.set(at("2026-11-24T23:00:00Z"));
    let out = ticked(&s).await;
    assert!(out.contains(&FiringOutcome::Ran {
        kind: SweepKind::SaldoBajo,
        at: at("2026-11-24T21:00:00Z"),
        result: Ok(1)
    }));
    clock.set(at("2026-11-24T23:01:00Z"));
    assert!(ticked(&s).await.iter().all(|o| !matches!(o, FiringOutcome::Ran { kind: SweepKind::SaldoBajo, .. })));

    // Down across Wednesday 18:00, back Thursday 03:00 local (9 h later): recorded omitida, not run.
    clock.set(at("2026-11-26T06:00:00Z"));
    let out = ticked(&s).await;
    assert!(out.contains(&FiringOutcome::Skipped { kind: SweepKind::SaldoBajo, at: at("2026-11-25T21:00:00Z") }));
    assert_eq!(
        ledger(&c, "saldo_bajo").await,
        [
            ("2026-11-23T21:00".to_string(), "completada".to_string()),
            ("2026-11-24T21:00".to_string(), "completada".to_string()),
            ("2026-11-25T21:00".to_string(), "omitida".to_string()),
        ]
    );
    assert_eq!(
        keys(&c, "saldo_bajo").await,
        [
            format!("saldo_bajo:{}:2026-11-23:email", fam.nro_tarjeta),
            format!("saldo_bajo:recordatorio:{}:2026-11-24:email", fam.nro_tarjeta)
        ]
    );
    // The recordatorio_deuda 08:00 firing of Wednesday and Thursday were also beyond reach or not yet due.
    assert!(ledger(&c, "recordatorio_deuda").await.iter().all(|(_, e)| e != "en_curso"));
}

#[tokio::test]
async fn a_run_left_en_curso_by_a_dead_replica_is_reclaimed_after_30_minutes() {
    let (_db, c, pool, rules) = setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    c.execute(
        "INSERT INTO cantina_notify_ejecuciones (programa, programada_en, estado, replica, iniciada_en)
         VALUES ('saldo_bajo', '2026-11-23T21:00:00Z', 'en_curso', 'muerta', '2026-11-23T21:00:05Z')",
        &[],
    )
    .await
    .unwrap();
    let clock = FakeClock::new(at("2026-11-23T21:20:00Z"));
    scheduler_started_before(&c, clock.now()).await;
    let s = Scheduler::new(
        pool.clone(),
        rules,
        &SchedulerSettings::default(),
        &RetentionSettings::default(),
        "viva",
        clock.clone(),
    )
    .unwrap();
    assert!(ticked(&s).await.is_empty(), "still presumed running");
    clock.set(at("2026-11-23T21:31:00Z"));
    let out = ticked(&s).await;
    assert_eq!(out, [FiringOutcome::Ran { kind: SweepKind::SaldoBajo, at: at("2026-11-23T21:00:00Z"), result: Ok(1) }]);
    let row = c
        .query_one(
            "SELECT estado, replica, solicitudes FROM cantina_notify_ejecuciones WHERE programa = 'saldo_bajo'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "completada");
    assert_eq!(row.get::<_, String>(1), "viva");
    assert_eq!(row.get::<_, i32>(2), 1);
    assert_eq!(keys(&c, "saldo_bajo").await, [format!("saldo_bajo:{}:2026-11-23:email", fam.nro_tarjeta)]);
}

#[tokio::test]
async fn saldo_bajo_sweep_skips_cards_the_trigger_notified_today_and_notifies_the_others_as_crossings() {
    let (db, c, pool, rules) = setup().await;
    // Crossing through the trigger and the drain: request saldo_bajo:<card>:<today>:email.
    let crossed = seed_family(&c, Some("a@example.com"), None, 10_000).await;
    crate::helpers::consume(&c, &crossed.nro_tarjeta, 8_000).await;
    let settings = test_settings(&db, &[]);
    let (drain_rules, _) = settings.validate(true).unwrap();
    drain_batch(&pool, &drain_rules, 100, None).await.unwrap();
    assert_eq!(keys(&c, "saldo_bajo").await.len(), 1);
    // Low with no crossing on record (stamped today or yesterday by the app, or not at all), own threshold, blocked,
    // opted out, no email.
    let stamped = seed_family(&c, Some("b@example.com"), None, 1_000).await;
    c.execute("UPDATE tarjetas SET ultima_notificacion_saldo = now() WHERE nro_tarjeta = $1", &[&stamped.nro_tarjeta])
        .await
        .unwrap();
    let yesterday = seed_family(&c, Some("c@example.com"), None, 1_000).await;
    c.execute(
        "UPDATE tarjetas SET ultima_notificacion_saldo = now() - interval '1 day' WHERE nro_tarjeta = $1",
        &[&yesterday.nro_tarjeta],
    )
    .await
    .unwrap();
    let own = seed_family(&c, Some("d@example.com"), None, 15_000).await;
    c.execute("UPDATE tarjetas SET saldo_alerta = 20000 WHERE nro_tarjeta = $1", &[&own.nro_tarjeta]).await.unwrap();
    let blocked = seed_family(&c, Some("e@example.com"), None, 1_000).await;
    c.execute("UPDATE tarjetas SET estado = 'Bloqueada' WHERE nro_tarjeta = $1", &[&blocked.nro_tarjeta])
        .await
        .unwrap();
    let off = seed_family(&c, Some("f@example.com"), None, 1_000).await;
    c.execute("UPDATE tarjetas SET notificar_saldo_bajo = false WHERE nro_tarjeta = $1", &[&off.nro_tarjeta])
        .await
        .unwrap();
    let _fine = seed_family(&c, Some("g@example.com"), None, 6_000).await;
    let no_email = seed_family(&c, None, None, 1_000).await;

    let now = Timestamp::now();
    let n = run_sweep(&pool, &rules, SweepKind::SaldoBajo, now).await.unwrap();
    assert_eq!(n, 4, "the stamped ones, the own-threshold card and the one without email");
    let today = cantina_notify::rules::local_date(now);
    let mut expected: Vec<String> = [&stamped, &yesterday, &own, &no_email]
        .iter()
        .map(|f| format!("saldo_bajo:{}:{today}:email", f.nro_tarjeta))
        .collect();
    expected.push(format!("saldo_bajo:{}:{today}:email", crossed.nro_tarjeta));
    expected.sort();
    assert_eq!(keys(&c, "saldo_bajo").await, expected);
    let row = c
        .query_one(
            "SELECT estado, ultimo_error, saldo_alerta FROM solicitudes_notificacion WHERE nro_tarjeta = $1",
            &[&no_email.nro_tarjeta],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Error");
    assert!(row.get::<_, Option<String>>(1).unwrap().starts_with(&format!("cliente {}:", no_email.id_cliente)));
    assert_eq!(row.get::<_, Option<i64>>(2), Some(1_000));
    let umbral: String = c
        .query_one(
            "SELECT datos->'tarjetas'->0->>'umbral' FROM solicitudes_notificacion WHERE nro_tarjeta = $1",
            &[&own.nro_tarjeta],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(umbral, "20000");
    // Again: nothing new.
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, now).await.unwrap(), 0);
}

#[tokio::test]
async fn cuenta_pendiente_totals_the_debt_of_clients_with_a_sale_older_than_7_days() {
    let (_db, c, pool, rules) = setup().await;
    let monday = at("2026-11-30T12:00:00Z"); // Monday 09:00 local, ISO week 2026-W49
    let old = seed_family(&c, Some("a@example.com"), None, 0).await;
    sale(&c, old.id_cliente, at("2026-11-20T12:00:00Z"), 30_000, "PENDIENTE", "PROCESADO").await;
    sale(&c, old.id_cliente, at("2026-11-28T12:00:00Z"), 12_500, "PARCIAL", "PROCESADO").await;
    sale(&c, old.id_cliente, at("2026-11-01T12:00:00Z"), 0, "PAGADA", "PROCESADO").await;
    sale(&c, old.id_cliente, at("2026-11-01T12:00:00Z"), 99_000, "PENDIENTE", "ANULADO").await;
    // Only recent debt (6 days): not yet.
    let recent = seed_family(&c, Some("b@example.com"), None, 0).await;
    sale(&c, recent.id_cliente, at("2026-11-24T13:00:00Z"), 40_000, "PENDIENTE", "PROCESADO").await;
    // Old but annulled or paid: nothing owed.
    let paid = seed_family(&c, Some("c@example.com"), None, 0).await;
    sale(&c, paid.id_cliente, at("2026-11-01T12:00:00Z"), 0, "PAGADA", "PROCESADO").await;
    sale(&c, paid.id_cliente, at("2026-11-01T12:00:00Z"), 5_000, "PENDIENTE", "ANULADO").await;
    // Inactive client.
    let gone = seed_family(&c, Some("d@example.com"), None, 0).await;
    sale(&c, gone.id_cliente, at("2026-11-01T12:00:00Z"), 5_000, "PENDIENTE", "PROCESADO").await;
    c.execute("UPDATE clientes SET activo = false WHERE id_cliente = $1", &[&gone.id_cliente]).await.unwrap();

    assert_eq!(run_sweep(&pool, &rules, SweepKind::CuentaPendiente, monday).await.unwrap(), 1);
    assert_eq!(keys(&c, "cuenta_pendiente").await, [format!("cuenta_pendiente:{}:2026-W49:email", old.id_cliente)]);
    let row = c
        .query_one(
            "SELECT saldo_alerta, nro_tarjeta, datos->>'monto', datos->>'ventas', datos->>'desde', estado, destinatario
             FROM solicitudes_notificacion WHERE tipo = 'cuenta_pendiente'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(42_500));
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, String>(2), "42500");
    assert_eq!(row.get::<_, String>(3), "2");
    assert_eq!(row.get::<_, String>(4), "20/11/2026");
    assert_eq!(row.get::<_, String>(5), "Pendiente");
    assert_eq!(row.get::<_, String>(6), "a@example.com");
    // The same week again (CLI later that Monday): nothing; the next Monday, the recent client's sale is 13 days old.
    assert_eq!(run_sweep(&pool, &rules, SweepKind::CuentaPendiente, at("2026-11-30T18:00:00Z")).await.unwrap(), 0);
    assert_eq!(run_sweep(&pool, &rules, SweepKind::CuentaPendiente, at("2026-12-07T12:00:00Z")).await.unwrap(), 2);
}

#[tokio::test]
async fn recordatorio_deuda_at_3_7_and_15_local_days_with_the_right_level() {
    let (_db, c, pool, rules) = setup().await;
    let fam = seed_family(&c, Some("a@example.com"), None, 0).await;
    // Authorised on 2026-11-01 at 23:30 local (02:30 UTC on the 2nd): local days count from 1 November.
    let id = authorise(&c, &fam.nro_tarjeta, -12_000, at("2026-11-02T02:30:00Z")).await;
    let done = seed_family(&c, Some("b@example.com"), None, 0).await;
    let id_done = authorise(&c, &done.nro_tarjeta, -5_000, at("2026-11-02T02:30:00Z")).await;
    c.execute("UPDATE autorizacion_saldo_negativo SET regularizado = true WHERE id_autorizacion = $1", &[&id_done])
        .await
        .unwrap();
    // (Its card is low, not in debt: no low-balance notices in this test.)
    c.execute("UPDATE tarjetas SET notificar_saldo_bajo = false WHERE nro_tarjeta = $1", &[&done.nro_tarjeta])
        .await
        .unwrap();

    let mut created = Vec::new();
    for day in 2..=20 {
        let firing = at(&format!("2026-11-{day:02}T11:00:00Z")); // 08:00 local
        created.push((day, run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, firing).await.unwrap()));
        // A second run the same day creates nothing.
        assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, firing).await.unwrap(), 0);
    }
    let days: Vec<i32> = created.iter().filter(|(_, n)| *n > 0).map(|(d, _)| *d).collect();
    assert_eq!(days, [4, 8, 16]);
    let rows = c
        .query(
            "SELECT clave_dedup, datos->>'nivel', datos->>'dias', datos->'tarjetas'->0->>'monto', nro_tarjeta
             FROM solicitudes_notificacion WHERE tipo = 'recordatorio_deuda' ORDER BY (datos->>'dias')::int",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(
        got,
        [
            (
                format!("recordatorio_deuda:{}:{id}:3:email", fam.id_cliente),
                "amistoso".into(),
                "3".into(),
                "12000".into()
            ),
            (
                format!("recordatorio_deuda:{}:{id}:7:email", fam.id_cliente),
                "urgente".into(),
                "7".into(),
                "12000".into()
            ),
            (
                format!("recordatorio_deuda:{}:{id}:15:email", fam.id_cliente),
                "critico".into(),
                "15".into(),
                "12000".into()
            ),
        ]
    );
    assert!(rows.iter().all(|r| r.get::<_, Option<String>>(4).as_deref() == Some(fam.nro_tarjeta.as_str())));
}

async fn alerts(c: &Client) -> Vec<(String, String, Option<String>)> {
    c.query("SELECT mensaje, estado, observaciones FROM alertas_sistema ORDER BY id_alerta", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn a_failed_sweep_raises_one_staff_alert_that_its_next_success_resolves() {
    let (_db, c, pool, rules) = setup().await;
    let fam = seed_family(&c, Some("a@example.com"), None, 0).await;
    // Authorised Friday 2026-11-20 10:00 local: day 3 is Monday 23.
    let id = authorise(&c, &fam.nro_tarjeta, -12_000, at("2026-11-20T13:00:00Z")).await;
    // The sweep's table is missing (as after a botched app migration): the run really fails in the database.
    let break_it = "ALTER TABLE autorizacion_saldo_negativo RENAME TO autorizacion_saldo_negativo_aparte";
    let repair = "ALTER TABLE autorizacion_saldo_negativo_aparte RENAME TO autorizacion_saldo_negativo";
    c.batch_execute(break_it).await.unwrap();
    let clock = FakeClock::new(at("2026-11-23T11:01:00Z")); // Monday 08:01 local
    scheduler_started_before(&c, clock.now()).await;
    let retention = RetentionSettings::default();
    // The expiry sweep (also 08:00, and it reads the same table) out of the way: one failing schedule here.
    let settings = SchedulerSettings { tarjeta_por_vencer: "0 8 1 1 *".into(), ..SchedulerSettings::default() };
    let s = Scheduler::new(pool.clone(), rules, &settings, &retention, "r1", clock.clone()).unwrap();
    let firing = at("2026-11-23T11:00:00Z");
    let out = ticked(&s).await;
    let [FiringOutcome::Ran { kind: SweepKind::RecordatorioDeuda, at: ran_at, result: Err(e) }] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(*ran_at, firing);
    assert!(e.contains("autorizacion_saldo_negativo") && e.contains("42P01"), "{e}");
    assert_eq!(ledger(&c, "recordatorio_deuda").await, [("2026-11-23T11:00".to_string(), "fallida".to_string())]);
    let rows = alerts(&c).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1, "Pendiente");
    let expected_start = format!(
        "cantina-notify: barrido recordatorio_deuda falló (programado para el 23/11/2026 08:00): {e}. Se reintenta"
    );
    assert!(rows[0].0.starts_with(&expected_start), "{rows:?}");
    assert!(!rows[0].0.contains("postgres://"), "{rows:?}");

    // Retried 5 minutes later, still failing: still one alert.
    clock.set(at("2026-11-23T11:07:00Z"));
    let out = ticked(&s).await;
    assert!(matches!(out.as_slice(), [FiringOutcome::Ran { result: Err(_), .. }]), "{out:?}");
    assert_eq!(alerts(&c).await.len(), 1);

    // Repaired: the next retry completes and resolves the alert.
    c.batch_execute(repair).await.unwrap();
    clock.set(at("2026-11-23T11:13:00Z"));
    let out = ticked(&s).await;
    assert_eq!(out, [FiringOutcome::Ran { kind: SweepKind::RecordatorioDeuda, at: firing, result: Ok(1) }]);
    assert_eq!(keys(&c, "recordatorio_deuda").await, [format!("recordatorio_deuda:{}:{id}:3:email", fam.id_cliente)]);
    let rows = alerts(&c).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "Resuelta");
    assert_eq!(
        rows[0].2.as_deref(),
        Some("cantina-notify: el barrido recordatorio_deuda programado para el 23/11/2026 08:00 terminó bien")
    );
    assert_eq!(count(&c, "SELECT count(*) FROM alertas_sistema WHERE fecha_resolucion IS NOT NULL").await, 1);

    // It fails again the next day: a new incident, a new alert.
    c.batch_execute(break_it).await.unwrap();
    clock.set(at("2026-11-24T11:01:00Z"));
    let out = ticked(&s).await;
    // (Monday's 18:00 low-balance and 09:00 account firings are now beyond the window: recorded as skipped.)
    let ran: Vec<_> = out.iter().filter(|o| matches!(o, FiringOutcome::Ran { .. })).collect();
    assert!(matches!(ran.as_slice(), [FiringOutcome::Ran { result: Err(_), .. }]), "{out:?}");
    let rows = alerts(&c).await;
    assert_eq!(rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["Resuelta", "Pendiente"], "{rows:?}");
    assert!(rows[1].0.contains("programado para el 24/11/2026 08:00"), "{rows:?}");
}

/// An outbox event created and processed at the given instants; returns its id.
async fn event(c: &Client, creado: Timestamp, procesado: Option<Timestamp>) -> i64 {
    c.query_one(
        "INSERT INTO cantina_notify_eventos (tipo, id_ref, creado_en, procesado_en) VALUES ('recarga', 1, $1, $2)
         RETURNING id",
        &[&st(creado), &procesado.map(st)],
    )
    .await
    .unwrap()
    .get(0)
}

/// A request: the service's (with a key) or the POS's (`clave` None); returns its id.
async fn request(
    c: &Client,
    id_cliente: i32,
    clave: Option<&str>,
    estado: &str,
    fecha_solicitud: Timestamp,
    actualizado_en: Option<Timestamp>,
) -> i64 {
    c.query_one(
        "INSERT INTO solicitudes_notificacion (id_cliente, destino, estado, tipo, clave_dedup, fecha_solicitud, actualizado_en)
         VALUES ($1, 'Email', $2, 'recarga_exitosa', $3, $4, $5) RETURNING id_solicitud",
        &[&id_cliente, &estado, &clave, &st(fecha_solicitud), &actualizado_en.map(st)],
    )
    .await
    .unwrap()
    .get(0)
}

async fn run_row(c: &Client, programa: &str, programada: &str) {
    c.execute(
        "INSERT INTO cantina_notify_ejecuciones (programa, programada_en, estado, replica, iniciada_en, terminada_en, solicitudes)
         VALUES ($1, $2::text::timestamptz, 'completada', 'antes', $2::text::timestamptz, $2::text::timestamptz, 0)",
        &[&programa, &programada],
    )
    .await
    .unwrap();
}

async fn ids(c: &Client, sql: &str) -> Vec<i64> {
    c.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn the_weekly_clean_up_deletes_only_old_finished_rows_once_across_replicas() {
    let (_db, c, pool, rules) = setup().await;
    let fam = seed_family(&c, Some("a@example.com"), None, 50_000).await;
    let now = at("2026-11-29T05:00:00Z"); // Sunday 02:00 local: the default schedule
    let days = |d: i64| now - SignedDuration::from_hours(24 * d);

    // Events (30 days): processed 31 days ago goes; processed 29 days ago and never processed stay.
    let old_done = event(&c, days(40), Some(days(31))).await;
    let recent_done = event(&c, days(40), Some(days(29))).await;
    let never_done = event(&c, days(40), None).await;

    // Requests (365 days), by actualizado_en, else fecha_solicitud.
    let gone = [
        request(&c, fam.id_cliente, Some("k:enviado"), "Enviado", days(400), Some(days(400))).await,
        request(&c, fam.id_cliente, Some("k:error"), "Error", days(400), Some(days(366))).await,
        request(&c, fam.id_cliente, Some("k:omitido"), "Omitido", days(400), Some(days(400))).await,
        request(&c, fam.id_cliente, Some("k:sin-actualizado"), "Enviado", days(400), None).await,
    ];
    let mut kept = vec![
        request(&c, fam.id_cliente, Some("k:reciente"), "Enviado", days(400), Some(days(364))).await,
        request(&c, fam.id_cliente, Some("k:tocado"), "Error", days(400), Some(days(10))).await,
        request(&c, fam.id_cliente, Some("k:pendiente"), "Pendiente", days(400), Some(days(400))).await,
        request(&c, fam.id_cliente, None, "Enviado", days(400), None).await, // the POS's, never taken over
        request(&c, fam.id_cliente, None, "Error", days(400), Some(days(400))).await,
    ];
    kept.sort();

    // Ledger (90 days), never a schedule's latest row.
    run_row(&c, "saldo_bajo", "2026-08-20T21:00:00Z").await; // goes
    run_row(&c, "saldo_bajo", "2026-11-28T21:00:00Z").await;
    run_row(&c, "cuenta_pendiente", "2026-08-17T12:00:00Z").await; // goes
    run_row(&c, "cuenta_pendiente", "2026-11-23T12:00:00Z").await;
    run_row(&c, "recordatorio_deuda", "2026-11-28T11:00:00Z").await;
    run_row(&c, "retirado", "2025-12-01T12:00:00Z").await; // goes
    run_row(&c, "retirado", "2026-01-01T12:00:00Z").await; // old, but the latest of its schedule

    let clock = FakeClock::new(now + SignedDuration::from_mins(1));

    scheduler_started_before(&c, clock.now()).await;
    let settings = SchedulerSettings::default();
    let retention = RetentionSettings::default();
    let a = Scheduler::new(pool.clone(), rules.clone(), &settings, &retention, "replica-a", clock.clone()).unwrap();
    let b = Scheduler::new(pool.clone(), rules.clone(), &settings, &retention, "replica-b", clock.clone()).unwrap();
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    let mut ran = not_spending(ra.unwrap());
    ran.extend(not_spending(rb.unwrap()));
    assert_eq!(ran, [FiringOutcome::Ran { kind: SweepKind::Limpieza, at: now, result: Ok(8) }]);

    assert_eq!(
        ids(&c, &format!("SELECT id FROM cantina_notify_eventos WHERE id IN ({old_done}, {recent_done}, {never_done}) ORDER BY id"))
            .await,
        [recent_done, never_done]
    );
    assert_eq!(ids(&c, "SELECT id_solicitud FROM solicitudes_notificacion ORDER BY id_solicitud").await, kept);
    assert!(gone.iter().all(|g| !kept.contains(g)));
    let runs: Vec<(String, String)> = c
        .query(
            "SELECT programa, to_char(programada_en AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM cantina_notify_ejecuciones
             WHERE detalle IS DISTINCT FROM $1 ORDER BY programa, programada_en",
            &[&cantina_notify::scheduler::ledger::BASELINE_DETAIL],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> = [
        // The every-minute spending schedule's run of the same tick.
        ("consumo_realizado", "2026-11-29"),
        ("cuenta_pendiente", "2026-11-23"),
        ("limpieza", "2026-11-29"),
        ("recordatorio_deuda", "2026-11-28"),
        ("retirado", "2026-01-01"),
        ("saldo_bajo", "2026-11-28"),
    ]
    .iter()
    .map(|(p, d)| (p.to_string(), d.to_string()))
    .collect();
    assert_eq!(runs, expected);
    let row = c
        .query_one(
            "SELECT estado, solicitudes, detalle FROM cantina_notify_ejecuciones
             WHERE programa = 'limpieza' AND estado <> 'omitida'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "completada");
    assert_eq!(row.get::<_, i32>(1), 8);
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some(CleanupReport { eventos: 1, solicitudes: 4, ejecuciones: 3, mensajes: 0, avisos: 0 }.to_string().as_str())
    );

    // Later ticks do not run it again.
    clock.set(now + SignedDuration::from_mins(30));
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    assert!(not_spending(ra.unwrap()).is_empty() && not_spending(rb.unwrap()).is_empty());
}

#[tokio::test]
async fn the_clean_up_goes_in_batches_until_nothing_old_is_left() {
    let (_db, c, pool, _) = setup().await;
    let fam = seed_family(&c, Some("a@example.com"), None, 50_000).await;
    let now = at("2026-11-29T05:00:00Z");
    let old = now - SignedDuration::from_hours(24 * 400);
    for i in 0..7 {
        request(&c, fam.id_cliente, Some(&format!("k:{i}")), "Enviado", old, Some(old)).await;
        event(&c, old, Some(old)).await;
    }
    let pending = request(&c, fam.id_cliente, Some("k:p"), "Pendiente", old, Some(old)).await;
    // Inbound message ids applied (migration 0017): three older than the requests' retention, one recent.
    let recent = now - SignedDuration::from_hours(24);
    for (i, when) in [old, old, old, recent].into_iter().enumerate() {
        c.execute(
            "INSERT INTO cantina_notify_mensajes_entrantes (proveedor, id_mensaje, recibido_en) VALUES ('meta', $1, $2)",
            &[&format!("wamid.{i}"), &std::time::SystemTime::from(when)],
        )
        .await
        .unwrap();
    }
    // The family's daily message (migration 0023): five day rows older than the ledger's retention and one recent;
    // three items older than the requests' retention and one recent.
    let old_day = now - SignedDuration::from_hours(24 * 100);
    for (i, when) in [old_day, old_day, old_day, old_day, old_day, recent].into_iter().enumerate() {
        c.execute(
            "INSERT INTO cantina_notify_mensaje_diario (id_cliente, fecha, urgencia, actualizado_en)
             VALUES ($1, DATE '2026-01-01' + $2::int4, 1, $3)",
            &[&fam.id_cliente, &(i as i32), &std::time::SystemTime::from(when)],
        )
        .await
        .unwrap();
    }
    for (i, when) in [old, old, old, recent].into_iter().enumerate() {
        c.execute(
            "INSERT INTO cantina_notify_avisos_enviados (clave, id_cliente, tipo, fecha, creado_en)
             VALUES ($1, $2, 'saldo_bajo', DATE '2026-01-01', $3)",
            &[&format!("saldo_bajo:T{i}:2026-01-01"), &fam.id_cliente, &std::time::SystemTime::from(when)],
        )
        .await
        .unwrap();
    }
    let retention = RetentionSettings { events_days: 30, requests_days: 365, ledger_days: 90 };
    let report = cleanup::run_in_batches(&pool, &retention, now, 2).await.unwrap();
    assert_eq!(report, CleanupReport { eventos: 7, solicitudes: 7, ejecuciones: 0, mensajes: 3, avisos: 8 });
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_mensaje_diario").await, 1, "the recent day stays");
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_avisos_enviados").await, 1, "the recent item stays");
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_mensajes_entrantes").await, 1, "the recent id stays");
    assert_eq!(ids(&c, "SELECT id_solicitud FROM solicitudes_notificacion").await, [pending]);
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NOT NULL").await, 0);
    // Nothing left: a second run deletes nothing.
    assert_eq!(cleanup::run_in_batches(&pool, &retention, now, 2).await.unwrap(), CleanupReport::default());
}

// ---- The low-balance sweep per parent, and preferences in the sweeps ----

/// Another child of `id_cliente` with a card holding `saldo`; returns the card number.
async fn another_card(c: &Client, id_cliente: i32, nombre: &str, nro_tarjeta: &str, saldo: i64) -> String {
    let id_hijo: i32 = c
        .query_one(
            "INSERT INTO hijos (id_cliente_responsable, nombre, apellido) VALUES ($1, $2, 'Benítez') RETURNING id_hijo",
            &[&id_cliente, &nombre],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO tarjetas (nro_tarjeta, id_hijo, saldo_actual) VALUES ($1, $2, $3)",
        &[&nro_tarjeta, &id_hijo, &saldo],
    )
    .await
    .unwrap();
    nro_tarjeta.to_string()
}

/// The cards a `saldo_bajo` request lists, in order.
async fn listed(c: &Client, clave_dedup: &str) -> Vec<String> {
    c.query(
        "SELECT e->>'nro_tarjeta' FROM solicitudes_notificacion, jsonb_array_elements(datos->'tarjetas') e
         WHERE clave_dedup = $1",
        &[&clave_dedup],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Turns `channel_column` (`email_activo`, …) off for each of `tipos` in a new portal account of the client.
async fn turn_off(c: &Client, id_cliente: i32, tipos: &[&str], channel_column: &str) {
    let tipos: Vec<String> = tipos.iter().map(|t| t.to_string()).collect();
    c.execute(
        &format!(
            "WITH u AS (INSERT INTO usuario_portal (id_cliente, email) VALUES ($1, 'portal' || $1::int4 || '@example.com')
                        RETURNING id_usuario_portal)
             INSERT INTO preferencia_notificacion (id_usuario_portal, tipo_notificacion, {channel_column})
             SELECT id_usuario_portal, t, false FROM u, unnest($2::text[]) AS t"
        ),
        &[&id_cliente, &tipos],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn saldo_bajo_sweep_sends_one_notice_per_parent_listing_all_their_cards() {
    let (db, c, pool, _) = setup().await;
    let settings =
        test_settings(&db, &[("SMS_PROVIDER", "console"), ("CANTINA__RULES__SALDO_BAJO__CHANNELS", "email,sms")]);
    let (rules, _) = settings.validate(true).unwrap();
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 1_000).await;
    let second = another_card(&c, fam.id_cliente, "Sofía", &format!("{}-b", fam.nro_tarjeta), 2_500).await;
    // A third child above the threshold, and another family with nothing low.
    another_card(&c, fam.id_cliente, "Tomás", &format!("{}-c", fam.nro_tarjeta), 9_000).await;
    seed_family(&c, Some("pedro@example.com"), None, 50_000).await;

    let now = Timestamp::now();
    let today = cantina_notify::rules::local_date(now);
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, now).await.unwrap(), 2, "one per channel");
    // The family's message is keyed by its first card's crossing (no crossing on record for either card).
    let key = |channel: &str| format!("saldo_bajo:{}:{today}:{channel}", fam.nro_tarjeta);
    assert_eq!(keys(&c, "saldo_bajo").await, [key("email"), key("sms")]);
    for channel in ["email", "sms"] {
        assert_eq!(listed(&c, &key(channel)).await, [fam.nro_tarjeta.clone(), second.clone()]);
        let row = c
            .query_one(
                "SELECT estado, nro_tarjeta, saldo_alerta, mensaje, id_cliente FROM solicitudes_notificacion
                 WHERE clave_dedup = $1",
                &[&key(channel)],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "Pendiente");
        // The row names the first card, with its own balance.
        assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some(fam.nro_tarjeta.as_str()));
        assert_eq!(row.get::<_, Option<i64>>(2), Some(1_000));
        assert_eq!(
            row.get::<_, String>(3),
            "Cantina Tita: saldo bajo en las tarjetas de Luis Benítez (Gs. 1.000) y Sofía Benítez (Gs. 2.500). \
             Recargue en el portal de padres o en la cantina."
        );
        assert_eq!(row.get::<_, i32>(4), fam.id_cliente);
    }

    // Again the same day, even with one more card low since: nothing new (its crossing waits for tomorrow's
    // message: a family gets one scheduled low-balance message a day).
    c.execute("UPDATE tarjetas SET saldo_actual = 500 WHERE nro_tarjeta = $1", &[&format!("{}-c", fam.nro_tarjeta)])
        .await
        .unwrap();
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, now).await.unwrap(), 0);
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 2);

    // Once the notice goes out, every card it lists is stamped (the crossing rule and tomorrow's sweep read it).
    let claimed = cantina_notify::dispatch::store::claim(&pool, 10, std::time::Duration::from_secs(60), &["Email"], 5)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let sent = cantina_notify::dispatch::store::Outcome::Sent {
        provider: "prueba",
        provider_id: None,
        warning: None,
        await_receipt: None,
    };
    assert_eq!(cantina_notify::dispatch::store::record(&pool, &claimed[0], &sent).await.unwrap(), 1);
    let stamped: Vec<String> = c
        .query("SELECT nro_tarjeta FROM tarjetas WHERE ultima_notificacion_saldo IS NOT NULL ORDER BY nro_tarjeta", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stamped, [fam.nro_tarjeta.clone(), second]);
}

#[tokio::test]
async fn saldo_bajo_sweep_leaves_out_cards_that_had_a_notice_today() {
    let (db, c, pool, rules) = setup().await;
    // Two low cards of one parent; one of them crossed through the trigger today (its notice still pending).
    let fam = seed_family(&c, Some("ana@example.com"), None, 10_000).await;
    let low = another_card(&c, fam.id_cliente, "Sofía", &format!("{}-b", fam.nro_tarjeta), 2_000).await;
    crate::helpers::consume(&c, &fam.nro_tarjeta, 8_000).await;
    let (drain_rules, _) = test_settings(&db, &[]).validate(true).unwrap();
    drain_batch(&pool, &drain_rules, 100, None).await.unwrap();
    let now = Timestamp::now();
    let today = cantina_notify::rules::local_date(now);
    let trigger_key = format!("saldo_bajo:{}:{today}:email", fam.nro_tarjeta);
    assert_eq!(keys(&c, "saldo_bajo").await, [trigger_key]);
    // Another parent's low card.
    let other = seed_family(&c, Some("rosa@example.com"), None, 1_000).await;

    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, now).await.unwrap(), 2);
    let sweep_key = format!("saldo_bajo:{low}:{today}:email");
    assert_eq!(listed(&c, &sweep_key).await, [low.as_str()], "the card the trigger notified is left out");
    let first: Option<String> = c
        .query_one("SELECT nro_tarjeta FROM solicitudes_notificacion WHERE clave_dedup = $1", &[&sweep_key])
        .await
        .unwrap()
        .get(0);
    assert_eq!(first, Some(low.clone()));
    let other_key = format!("saldo_bajo:{}:{today}:email", other.nro_tarjeta);
    assert_eq!(listed(&c, &other_key).await, [other.nro_tarjeta.as_str()]);

    // The other family's card is moved to a new parent the same day: its crossing is in the ledger, so the new
    // parent gets nothing for it.
    let new_parent = seed_family(&c, Some("nuevo@example.com"), None, 50_000).await;
    c.execute(
        "UPDATE hijos SET id_cliente_responsable = $1
         WHERE id_hijo = (SELECT id_hijo FROM tarjetas WHERE nro_tarjeta = $2)",
        &[&new_parent.id_cliente, &other.nro_tarjeta],
    )
    .await
    .unwrap();
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, now).await.unwrap(), 0);
    assert_eq!(keys(&c, "saldo_bajo").await.len(), 3);
}

#[tokio::test]
async fn sweeps_record_a_channel_the_parent_turned_off_as_omitido_with_the_reason() {
    let (_db, c, pool, rules) = setup().await;
    // Low balance: one parent turned email off for saldo_bajo, another only for recarga_exitosa.
    let off = seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    turn_off(&c, off.id_cliente, &["saldo_bajo"], "email_activo").await;
    let on = seed_family(&c, Some("rosa@example.com"), None, 1_000).await;
    turn_off(&c, on.id_cliente, &["recarga_exitosa"], "email_activo").await;
    // Account debt and a negative-balance reminder for a parent who turned email off for both.
    let debtor = seed_family(&c, Some("pedro@example.com"), None, 50_000).await;
    turn_off(&c, debtor.id_cliente, &["cuenta_pendiente", "recordatorio_deuda"], "email_activo").await;
    sale(&c, debtor.id_cliente, at("2026-11-20T12:00:00Z"), 30_000, "PENDIENTE", "PROCESADO").await;
    let id_aut = authorise(&c, &debtor.nro_tarjeta, -12_000, at("2026-11-27T13:00:00Z")).await;
    c.execute("UPDATE tarjetas SET notificar_saldo_bajo = false WHERE nro_tarjeta = $1", &[&debtor.nro_tarjeta])
        .await
        .unwrap();

    let monday = at("2026-11-30T12:00:00Z"); // 7 days after the sale, 3 local days after the authorisation
    assert_eq!(run_sweep(&pool, &rules, SweepKind::CuentaPendiente, monday).await.unwrap(), 1);
    // The day's first daily firing: the debt reminder and both low cards (their crossings: none on record).
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, monday).await.unwrap(), 3);

    let state = |key: String| {
        let c = &c;
        async move {
            let r = c
                .query_one("SELECT estado, ultimo_error FROM solicitudes_notificacion WHERE clave_dedup = $1", &[&key])
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            (r.get::<_, String>(0), r.get::<_, Option<String>>(1))
        }
    };
    let reason =
        |id: i32, tipo: &str| Some(format!("el cliente {id} desactivó los avisos {tipo} por Email en el portal"));
    assert_eq!(
        state(format!("saldo_bajo:{}:2026-11-30:email", off.nro_tarjeta)).await,
        ("Omitido".to_string(), reason(off.id_cliente, "saldo_bajo"))
    );
    assert_eq!(state(format!("saldo_bajo:{}:2026-11-30:email", on.nro_tarjeta)).await, ("Pendiente".to_string(), None));
    assert_eq!(
        state(format!("cuenta_pendiente:{}:2026-W49:email", debtor.id_cliente)).await,
        ("Omitido".to_string(), reason(debtor.id_cliente, "cuenta_pendiente"))
    );
    assert_eq!(
        state(format!("recordatorio_deuda:{}:{id_aut}:3:email", debtor.id_cliente)).await,
        ("Omitido".to_string(), reason(debtor.id_cliente, "recordatorio_deuda"))
    );
    // Recorded once: the day's later firing adds nothing.
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, at("2026-11-30T21:00:00Z")).await.unwrap(), 0);
}

#[tokio::test]
async fn sweep_limpieza_on_the_command_line_cleans_up_now_and_prints_what_it_deleted() {
    let (db, c, _pool, _) = setup().await;
    let fam = seed_family(&c, Some("a@example.com"), None, 50_000).await;
    let now = Timestamp::now();
    let old = now - SignedDuration::from_hours(24 * 400);
    request(&c, fam.id_cliente, Some("k:viejo"), "Enviado", old, Some(old)).await;
    let recent = request(&c, fam.id_cliente, Some("k:reciente"), "Enviado", old, Some(now)).await;
    event(&c, old, Some(old)).await;
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cantina-notify"))
            .args(["sweep", "limpieza"])
            .env("CANTINA__DATABASE__SIGNING_KEY", crate::helpers::TEST_SIGNING_KEY)
            .env("DATABASE_URL", &url)
            .env("CANTINA__RETENTION__REQUESTS_DAYS", "100")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("sweep limpieza: borradas: 1 eventos procesados, 1 solicitudes terminadas, 0 ejecuciones"),
        "{stdout}"
    );
    assert_eq!(ids(&c, "SELECT id_solicitud FROM solicitudes_notificacion").await, [recent]);
    // Not a scheduled run: nothing in the ledger.
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_ejecuciones").await, 0);
}
