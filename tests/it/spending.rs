//! The opt-in spending notices (issue 18 item 6) over the real database: `resumen_consumos`, a family's purchases
//! of the day, and `consumo_realizado`, one notice per purchase; only for families with an explicit row on.

use std::sync::{Arc, Mutex};

use cantina_notify::config::RetentionSettings;
use cantina_notify::scheduler::{Clock, FiringOutcome, Scheduler, SchedulerSettings, SweepKind, run_sweep};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value as Json;
use tokio_postgres::Client;

use crate::helpers::*;

/// A purchase on the card at `fecha` (the app's triggers lower the card's balance); returns its id.
async fn buy(c: &Client, nro_tarjeta: &str, monto: i64, detalle: &str, fecha: Timestamp) -> i64 {
    let fecha: std::time::SystemTime = fecha.into();
    c.query_one(
        "INSERT INTO consumos_tarjeta (nro_tarjeta, monto_consumido, detalle, fecha_consumo)
         VALUES ($1, $2, $3, $4) RETURNING id_consumo",
        &[&nro_tarjeta, &monto, &detalle, &fecha],
    )
    .await
    .unwrap()
    .get(0)
}

/// Another child of the client with a card holding `saldo`.
async fn second_child(c: &Client, id_cliente: i32, nombre: &str, saldo: i64) -> String {
    let nro_tarjeta = format!("S{}", fastrand::u64(..) % 10_000_000_000);
    c.execute(
        "WITH h AS (INSERT INTO hijos (id_cliente_responsable, nombre, apellido) VALUES ($1, $2, 'Benítez')
                    RETURNING id_hijo)
         INSERT INTO tarjetas (nro_tarjeta, id_hijo, saldo_actual) SELECT $3, id_hijo, $4 FROM h",
        &[&id_cliente, &nombre, &nro_tarjeta, &saldo],
    )
    .await
    .unwrap();
    nro_tarjeta
}

/// The client's explicit choice, made at `desde`.
async fn opt(c: &Client, id_cliente: i32, tipo: &str, canal: &str, activo: bool, desde: Timestamp) {
    let desde: std::time::SystemTime = desde.into();
    c.execute(
        "INSERT INTO cantina_notify_preferencias_cliente (id_cliente, tipo, canal, activo, cambiado_en, cambiado_por)
         VALUES ($1, $2, $3, $4, $5, 'test')",
        &[&id_cliente, &tipo, &canal, &activo, &desde],
    )
    .await
    .unwrap();
}

/// A portal account of the client with every channel of `tipo` on (the portal cannot switch an opt-in type on).
async fn portal_all_on(c: &Client, id_cliente: i32, tipo: &str) {
    c.execute(
        "WITH u AS (INSERT INTO usuario_portal (id_cliente, email) VALUES ($1, 'p' || $1::int4 || '@example.com')
                    RETURNING id_usuario_portal)
         INSERT INTO preferencia_notificacion (id_usuario_portal, tipo_notificacion, email_activo, push_activo)
         SELECT id_usuario_portal, $2, true, true FROM u",
        &[&id_cliente, &tipo],
    )
    .await
    .unwrap();
}

