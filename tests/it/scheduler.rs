//! Scheduler and sweeps over the real database.

use std::sync::{Arc, Mutex};

use cantina_notify::config::RulesConfig;
use cantina_notify::events::drain::drain_batch;
use cantina_notify::scheduler::{Clock, FiringOutcome, Scheduler, SchedulerSettings, SweepKind, run_sweep};
use deadpool_postgres::Pool;
use jiff::{SignedDuration, Timestamp};
use tokio_postgres::Client;

use crate::helpers::{TestDb, count, seed_family, test_settings};

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
         FROM cantina_notify_ejecuciones WHERE programa = $1 ORDER BY programada_en",
        &[&programa],
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
    let settings = SchedulerSettings::default();
    let a = Scheduler::new(pool.clone(), rules.clone(), &settings, "replica-a", clock.clone()).unwrap();
    let b = Scheduler::new(pool.clone(), rules.clone(), &settings, "replica-b", clock.clone()).unwrap();
    let mut ran = Vec::new();
    let mut t = start;
    while t <= start + SignedDuration::from_hours(24 * 7) {
        clock.set(t);
        let (ra, rb) = tokio::join!(a.tick(), b.tick());
        ran.extend(ra.unwrap());
        ran.extend(rb.unwrap());
        t += SignedDuration::from_mins(30);
    }
    assert!(ran.iter().all(|o| matches!(o, FiringOutcome::Ran { result: Ok(_), .. })), "{ran:?}");
    // 7 daily low-balance, 1 weekly account, 7 daily reminder firings: each exactly once across both replicas.
    assert_eq!(ran.len(), 15, "{ran:?}");
    let mut firings: Vec<_> = ran
        .iter()
        .map(|o| match o {
            FiringOutcome::Ran { kind, at, .. } | FiringOutcome::Skipped { kind, at } => (*kind, *at),
        })
        .collect();
    firings.sort_by_key(|(k, t)| (k.as_str(), *t));
    firings.dedup();
    assert_eq!(firings.len(), 15);

    let saldo = ledger(&c, "saldo_bajo").await;
    assert_eq!(saldo.len(), 7);
    assert_eq!(saldo[0], ("2026-11-22T21:00".to_string(), "completada".to_string()));
    assert!(saldo.iter().all(|(_, e)| e == "completada"));
    assert_eq!(ledger(&c, "cuenta_pendiente").await, [("2026-11-23T12:00".to_string(), "completada".to_string())]);
    assert_eq!(ledger(&c, "recordatorio_deuda").await.len(), 7);

    // Notices: the low-balance card once per local day (nobody stamps it in this test: no dispatcher).
    let expected: Vec<String> =
        (22..=28).map(|d| format!("saldo_bajo:{}:2026-11-{d}:email", low.nro_tarjeta)).collect();
    assert_eq!(keys(&c, "saldo_bajo").await, expected);
    assert_eq!(keys(&c, "cuenta_pendiente").await, [format!("cuenta_pendiente:{}:2026-W48:email", debtor.id_cliente)]);
    assert_eq!(
        keys(&c, "recordatorio_deuda").await,
        [format!("recordatorio_deuda:{id_aut}:3:email"), format!("recordatorio_deuda:{id_aut}:7:email")]
    );
    let total: i64 =
        c.query_one("SELECT sum(solicitudes)::int8 FROM cantina_notify_ejecuciones", &[]).await.unwrap().get(0);
    assert_eq!(total, 10);
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 10);
}

