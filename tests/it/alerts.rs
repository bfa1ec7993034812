//! Staff alerts over the real database: the incident helper and the failure-rate check.

use cantina_notify::alerts::{self, Verdict};
use cantina_notify::config::AlertSettings;
use deadpool_postgres::Pool;
use tokio_postgres::Client;

use crate::helpers::{LONG, Recorder, TestApp, TestDb, count, seed_family, test_settings, wait_count};

async fn setup() -> (TestDb, Client, Pool, i32) {
    let db = TestDb::new().await;
    let c = db.client().await;
    let pool = cantina_notify::db::pool(&db.url, 4, std::time::Duration::from_secs(5)).unwrap();
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981123456"), 50_000).await;
    (db, c, pool, fam.id_cliente)
}

/// `n` finished requests of the service: `destino`, `estado`, tried `intentos` times, last touched `minutes_ago`.
#[allow(clippy::too_many_arguments)]
async fn finished(
    c: &Client,
    id_cliente: i32,
    n: usize,
    destino: &str,
    estado: &str,
    entrega: Option<&str>,
    error: Option<&str>,
    intentos: i32,
    minutes_ago: i32,
) {
    for _ in 0..n {
        c.execute(
            "INSERT INTO solicitudes_notificacion
                 (id_cliente, destino, estado, tipo, clave_dedup, destinatario, intentos, estado_entrega, ultimo_error,
                  actualizado_en)
             VALUES ($1, $2, $3, 'recarga_exitosa', $4, 'destinatario', $5, $6, $7, now() - make_interval(mins => $8))",
            &[
                &id_cliente,
                &destino,
                &estado,
                &format!("prueba:{}", fastrand::u64(..)),
                &intentos,
                &entrega,
                &error,
                &minutes_ago,
            ],
        )
        .await
        .unwrap();
    }
}

