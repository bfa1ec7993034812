//! Operator commands over a real database: the request history (migration 0007) as every writer fills it, `stats`,
//! `requests list|show|resend|cancel` through the binary (exit codes, refusals, masking, JSON shape).

use std::process::{Command, Output};
use std::time::Duration;

use cantina_notify::channels::SendError;
use cantina_notify::dispatch::store;
use cantina_notify::domain::ChannelKind;
use cantina_notify::requests::{HistoryRow, history};
use cantina_notify::webhooks::receipt::{DeliveryState, record_receipt};
use serde_json::Value as Json;
use tokio_postgres::Client;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_cantina-notify");

/// Runs the binary against `db` as operator `ops-tester` (the name the history records).
async fn cli(db: &TestDb, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("DATABASE_URL", &db.url)
        .env("USER", "ops-tester")
        .env_remove("SUDO_USER")
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir());
    tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("run cantina-notify")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Json {
    assert!(o.status.success(), "exit {:?}\n{}\n{}", o.status, stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Inserts a request as the service would (with a key), returning its id.
async fn insert_request(c: &Client, id_cliente: i32, destino: &str, estado: &str, destinatario: &str) -> i64 {
    c.query_one(
        "INSERT INTO solicitudes_notificacion
             (id_cliente, destino, estado, tipo, clave_dedup, destinatario, datos, proximo_intento, actualizado_en)
         VALUES ($1, $2, $3::text, 'recarga_exitosa', 'ops-test:' || gen_random_uuid(), $4::text,
                 jsonb_build_object('nombre', 'Ana', 'email_contacto', $4::text),
                 CASE WHEN $3::text = 'Pendiente' THEN now() END, now())
         RETURNING id_solicitud",
        &[&id_cliente, &destino, &estado, &destinatario],
    )
    .await
    .expect("insert request")
    .get(0)
}

/// A request's history, in order, as the staff tools read it.
async fn history(c: &Client, id: i64) -> Vec<HistoryRow> {
    history::of(c, id).await.expect("history")
}

fn eventos(h: &[HistoryRow]) -> Vec<&str> {
    h.iter().map(|r| r.evento.as_str()).collect()
}

#[tokio::test]
async fn history_records_attempts_outcome_and_receipt_but_not_the_claims() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    rec.then(Script::Fail(SendError::Transient { reason: "503 Service Unavailable".into(), retry_after: None }));
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    app.stop().await;

    let id: i64 = c.query_one("SELECT id_solicitud FROM solicitudes_notificacion", &[]).await.unwrap().get(0);
    let h = history(&c, id).await;
    // Two claims happened (intentos went to 2) and wrote nothing; the outcomes carry their attempt numbers.
    assert_eq!(eventos(&h), ["creada", "reintento", "enviada"], "{h:#?}");
    assert!(h.iter().all(|r| r.origen == "servicio"), "{h:#?}");
    assert_eq!((h[1].intentos, h[1].detalle.as_deref()), (Some(1), Some("intento 1: 503 Service Unavailable")));
    assert_eq!((h[2].estado.as_deref(), h[2].intentos), (Some("Enviado"), Some(2)));
    let provider: (String, String) = c
        .query_one(
            "SELECT proveedor, id_proveedor FROM cantina_notify_historial WHERE id_solicitud = $1 AND evento = 'enviada'",
            &[&id],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(provider, ("recorder".to_string(), format!("rec-{id}")));

    // A delivery receipt through the webhooks' own function: one 'recibo' row; a repeat changes nothing, no row.
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    assert!(record_receipt(&pool, "recorder", &format!("rec-{id}"), DeliveryState::Delivered).await.unwrap());
    assert!(!record_receipt(&pool, "recorder", &format!("rec-{id}"), DeliveryState::Sent).await.unwrap());
    let h = history(&c, id).await;
    assert_eq!(eventos(&h), ["creada", "reintento", "enviada", "recibo"]);
    let entrega: Option<String> = c
        .query_one("SELECT estado_entrega FROM cantina_notify_historial WHERE evento = 'recibo'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(entrega.as_deref(), Some("delivered"));
}

#[tokio::test]
async fn a_single_row_update_fires_the_statement_trigger_once_and_writes_one_row() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let id = insert_request(&c, fam.id_cliente, "Email", "Pendiente", "ana@example.com").await;
    let a = insert_request(&c, fam.id_cliente, "Email", "Pendiente", "ana@example.com").await;
    let b = insert_request(&c, fam.id_cliente, "Email", "Pendiente", "ana@example.com").await;
    let before = count(&c, "SELECT count(*) FROM cantina_notify_historial").await;
    let plan: Vec<String> = c
        .query(
            &format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)
                 UPDATE solicitudes_notificacion SET estado = 'Error', ultimo_error = 'sin dirección'
                 WHERE id_solicitud = {id}"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("Trigger cantina_notify_historial_update: calls=1")), "{plan:#?}");
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_historial").await, before + 1);

    // A batch claim (what the dispatcher does) writes nothing; a batch outcome writes one row per changed request.
    c.execute(
        "UPDATE solicitudes_notificacion SET intentos = intentos + 1, proximo_intento = now() + interval '30 s'
         WHERE id_solicitud = ANY($1)",
        &[&vec![a, b]],
    )
    .await
    .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_historial").await, before + 1);
    c.execute(
        "UPDATE solicitudes_notificacion SET estado = 'Enviado', proveedor = 'smtp', id_proveedor = 'm-' || id_solicitud
         WHERE id_solicitud = ANY($1)",
        &[&vec![a, b]],
    )
    .await
    .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_historial").await, before + 3);
    // Who: a connection that is not the service's nor an operator's is the app.
    let origen: String =
        c.query_one("SELECT origen FROM cantina_notify_historial ORDER BY id DESC LIMIT 1", &[]).await.unwrap().get(0);
    assert!(origen.starts_with("app: "), "{origen}");
}

/// The drain writes its new requests' `creada` rows itself (migration 0012) unless its transaction completed a POS
/// row, when the trigger writes them: either way each request has exactly one `creada`, by its real author.
#[tokio::test]
async fn a_drain_that_completes_a_pos_row_and_creates_requests_records_each_once() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    // Written while the service is stopped, so one batch takes all three: a POS row, a recharge, another POS row
    // (the history goes back to the triggers once, at the first).
    let manual: i64 = pos_manual_request(&c, &fam).await;
    let id_carga = recharge(&c, &fam.nro_tarjeta, 10_000).await;
    let manual_2: i64 = pos_manual_request(&c, &fam).await;
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 3, SHORT).await;
    // And a batch with no POS row: the statement writes the `creada` row.
    let second = recharge(&c, &fam.nro_tarjeta, 20_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 4, SHORT).await;
    app.stop().await;
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL").await, 0);
    // The POS rows' events and the first recharge's were drained together (one transaction: one procesado_en).
    assert_eq!(count(&c, "SELECT count(DISTINCT procesado_en) FROM cantina_notify_eventos WHERE id <= 3").await, 1);

    for id in [manual, manual_2] {
        let h = history(&c, id).await;
        assert_eq!(eventos(&h), ["creada", "completada", "enviada"], "{h:#?}");
        assert!(h[0].origen.starts_with("app: "), "{h:#?}");
        assert!(h[1..].iter().all(|r| r.origen == "servicio"), "{h:#?}");
    }
    for carga in [id_carga, second] {
        let id: i64 = c
            .query_one(
                "SELECT id_solicitud FROM solicitudes_notificacion WHERE clave_dedup = $1",
                &[&format!("recarga_exitosa:{carga}:email")],
            )
            .await
            .unwrap()
            .get(0);
        let h = history(&c, id).await;
        assert_eq!(eventos(&h), ["creada", "enviada"], "{h:#?}");
        assert!(h.iter().all(|r| r.origen == "servicio"), "{h:#?}");
        assert_eq!((h[0].estado.as_deref(), h[0].detalle.as_deref()), (Some("Pendiente"), None), "{h:#?}");
    }
}

#[tokio::test]
async fn the_weekly_clean_up_deletes_the_history_of_the_requests_it_deletes() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let old = insert_request(&c, fam.id_cliente, "Email", "Enviado", "ana@example.com").await;
    let kept = insert_request(&c, fam.id_cliente, "Email", "Enviado", "ana@example.com").await;
    c.execute(
        "UPDATE solicitudes_notificacion SET actualizado_en = now() - interval '400 days' WHERE id_solicitud = $1",
        &[&old],
    )
    .await
    .unwrap();
    assert_eq!(history(&c, old).await.len(), 1);
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    let report = cantina_notify::scheduler::run_cleanup(
        &pool,
        &cantina_notify::config::RetentionSettings::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(report.solicitudes, 1);
    assert!(history(&c, old).await.is_empty());
    assert_eq!(history(&c, kept).await.len(), 1);
}

#[tokio::test]
async fn stats_reports_counts_ratios_queue_pauses_and_last_errors() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981123456"), 12_000).await;
    let cl = fam.id_cliente;
    for _ in 0..3 {
        insert_request(&c, cl, "Email", "Enviado", "ana@example.com").await;
    }
    let email_err = insert_request(&c, cl, "Email", "Error", "ana@example.com").await;
    c.execute(
        "UPDATE solicitudes_notificacion SET ultimo_error = '550 <ana@example.com>: mailbox unavailable' WHERE id_solicitud = $1",
        &[&email_err],
    )
    .await
    .unwrap();
    insert_request(&c, cl, "SMS", "Omitido", "+595981123456").await;
    // The queue: one due (the oldest, created two days ago: outside the period, still the oldest pending), one
    // deferred by quiet hours, one retrying.
    let oldest = insert_request(&c, cl, "SMS", "Pendiente", "+595981123456").await;
    c.execute(
        "UPDATE solicitudes_notificacion SET fecha_solicitud = now() - interval '2 days' WHERE id_solicitud = $1",
        &[&oldest],
    )
    .await
    .unwrap();
    let deferred = insert_request(&c, cl, "SMS", "Pendiente", "+595981123456").await;
    c.execute(
        "UPDATE solicitudes_notificacion SET proximo_intento = now() + interval '8 hours',
             ultimo_error = 'en espera: horario de silencio' WHERE id_solicitud = $1",
        &[&deferred],
    )
    .await
    .unwrap();
    let retrying = insert_request(&c, cl, "SMS", "Pendiente", "+595981123456").await;
    c.execute(
        "UPDATE solicitudes_notificacion SET intentos = 2, proximo_intento = now() + interval '5 min',
             ultimo_error = 'intento 2: Twilio 21611: queue full for +595981123456' WHERE id_solicitud = $1",
        &[&retrying],
    )
    .await
    .unwrap();
    // An operator's pause, through the command's code path: it raises the staff alert stats lists.
    let pause = cantina_notify::operator_pauses::ChannelCommand::Pause {
        channel: "whatsapp".into(),
        reason: "plantilla en revisión".into(),
        by: Some("ana".into()),
    };
    cantina_notify::operator_pauses::execute(&c, &pause).await.expect("pause");

    let s = json(&cli(&db, &["stats", "--since", "24h", "--json"]).await);
    assert_eq!(s["period_seconds"], 86_400);
    let count_of = |destino: &str, estado: &str| {
        s["counts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["destino"] == destino && c["estado"] == estado)
            .map(|c| c["count"].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!((count_of("Email", "Enviado"), count_of("Email", "Error")), (3, 1));
    // The two-day-old pending request is outside the period.
    assert_eq!((count_of("SMS", "Pendiente"), count_of("SMS", "Omitido")), (2, 1));
    let channel = |d: &str| s["channels"].as_array().unwrap().iter().find(|c| c["destino"] == d).cloned().unwrap();
    let email = channel("Email");
    assert_eq!(email["success_ratio"], 0.75);
    assert_eq!(email["last_error"]["id"], email_err);
    assert_eq!(email["last_error"]["error"], "550 <a***@example.com>: mailbox unavailable");
    let sms = channel("SMS");
    assert_eq!((sms["pending"].as_i64(), sms["due"].as_i64()), (Some(3), Some(1)));
    assert_eq!((sms["deferred"].as_i64(), sms["retrying"].as_i64()), (Some(1), Some(1)));
    assert_eq!(sms["success_ratio"], Json::Null);
    assert_eq!(sms["last_error"]["error"], "intento 2: Twilio 21611: queue full for +595 98* *** 456");
    assert_eq!((s["pending"].as_i64(), s["deferred"].as_i64(), s["retrying"].as_i64()), (Some(3), Some(1), Some(1)));
    assert_eq!(s["oldest_pending"]["id"], oldest);
    let age = s["oldest_pending"]["age_seconds"].as_i64().unwrap();
    assert!((2 * 86_400..2 * 86_400 + 120).contains(&age), "{age}");
    assert_eq!(s["pauses_available"], true);
    assert_eq!(s["paused_channels"][0]["destino"], "WhatsApp");
    assert_eq!(s["paused_channels"][0]["reason"], "plantilla en revisión");
    assert_eq!(s["pause_alerts"].as_array().unwrap().len(), 1);
    let alert = s["pause_alerts"][0]["message"].as_str().unwrap();
    assert!(
        alert.starts_with("cantina-notify: pausa manual del canal WhatsApp por ana: plantilla en revisión."),
        "{alert}"
    );

    let table = cli(&db, &["stats"]).await;
    assert!(table.status.success(), "{}", stderr(&table));
    let t = stdout(&table);
    for expected in [
        "(últimas 24 h)",
        "TIPO             CANAL  PENDIENTE  ENVIADO  ERROR  OMITIDO  TOTAL",
        "recarga_exitosa  Email          0        3      1        0      4",
        "75,0 %",
        &format!("Pendiente más antigua: #{oldest} (SMS, recarga_exitosa)"),
        "hace 2 d 0 h",
        "En cola: 3 pendientes (1 por enviar, 1 diferidas, 1 reintentando)",
        "WhatsApp",
        "plantilla en revisión",
        "Alertas abiertas de canales pausados",
        "cantina-notify: pausa manual del canal WhatsApp por ana",
        "550 <a***@example.com>: mailbox unavailable",
    ] {
        assert!(t.contains(expected), "missing {expected:?} in:\n{t}");
    }
    assert!(!t.contains("ana@example.com") && !t.contains("981123456"), "{t}");

    let bad = cli(&db, &["stats", "--since", "ayer"]).await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("duración inválida 'ayer'"), "{}", stderr(&bad));
}

#[tokio::test]
async fn stats_without_the_pause_table_still_answers() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("DROP TABLE cantina_notify_canales_pausados").await.unwrap();
    let s = cantina_notify::ops::stats::gather(&c, jiff::SignedDuration::from_hours(1)).await.unwrap();
    assert!(!s.pauses_available);
    assert!(s.paused_channels.is_empty() && s.oldest_pending.is_none() && s.counts.is_empty());
    assert!(cantina_notify::ops::stats::render(&s).contains(
        "Pausas de operadores no disponibles (tabla cantina_notify_canales_pausados: falta la migración 0008)"
    ));
}

#[tokio::test]
async fn list_filters_newest_first_and_masks_unless_reveal() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981123456"), 12_000).await;
    let other = seed_family(&c, Some("otro@example.com"), None, 12_000).await;
    let e1 = insert_request(&c, fam.id_cliente, "Email", "Error", "ana@example.com").await;
    let s1 = insert_request(&c, fam.id_cliente, "SMS", "Enviado", "+595981123456").await;
    let s2 = insert_request(&c, fam.id_cliente, "SMS", "Error", "0981 12 bad").await;
    insert_request(&c, other.id_cliente, "Email", "Enviado", "otro@example.com").await;

    let rows = json(
        &cli(&db, &["requests", "list", "--destino", "sms", "--cliente", &fam.id_cliente.to_string(), "--json"]).await,
    );
    let ids: Vec<i64> = rows.as_array().unwrap().iter().map(|r| r["id_solicitud"].as_i64().unwrap()).collect();
    assert_eq!(ids, [s2, s1]);
    assert_eq!(rows[1]["destinatario"], "+595 98* *** 456");
    // An invalid stored address is masked too (its last three digits at most).
    assert_eq!(rows[0]["destinatario"], "***112");
    assert!(rows[0]["fecha_solicitud"].as_str().unwrap().ends_with('Z'));
    for key in ["tipo", "destino", "estado", "intentos", "estado_entrega", "ultimo_error", "nro_tarjeta", "id_cliente"]
    {
        assert!(rows[0].get(key).is_some(), "missing {key}: {rows}");
    }

    let revealed =
        json(&cli(&db, &["requests", "list", "--destino", "SMS", "--estado", "enviado", "--reveal", "--json"]).await);
    assert_eq!(revealed.as_array().unwrap().len(), 1);
    assert_eq!(revealed[0]["destinatario"], "+595981123456");

    let limited = json(&cli(&db, &["requests", "list", "--limit", "2", "--since", "1h", "--json"]).await);
    assert_eq!(limited.as_array().unwrap().len(), 2);

    let table = cli(&db, &["requests", "list", "--estado", "error"]).await;
    let t = stdout(&table);
    assert!(t.contains("DESTINATARIO") && t.contains("a***@example.com") && t.contains("2 solicitud(es)"), "{t}");
    assert!(!t.contains("ana@example.com"), "{t}");
    let line_of = |id: i64| t.lines().position(|l| l.trim_start().starts_with(&format!("{id} ")));
    assert!(line_of(s2).unwrap() < line_of(e1).unwrap(), "newest first:\n{t}");

    let bad = cli(&db, &["requests", "list", "--estado", "Fallido"]).await;
    assert!(!bad.status.success() && stderr(&bad).contains("estado desconocido 'Fallido'"), "{}", stderr(&bad));
}