#[tokio::test]
async fn a_missed_firing_runs_once_within_the_window_and_is_skipped_beyond_it() {
    let (_db, c, pool, rules) = setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    let clock = FakeClock::new(at("2026-11-23T21:30:00Z")); // Monday 18:30 local
    let s = Scheduler::new(pool.clone(), rules, &SchedulerSettings::default(), "r1", clock.clone()).unwrap();
    s.tick().await.unwrap();
    assert_eq!(ledger(&c, "saldo_bajo").await, [("2026-11-23T21:00".to_string(), "completada".to_string())]);

    // Down across Tuesday 18:00, back at 20:00 (within 6 h): runs once.
    clock.set(at("2026-11-24T23:00:00Z"));
    let out = s.tick().await.unwrap();
    assert!(out.contains(&FiringOutcome::Ran {
        kind: SweepKind::SaldoBajo,
        at: at("2026-11-24T21:00:00Z"),
        result: Ok(1)
    }));
    clock.set(at("2026-11-24T23:01:00Z"));
    assert!(
        s.tick().await.unwrap().iter().all(|o| !matches!(o, FiringOutcome::Ran { kind: SweepKind::SaldoBajo, .. }))
    );

    // Down across Wednesday 18:00, back Thursday 03:00 local (9 h later): recorded omitida, not run.
    clock.set(at("2026-11-26T06:00:00Z"));
    let out = s.tick().await.unwrap();
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
            format!("saldo_bajo:{}:2026-11-24:email", fam.nro_tarjeta)
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
    let s = Scheduler::new(pool.clone(), rules, &SchedulerSettings::default(), "viva", clock.clone()).unwrap();
    assert!(s.tick().await.unwrap().is_empty(), "still presumed running");
    clock.set(at("2026-11-23T21:31:00Z"));
    let out = s.tick().await.unwrap();
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
async fn saldo_bajo_sweep_skips_cards_the_trigger_already_notified_today() {
    let (db, c, pool, rules) = setup().await;
    // Crossing through the trigger and the drain: request saldo_bajo:<card>:<today>:email.
    let crossed = seed_family(&c, Some("a@example.com"), None, 10_000).await;
    crate::helpers::consume(&c, &crossed.nro_tarjeta, 8_000).await;
    let settings = test_settings(&db, &[]);
    let (drain_rules, _) = settings.validate(true).unwrap();
    drain_batch(&pool, &drain_rules, 100, false).await.unwrap();
    assert_eq!(keys(&c, "saldo_bajo").await.len(), 1);
    // Stamped today (a notice already went out), stamped yesterday, own threshold, blocked, opted out, no email.
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
    assert_eq!(n, 3, "yesterday's, the own-threshold card and the one without email");
    let today = cantina_notify::rules::local_date(now);
    let mut expected: Vec<String> = [&crossed, &yesterday, &own, &no_email]
        .iter()
        .map(|f| format!("saldo_bajo:{}:{today}:email", f.nro_tarjeta))
        .collect();
    expected.sort();
    assert_eq!(keys(&c, "saldo_bajo").await, expected);
    let row = c
        .query_one(
            "SELECT estado, ultimo_error, saldo_alerta, datos->>'umbral' FROM solicitudes_notificacion WHERE nro_tarjeta = $1",
            &[&no_email.nro_tarjeta],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Error");
    assert!(row.get::<_, Option<String>>(1).unwrap().starts_with(&format!("cliente {}:", no_email.id_cliente)));
    assert_eq!(row.get::<_, Option<i64>>(2), Some(1_000));
    let umbral: String = c
        .query_one("SELECT datos->>'umbral' FROM solicitudes_notificacion WHERE nro_tarjeta = $1", &[&own.nro_tarjeta])
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
            "SELECT clave_dedup, datos->>'nivel', datos->>'dias', datos->>'monto', nro_tarjeta
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
            (format!("recordatorio_deuda:{id}:3:email"), "amistoso".into(), "3".into(), "12000".into()),
            (format!("recordatorio_deuda:{id}:7:email"), "urgente".into(), "7".into(), "12000".into()),
            (format!("recordatorio_deuda:{id}:15:email"), "critico".into(), "15".into(), "12000".into()),
        ]
    );
    assert!(rows.iter().all(|r| r.get::<_, Option<String>>(4).as_deref() == Some(fam.nro_tarjeta.as_str())));
}
