//! The family's daily scheduled message over the real database: debt reminders per family and level, low-balance
//! crossing then reminders, card expiry, and at most one scheduled message a day per family.

use cantina_notify::events::drain::drain_batch;
use cantina_notify::scheduler::{SweepKind, run_sweep};
use jiff::{SignedDuration, Timestamp};
use tokio_postgres::Client;

use crate::helpers::{TestDb, at, count, seed_family, sweep_setup, test_settings};

/// Another child of `id_cliente` with a card holding `saldo`.
async fn child(c: &Client, id_cliente: i32, nombre: &str, nro_tarjeta: &str, saldo: i64) -> String {
    let id_hijo: i32 = c
        .query_one(
            "INSERT INTO hijos (id_cliente_responsable, nombre, apellido) VALUES ($1, $2, 'Benítez') RETURNING id_hijo",
            &[&id_cliente, &nombre],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO tarjetas (nro_tarjeta, id_hijo, saldo_actual, permite_saldo_negativo, limite_credito)
         VALUES ($1, $2, $3, true, 100000)",
        &[&nro_tarjeta, &id_hijo, &saldo],
    )
    .await
    .unwrap();
    nro_tarjeta.to_string()
}

/// A sale allowed below zero on `nro_tarjeta` at `fecha`, leaving the card at `saldo`; returns the authorisation.
/// Like the app's row: `saldo_anterior` is the card's balance before the sale (a second sale of a card already
/// below zero has a negative one).
async fn authorise(c: &Client, nro_tarjeta: &str, saldo: i64, fecha: Timestamp) -> i64 {
    let anterior: i64 =
        c.query_one("SELECT saldo_actual FROM tarjetas WHERE nro_tarjeta = $1", &[&nro_tarjeta]).await.unwrap().get(0);
    c.execute(
        "UPDATE tarjetas SET permite_saldo_negativo = true, limite_credito = 100000, saldo_actual = $2 WHERE nro_tarjeta = $1",
        &[&nro_tarjeta, &saldo],
    )
    .await
    .unwrap();
    c.query_one(
        "INSERT INTO autorizacion_saldo_negativo (nro_tarjeta, saldo_anterior, monto_venta, saldo_resultante, fecha_autorizacion)
         VALUES ($1, $2, $3, $4, $5) RETURNING id_autorizacion",
        &[&nro_tarjeta, &anterior, &(anterior - saldo), &saldo, &std::time::SystemTime::from(fecha)],
    )
    .await
    .unwrap()
    .get(0)
}

/// The level of every debt reminder request, in the order created.
async fn debt_levels(c: &Client) -> Vec<String> {
    c.query(
        "SELECT clave_dedup FROM solicitudes_notificacion WHERE tipo = 'recordatorio_deuda' ORDER BY id_solicitud",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<_, String>(0).split(':').nth(3).unwrap_or_default().to_string())
    .collect()
}

