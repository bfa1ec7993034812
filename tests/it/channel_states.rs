//! One state per channel for the whole service (migration 0021, src/channel_state): `channel list`, `stats` (text
//! and JSON) and `/metrics` agree on not configured, active, paused by an operator, or paused by a provider error;
//! the views merge what each live replica recorded, and a replica that stops heartbeating stops counting.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cantina_notify::domain::NotificationType;
use cantina_notify::rules::MessageData;
use serde_json::Value as Json;
use tokio_postgres::Client;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_cantina-notify");
const SID: &str = "AC0123456789abcdef0123456789abcdef";

/// The binary against `db`, as operator `ops-tester`.
async fn cli(db: &TestDb, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("DATABASE_URL", &db.url)
        .env("USER", "ops-tester")
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir());
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("run cantina-notify");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

async fn text(db: &TestDb, args: &[&str]) -> String {
    String::from_utf8_lossy(&cli(db, args).await.stdout).into_owned()
}

/// The line of `channel list` or `stats` for a channel (`sms`, `email`, …).
fn line<'a>(out: &'a str, channel: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{channel} ")))
        .unwrap_or_else(|| panic!("no {channel} line in:\n{out}"))
}

/// A Twilio double that rejects the credentials, on sends and on the probe, quoting an address in its message
/// (as providers do) so that masking is exercised.
async fn twilio_rejecting_credentials() -> MockServer {
    let twilio = MockServer::start().await;
    let body = serde_json::json!({
        "code": 20003, "message": "Authenticate (cuenta ventas@example.com)", "status": 401,
        "more_info": "https://www.twilio.com/docs/errors/20003"
    });
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .respond_with(ResponseTemplate::new(401).set_body_json(body.clone()))
        .mount(&twilio)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/2010-04-01/Accounts/{SID}.json")))
        .respond_with(ResponseTemplate::new(401).set_body_json(body))
        .mount(&twilio)
        .await;
    twilio
}

fn twilio_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SMS_PROVIDER", "twilio".into()),
        ("TWILIO_ACCOUNT_SID", SID.into()),
        ("TWILIO_AUTH_TOKEN", "expired-token".into()),
        ("TWILIO_PHONE_NUMBER", "+15005550006".into()),
        ("TWILIO_API_URL", url.into()),
        ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "sms".into()),
        ("CANTINA__DISPATCH__PROBE_INTERVAL_SECONDS", "2".into()),
    ]
}

/// The replica that recorded `estado` for `destino`.
async fn wait_recorded(c: &Client, destino: &str, estado: &str) -> String {
    let sql = "SELECT replica FROM cantina_notify_estado_canales WHERE destino = $1 AND estado = $2";
    poll_until(&format!("{destino} recorded as {estado}"), SHORT, || async move {
        c.query_opt(sql, &[&destino, &estado]).await.expect("read states").map(|r| r.get::<_, String>(0))
    })
    .await
}