#[tokio::test]
async fn show_has_every_column_the_history_and_the_receipts() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let id = insert_request(&c, fam.id_cliente, "WhatsApp", "Pendiente", "+595981123456").await;
    c.execute(
        "UPDATE solicitudes_notificacion SET estado = 'Enviado', proveedor = 'twilio', id_proveedor = 'SM1', intentos = 1
         WHERE id_solicitud = $1",
        &[&id],
    )
    .await
    .unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    cantina_notify::webhooks::receipt::record_receipt_detail(
        &pool,
        "twilio",
        "SM1",
        DeliveryState::Failed,
        Some("Twilio 30003: unreachable +595981123456"),
    )
    .await
    .unwrap();

    let d = json(&cli(&db, &["requests", "show", &id.to_string(), "--json"]).await);
    let columns: Vec<String> = c
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = 'solicitudes_notificacion'::regclass
             AND attnum > 0 AND NOT attisdropped",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for col in &columns {
        assert!(d["solicitud"].get(col).is_some(), "column {col} missing: {d}");
    }
    assert_eq!(d["solicitud"]["destinatario"], "+595 98* *** 456");
    assert_eq!(d["solicitud"]["datos"]["email_contacto"], "+595 98* *** 456");
    assert_eq!(d["solicitud"]["ultimo_error"], "Twilio 30003: unreachable +595 98* *** 456");
    let ev: Vec<&str> = d["historial"].as_array().unwrap().iter().map(|h| h["evento"].as_str().unwrap()).collect();
    assert_eq!(ev, ["creada", "enviada", "recibo"]);
    assert_eq!(d["recibos"].as_array().unwrap().len(), 1);
    assert_eq!(d["recibos"][0]["estado_entrega"], "failed");
    assert_eq!(d["recibos"][0]["detalle"], "Twilio 30003: unreachable +595 98* *** 456");
    for key in ["registrado_en", "estado_anterior", "estado", "intentos", "proveedor", "id_proveedor", "origen"] {
        assert!(d["historial"][1].get(key).is_some(), "missing {key}");
    }

    let revealed = json(&cli(&db, &["requests", "show", &id.to_string(), "--json", "--reveal"]).await);
    assert_eq!(revealed["solicitud"]["destinatario"], "+595981123456");
    assert_eq!(revealed["recibos"][0]["detalle"], "Twilio 30003: unreachable +595981123456");

    let table = cli(&db, &["requests", "show", &id.to_string()]).await;
    let t = stdout(&table);
    assert!(
        t.contains(&format!("Solicitud #{id}")) && t.contains("Historial") && t.contains("Recibos de entrega"),
        "{t}"
    );
    assert!(t.contains("Pendiente → Enviado") && t.contains("failed"), "{t}");
    assert!(!t.contains("981123456"), "{t}");

    let missing = cli(&db, &["requests", "show", "987654321"]).await;
    assert!(!missing.status.success() && stderr(&missing).contains("#987654321: no existe esa solicitud"));
}