async fn alert_rows(c: &Client) -> Vec<(String, String, Option<String>, bool)> {
    c.query(
        "SELECT mensaje, estado, observaciones, fecha_resolucion IS NOT NULL FROM alertas_sistema
         WHERE tipo = 'SISTEMA' ORDER BY id_alerta",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[tokio::test]
async fn raise_is_once_per_open_incident_and_resolve_closes_it() {
    let (_db, c, pool, _) = setup().await;
    let prefix = "cantina-notify: barrido saldo_bajo falló";
    // An open alert whose text differs only where LIKE would see a wildcard (`_`) is another incident.
    c.execute(
        "INSERT INTO alertas_sistema (tipo, mensaje, estado) VALUES ('SISTEMA', 'cantina-notify: barrido saldoXbajo falló: otro', 'Pendiente')",
        &[],
    )
    .await
    .unwrap();
    assert!(alerts::raise(&pool, prefix, &format!("{prefix}: primero")).await.unwrap());
    assert!(!alerts::raise(&pool, prefix, &format!("{prefix}: segundo")).await.unwrap());
    // Read by staff: still open, still one.
    c.execute("UPDATE alertas_sistema SET estado = 'Leida', fecha_leida = now() WHERE mensaje LIKE '%primero'", &[])
        .await
        .unwrap();
    assert!(!alerts::raise(&pool, prefix, &format!("{prefix}: tercero")).await.unwrap());
    assert_eq!(alerts::resolve(&pool, prefix, "arreglado").await.unwrap(), 1);
    assert_eq!(alerts::resolve(&pool, prefix, "otra vez").await.unwrap(), 0);
    // It happens again: a new row.
    assert!(alerts::raise(&pool, prefix, &format!("{prefix}: cuarto")).await.unwrap());
    let rows = alert_rows(&c).await;
    assert_eq!(
        rows,
        [
            ("cantina-notify: barrido saldoXbajo falló: otro".into(), "Pendiente".into(), None, false),
            (format!("{prefix}: primero"), "Resuelta".into(), Some("arreglado".into()), true),
            (format!("{prefix}: cuarto"), "Pendiente".into(), None, false),
        ]
    );
    // A message that does not start with its prefix gets it; a long one is cut to the column on a character.
    let other = "cantina-notify: prueba larga";
    assert!(alerts::raise(&pool, other, &"ñ".repeat(600)).await.unwrap());
    let stored: String = c
        .query_one("SELECT mensaje FROM alertas_sistema WHERE mensaje LIKE 'cantina-notify: prueba larga%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.chars().count(), 500);
    assert!(stored.starts_with("cantina-notify: prueba larga: ññ"), "{stored}");
}

#[tokio::test]
async fn concurrent_raises_from_several_replicas_give_one_row() {
    let (_db, c, pool, _) = setup().await;
    let prefix = "cantina-notify: tasa de fallos alta en SMS";
    let mut tasks = Vec::new();
    for i in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move { alerts::raise(&pool, prefix, &format!("{prefix}: réplica {i}")).await }));
    }
    let mut inserted = 0;
    for t in tasks {
        inserted += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(inserted, 1);
    assert_eq!(count(&c, "SELECT count(*) FROM alertas_sistema").await, 1);
}

#[tokio::test]
async fn a_high_failure_rate_raises_one_alert_resolves_when_healthy_and_raises_again_on_a_new_incident() {
    let (_db, c, pool, id) = setup().await;
    let s = AlertSettings::default(); // more than 20 % of at least 20 sends in 60 min
    // SMS in the window: 28 sent, 12 failed (the newest with its own error) = 30 %.
    finished(&c, id, 28, "SMS", "Enviado", Some("delivered"), None, 1, 30).await;
    finished(&c, id, 11, "SMS", "Error", None, Some("Twilio 21610: unsubscribed recipient"), 1, 20).await;
    finished(&c, id, 1, "SMS", "Error", None, Some("agotados 8 intentos; último error: HTTP 503"), 8, 5).await;
    // Not counted: failures older than the window, requests recorded Error before any attempt (no phone),
    // skipped ones, a pending one.
    finished(&c, id, 30, "SMS", "Error", None, Some("viejo"), 1, 90).await;
    finished(&c, id, 30, "SMS", "Error", None, Some("cliente 1: sin teléfono"), 0, 10).await;
    finished(&c, id, 10, "SMS", "Omitido", None, Some("horario"), 1, 10).await;
    finished(&c, id, 1, "SMS", "Pendiente", None, None, 1, 10).await;
    // Email: healthy.
    finished(&c, id, 25, "Email", "Enviado", None, None, 1, 10).await;

    let checks = alerts::check_failure_rates(&pool, &s).await.unwrap();
    let sms = checks.iter().find(|r| r.figures.destino == "SMS").unwrap();
    assert_eq!((sms.figures.total, sms.figures.fallidos, sms.verdict, sms.changed), (40, 12, Verdict::High, true));
    let email = checks.iter().find(|r| r.figures.destino == "Email").unwrap();
    assert_eq!(
        (email.figures.total, email.figures.fallidos, email.verdict, email.changed),
        (25, 0, Verdict::Healthy, false)
    );
    let expected = "cantina-notify: tasa de fallos alta en SMS: 12 de 40 envíos (30 %) fallaron en los últimos 60 min; \
                    último error: agotados 8 intentos; último error: HTTP 503";
    assert_eq!(alert_rows(&c).await, [(expected.to_string(), "Pendiente".into(), None, false)]);

    // Checked again (and by another replica): still one row, also once staff have read it.
    let again = alerts::check_failure_rates(&pool, &s).await.unwrap();
    assert!(again.iter().all(|r| !r.changed), "{again:?}");
    c.execute("UPDATE alertas_sistema SET estado = 'Leida', fecha_leida = now()", &[]).await.unwrap();
    alerts::check_failure_rates(&pool, &s).await.unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM alertas_sistema").await, 1);

    // The failures age out of the window and sends go through again: resolved, saying how.
    c.execute(
        "UPDATE solicitudes_notificacion SET actualizado_en = now() - interval '2 hours'
         WHERE destino = 'SMS' AND estado = 'Error'",
        &[],
    )
    .await
    .unwrap();
    finished(&c, id, 2, "SMS", "Enviado", None, None, 1, 1).await;
    let checks = alerts::check_failure_rates(&pool, &s).await.unwrap();
    let sms = checks.iter().find(|r| r.figures.destino == "SMS").unwrap();
    assert_eq!((sms.figures.total, sms.figures.fallidos, sms.verdict, sms.changed), (30, 0, Verdict::Healthy, true));
    let rows = alert_rows(&c).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "Resuelta");
    assert!(rows[0].3, "fecha_resolucion set");
    assert_eq!(
        rows[0].2.as_deref(),
        Some("cantina-notify: la tasa de fallos de SMS volvió a 0 de 30 envíos (0 %) en los últimos 60 min")
    );
    assert!(alerts::check_failure_rates(&pool, &s).await.unwrap().iter().all(|r| !r.changed));

    // A new incident: 9 more failures, 9 of 39 = 23,1 %: a second row, the first stays resolved.
    finished(&c, id, 9, "SMS", "Error", None, Some("Twilio 30003: Unreachable destination handset"), 1, 1).await;
    alerts::check_failure_rates(&pool, &s).await.unwrap();
    alerts::check_failure_rates(&pool, &s).await.unwrap();
    let rows = alert_rows(&c).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].1, "Resuelta");
    assert_eq!(
        rows[1],
        (
            "cantina-notify: tasa de fallos alta en SMS: 9 de 39 envíos (23,1 %) fallaron en los últimos 60 min; \
             último error: Twilio 30003: Unreachable destination handset"
                .to_string(),
            "Pendiente".to_string(),
            None,
            false
        )
    );
}