#[tokio::test]
async fn channel_list_stats_and_metrics_show_one_state_per_channel_from_one_source() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, None, Some("0981 123456"), 12_000).await;
    let twilio = twilio_rejecting_credentials().await;
    let env = twilio_env(&twilio.uri());
    let mut extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    extra.push(("EMAIL_BACKEND", "console"));
    let app = TestApp::start_with(test_settings(&db, &extra), None).await;

    // Before any send: email, sms and portal configured and active; WhatsApp has no provider.
    let replica = wait_recorded(&c, "SMS", "activo").await;
    let list = text(&db, &["channel", "list"]).await;
    assert!(line(&list, "whatsapp").contains("no configurado"), "{list}");
    assert!(line(&list, "sms").contains("activo") && line(&list, "sms").contains("proveedor twilio"), "{list}");
    assert!(list.contains(&format!("Réplicas en marcha: 1 ({replica})")), "{list}");

    // Twilio rejects the credentials: the channel pauses itself, and every view says so, with the error (its address
    // masked), since when, the next probe and which replica.
    recharge(&c, &fam.nro_tarjeta, 5_000).await;
    wait_recorded(&c, "SMS", "pausado_proveedor").await;
    let list = text(&db, &["channel", "list"]).await;
    let sms = line(&list, "sms");
    assert!(sms.contains("pausado por un error del proveedor"), "{list}");
    assert!(sms.contains("Twilio 20003: Authenticate (cuenta v***@example.com)"), "{list}");
    assert!(sms.contains("; próxima prueba ") && sms.ends_with(&format!("; réplica {replica}")), "{list}");
    assert!(!list.contains("ventas@example.com") && !list.contains("expired-token"), "{list}");
    assert!(line(&list, "whatsapp").contains("no configurado"), "{list}");
    assert!(line(&list, "email").contains("activo"), "{list}");

    let stats = text(&db, &["stats"]).await;
    assert!(!stats.contains("Canales pausados: ninguno"), "{stats}");
    assert!(line(&stats, "sms").contains("pausado por un error del proveedor"), "{stats}");
    assert!(stats.contains("Alertas abiertas de canales pausados"), "{stats}");
    let s: Json = serde_json::from_slice(&cli(&db, &["stats", "--json"]).await.stdout).expect("stats JSON");
    let state =
        |ch: &str| s["channel_states"].as_array().unwrap().iter().find(|x| x["channel"] == ch).cloned().unwrap();
    let sms = state("sms");
    assert_eq!(sms["state"], "paused_by_provider");
    assert_eq!(sms["estado"], "pausado por un error del proveedor");
    assert!(sms["error"].as_str().unwrap().contains("Twilio 20003: Authenticate (cuenta v***@example.com)"), "{sms}");
    assert!(sms["next_probe"].as_str().is_some() && sms["since"].as_str().is_some(), "{sms}");
    assert_eq!(sms["replicas"], serde_json::json!([replica]));
    assert_eq!(state("whatsapp")["state"], "not_configured");
    assert_eq!(state("email")["state"], "active");
    assert_eq!(s["paused_channels"][0]["destino"], "SMS");
    assert_eq!(s["paused_channels"][0]["state"], "paused_by_provider");
    assert_eq!(s["live_replicas"], serde_json::json!([replica]));

    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, 200);
    for series in [
        r#"cantina_notify_channel_state{channel="sms",state="paused_by_provider"} 1"#,
        r#"cantina_notify_channel_state{channel="sms",state="active"} 0"#,
        r#"cantina_notify_channel_state{channel="whatsapp",state="not_configured"} 1"#,
        r#"cantina_notify_channel_state{channel="email",state="active"} 1"#,
    ] {
        assert!(metrics.contains(&format!("{series}\n")), "missing {series} in:\n{metrics}");
    }

    // An operator pauses email: shown with who, why and since; the gauge follows within the watcher's second.
    let pause = cantina_notify::operator_pauses::ChannelCommand::Pause {
        channel: "email".into(),
        reason: "cambio de proveedor, avisar a soporte@example.com".into(),
        by: Some("ana".into()),
    };
    cantina_notify::operator_pauses::execute(&c, &pause).await.expect("pause");
    let list = text(&db, &["channel", "list"]).await;
    let email = line(&list, "email");
    assert!(email.contains("pausado por un operador"), "{list}");
    assert!(email.ends_with("por ana: cambio de proveedor, avisar a s***@example.com"), "{list}");
    assert!(email.contains(&cantina_notify::ops::format::local(jiff::Timestamp::now())[..10]), "{list}");
    let metrics = app.metrics.clone();
    poll_until("the operator's pause in /metrics", Duration::from_secs(5), || {
        let m = metrics.encode();
        async move {
            m.contains("cantina_notify_channel_state{channel=\"email\",state=\"paused_by_operator\"} 1\n").then_some(())
        }
    })
    .await;

    // The service stops: its rows go, and nothing claims a channel is active; the operator's pause still shows.
    app.stop().await;
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_estado_canales").await, 0);
    let list = text(&db, &["channel", "list"]).await;
    assert!(line(&list, "sms").contains("desconocido: ningún servicio en marcha"), "{list}");
    assert!(line(&list, "whatsapp").contains("desconocido: ningún servicio en marcha"), "{list}");
    assert!(line(&list, "email").contains("pausado por un operador"), "{list}");
    // True after a clean stop (the rows were deleted) as after a crash (the rows went stale).
    assert!(
        list.contains(
            "Ningún servicio en marcha: ninguna réplica tiene su estado registrado (una réplica lo borra al detenerse \
             y deja de contar si no lo renueva en 30 s), así que el estado de los canales es desconocido."
        ),
        "{list}"
    );
    assert!(!list.contains(" activo"), "{list}");
}