async fn rows(c: &Client, tipo: &str) -> Vec<(String, String, Json, Option<i64>, String)> {
    c.query(
        "SELECT clave_dedup, estado, datos, saldo_alerta, mensaje FROM solicitudes_notificacion
         WHERE tipo = $1 ORDER BY clave_dedup",
        &[&tipo],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

// Tuesday 2026-12-08, local (UTC-3).
const DAY: &str = "2026-12-08";

fn local(hhmm: &str) -> Timestamp {
    at(&format!("{DAY}T{hhmm}:00-03:00"))
}

/// Every purchase is in exactly one summary: one after the 20:00 firing goes in the next day's (with its date), one
/// stamped within the grace before the firing but committed after it too. One committed after the run but stamped
/// long before it (a POS offline for an hour) is in none: a window ends at the firing less the grace.
#[tokio::test]
async fn resumen_consumos_purchase_after_the_firing_goes_in_the_next_summary_with_its_date() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 50_000).await;
    opt(&c, fam.id_cliente, "resumen_consumos", "Email", true, at("2026-12-01T12:00:00Z")).await;
    buy(&c, &fam.nro_tarjeta, 5_000, "Empanada", at("2026-12-08T12:00:00-03:00")).await;
    let first = at("2026-12-08T20:00:00-03:00");
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ResumenConsumos, first).await.unwrap(), 1);
    buy(&c, &fam.nro_tarjeta, 7_000, "Cena", at("2026-12-08T20:30:00-03:00")).await;
    // Committed after the run, stamped inside the grace: the next summary.
    buy(&c, &fam.nro_tarjeta, 2_000, "Caramelo", at("2026-12-08T19:58:00-03:00")).await;
    // Committed late (the POS was offline), stamped 19:00: in no summary (documented limit).
    buy(&c, &fam.nro_tarjeta, 3_000, "Jugo tardío", at("2026-12-08T19:00:00-03:00")).await;
    buy(&c, &fam.nro_tarjeta, 4_000, "Alfajor", at("2026-12-09T10:00:00-03:00")).await;
    // The next firing, run late (catch-up, CLI): the same window as at 20:00 sharp.
    let late = at("2026-12-09T20:40:00-03:00");
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ResumenConsumos, late).await.unwrap(), 1);
    // A purchase after the second run: the 10th's summary, not a second one for the 9th.
    buy(&c, &fam.nro_tarjeta, 1_000, "Chicle", at("2026-12-09T20:50:00-03:00")).await;
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ResumenConsumos, late).await.unwrap(), 0);

    let got = rows(&c, "resumen_consumos").await;
    let keys: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
    let id = fam.id_cliente;
    assert_eq!(
        keys,
        [format!("resumen_consumos:{id}:2026-12-08:email"), format!("resumen_consumos:{id}:2026-12-09:email")]
    );
    let consumos = |i: usize| got[i].2["hijos"][0]["consumos"].clone();
    assert_eq!(consumos(0), serde_json::json!([{"hora": "12:00", "detalle": "Empanada", "monto": 5000}]));
    assert_eq!(
        consumos(1),
        serde_json::json!([
            {"hora": "08/12 19:58", "detalle": "Caramelo", "monto": 2000},
            {"hora": "08/12 20:30", "detalle": "Cena", "monto": 7000},
            {"hora": "10:00", "detalle": "Alfajor", "monto": 4000}
        ])
    );
    assert_eq!(got[1].2["fecha"], "09/12/2026");
    let all: String = got.iter().map(|r| r.2.to_string()).collect();
    assert!(!all.contains("Jugo tardío") && !all.contains("Chicle"), "{all}");
    // The 10th's summary has the purchase after the 9th's run.
    let next = at("2026-12-10T20:00:00-03:00");
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ResumenConsumos, next).await.unwrap(), 1);
    let got = rows(&c, "resumen_consumos").await;
    assert_eq!(
        got[2].2["hijos"][0]["consumos"],
        serde_json::json!([{"hora": "09/12 20:50", "detalle": "Chicle", "monto": 1000}])
    );
}

#[tokio::test]
async fn resumen_consumos_once_per_opted_in_family_and_day_with_purchases() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 80_000).await;
    let sofia = second_child(&c, fam.id_cliente, "Sofía", 18_000).await;
    opt(&c, fam.id_cliente, "resumen_consumos", "Email", true, at("2026-12-01T12:00:00Z")).await;
    buy(&c, &fam.nro_tarjeta, 8_000, "Empanada", local("09:40")).await;
    buy(&c, &sofia, 6_000, "Jugo de naranja", local("10:05")).await;
    buy(&c, &fam.nro_tarjeta, 25_000, "Almuerzo del día", local("12:15")).await;
    // Before the previous day's 20:00 summary (in that one's window): not in this day's summary.
    buy(&c, &fam.nro_tarjeta, 4_000, "Ayer", at("2026-12-07T19:50:00-03:00")).await;
    // A family that did not opt in (its portal says yes to everything), and one that switched it off.
    let other = seed_family(&c, Some("pedro@example.com"), None, 50_000).await;
    portal_all_on(&c, other.id_cliente, "resumen_consumos").await;
    buy(&c, &other.nro_tarjeta, 9_000, "Sandwich", local("11:00")).await;
    let off = seed_family(&c, Some("rosa@example.com"), None, 50_000).await;
    opt(&c, off.id_cliente, "resumen_consumos", "Email", false, at("2026-12-01T12:00:00Z")).await;
    buy(&c, &off.nro_tarjeta, 9_000, "Sandwich", local("11:30")).await;

    let firing = local("20:00");
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ResumenConsumos, firing).await.unwrap(), 1);
    let got = rows(&c, "resumen_consumos").await;
    assert_eq!(got.len(), 1, "{got:?}");
    let (key, estado, datos, saldo, mensaje) = &got[0];
    assert_eq!(key, &format!("resumen_consumos:{}:{DAY}:email", fam.id_cliente));
    assert_eq!(estado, "Pendiente");
    assert_eq!(*saldo, None, "one balance per card, in the data");
    // Every purchase with time, detalle and amount, per child; the balance left on each card.
    assert_eq!(datos["fecha"], "08/12/2026");
    let hijos = datos["hijos"].as_array().unwrap();
    assert_eq!(hijos.len(), 2, "{datos}");
    assert_eq!(hijos[0]["alumno"], "Luis Benítez");
    assert_eq!(
        hijos[0]["consumos"],
        serde_json::json!([
            {"hora": "09:40", "detalle": "Empanada", "monto": 8000},
            {"hora": "12:15", "detalle": "Almuerzo del día", "monto": 25000}
        ])
    );
    assert_eq!(hijos[0]["saldo"], 80_000 - 8_000 - 25_000 - 4_000);
    assert_eq!(hijos[1]["alumno"], "Sofía Benítez");
    assert_eq!(
        hijos[1]["consumos"],
        serde_json::json!([{"hora": "10:05", "detalle": "Jugo de naranja", "monto": 6000}])
    );
    assert_eq!(hijos[1]["saldo"], 18_000 - 6_000);
    assert_eq!(
        mensaje,
        "Cantina Tita: consumos del 08/12: Luis Benítez Gs. 33.000 (2 compras, saldo: Gs. 43.000); \
         Sofía Benítez Gs. 6.000 (1 compra, saldo: Gs. 12.000)."
    );

    // Again (CLI, another replica, catch-up), and two at once: nothing new.
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ResumenConsumos, firing).await.unwrap(), 0);
    let (a, b) = tokio::join!(
        run_sweep(&pool, &rules, SweepKind::ResumenConsumos, local("20:00")),
        run_sweep(&pool, &rules, SweepKind::ResumenConsumos, local("21:00"))
    );
    assert_eq!(a.unwrap() + b.unwrap(), 0);
    // The next day has no purchases: nothing.
    let next = at("2026-12-09T20:00:00-03:00");
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ResumenConsumos, next).await.unwrap(), 0);
    assert_eq!(rows(&c, "resumen_consumos").await.len(), 1);
}