/// Every request key, in order.
async fn all_keys(c: &Client) -> Vec<String> {
    c.query("SELECT clave_dedup FROM solicitudes_notificacion ORDER BY clave_dedup", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn datos(c: &Client, key: &str) -> serde_json::Value {
    c.query_one("SELECT datos FROM solicitudes_notificacion WHERE clave_dedup = $1", &[&key]).await.unwrap().get(0)
}

/// 08:00 in Asunción (UTC-3) of `date`.
fn morning(date: &str) -> Timestamp {
    at(&format!("{date}T11:00:00Z"))
}

#[tokio::test]
async fn two_children_in_debt_through_three_authorisations_get_one_reminder_per_level() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    let luis = fam.nro_tarjeta.clone();
    let sofia = child(&c, fam.id_cliente, "Sofía", &format!("{luis}-b"), 20_000).await;
    // Luis: two sales below zero (1 and 2 Nov, local), Sofía: one (3 Nov).
    let first = authorise(&c, &luis, -4_000, at("2026-11-01T15:00:00Z")).await;
    authorise(&c, &luis, -9_000, at("2026-11-02T15:00:00Z")).await;
    authorise(&c, &sofia, -3_000, at("2026-11-03T15:00:00Z")).await;

    let mut sent = Vec::new();
    for day in 2..=20 {
        let firing = morning(&format!("2026-11-{day:02}"));
        let n = run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, firing).await.unwrap();
        // A re-run, and the other daily sweeps the same day, create nothing more.
        assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, firing).await.unwrap(), 0);
        assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, firing).await.unwrap(), 0);
        if n > 0 {
            sent.push((day, n));
        }
    }
    assert_eq!(sent, [(4, 1), (8, 1), (16, 1)], "one message per level");
    let key = |level: i32| format!("recordatorio_deuda:{}:{first}:{level}:email", fam.id_cliente);
    assert_eq!(all_keys(&c).await, [key(15), key(3), key(7)]);
    let d = datos(&c, &key(3)).await;
    assert_eq!(d["nivel"], "amistoso");
    assert_eq!(d["dias"], 3);
    let cards: Vec<(String, i64, String)> = d["tarjetas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["nro_tarjeta"].as_str().unwrap().into(),
                t["monto"].as_i64().unwrap(),
                t["desde"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(cards, [(luis.clone(), 9_000, "01/11/2026".into()), (sofia.clone(), 3_000, "03/11/2026".into())]);
    assert_eq!(datos(&c, &key(15)).await["nivel"], "critico");
}

#[tokio::test]
async fn after_missed_days_only_the_highest_level_reached_goes_once() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    let id = authorise(&c, &fam.nro_tarjeta, -5_000, at("2026-11-01T15:00:00Z")).await;
    // The service was down from day 2 to day 9.
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-11-10")).await.unwrap(), 1);
    for day in 11..=15 {
        let firing = morning(&format!("2026-11-{day}"));
        assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, firing).await.unwrap(), 0, "{day}");
    }
    assert_eq!(all_keys(&c).await, [format!("recordatorio_deuda:{}:{id}:7:email", fam.id_cliente)]);
}

#[tokio::test]
async fn two_replicas_firing_at_once_send_one_message() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    authorise(&c, &fam.nro_tarjeta, -5_000, at("2026-11-01T15:00:00Z")).await;
    let firing = morning("2026-11-05");
    for _ in 0..3 {
        let (a, b) = tokio::join!(
            run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, firing),
            run_sweep(&pool, &rules, SweepKind::TarjetaPorVencer, firing),
        );
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    }
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, 1);
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_avisos_enviados").await, 1);
}

#[tokio::test]
async fn a_family_that_paid_is_not_reminded_and_a_new_debt_starts_new_keys() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    let old = authorise(&c, &fam.nro_tarjeta, -5_000, at("2026-11-01T15:00:00Z")).await;
    // Paid: the card is back above zero, the app has not marked the row regularizado yet.
    c.execute("UPDATE tarjetas SET saldo_actual = 20000 WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta]).await.unwrap();
    for day in 2..=9 {
        let firing = morning(&format!("2026-11-{day:02}"));
        assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, firing).await.unwrap(), 0, "{day}");
    }
    // A new debt on the 10th: the old row is regularised by then; the new one's id keys the reminders.
    c.execute("UPDATE autorizacion_saldo_negativo SET regularizado = true WHERE id_autorizacion = $1", &[&old])
        .await
        .unwrap();
    let new = authorise(&c, &fam.nro_tarjeta, -2_000, at("2026-11-10T15:00:00Z")).await;
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-11-13")).await.unwrap(), 1);
    assert_eq!(all_keys(&c).await, [format!("recordatorio_deuda:{}:{new}:3:email", fam.id_cliente)]);
}