#[tokio::test]
async fn failed_delivery_receipts_count_and_too_few_sends_say_nothing() {
    let (_db, c, pool, id) = setup().await;
    let s = AlertSettings::default();
    // WhatsApp: accepted by the provider, but 5 of 20 receipts said failed.
    finished(&c, id, 15, "WhatsApp", "Enviado", Some("read"), None, 1, 10).await;
    finished(&c, id, 5, "WhatsApp", "Enviado", Some("failed"), Some("Meta 131026: Message undeliverable"), 1, 5).await;
    // SMS: 19 of 19 failed, but under the minimum of 20.
    finished(&c, id, 19, "SMS", "Error", None, Some("Twilio 30003"), 1, 5).await;
    let checks = alerts::check_failure_rates(&pool, &s).await.unwrap();
    let verdicts: Vec<(String, i64, i64, Verdict)> =
        checks.iter().map(|r| (r.figures.destino.clone(), r.figures.total, r.figures.fallidos, r.verdict)).collect();
    assert_eq!(
        verdicts,
        [("SMS".to_string(), 19, 19, Verdict::Unknown), ("WhatsApp".to_string(), 20, 5, Verdict::High)]
    );
    let rows = alert_rows(&c).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].0.starts_with("cantina-notify: tasa de fallos alta en WhatsApp: 5 de 20 envíos (25 %) fallaron"),
        "{rows:?}"
    );
    assert!(rows[0].0.ends_with("último error: Meta 131026: Message undeliverable"), "{rows:?}");

    // An open SMS alert is not resolved by a window too thin to judge, but is by sends without failures.
    alerts::raise(&pool, &alerts::failure_rate_prefix("SMS"), "cantina-notify: tasa de fallos alta en SMS: antes")
        .await
        .unwrap();
    alerts::check_failure_rates(&pool, &s).await.unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM alertas_sistema WHERE estado = 'Pendiente'").await, 2);
    c.execute(
        "UPDATE solicitudes_notificacion SET actualizado_en = now() - interval '3 hours' WHERE destino = 'SMS'",
        &[],
    )
    .await
    .unwrap();
    finished(&c, id, 3, "SMS", "Enviado", None, None, 1, 1).await;
    alerts::check_failure_rates(&pool, &s).await.unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM alertas_sistema WHERE estado = 'Resuelta' AND mensaje LIKE '%alta en SMS%'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_running_service_checks_the_failure_rate_on_its_interval() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 50_000).await;
    finished(&c, fam.id_cliente, 10, "Email", "Enviado", None, None, 1, 5).await;
    finished(&c, fam.id_cliente, 10, "Email", "Error", None, Some("SMTP 550: mailbox unavailable"), 1, 5).await;
    let settings = test_settings(&db, &[("CANTINA__ALERTS__CHECK_INTERVAL_SECONDS", "1")]);
    let recorder = Recorder::new(cantina_notify::domain::ChannelKind::Email);
    let app = TestApp::start(settings, &recorder).await;
    wait_count(
        &c,
        "SELECT count(*) FROM alertas_sistema WHERE estado = 'Pendiente' AND mensaje LIKE 'cantina-notify: tasa de fallos alta en Email: 10 de 20 envíos (50 %)%'",
        1,
        LONG,
    )
    .await;
    app.stop().await;
    assert_eq!(count(&c, "SELECT count(*) FROM alertas_sistema").await, 1);
}