#[tokio::test]
async fn resend_and_cancel_refuse_what_makes_no_sense_and_process_the_rest() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let cl = fam.id_cliente;
    let error = insert_request(&c, cl, "Email", "Error", "ana@example.com").await;
    let omitted = insert_request(&c, cl, "Email", "Omitido", "ana@example.com").await;
    let sent = insert_request(&c, cl, "Email", "Enviado", "ana@example.com").await;
    let pending = insert_request(&c, cl, "Email", "Pendiente", "ana@example.com").await;
    // A POS row the service never took over: no key.
    let pos: i64 = c
        .query_one(
            "INSERT INTO solicitudes_notificacion (id_cliente, destino, estado, mensaje) VALUES ($1, 'Email', 'Error', 'x')
             RETURNING id_solicitud",
            &[&cl],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "UPDATE solicitudes_notificacion SET intentos = 5, ultimo_error = 'agotado' WHERE id_solicitud = $1",
        &[&error],
    )
    .await
    .unwrap();

    let ids: Vec<String> = [error, omitted, sent, pending, pos, 987_654_321].iter().map(i64::to_string).collect();
    let mut args = vec!["requests", "resend"];
    args.extend(ids.iter().map(String::as_str));
    args.extend(["--reason", "dirección corregida"]);
    let out = cli(&db, &args).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(o.contains(&format!("#{error}: reenviada (Error → Pendiente, intentos 0)")), "{o}");
    assert!(o.contains(&format!("#{omitted}: reenviada (Omitido → Pendiente, intentos 0)")), "{o}");
    assert!(e.contains(&format!("#{sent}: rechazada: ya fue enviado")), "{e}");
    assert!(e.contains(&format!("#{pending}: rechazada: ya está Pendiente")), "{e}");
    assert!(e.contains(&format!("#{pos}: rechazada: es una fila del POS")), "{e}");
    assert!(e.contains("#987654321: rechazada: no existe esa solicitud"), "{e}");
    let r = c
        .query_one(
            "SELECT estado, intentos, ultimo_error, proximo_intento <= now() FROM solicitudes_notificacion WHERE id_solicitud = $1",
            &[&error],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "Pendiente");
    assert_eq!(r.get::<_, i32>(1), 0);
    assert_eq!(r.get::<_, Option<String>>(2), None);
    assert!(r.get::<_, bool>(3));
    let h = history(&c, error).await;
    let last = h.last().unwrap();
    assert_eq!(
        (last.evento.as_str(), last.estado.as_deref(), last.origen.as_str(), last.detalle.as_deref()),
        ("reenviada", Some("Pendiente"), "operador: ops-tester", Some("reenviada por operador: dirección corregida"))
    );
    // The earlier failure stays in the history.
    assert!(h.iter().any(|r| r.detalle.as_deref() == Some("agotado")), "{h:#?}");
    assert_eq!(count(&c, &format!("SELECT count(*) FROM solicitudes_notificacion WHERE id_solicitud IN ({sent}, {pos}) AND estado IN ('Enviado', 'Error')")).await, 2);

    // Cancel: reason required; only Pendiente.
    let no_reason = cli(&db, &["requests", "cancel", &pending.to_string()]).await;
    assert!(!no_reason.status.success() && stderr(&no_reason).contains("--reason"), "{}", stderr(&no_reason));
    let blank = cli(&db, &["requests", "cancel", &pending.to_string(), "--reason", "  "]).await;
    assert!(!blank.status.success() && stderr(&blank).contains("indique por qué"), "{}", stderr(&blank));
    let out =
        cli(&db, &["requests", "cancel", &pending.to_string(), &sent.to_string(), "--reason", "pedido del padre"])
            .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&format!("#{pending}: cancelada (Pendiente → Omitido)")), "{}", stdout(&out));
    assert!(stderr(&out).contains(&format!("#{sent}: rechazada: ya fue enviado")), "{}", stderr(&out));
    let r = c
        .query_one("SELECT estado, ultimo_error FROM solicitudes_notificacion WHERE id_solicitud = $1", &[&pending])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "Omitido");
    assert_eq!(r.get::<_, String>(1), "cancelado por operador: pedido del padre");
    let last = history(&c, pending).await.pop().unwrap();
    assert_eq!((last.evento.as_str(), last.origen.as_str()), ("cancelada", "operador: ops-tester"));
    let again = cli(&db, &["requests", "cancel", &pending.to_string(), "--reason", "otra vez"]).await;
    assert!(stderr(&again).contains("está Omitido: solo se cancela una solicitud Pendiente"), "{}", stderr(&again));

    // Everything accepted: exit 0.
    let ok = cli(&db, &["requests", "resend", &pending.to_string()]).await;
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[tokio::test]
async fn a_request_cancelled_while_claimed_cannot_become_enviado() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let id = insert_request(&c, fam.id_cliente, "Email", "Pendiente", "ana@example.com").await;
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    let claimed = store::claim(&pool, 10, Duration::from_secs(60), &["Email"], 5).await.unwrap();
    assert_eq!(claimed.len(), 1);

    let mut ops = db.client().await;
    let results = cantina_notify::ops::requests::cancel(&mut ops, &[id], "duplicado", Some("tester")).await.unwrap();
    assert_eq!(results[0].outcome, Ok("cancelada (Pendiente → Omitido)".to_string()));
    assert!(
        results[0].warnings.iter().any(|w| w.contains("un despachador la tenía tomada (intento 1)")),
        "{results:?}"
    );

    // The dispatcher finishes its send: the outcome write matches nothing.
    let sent =
        store::Outcome::Sent { provider: "smtp", provider_id: Some("late-1"), warning: None, await_receipt: None };
    assert_eq!(store::record(&pool, &claimed[0], &sent).await.unwrap(), 0);
    let r = c
        .query_one(
            "SELECT estado, id_proveedor, fecha_envio IS NULL FROM solicitudes_notificacion WHERE id_solicitud = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "Omitido");
    assert_eq!(r.get::<_, Option<String>>(1), None);
    assert!(r.get::<_, bool>(2));
    assert_eq!(eventos(&history(&c, id).await), ["creada", "cancelada"]);

    // Not claimed: no warning.
    let idle = insert_request(&c, fam.id_cliente, "Email", "Pendiente", "ana@example.com").await;
    let results = cantina_notify::ops::requests::cancel(&mut ops, &[idle], "duplicado", None).await.unwrap();
    assert!(results[0].warnings.is_empty(), "{results:?}");
}