/// Paid back on the 3rd while the app has not regularised the row yet, then a NEW sale below zero on the 20th: the
/// card's debt is the new one (its streak starts at the sale that took it from zero or above to below zero), so on
/// the 21st nothing is due, and its reminders are keyed by the new authorisation and dated the 20th. (Before: the
/// old open row made it a 20-day-old debt, level 15 "desde 01/11/2026" on the 21st.)
#[tokio::test]
async fn a_new_debt_after_paying_with_the_old_row_not_yet_regularised_starts_at_the_new_sale() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    authorise(&c, &fam.nro_tarjeta, -5_000, at("2026-11-01T15:00:00Z")).await;
    c.execute("UPDATE tarjetas SET saldo_actual = 20000 WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta]).await.unwrap();
    let new = authorise(&c, &fam.nro_tarjeta, -2_000, at("2026-11-20T15:00:00Z")).await;
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-11-21")).await.unwrap(), 0);
    assert_eq!(all_keys(&c).await, Vec::<String>::new());
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-11-23")).await.unwrap(), 1);
    let key = format!("recordatorio_deuda:{}:{new}:3:email", fam.id_cliente);
    assert_eq!(all_keys(&c).await, std::slice::from_ref(&key));
    let d = datos(&c, &key).await;
    assert_eq!((d["nivel"].as_str(), d["dias"].as_i64()), (Some("amistoso"), Some(3)));
    assert_eq!(d["tarjetas"][0]["desde"], "20/11/2026");
}

/// A card's streak when no open row took it from zero or above: rows with no `saldo_anterior` (older app versions),
/// or only negative ones (the sale that crossed zero is regularised already): the earliest open row.
#[tokio::test]
async fn a_card_with_no_open_row_from_zero_or_above_counts_from_its_earliest_open_row() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let row = |nro: &str, anterior: Option<i64>, resultante: i64, fecha: &str| {
        let (nro, fecha) = (nro.to_string(), std::time::SystemTime::from(at(fecha)));
        let c = &c;
        async move {
            c.query_one(
                "INSERT INTO autorizacion_saldo_negativo (nro_tarjeta, saldo_anterior, saldo_resultante, fecha_autorizacion)
                 VALUES ($1, $2, $3, $4) RETURNING id_autorizacion",
                &[&nro, &anterior, &resultante, &fecha],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    let in_debt = |nro: String, saldo: i64| {
        let c = &c;
        async move {
            c.execute(
                "UPDATE tarjetas SET permite_saldo_negativo = true, limite_credito = 100000, saldo_actual = $2
                 WHERE nro_tarjeta = $1",
                &[&nro, &saldo],
            )
            .await
            .unwrap();
        }
    };
    let unknown = seed_family(&c, Some("ana@example.com"), None, 0).await;
    in_debt(unknown.nro_tarjeta.clone(), -6_000).await;
    let first = row(&unknown.nro_tarjeta, None, -2_000, "2026-11-01T15:00:00Z").await;
    row(&unknown.nro_tarjeta, None, -6_000, "2026-11-02T15:00:00Z").await;
    let negative = seed_family(&c, Some("beto@example.com"), None, 0).await;
    in_debt(negative.nro_tarjeta.clone(), -9_000).await;
    let crossed = row(&negative.nro_tarjeta, Some(1_000), -3_000, "2026-10-20T15:00:00Z").await;
    c.execute("UPDATE autorizacion_saldo_negativo SET regularizado = true WHERE id_autorizacion = $1", &[&crossed])
        .await
        .unwrap();
    let open = row(&negative.nro_tarjeta, Some(-3_000), -5_000, "2026-11-01T16:00:00Z").await;
    row(&negative.nro_tarjeta, Some(-5_000), -9_000, "2026-11-03T15:00:00Z").await;
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-11-04")).await.unwrap(), 2);
    let mut want = vec![
        format!("recordatorio_deuda:{}:{first}:3:email", unknown.id_cliente),
        format!("recordatorio_deuda:{}:{open}:3:email", negative.id_cliente),
    ];
    want.sort();
    assert_eq!(all_keys(&c).await, want);
}

/// Luis in debt from 1 Nov, Sofía from 3 Nov; Luis's card is paid and regularised on the 9th. The family's debt never
/// ended (Sofía's has gone on since before the last reminder), so it gets no level again at or below one already
/// sent: 3 on the 4th, 7 on the 8th, then 15 when Sofía's own debt reaches 15 days (the 18th). (Before: a friendly
/// level 3 on the 9th, the day after an urgent one, then 7 again on the 10th.)
#[tokio::test]
async fn paying_the_oldest_card_does_not_restart_the_levels_of_a_family_still_in_debt() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    let luis = fam.nro_tarjeta.clone();
    let sofia = child(&c, fam.id_cliente, "Sofía", &format!("{luis}-b"), 20_000).await;
    authorise(&c, &luis, -4_000, at("2026-11-01T15:00:00Z")).await;
    let second = authorise(&c, &sofia, -3_000, at("2026-11-03T15:00:00Z")).await;
    let mut sent = Vec::new();
    for day in 2..=25 {
        if day == 9 {
            // Luis's card is topped up; the app regularises his row.
            c.execute("UPDATE tarjetas SET saldo_actual = 20000 WHERE nro_tarjeta = $1", &[&luis]).await.unwrap();
            c.execute("UPDATE autorizacion_saldo_negativo SET regularizado = true WHERE nro_tarjeta = $1", &[&luis])
                .await
                .unwrap();
        }
        let n = run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning(&format!("2026-11-{day:02}")))
            .await
            .unwrap();
        if n > 0 {
            sent.push(day);
        }
    }
    assert_eq!(sent, [4, 8, 18]);
    assert_eq!(debt_levels(&c).await, ["3", "7", "15"]);
    let last = datos(&c, &format!("recordatorio_deuda:{}:{second}:15:email", fam.id_cliente)).await;
    assert_eq!((last["nivel"].as_str(), last["dias"].as_i64()), (Some("critico"), Some(15)));
    // Once Sofía pays too, a new debt is a new one: its friendly level 3 comes again.
    c.execute("UPDATE tarjetas SET saldo_actual = 20000 WHERE nro_tarjeta = $1", &[&sofia]).await.unwrap();
    c.execute("UPDATE autorizacion_saldo_negativo SET regularizado = true WHERE nro_tarjeta = $1", &[&sofia])
        .await
        .unwrap();
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-11-26")).await.unwrap(), 0);
    let new = authorise(&c, &luis, -1_000, at("2026-11-27T15:00:00Z")).await;
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-11-30")).await.unwrap(), 1);
    assert_eq!(debt_levels(&c).await, ["3", "7", "15", "3"]);
    assert!(all_keys(&c).await.contains(&format!("recordatorio_deuda:{}:{new}:3:email", fam.id_cliente)));
}