#[tokio::test]
async fn consumo_realizado_once_per_purchase_of_opted_in_families_only() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 80_000).await;
    let sofia = second_child(&c, fam.id_cliente, "Sofía", 18_000).await;
    // Switched on at 08:00: a purchase before it is not notified, nor one older than a day.
    opt(&c, fam.id_cliente, "consumo_realizado", "Email", true, local("08:00")).await;
    buy(&c, &fam.nro_tarjeta, 3_000, "Antes de activarlo", local("07:30")).await;
    let first = buy(&c, &fam.nro_tarjeta, 8_000, "Empanada", local("09:40")).await;
    let second = buy(&c, &sofia, 6_000, "Jugo", local("10:05")).await;
    let other = seed_family(&c, Some("pedro@example.com"), None, 50_000).await;
    portal_all_on(&c, other.id_cliente, "consumo_realizado").await;
    buy(&c, &other.nro_tarjeta, 9_000, "Sandwich", local("10:00")).await;

    let now = local("10:06");
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ConsumoRealizado, now).await.unwrap(), 2);
    let got = rows(&c, "consumo_realizado").await;
    let keys: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(keys, [format!("consumo_realizado:{first}:email"), format!("consumo_realizado:{second}:email")]);
    let (_, estado, datos, saldo, mensaje) = &got[0];
    assert_eq!(estado, "Pendiente");
    assert_eq!(*saldo, Some(69_000), "the card's balance");
    assert_eq!(datos["detalle"], "Empanada");
    assert_eq!(datos["fecha"], "08/12/2026 09:40");
    assert_eq!(datos["saldo"], 80_000 - 3_000 - 8_000);
    assert_eq!(
        mensaje,
        "Cantina Tita, compra de Luis Benítez: Empanada por Gs. 8.000 (08/12 09:40). Saldo: Gs. 69.000."
    );

    // Re-runs and two replicas at once after a new purchase: one more request, not two.
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ConsumoRealizado, now).await.unwrap(), 0);
    let third = buy(&c, &sofia, 12_000, "Almuerzo", local("12:10")).await;
    let later = local("12:11");
    let (a, b) = tokio::join!(
        run_sweep(&pool, &rules, SweepKind::ConsumoRealizado, later),
        run_sweep(&pool, &rules, SweepKind::ConsumoRealizado, later)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    assert_eq!(rows(&c, "consumo_realizado").await.len(), 3);
    assert!(rows(&c, "consumo_realizado").await.iter().any(|r| r.0 == format!("consumo_realizado:{third}:email")));

    // A purchase found more than a day late (the service was down) is not notified one by one.
    buy(&c, &fam.nro_tarjeta, 5_000, "Viejo", local("13:00")).await;
    let two_days_later = local("13:00") + SignedDuration::from_hours(25);
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ConsumoRealizado, two_days_later).await.unwrap(), 0);
    // Switched off: nothing more for that family.
    c.execute(
        "UPDATE cantina_notify_preferencias_cliente SET activo = false WHERE id_cliente = $1",
        &[&fam.id_cliente],
    )
    .await
    .unwrap();
    buy(&c, &fam.nro_tarjeta, 1_000, "Caramelo", local("14:00")).await;
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ConsumoRealizado, local("14:01")).await.unwrap(), 0);
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 3);
}