#[tokio::test]
async fn a_resent_request_is_sent_again_by_the_running_service() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    rec.then(Script::Fail(SendError::Permanent { reason: "550 mailbox unavailable".into() }));
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Error'", 1, SHORT).await;
    assert_eq!(rec.sent_count(), 0);
    let id: i64 = c.query_one("SELECT id_solicitud FROM solicitudes_notificacion", &[]).await.unwrap().get(0);

    let out = cli(&db, &["requests", "resend", &id.to_string(), "--reason", "buzón liberado"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(rec.sent_count(), 1);
    app.stop().await;

    let h = history(&c, id).await;
    assert_eq!(eventos(&h), ["creada", "error", "reenviada", "enviada"], "{h:#?}");
    assert_eq!(h[1].detalle.as_deref(), Some("550 mailbox unavailable"));
    assert_eq!((h[3].intentos, h[3].origen.as_str()), (Some(1), "servicio"));
}

/// (estado, intentos, proximo_intento is later than `secs` from now, id_proveedor) of one request.
async fn state(c: &Client, id: i64, secs: f64) -> (String, i32, bool, Option<String>) {
    let r = c
        .query_one(
            "SELECT estado, intentos, coalesce(proximo_intento > now() + make_interval(secs => $2), false), id_proveedor
             FROM solicitudes_notificacion WHERE id_solicitud = $1",
            &[&id, &secs],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

#[tokio::test]
async fn a_resend_after_cancelling_a_claimed_request_waits_for_the_old_lease() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let id = insert_request(&c, fam.id_cliente, "Email", "Pendiente", "ana@example.com").await;
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    let lease = Duration::from_secs(300);
    let first = store::claim(&pool, 10, lease, &["Email"], 5).await.unwrap();
    assert_eq!((first.len(), first[0].intentos), (1, 1));

    // Cancelled while a dispatcher sends it: the lease stays.
    let mut ops = db.client().await;
    let cancelled = cantina_notify::ops::requests::cancel(&mut ops, &[id], "duplicado", None).await.unwrap();
    assert!(cancelled[0].outcome.is_ok(), "{cancelled:?}");
    assert_eq!(state(&c, id, 200.0).await, ("Omitido".to_string(), 1, true, None));

    // Resent at once: Pendiente with attempt numbers from 0 again, but due when the old lease ends, and it says so.
    let resent = cantina_notify::ops::requests::resend(&mut ops, &[id], None, None).await.unwrap();
    assert_eq!(resent[0].outcome, Ok("reenviada (Omitido → Pendiente, intentos 0)".to_string()));
    assert!(
        resent[0].warnings.iter().any(|w| w.contains("ese envío puede seguir en curso: se enviará a partir de")),
        "{resent:?}"
    );
    assert_eq!(state(&c, id, 200.0).await, ("Pendiente".to_string(), 0, true, None));
    // No dispatcher can claim it as attempt 1 while the old send may still finish...
    assert!(store::claim(&pool, 10, lease, &["Email"], 5).await.unwrap().is_empty());
    // ...so the old send's late outcome (attempt 1) matches nothing.
    let late =
        store::Outcome::Sent { provider: "smtp", provider_id: Some("late-1"), warning: None, await_receipt: None };
    assert_eq!(store::record(&pool, &first[0], &late).await.unwrap(), 0);
    assert_eq!(state(&c, id, 200.0).await, ("Pendiente".to_string(), 0, true, None));

    // Once the lease has run out (simulated), the resent request is claimed and its own outcome is recorded.
    c.execute("UPDATE solicitudes_notificacion SET proximo_intento = now() WHERE id_solicitud = $1", &[&id])
        .await
        .unwrap();
    let second = store::claim(&pool, 10, lease, &["Email"], 5).await.unwrap();
    assert_eq!((second.len(), second[0].intentos), (1, 1));
    let sent =
        store::Outcome::Sent { provider: "smtp", provider_id: Some("new-1"), warning: None, await_receipt: None };
    assert_eq!(store::record(&pool, &second[0], &sent).await.unwrap(), 1);
    assert_eq!(state(&c, id, 0.0).await, ("Enviado".to_string(), 1, false, Some("new-1".to_string())));

    // A request that was not being sent when cancelled is due at once when resent, without the warning.
    let idle = insert_request(&c, fam.id_cliente, "Email", "Pendiente", "ana@example.com").await;
    cantina_notify::ops::requests::cancel(&mut ops, &[idle], "duplicado", None).await.unwrap();
    let resent = cantina_notify::ops::requests::resend(&mut ops, &[idle], None, None).await.unwrap();
    assert!(resent[0].outcome.is_ok() && resent[0].warnings.is_empty(), "{resent:?}");
    assert_eq!(store::claim(&pool, 10, lease, &["Email"], 5).await.unwrap().len(), 1);
}

/// Fails the request's current attempt as a dispatcher would (claim, then a permanent error).
async fn fail_once(pool: &deadpool_postgres::Pool, id: i64) {
    let claimed = store::claim(pool, 10, Duration::from_secs(60), &["Email"], 5).await.unwrap();
    let mine: Vec<_> = claimed.iter().filter(|c| c.id == id).collect();
    assert_eq!(mine.len(), 1, "{claimed:?}");
    let error = store::Outcome::Error { provider: "smtp", reason: "550 mailbox unavailable" };
    assert_eq!(store::record(pool, mine[0], &error).await.unwrap(), 1);
}

/// Whether the request's chain is marked followed (`respaldo_creado_en`).
async fn followed(c: &Client, id: i64) -> bool {
    c.query_one("SELECT respaldo_creado_en IS NOT NULL FROM solicitudes_notificacion WHERE id_solicitud = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_cancelled_fallback_link_resent_can_still_fall_back() {
    use cantina_notify::config::PreferenceDefaults;
    use cantina_notify::dispatch::fallback;
    use cantina_notify::domain::NotificationType;
    use cantina_notify::rules::MessageData;

    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    let datos = serde_json::to_value(MessageData::sample(NotificationType::RecargaExitosa)).unwrap();
    let id: i64 = c
        .query_one(
            "INSERT INTO solicitudes_notificacion
                 (id_cliente, nro_tarjeta, destino, estado, tipo, clave_dedup, destinatario, datos, canales_respaldo,
                  proximo_intento, actualizado_en)
             VALUES ($1, $2, 'Email', 'Pendiente', 'recarga_exitosa', 'recarga_exitosa:77:email', 'ana@example.com',
                     $3, 'sms', now(), now())
             RETURNING id_solicitud",
            &[&fam.id_cliente, &fam.nro_tarjeta, &datos],
        )
        .await
        .unwrap()
        .get(0);
    sign_by_hand(&c).await;
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    let defaults = PreferenceDefaults::default();
    let fallback_warning = |r: &cantina_notify::ops::requests::ActionResult| {
        r.warnings.iter().any(|w| w.contains("ya se creó la solicitud del canal de respaldo"))
    };

    // Cancelled: the notice is stopped on every channel.
    let mut ops = db.client().await;
    let cancelled = cantina_notify::ops::requests::cancel(&mut ops, &[id], "duplicado", None).await.unwrap();
    assert!(cancelled[0].warnings.iter().any(|w| w.contains("no se probará el canal de respaldo")), "{cancelled:?}");
    assert!(followed(&c, id).await);
    assert!(fallback::advance(&pool, &test_signer(), 10, &defaults).await.unwrap().created.is_empty());

    // Resent: no SMS request exists, so no warning, and the chain is open again.
    let resent = cantina_notify::ops::requests::resend(&mut ops, &[id], None, None).await.unwrap();
    assert!(resent[0].outcome.is_ok() && !fallback_warning(&resent[0]), "{resent:?}");
    assert!(!followed(&c, id).await);

    // It fails again: the fallback pass sends the notice on to SMS.
    fail_once(&pool, id).await;
    let advanced = fallback::advance(&pool, &test_signer(), 10, &defaults).await.unwrap();
    assert_eq!(advanced.created.len(), 1, "{advanced:?}");
    let sms: (String, Option<i64>) = c
        .query_one("SELECT clave_dedup, id_solicitud_origen FROM solicitudes_notificacion WHERE destino = 'SMS'", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(sms, ("recarga_exitosa:77:sms".to_string(), Some(id)));

    // Resent once more: now the SMS request exists; the warning says so and the chain stays followed.
    let resent = cantina_notify::ops::requests::resend(&mut ops, &[id], None, None).await.unwrap();
    assert!(resent[0].outcome.is_ok() && fallback_warning(&resent[0]), "{resent:?}");
    assert!(followed(&c, id).await);
    fail_once(&pool, id).await;
    assert!(fallback::advance(&pool, &test_signer(), 10, &defaults).await.unwrap().created.is_empty());
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'SMS'").await, 1);
}

#[tokio::test]
async fn list_filters_by_card_and_refuses_an_unknown_type() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let other = seed_family(&c, Some("otro@example.com"), None, 12_000).await;
    let mine = insert_request(&c, fam.id_cliente, "Email", "Enviado", "ana@example.com").await;
    let theirs = insert_request(&c, other.id_cliente, "Email", "Enviado", "otro@example.com").await;
    c.execute(
        "UPDATE solicitudes_notificacion s SET nro_tarjeta = t.nro
         FROM (VALUES ($1::int8, $2::text), ($3::int8, $4::text)) AS t(id, nro) WHERE s.id_solicitud = t.id",
        &[&mine, &fam.nro_tarjeta, &theirs, &other.nro_tarjeta],
    )
    .await
    .unwrap();

    let rows = json(&cli(&db, &["requests", "list", "--tarjeta", &fam.nro_tarjeta, "--json"]).await);
    let ids: Vec<i64> = rows.as_array().unwrap().iter().map(|r| r["id_solicitud"].as_i64().unwrap()).collect();
    assert_eq!(ids, [mine]);
    assert_eq!(rows[0]["nro_tarjeta"], fam.nro_tarjeta.as_str());
    let none = cli(&db, &["requests", "list", "--tarjeta", "NO-EXISTE"]).await;
    assert!(none.status.success() && stdout(&none).contains("Ninguna solicitud con esos filtros"), "{}", stdout(&none));

    let typed = json(&cli(&db, &["requests", "list", "--tipo", "Recarga_Exitosa", "--json"]).await);
    assert_eq!(typed.as_array().unwrap().len(), 2);
    let bad = cli(&db, &["requests", "list", "--tipo", "recarga"]).await;
    let e = stderr(&bad);
    assert!(!bad.status.success() && e.contains("tipo desconocido 'recarga'") && e.contains("saldo_bajo"), "{e}");
    assert!(stdout(&bad).is_empty(), "{}", stdout(&bad));
}

#[tokio::test]
async fn resend_warns_when_the_address_is_opted_out_and_show_prints_amounts() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let id = insert_request(&c, fam.id_cliente, "Email", "Omitido", "Ana@Example.com").await;
    c.execute("UPDATE solicitudes_notificacion SET saldo_alerta = 1500 WHERE id_solicitud = $1", &[&id]).await.unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    assert!(
        cantina_notify::optouts::opt_out(&pool, ChannelKind::Email, "ana@example.com", "sendgrid", "baja")
            .await
            .unwrap()
    );

    let out = cli(&db, &["requests", "resend", &id.to_string()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("#{id}: reenviada (Omitido → Pendiente, intentos 0)")), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("#{id}: aviso: el destinatario está dado de baja en este canal")),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("canal de respaldo"), "{}", stderr(&out));

    let t = stdout(&cli(&db, &["requests", "show", &id.to_string()]).await);
    assert!(t.lines().any(|l| l.trim_start().starts_with("saldo_alerta") && l.ends_with("Gs. 1.500")), "{t}");
    let d = json(&cli(&db, &["requests", "show", &id.to_string(), "--json"]).await);
    assert_eq!(d["solicitud"]["saldo_alerta"], 1500);
}