/// Crossing day: the trigger's notice only; the next day one reminder; days 2–7 nothing; day 8 a reminder.
#[tokio::test]
async fn a_low_card_gets_the_crossing_then_reminders_on_the_schedule() {
    let (db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 10_000).await;
    crate::helpers::consume(&c, &fam.nro_tarjeta, 8_000).await;
    let (drain_rules, _) = test_settings(&db, &[]).validate(true).unwrap();
    drain_batch(&pool, &drain_rules, 100, None).await.unwrap();
    let now = Timestamp::now();
    let day = |d: i64| now.checked_add(SignedDuration::from_hours(24 * d)).unwrap();
    let date = |d: i64| cantina_notify::rules::local_date(day(d));
    assert_eq!(all_keys(&c).await, [format!("saldo_bajo:{}:{}:email", fam.nro_tarjeta, date(0))]);
    let mut sent = Vec::new();
    for d in 0..=9 {
        let n = run_sweep(&pool, &rules, SweepKind::SaldoBajo, day(d)).await.unwrap();
        assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, day(d)).await.unwrap(), 0);
        if n > 0 {
            sent.push(d);
        }
    }
    assert_eq!(sent, [1, 8]);
    let reminder = |d: i64| format!("saldo_bajo:recordatorio:{}:{}:email", fam.nro_tarjeta, date(d));
    let mut want = vec![format!("saldo_bajo:{}:{}:email", fam.nro_tarjeta, date(0)), reminder(1), reminder(8)];
    want.sort();
    assert_eq!(all_keys(&c).await, want);
    // Each reminder says since when the card is low: the crossing's date, not the reminder's.
    let crossing = date(0).strftime("%d/%m/%Y").to_string();
    for d in [1, 8] {
        assert_eq!(datos(&c, &reminder(d)).await["desde"], crossing.as_str());
    }
}