struct FakeClock(Mutex<Timestamp>);

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

/// The per-purchase schedule fires every minute; after a stop only its latest firing runs (it reads everything
/// since its bound), with no `omitida` row per missed minute.
#[tokio::test]
async fn after_a_stop_the_every_minute_schedule_runs_once_and_catches_every_purchase() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 80_000).await;
    opt(&c, fam.id_cliente, "consumo_realizado", "Email", true, local("08:00")).await;
    let start = local("09:00");
    let clock = Arc::new(FakeClock(Mutex::new(start)));
    scheduler_started_before(&c, start).await;
    let settings = SchedulerSettings::default();
    let s = Scheduler::new(pool.clone(), rules, &settings, &RetentionSettings::default(), "r", clock.clone()).unwrap();
    let consumo = |out: &[FiringOutcome]| {
        out.iter().filter(|o| matches!(o, FiringOutcome::Ran { kind: SweepKind::ConsumoRealizado, .. })).count()
    };
    s.tick().await.unwrap();
    buy(&c, &fam.nro_tarjeta, 8_000, "Empanada", local("09:00") + SignedDuration::from_secs(20)).await;
    *clock.0.lock().unwrap() = local("09:01");
    assert_eq!(consumo(&s.tick().await.unwrap()), 1);
    assert_eq!(rows(&c, "consumo_realizado").await.len(), 1, "noticed by the next minute's firing");
    // Down for three hours, with purchases meanwhile.
    buy(&c, &fam.nro_tarjeta, 6_000, "Jugo", local("10:30")).await;
    buy(&c, &fam.nro_tarjeta, 12_000, "Almuerzo", local("11:45")).await;
    *clock.0.lock().unwrap() = local("12:01");
    assert_eq!(consumo(&s.tick().await.unwrap()), 1, "one run, not 180");
    assert_eq!(rows(&c, "consumo_realizado").await.len(), 3);
    let runs = count(&c, "SELECT count(*) FROM cantina_notify_ejecuciones WHERE programa = 'consumo_realizado'").await;
    // The baseline, 09:00, 09:01 and 12:01: not one row per missed minute.
    assert_eq!(runs, 4);
}

/// Through the normal request path: the running service sends what the sweeps created, rendered for the channel.
#[tokio::test]
async fn the_service_sends_the_spending_notices_like_any_other() {
    let (db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 80_000).await;
    // The summary run now redoes the schedule's last firing: the purchase an hour before that firing is in it.
    let (firing, _, _) =
        cantina_notify::scheduler::spending::resumen_window(&rules.resumen_consumos_schedule, Timestamp::now());
    let bought = firing - SignedDuration::from_hours(1);
    let opted_in = bought - SignedDuration::from_hours(1);
    opt(&c, fam.id_cliente, "consumo_realizado", "Email", true, opted_in).await;
    opt(&c, fam.id_cliente, "resumen_consumos", "Email", true, opted_in).await;
    let rec = Recorder::new(cantina_notify::domain::ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    buy(&c, &fam.nro_tarjeta, 25_000, "Almuerzo completo", bought).await;

    let noticed = bought + SignedDuration::from_mins(1);
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ConsumoRealizado, noticed).await.unwrap(), 1);
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ResumenConsumos, Timestamp::now()).await.unwrap(), 1);
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    let sent = rec.sent.lock().unwrap().clone();
    let mut subjects: Vec<&str> = sent.iter().map(|m| m.subject.as_str()).collect();
    subjects.sort_unstable();
    let day = cantina_notify::rules::local_date(firing).strftime("%d/%m/%Y").to_string();
    assert_eq!(
        subjects,
        ["Consumo de Gs. 25.000 - Luis Benítez".to_string(), format!("Consumos del {day} en la cantina")]
    );
    assert!(sent.iter().all(|m| m.text.contains("Almuerzo completo") && m.text.contains("Gs. 55.000")), "{sent:?}");
    assert!(rec.duplicates().is_empty());
    app.stop().await;
}