/// Two replicas: one (a `run` process) has SMS paused by Twilio, the other has no SMS provider. The views show the
/// pause while the first heartbeats; once it is killed and its heartbeat is older than the stale window it no
/// longer counts (SMS is then not configured in the service that runs), and later the live replica deletes its rows.
#[tokio::test]
async fn a_replica_that_stops_heartbeating_is_no_longer_counted() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, None, Some("0981 123456"), 12_000).await;
    let twilio = twilio_rejecting_credentials().await;

    let a = TestApp::start_with(test_settings(&db, &[("EMAIL_BACKEND", "console")]), None).await;
    let replica_a = wait_recorded(&c, "SMS", "no_configurado").await;
    let mut b = Command::new(BIN);
    b.arg("run")
        .env("DATABASE_URL", &db.url)
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .env("CANTINA__HTTP__ADDR", "127.0.0.1:0")
        .env("CANTINA__SCHEDULER__ENABLED", "false")
        .env("EMAIL_BACKEND", "console")
        .env("HOSTNAME", "pod-b")
        .envs(twilio_env(&twilio.uri()))
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut b = ChildGuard(Some(b.spawn().expect("start replica b")));

    // An SMS request as the service writes them: only B has an SMS provider, so only B claims it.
    c.execute(
        "INSERT INTO solicitudes_notificacion
             (id_cliente, destino, estado, tipo, clave_dedup, destinatario, datos, proximo_intento, actualizado_en)
         VALUES ($1, 'SMS', 'Pendiente', 'recarga_exitosa', 'estado-canales:1', '+595981123456', $2, now(), now())",
        &[&fam.id_cliente, &serde_json::to_value(MessageData::sample(NotificationType::RecargaExitosa)).unwrap()],
    )
    .await
    .expect("insert request");
    sign_by_hand(&c).await;
    let replica_b = wait_recorded(&c, "SMS", "pausado_proveedor").await;
    assert!(replica_b.starts_with("pod-b:"), "{replica_b}");
    let list = text(&db, &["channel", "list"]).await;
    assert!(line(&list, "sms").contains("pausado por un error del proveedor"), "{list}");
    assert!(line(&list, "sms").ends_with(&format!("; réplica {replica_b}")), "{list}");
    let mut both = [replica_a.as_str(), replica_b.as_str()];
    both.sort();
    assert!(list.contains(&format!("Réplicas en marcha: 2 ({}, {})", both[0], both[1])), "{list}");

    // B dies without a word (no graceful stop removes its rows).
    if let Some(mut child) = b.0.take() {
        child.kill().expect("kill replica b");
        child.wait().expect("reap replica b");
    }
    assert_eq!(
        count(&c, &format!("SELECT count(*) FROM cantina_notify_estado_canales WHERE replica = '{replica_b}'")).await,
        4
    );
    // Its last heartbeat ages past the stale window (31 s, not waited for: its rows are moved back in time).
    c.execute(
        "UPDATE cantina_notify_estado_canales SET visto_en = visto_en - interval '31 seconds' WHERE replica = $1",
        &[&replica_b],
    )
    .await
    .unwrap();
    let list = text(&db, &["channel", "list"]).await;
    assert!(line(&list, "sms").contains("no configurado"), "{list}");
    assert!(list.contains(&format!("Réplicas en marcha: 1 ({replica_a})")), "{list}");
    assert!(
        list.contains(&format!("Réplicas sin latido desde hace más de 30 s (no se cuentan): {replica_b}")),
        "{list}"
    );
    let s: Json = serde_json::from_slice(&cli(&db, &["stats", "--json"]).await.stdout).expect("stats JSON");
    assert_eq!(s["silent_replicas"], serde_json::json!([replica_b]));
    assert_eq!(s["channel_states"][1]["channel"], "sms");
    assert_eq!(s["channel_states"][1]["state"], "not_configured");

    // Ten minutes silent: the live replica's next heartbeat deletes B's rows, and refreshes its own.
    let seen_a = "SELECT visto_en::text FROM cantina_notify_estado_canales WHERE replica = $1 AND destino = 'Email'";
    let before: String = c.query_one(seen_a, &[&replica_a]).await.unwrap().get(0);
    c.execute(
        "UPDATE cantina_notify_estado_canales SET visto_en = visto_en - interval '10 minutes' WHERE replica = $1",
        &[&replica_b],
    )
    .await
    .unwrap();
    wait_count(
        &c,
        &format!("SELECT count(*) FROM cantina_notify_estado_canales WHERE replica = '{replica_b}'"),
        0,
        SHORT,
    )
    .await;
    let after: String = c.query_one(seen_a, &[&replica_a]).await.unwrap().get(0);
    assert_ne!(before, after, "the live replica heartbeats");
    a.stop().await;
}