/// A card already low when the service started (no crossing on record): the sweep notifies it as the crossing, and
/// anchors its reminders there; a card in debt gets none of this.
#[tokio::test]
async fn a_card_low_with_no_crossing_on_record_is_notified_once_as_the_crossing() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    let debtor = seed_family(&c, Some("beto@example.com"), None, 20_000).await;
    authorise(&c, &debtor.nro_tarjeta, -500, at("2026-12-02T15:00:00Z")).await;
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, morning("2026-12-02")).await.unwrap(), 1);
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, morning("2026-12-03")).await.unwrap(), 1);
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, morning("2026-12-04")).await.unwrap(), 0);
    assert_eq!(
        all_keys(&c).await,
        [
            format!("saldo_bajo:{}:2026-12-02:email", fam.nro_tarjeta),
            format!("saldo_bajo:recordatorio:{}:2026-12-03:email", fam.nro_tarjeta),
        ]
    );
}

async fn expires(c: &Client, nro_tarjeta: &str, fecha: &str) {
    c.execute("UPDATE tarjetas SET fecha_vencimiento = $2::text::date WHERE nro_tarjeta = $1", &[&nro_tarjeta, &fecha])
        .await
        .unwrap();
}

/// 15 days before the date, then on the date; a card whose estado became Vencida first (the trigger's notice) gets
/// nothing more from the sweep.
#[tokio::test]
async fn expiry_is_notified_15_days_before_and_on_the_date_once() {
    let (db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    expires(&c, &fam.nro_tarjeta, "2026-12-20").await;
    let early = seed_family(&c, Some("beto@example.com"), None, 20_000).await;
    expires(&c, &early.nro_tarjeta, "2026-12-20").await;
    // The second family also has a debt reminder due on the 10th, the day its card is marked Vencida: the expired
    // card, which the trigger's notice already told them about, must not ride along in it.
    let sibling = child(&c, early.id_cliente, "Sofía", &format!("{}-b", early.nro_tarjeta), 20_000).await;
    let id = authorise(&c, &sibling, -1_000, at("2026-12-07T15:00:00Z")).await;
    // (The sale below zero crosses the low-balance threshold: not what this test is about.)
    c.execute("UPDATE tarjetas SET notificar_saldo_bajo = false WHERE nro_tarjeta = $1", &[&sibling]).await.unwrap();
    let mut sent = Vec::new();
    for d in 1..=25 {
        let firing = morning(&format!("2026-12-{d:02}"));
        if d == 10 {
            // The app marks the second card Vencida early: the trigger's event, the rule's notice.
            c.execute("UPDATE tarjetas SET estado = 'Vencida' WHERE nro_tarjeta = $1", &[&early.nro_tarjeta])
                .await
                .unwrap();
            let (drain_rules, _) = test_settings(&db, &[]).validate(true).unwrap();
            drain_batch(&pool, &drain_rules, 100, None).await.unwrap();
        }
        let n = run_sweep(&pool, &rules, SweepKind::TarjetaPorVencer, firing).await.unwrap();
        if n > 0 {
            sent.push((d, n));
        }
    }
    assert_eq!(sent, [(5, 2), (10, 1), (14, 1), (20, 1), (22, 1)], "(10, 14, 22: the debt's levels)");
    let debt = format!("recordatorio_deuda:{}:{id}:3:email", early.id_cliente);
    assert!(datos(&c, &debt).await.get("ademas").is_none(), "the trigger already told them");
    let mut want = vec![
        debt,
        format!("recordatorio_deuda:{}:{id}:7:email", early.id_cliente),
        format!("recordatorio_deuda:{}:{id}:15:email", early.id_cliente),
        format!("tarjeta_por_vencer:{}:2026-12-20:email", fam.nro_tarjeta),
        format!("tarjeta_por_vencer:{}:2026-12-20:email", early.nro_tarjeta),
        format!("tarjeta_vencida:{}:2026-12-20:email", fam.nro_tarjeta),
        format!("tarjeta_vencida:{}:2026-12-20:email", early.nro_tarjeta),
    ];
    want.sort();
    assert_eq!(all_keys(&c).await, want);
    let d = datos(&c, &format!("tarjeta_por_vencer:{}:2026-12-20:email", fam.nro_tarjeta)).await;
    assert_eq!((d["vence"].as_str(), d["dias"].as_i64()), (Some("20/12/2026"), Some(15)));
    let d = datos(&c, &format!("tarjeta_vencida:{}:2026-12-20:email", early.nro_tarjeta)).await;
    assert_eq!(d["vencio"], "20/12/2026");
}

/// Debt, an expiring card and a low card on the same day: ONE message, the debt reminder, with the other two.
#[tokio::test]
async fn debt_expiry_and_low_balance_on_one_day_make_one_message() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    let id = authorise(&c, &fam.nro_tarjeta, -6_000, at("2026-12-01T15:00:00Z")).await;
    let expiring = child(&c, fam.id_cliente, "Sofía", &format!("{}-v", fam.nro_tarjeta), 20_000).await;
    expires(&c, &expiring, "2026-12-14").await;
    let low = child(&c, fam.id_cliente, "Tomás", &format!("{}-l", fam.nro_tarjeta), 2_000).await;
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-12-04")).await.unwrap(), 1);
    let key = format!("recordatorio_deuda:{}:{id}:3:email", fam.id_cliente);
    assert_eq!(all_keys(&c).await, std::slice::from_ref(&key));
    let d = datos(&c, &key).await;
    let ademas: Vec<String> =
        d["ademas"].as_array().unwrap().iter().map(|a| a["texto"].as_str().unwrap().to_string()).collect();
    assert_eq!(ademas.len(), 2, "{ademas:?}");
    assert!(ademas[0].contains(&format!("La tarjeta {expiring} de Sofía Benítez vence el 14/12/2026")), "{ademas:?}");
    assert!(ademas[1].contains("Tomás Benítez tiene Gs. 2.000"), "{ademas:?}");
    // Every item is in the ledger: no later firing that day or the next sends them again.
    let items: Vec<String> = c
        .query("SELECT clave FROM cantina_notify_avisos_enviados ORDER BY clave", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut want = vec![
        format!("recordatorio_deuda:{}:{id}:3", fam.id_cliente),
        format!("saldo_bajo:{low}:2026-12-04"),
        format!("tarjeta_por_vencer:{expiring}:2026-12-14"),
    ];
    want.sort();
    assert_eq!(items, want);
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, at("2026-12-04T21:00:00Z")).await.unwrap(), 0);
    // The next day: only the low card's first reminder (its crossing rode in yesterday's message).
    assert_eq!(run_sweep(&pool, &rules, SweepKind::TarjetaPorVencer, morning("2026-12-05")).await.unwrap(), 1);
    assert!(all_keys(&c).await.contains(&format!("saldo_bajo:recordatorio:{low}:2026-12-05:email")));
}

/// A later firing the same day defers a less urgent item to the next day's message, and sends a more urgent one.
#[tokio::test]
async fn a_later_firing_defers_less_urgent_items_and_sends_more_urgent_ones() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    let expiring = child(&c, fam.id_cliente, "Sofía", &format!("{}-v", fam.nro_tarjeta), 20_000).await;
    expires(&c, &expiring, "2026-12-14").await;
    // 08:00: the expiry notice.
    assert_eq!(run_sweep(&pool, &rules, SweepKind::TarjetaPorVencer, morning("2026-12-04")).await.unwrap(), 1);
    // Then a card falls low (no crossing on record) and another goes into debt (3 days ago).
    let low = child(&c, fam.id_cliente, "Tomás", &format!("{}-l", fam.nro_tarjeta), 2_000).await;
    // 18:00: the low balance is less urgent than the expiry sent today: deferred.
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, at("2026-12-04T21:00:00Z")).await.unwrap(), 0);
    let id = authorise(&c, &fam.nro_tarjeta, -6_000, at("2026-12-01T15:00:00Z")).await;
    // 19:00 (a CLI run): the debt is more urgent: sent now, alone (the low balance stays deferred).
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, at("2026-12-04T22:00:00Z")).await.unwrap(), 1);
    let debt = format!("recordatorio_deuda:{}:{id}:3:email", fam.id_cliente);
    assert!(datos(&c, &debt).await.get("ademas").is_none());
    // Next day's first firing: the deferred low balance.
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-12-05")).await.unwrap(), 1);
    let mut want = vec![
        debt,
        format!("tarjeta_por_vencer:{expiring}:2026-12-14:email"),
        format!("saldo_bajo:{low}:2026-12-05:email"),
    ];
    want.sort();
    assert_eq!(all_keys(&c).await, want);
}

/// The week: a family whose two children have one low card expiring in 10 days (Luis) and one card in debt
/// through three sales (Sofía). Over a simulated week of scheduled firings (08:00 debt and expiry, 18:00 low
/// balance) it receives at most one scheduled message a day; each message is printed in full (`--nocapture`) for
/// the documentation.
#[tokio::test]
async fn a_simulated_week_of_one_family_is_at_most_one_message_a_day() {
    let (_db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("rocio@example.com"), None, 3_000).await;
    expires(&c, &fam.nro_tarjeta, "2026-12-11").await;
    let sofia = child(&c, fam.id_cliente, "Sofía", &format!("{}-s", fam.nro_tarjeta), 0).await;
    c.execute(
        "UPDATE hijos SET nombre = 'Luis' WHERE id_hijo = (SELECT id_hijo FROM tarjetas WHERE nro_tarjeta = $1)",
        &[&fam.nro_tarjeta],
    )
    .await
    .unwrap();
    for (saldo, fecha) in
        [(-4_000, "2026-11-28T15:00:00Z"), (-7_500, "2026-11-29T15:30:00Z"), (-9_000, "2026-11-30T16:00:00Z")]
    {
        authorise(&c, &sofia, saldo, at(fecha)).await;
    }
    let mut last = 0i64;
    let mut days = Vec::new();
    for day in 1..=7 {
        let date = format!("2026-12-{day:02}");
        let firings = [
            (SweepKind::RecordatorioDeuda, morning(&date)),
            (SweepKind::TarjetaPorVencer, morning(&date)),
            (SweepKind::SaldoBajo, at(&format!("{date}T21:00:00Z"))),
        ];
        for (kind, firing) in firings {
            run_sweep(&pool, &rules, kind, firing).await.unwrap();
        }
        let rows = c
            .query(
                "SELECT id_solicitud, tipo, datos FROM solicitudes_notificacion WHERE id_solicitud > $1 ORDER BY id_solicitud",
                &[&last],
            )
            .await
            .unwrap();
        assert!(rows.len() <= 1, "{date}: one channel (email), at most one message: {}", rows.len());
        for r in &rows {
            last = r.get(0);
            let data: cantina_notify::rules::MessageData = serde_json::from_value(r.get(2)).unwrap();
            let rendered = cantina_notify::render::render(&data, "https://portal.cantinatita.com.py").unwrap();
            println!(
                "==== {date} ({})\nAsunto: {}\n\n{}\nSMS: {}\n",
                r.get::<_, String>(1),
                rendered.subject,
                rendered.text,
                cantina_notify::render::sms_text(&rendered.short)
            );
            days.push((day, r.get::<_, String>(1), data.ademas().len()));
        }
    }
    // Day 1: the debt reminder (3 days since the first sale) with the expiry and the low card; day 2: the low card's
    // first reminder; day 5: the debt's urgent level (7 days).
    assert_eq!(
        days,
        [
            (1, "recordatorio_deuda".to_string(), 2),
            (2, "saldo_bajo".to_string(), 0),
            (5, "recordatorio_deuda".to_string(), 0)
        ]
    );
}

/// Each item goes to its own type's channels: a low-balance reminder routed to email and SMS, whose email the parent
/// turned off in the portal, still reaches the SMS when the day's message is led by an expiry notice that goes by
/// email only (before, the lead's channels were the message's: the low card was dropped).
#[tokio::test]
async fn each_item_reaches_its_own_channels_when_another_type_leads() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let settings =
        test_settings(&db, &[("SMS_PROVIDER", "console"), ("CANTINA__RULES__SALDO_BAJO__CHANNELS", "email,sms")]);
    let (rules, _) = settings.validate(true).unwrap();
    let pool = cantina_notify::db::pool(&db.url, 4, std::time::Duration::from_secs(5)).unwrap();
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981123456"), 20_000).await;
    expires(&c, &fam.nro_tarjeta, "2026-12-14").await;
    let low = child(&c, fam.id_cliente, "Tomás", &format!("{}-l", fam.nro_tarjeta), 2_000).await;
    c.batch_execute(&format!(
        "INSERT INTO usuario_portal (id_usuario_portal, id_cliente, email) VALUES (4242, {0}, 'ana@example.com');
         INSERT INTO preferencia_notificacion (id_usuario_portal, tipo_notificacion, email_activo, sms_activo)
         VALUES (4242, 'saldo_bajo', false, true)",
        fam.id_cliente
    ))
    .await
    .unwrap();
    assert_eq!(run_sweep(&pool, &rules, SweepKind::TarjetaPorVencer, morning("2026-12-01")).await.unwrap(), 2);
    let rows: Vec<(String, String, String)> = c
        .query("SELECT clave_dedup, tipo, estado FROM solicitudes_notificacion ORDER BY clave_dedup", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            (format!("saldo_bajo:{low}:2026-12-01:sms"), "saldo_bajo".into(), "Pendiente".into()),
            (
                format!("tarjeta_por_vencer:{}:2026-12-14:email", fam.nro_tarjeta),
                "tarjeta_por_vencer".into(),
                "Pendiente".into()
            ),
        ]
    );
    // The email carries only what the parent wants by email: no low-balance line under "Además".
    let email = datos(&c, &format!("tarjeta_por_vencer:{}:2026-12-14:email", fam.nro_tarjeta)).await;
    assert!(email.get("ademas").is_none(), "{email}");
}

/// An expired card told inside the day's debt reminder ("Además") is not told again when the app marks the card
/// `Vencida` later that day: the trigger's notice finds its key taken (the daily message recorded it `Omitido`,
/// naming the message that carried it). Found by an adversarial trial.
#[tokio::test]
async fn an_expiry_told_inside_the_daily_message_is_not_repeated_by_the_trigger() {
    let (db, c, pool, rules) = sweep_setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 20_000).await;
    expires(&c, &fam.nro_tarjeta, "2026-12-10").await;
    let sibling = child(&c, fam.id_cliente, "Sofía", &format!("{}-b", fam.nro_tarjeta), 20_000).await;
    authorise(&c, &sibling, -1_000, at("2026-12-07T15:00:00Z")).await;
    let (drain_rules, _) = test_settings(&db, &[]).validate(true).unwrap();
    drain_batch(&pool, &drain_rules, 100, None).await.unwrap();
    c.execute("DELETE FROM solicitudes_notificacion", &[]).await.unwrap();
    // 10 Dec 08:00: the debt's level 3, and the card's date is today.
    run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, morning("2026-12-10")).await.unwrap();
    let debt = format!("recordatorio_deuda:{}:", fam.id_cliente);
    let debt_key = all_keys(&c).await.into_iter().find(|k| k.starts_with(&debt)).expect("the debt reminder");
    assert_eq!(datos(&c, &debt_key).await["ademas"].as_array().map(Vec::len), Some(1), "the expiry rode along");
    // 10 Dec 14:00: the app's job marks the card Vencida; its event is drained.
    c.execute("UPDATE tarjetas SET estado = 'Vencida' WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta]).await.unwrap();
    drain_batch(&pool, &drain_rules, 100, None).await.unwrap();
    let vencida: Vec<(String, String, Option<String>)> = c
        .query(
            "SELECT clave_dedup, estado, ultimo_error FROM solicitudes_notificacion WHERE tipo = 'tarjeta_vencida'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let reason = format!("incluido en el aviso del día {}", debt_key.trim_end_matches(":email"));
    assert_eq!(
        vencida,
        [(format!("tarjeta_vencida:{}:2026-12-10:email", fam.nro_tarjeta), "Omitido".into(), Some(reason))]
    );
}
