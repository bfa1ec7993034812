//! Operator levers: dry run (`CANTINA__DISPATCH__DRY_RUN`) and channel pause/resume stored in the database.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cantina_notify::channels::{Channel, Channels, OutgoingMessage, SendError, SendReceipt};
use cantina_notify::domain::ChannelKind;
use cantina_notify::metrics::Metrics;
use cantina_notify::operator_pauses::{ChannelCommand, PauseError, execute};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_cantina-notify");

#[tokio::test]
async fn a_dry_run_service_records_a_burst_of_recharges_without_calling_any_provider() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Every provider points at one HTTP double that would accept anything, and counts what reaches it.
    let provider = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "SMx", "status": "queued"})))
        .mount(&provider)
        .await;
    let url = provider.uri();
    let settings = test_settings(
        &db,
        &[
            ("CANTINA__DISPATCH__DRY_RUN", "True"),
            ("EMAIL_BACKEND", "sendgrid"),
            ("SENDGRID_API_KEY", "SG.test-key"),
            ("SENDGRID_API_URL", &url),
            ("SMS_PROVIDER", "twilio"),
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_AUTH_TOKEN", "secret-token"),
            ("TWILIO_PHONE_NUMBER", "+15005550006"),
            ("TWILIO_API_URL", &url),
            ("WHATSAPP_PROVIDER", "business_api"),
            ("WHATSAPP_ACCESS_TOKEN", "meta-token"),
            ("WHATSAPP_PHONE_NUMBER_ID", "106540352242922"),
            ("WHATSAPP_API_URL", &url),
            ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms,whatsapp,portal"),
            // The real providers' default paces (Twilio 1/s) would only slow the burst down.
            ("CANTINA__LIMITS__SMS__PER_SECOND", "0"),
            ("CANTINA__LIMITS__WHATSAPP__PER_SECOND", "0"),
            ("CANTINA__LIMITS__EMAIL__PER_SECOND", "0"),
        ],
    );
    assert!(settings.dispatch.dry_run, "True is accepted as the team's booleans are");
    let mut cards = Vec::new();
    for i in 0..10 {
        let fam = seed_family(&c, Some(&format!("familia{i}@example.com")), Some("0981 123456"), 5_000).await;
        c.execute(
            "INSERT INTO usuario_portal (id_cliente, email, activo) VALUES ($1, $2, true)",
            &[&fam.id_cliente, &format!("portal{i}@example.com")],
        )
        .await
        .unwrap();
        cards.push(fam.nro_tarjeta);
    }
    let app = TestApp::start_with(settings, None).await;
    for i in 0..50 {
        recharge(&c, &cards[i % cards.len()], 10_000 + i as i64).await;
    }
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 200, LONG).await;

    assert!(provider.received_requests().await.unwrap_or_default().is_empty(), "a provider was called");
    assert_eq!(count(&c, "SELECT count(*) FROM notificacion").await, 0, "nothing written to the parents' portal");
    // Recorded as in production, with the simulated provider.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM solicitudes_notificacion
             WHERE proveedor = 'simulacro' AND id_proveedor = 'simulacro-' || id_solicitud AND fecha_envio IS NOT NULL
               AND mensaje <> '' AND datos->>'monto' IS NOT NULL AND destinatario IS NOT NULL
               AND espera_recibo_hasta IS NULL AND ultimo_error IS NULL"
        )
        .await,
        200
    );
    let per_channel = c
        .query("SELECT destino, count(*) FROM solicitudes_notificacion GROUP BY destino ORDER BY destino", &[])
        .await
        .unwrap();
    let per_channel: Vec<(String, i64)> = per_channel.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(per_channel, [("Email".into(), 50), ("Portal".into(), 50), ("SMS".into(), 50), ("WhatsApp".into(), 50)]);
    let metrics = app.get("/metrics").await.1;
    assert!(metrics.contains("\ncantina_notify_dry_run 1\n"), "{metrics}");
    for channel in ["email", "sms", "whatsapp", "portal"] {
        let line =
            format!(r#"cantina_notify_sends_total{{channel="{channel}",provider="simulacro",outcome="sent"}} 50"#);
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn dry_run_is_announced_at_start_up_and_by_check_config() {
    let out = Command::new(BIN)
        .arg("check-config")
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .env("DATABASE_URL", "postgres://app@db.example:5432/cantina")
        .env("CANTINA__DISPATCH__DRY_RUN", "true")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("dry_run = true") && stdout.contains("# DRY RUN (CANTINA__DISPATCH__DRY_RUN=true)"),
        "{stdout}"
    );
    let off = Command::new(BIN)
        .arg("check-config")
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .env("DATABASE_URL", "postgres://app@db.example:5432/cantina")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&off.stdout).contains("# DRY RUN"));

    let db = TestDb::new().await;
    let addr = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
    );
    let child = Command::new(BIN)
        .arg("run")
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .env("DATABASE_URL", &db.url)
        .env("CANTINA__HTTP__ADDR", &addr)
        .env("CANTINA__DISPATCH__DRY_RUN", "1")
        .env("CANTINA__SCHEDULER__ENABLED", "false")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = poll_until("the dry-run service answers /metrics", SHORT, || async {
        match cantina_notify::http::get_url(&addr, "/metrics", Duration::from_secs(1)).await {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    })
    .await;
    assert!(metrics.contains("\ncantina_notify_dry_run 1\n"), "{metrics}");
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warn = stderr.lines().find(|l| l.contains("DRY_RUN")).unwrap_or_else(|| panic!("no DRY_RUN line:\n{stderr}"));
    assert!(warn.contains("WARN") && warn.contains("NOTHING IS SENT") && warn.contains("email=console"), "{warn}");
}

/// A channel double that notes when each send started.
struct Stamped {
    kind: ChannelKind,
    starts: Mutex<Vec<(Instant, i64)>>,
}

impl Stamped {
    fn new() -> Arc<Stamped> {
        Self::of(ChannelKind::Email)
    }

    fn of(kind: ChannelKind) -> Arc<Stamped> {
        Arc::new(Stamped { kind, starts: Mutex::new(Vec::new()) })
    }

    fn sent(&self) -> usize {
        self.starts.lock().unwrap().len()
    }

    fn started_after(&self, t: Instant) -> Vec<i64> {
        self.starts.lock().unwrap().iter().filter(|(at, _)| *at > t).map(|(_, id)| *id).collect()
    }
}

#[async_trait]
impl Channel for Stamped {
    fn kind(&self) -> ChannelKind {
        self.kind
    }
    fn provider(&self) -> &'static str {
        "recorder"
    }
    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        self.starts.lock().unwrap().push((Instant::now(), msg.request_id));
        Ok(SendReceipt::with_id(format!("rec-{}", msg.request_id)))
    }
}

fn operator_gauge(m: &Metrics, value: u8) -> bool {
    m.encode().contains(&format!("cantina_notify_channel_paused_by_operator{{channel=\"email\"}} {value}\n"))
}

fn pause_email() -> ChannelCommand {
    ChannelCommand::Pause { channel: "email".into(), reason: "proveedor caído".into(), by: Some("prueba".into()) }
}

#[tokio::test]
async fn a_pause_from_another_process_stops_two_running_replicas_within_5s_and_resume_drains_what_waited() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut cards = Vec::new();
    for i in 0..6 {
        cards.push(seed_family(&c, Some(&format!("familia{i}@example.com")), None, 10_000).await.nro_tarjeta);
    }
    let sinks = [Stamped::new(), Stamped::new()];
    let mut apps = Vec::new();
    for sink in &sinks {
        let channels = Channels::new().with(sink.clone() as Arc<dyn Channel>);
        apps.push(TestApp::start_with(test_settings(&db, &[]), Some(channels)).await);
    }
    for app in &apps {
        let m = app.metrics.clone();
        poll_until("the pause watcher ran", SHORT, || {
            let m = m.clone();
            async move { operator_gauge(&m, 0).then_some(()) }
        })
        .await;
    }
    for card in &cards {
        recharge(&c, card, 10_000).await;
    }
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 6, SHORT).await;

    // The pause, through the command's code path, on a connection of its own.
    let ops = db.client().await;
    let out = execute(&ops, &pause_email()).await.expect("pause");
    let committed = Instant::now();
    assert!(out.starts_with("Canal Email pausado por prueba el "), "{out}");
    assert!(out.contains("(motivo: proveedor caído)"), "{out}");
    // Recharges right after the commit, while the replicas may not have read it yet.
    let mut keys = Vec::new();
    for card in &cards {
        keys.push(format!("recarga_exitosa:{}:email", recharge(&c, card, 20_000).await));
    }
    // Each replica reports the pause once its claims are closed; note when each did.
    let mut seen: [Option<Instant>; 2] = [None, None];
    while seen.iter().any(Option::is_none) {
        for (i, app) in apps.iter().enumerate() {
            if seen[i].is_none() && operator_gauge(&app.metrics, 1) {
                seen[i] = Some(Instant::now());
            }
        }
        assert!(committed.elapsed() < Duration::from_secs(5), "a replica did not see the pause within 5 s: {seen:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // More recharges after both saw it: these must all wait.
    let mut waiting = Vec::new();
    for card in &cards {
        waiting.push(format!("recarga_exitosa:{}:email", recharge(&c, card, 30_000).await));
    }
    keys.extend(waiting.iter().cloned());
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion", 18, SHORT).await;
    // Until 5 s after the commit: no send starts in either replica after it saw the pause.
    while committed.elapsed() < Duration::from_secs(5) {
        for (sink, at) in sinks.iter().zip(seen) {
            let late = sink.started_after(at.unwrap_or(committed));
            assert!(late.is_empty(), "sent after the replica saw the pause: {late:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late_sent = "SELECT count(*) FROM solicitudes_notificacion
                     WHERE estado = 'Enviado' AND fecha_envio > (SELECT pausado_en + interval '5 seconds' FROM cantina_notify_canales_pausados)";
    assert_eq!(count(&c, late_sent).await, 0);
    let pending = c
        .query_one(
            "SELECT count(*) FROM solicitudes_notificacion WHERE clave_dedup = ANY($1) AND estado = 'Pendiente'",
            &[&waiting],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(pending, 6, "every request created after the pause waits as Pendiente");
    let metrics = apps[0].get("/metrics").await.1;
    assert!(metrics.contains(r#"cantina_notify_channel_paused{channel="email",provider="recorder"} 1"#), "{metrics}");

    // Resume: everything that waited is sent, once.
    let out =
        execute(&ops, &ChannelCommand::Resume { channel: "EMAIL".into(), by: Some("prueba".into()), reason: None })
            .await
            .expect("resume");
    assert!(out.starts_with("Canal Email reanudado por prueba (estaba pausado desde el "), "{out}");
    let all = "SELECT count(*) FROM solicitudes_notificacion WHERE clave_dedup = ANY($1) AND estado = 'Enviado'";
    poll_until("every request that waited is sent", SHORT, || async {
        let n: i64 = c.query_one(all, &[&keys]).await.unwrap().get(0);
        (n == 12).then_some(())
    })
    .await;
    let sent: usize = sinks.iter().map(|s| s.starts.lock().unwrap().len()).sum();
    assert_eq!(sent, 18, "each request sent exactly once across both replicas");
    for app in &apps {
        let m = app.metrics.clone();
        poll_until("the gauges go back to 0", SHORT, || {
            let m = m.clone();
            async move { operator_gauge(&m, 0).then_some(()) }
        })
        .await;
        assert!(
            app.metrics.encode().contains(r#"cantina_notify_channel_paused{channel="email",provider="recorder"} 0"#)
        );
    }
    let history = c
        .query(
            "SELECT destino, accion, coalesce(motivo, ''), por FROM cantina_notify_pausas_historial ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let history: Vec<(String, String, String, String)> =
        history.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(
        history,
        [
            ("Email".into(), "pausa".into(), "proveedor caído".into(), "prueba".into()),
            ("Email".into(), "reanudacion".into(), String::new(), "prueba".into()),
        ]
    );
    for app in apps {
        app.stop().await;
    }
}

#[tokio::test]
async fn a_replica_starting_while_a_channel_is_paused_sends_nothing_on_it_until_resume() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut cards = Vec::new();
    for i in 0..3 {
        cards.push(
            seed_family(&c, Some(&format!("familia{i}@example.com")), Some("0981123456"), 10_000).await.nro_tarjeta,
        );
    }
    execute(&c, &pause_email()).await.expect("pause");
    // Hold the pause table so the new replica's first read of it waits: this is the replica before it knows.
    let mut holder = db.client().await;
    let lock = holder.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE cantina_notify_canales_pausados IN ACCESS EXCLUSIVE MODE").await.unwrap();

    let (email, sms) = (Stamped::new(), Stamped::of(ChannelKind::Sms));
    let channels = Channels::new().with(email.clone() as Arc<dyn Channel>).with(sms.clone() as Arc<dyn Channel>);
    let settings =
        test_settings(&db, &[("SMS_PROVIDER", "console"), ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms")]);
    let app = TestApp::start_with(settings, Some(channels)).await;
    let waiting_for_lock = "SELECT count(*) FROM pg_locks l JOIN pg_class t ON t.oid = l.relation
                            WHERE t.relname = 'cantina_notify_canales_pausados' AND NOT l.granted";
    wait_count(&c, waiting_for_lock, 1, SHORT).await;
    for card in &cards {
        recharge(&c, card, 10_000).await;
    }
    // The listener writes the requests, but nothing is claimed (by the drain's hand-off or the claim loop) or sent
    // while the replica has not read the pauses.
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion", 6, SHORT).await;
    let touched = "SELECT count(*) FROM solicitudes_notificacion WHERE intentos > 0 OR estado <> 'Pendiente'";
    assert_eq!(count(&c, touched).await, 0, "claimed before the pauses were read");
    assert_eq!((email.sent(), sms.sent()), (0, 0));

    // Once read: SMS goes out, email waits.
    lock.rollback().await.unwrap();
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'SMS' AND estado = 'Enviado'",
        3,
        SHORT,
    )
    .await;
    assert!(operator_gauge(&app.metrics, 1));
    assert_eq!(email.sent(), 0, "sent on a paused channel");
    let email_waiting = "SELECT count(*) FROM solicitudes_notificacion
                         WHERE destino = 'Email' AND estado = 'Pendiente' AND intentos = 0";
    assert_eq!(count(&c, email_waiting).await, 3);

    execute(&c, &ChannelCommand::Resume { channel: "email".into(), by: Some("prueba".into()), reason: None })
        .await
        .expect("resume");
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 6, SHORT).await;
    assert_eq!((email.sent(), sms.sent()), (3, 3));
    app.stop().await;
}

#[tokio::test]
async fn channel_commands_refuse_what_makes_no_sense_with_a_clear_message() {
    let db = TestDb::new().await;
    let c = db.client().await;

    let unknown = ChannelCommand::Pause { channel: "fax".into(), reason: "x".into(), by: None };
    let e = execute(&c, &unknown).await.expect_err("unknown channel");
    assert!(matches!(e, PauseError::UnknownChannel(_)));
    assert_eq!(e.to_string(), "canal desconocido 'fax': use email, sms, whatsapp o portal");

    let blank = ChannelCommand::Pause { channel: "sms".into(), reason: "  ".into(), by: None };
    let e = execute(&c, &blank).await.expect_err("blank reason");
    assert!(e.to_string().starts_with("falta el motivo: indique --reason"), "{e}");

    let e = execute(&c, &ChannelCommand::Resume { channel: "sms".into(), by: None, reason: None })
        .await
        .expect_err("not paused");
    assert_eq!(
        e.to_string(),
        "el canal SMS no está pausado por un operador: no hay nada que reanudar (vea `cantina-notify channel list`)"
    );

    execute(&c, &pause_email()).await.expect("pause");
    let again = ChannelCommand::Pause { channel: "email".into(), reason: "otro".into(), by: Some("otra".into()) };
    let e = execute(&c, &again).await.expect_err("already paused");
    let msg = e.to_string();
    assert!(msg.starts_with("el canal Email ya está pausado desde "), "{msg}");
    assert!(msg.contains(" por prueba: proveedor caído;"), "{msg}");
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_pausas_historial").await, 1, "a refusal writes nothing");
    assert_eq!(
        count(&c, "SELECT count(*) FROM cantina_notify_canales_pausados WHERE motivo = 'proveedor caído'").await,
        1
    );

    // The binary: clap refuses a pause without --reason; refusals exit 1 with the message; list shows the state.
    let run = |args: &[&str]| {
        Command::new(BIN).args(args).env("DATABASE_URL", &db.url).current_dir(std::env::temp_dir()).output().unwrap()
    };
    let out = run(&["channel", "pause", "sms"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["channel", "resume", "whatsapp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("el canal WhatsApp no está pausado"));
    let out = run(&["channel", "pause", "palomas", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("canal desconocido 'palomas'"));
    let out = run(&["channel", "list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let email = stdout.lines().find(|l| l.starts_with("email ")).unwrap_or_default();
    assert!(email.contains("pausado") && email.contains("prueba") && email.ends_with("proveedor caído"), "{stdout}");
    // No service runs here: nothing is claimed to be active.
    assert!(
        stdout.lines().any(|l| l.starts_with("sms ") && l.ends_with("desconocido: ningún servicio en marcha  -")),
        "{stdout}"
    );
    assert!(stdout.contains("Últimos cambios:"), "{stdout}");
}

/// A `Pendiente` request on `destino`, as the service writes them.
async fn pending_request(c: &tokio_postgres::Client, id_cliente: i32, destino: &str) {
    c.execute(
        "INSERT INTO solicitudes_notificacion
             (id_cliente, destino, estado, tipo, clave_dedup, destinatario, datos, proximo_intento, actualizado_en)
         VALUES ($1, $2, 'Pendiente', 'recarga_exitosa', 'levers-test:' || gen_random_uuid(), 'ana@example.com',
                 '{}'::jsonb, now(), now())",
        &[&id_cliente, &destino],
    )
    .await
    .expect("insert request");
}

#[tokio::test]
async fn channel_commands_speak_spanish_mask_addresses_and_keep_a_staff_alert_while_paused() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 10_000).await;
    let resume =
        |channel: &str| ChannelCommand::Resume { channel: channel.into(), by: Some("luis".into()), reason: None };
    let open_alerts = "SELECT count(*) FROM alertas_sistema WHERE tipo = 'SISTEMA' AND estado = 'Pendiente'";

    // The pause raises one staff alert (the POS dashboard shows alertas_sistema); addresses in the reason are masked.
    let reason = "Twilio rechaza el remitente; avisar a soporte@example.com o al 0981 123 456";
    let pause = ChannelCommand::Pause { channel: "sms".into(), reason: reason.into(), by: Some("ana".into()) };
    let out = execute(&c, &pause).await.expect("pause");
    assert!(out.contains("avisar a s***@example.com o al +595 98* *** 456)"), "{out}");
    let alert: String = c
        .query_one("SELECT mensaje FROM alertas_sistema WHERE tipo = 'SISTEMA' AND estado = 'Pendiente'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        alert.starts_with(
            "cantina-notify: pausa manual del canal SMS por ana: Twilio rechaza el remitente; avisar a s***@example.com"
        ),
        "{alert}"
    );
    assert!(alert.contains("cantina-notify channel resume sms"), "{alert}");
    let again = ChannelCommand::Pause { channel: "sms".into(), reason: "otro".into(), by: None };
    let e = execute(&c, &again).await.expect_err("already paused").to_string();
    assert!(!e.contains("soporte@example.com") && e.contains("s***@example.com"), "{e}");
    assert_eq!(count(&c, open_alerts).await, 1, "a refused pause raises nothing");

    // Times are America/Asuncion from the bundled tz data (UTC-3 all year since 2024), to the minute.
    c.batch_execute(
        "UPDATE cantina_notify_canales_pausados SET pausado_en = '2026-07-01 15:00:00+00';
         UPDATE cantina_notify_pausas_historial SET en = '2026-07-01 15:00:00+00'",
    )
    .await
    .unwrap();
    let list = execute(&c, &ChannelCommand::List { history: 10 }).await.expect("list");
    let sms = list.lines().find(|l| l.starts_with("sms ")).unwrap_or_default();
    assert!(sms.contains("pausado por un operador ") && sms.contains(" 01/07/2026 12:00  por ana: "), "{list}");
    assert!(sms.ends_with("avisar a s***@example.com o al +595 98* *** 456"), "{list}");
    assert!(list.lines().any(|l| l.starts_with("01/07/2026 12:00  sms      pausa")), "{list}");
    assert!(!list.contains("soporte@example.com") && !list.contains("123 456"), "{list}");

    // A configuration pause of the same channel is another incident: the resume says so and leaves its alert open.
    let pool = cantina_notify::db::pool(&db.url, 1, Duration::from_secs(5)).unwrap();
    let config_prefix = cantina_notify::dispatch::config_pause_alert_prefix(ChannelKind::Sms);
    cantina_notify::alerts::raise(&pool, &config_prefix, &format!("{config_prefix} (twilio): credenciales rechazadas"))
        .await
        .unwrap();
    let config_id: i64 = c.query_one("SELECT max(id_alerta) FROM alertas_sistema", &[]).await.unwrap().get(0);
    let out = execute(&c, &resume("sms")).await.expect("resume");
    assert!(
        out.starts_with("Canal SMS reanudado por luis (estaba pausado desde el 01/07/2026 12:00 por ana: "),
        "{out}"
    );
    assert!(
        out.ends_with(&format!(
            "\nAtención: el canal tiene además una alerta abierta por un error de configuración del proveedor (alerta #{config_id}); mientras ese error siga, el servicio lo mantiene pausado y las solicitudes nuevas esperan hasta que la prueba de conexión funcione."
        )),
        "{out}"
    );
    let states = c
        .query("SELECT estado, coalesce(observaciones, '') FROM alertas_sistema ORDER BY id_alerta", &[])
        .await
        .unwrap();
    let states: Vec<(String, String)> = states.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        states,
        [
            ("Resuelta".to_string(), "cantina-notify: canal reanudado por luis".to_string()),
            ("Pendiente".to_string(), String::new()),
        ]
    );

    // What the resume says about the requests that waited: none, one, several.
    let pause = |channel: &str| ChannelCommand::Pause { channel: channel.into(), reason: "prueba".into(), by: None };
    execute(&c, &pause("portal")).await.expect("pause");
    let out = execute(&c, &resume("portal")).await.expect("resume");
    assert!(out.ends_with("\nNo hay solicitudes pendientes en este canal."), "{out}");
    execute(&c, &pause("email")).await.expect("pause");
    pending_request(&c, fam.id_cliente, "Email").await;
    let out = execute(&c, &resume("email")).await.expect("resume");
    assert!(out.ends_with("\nLa solicitud pendiente se envía en unos segundos."), "{out}");
    execute(&c, &pause("email")).await.expect("pause");
    pending_request(&c, fam.id_cliente, "Email").await;
    let out = execute(&c, &resume("email")).await.expect("resume");
    assert!(out.ends_with("\nLas 2 solicitudes pendientes se envían en unos segundos."), "{out}");
    assert_eq!(count(&c, open_alerts).await, 1, "only the configuration alert is left open");

    // Without a database the command says so in Spanish, like the other staff commands.
    let out = Command::new(BIN)
        .args(["channel", "list"])
        .env_remove("DATABASE_URL")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL: requerido"), "{stderr}");
}

#[tokio::test]
async fn a_request_claimed_before_the_pause_but_not_yet_sent_goes_back_unsent() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 10_000).await;
    let sink = Stamped::new();
    // One send every 4 s: the claimed requests queue behind the rate limit, after their claim.
    let settings = test_settings(&db, &[("CANTINA__LIMITS__EMAIL__PER_SECOND", "0.25")]);
    let app = TestApp::start_with(settings, Some(Channels::new().with(sink.clone() as Arc<dyn Channel>))).await;
    for monto in [10_000, 20_000, 30_000, 40_000] {
        recharge(&c, &fam.nro_tarjeta, monto).await;
    }
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    let claimed = "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Pendiente' AND intentos = 1";
    wait_count(&c, claimed, 3, SHORT).await;

    execute(&db.client().await, &pause_email()).await.expect("pause");
    let m = app.metrics.clone();
    poll_until("the replica sees the pause", Duration::from_secs(5), || {
        let m = m.clone();
        async move { operator_gauge(&m, 1).then_some(()) }
    })
    .await;
    let seen = Instant::now();
    // Each waiting claim reaches its send slot, finds the channel paused, and is given back.
    wait_count(&c, claimed, 0, Duration::from_secs(20)).await;
    assert!(sink.started_after(seen).is_empty(), "sent after the pause was seen");
    let released = count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion
         WHERE estado = 'Pendiente' AND intentos = 0 AND proximo_intento <= now() AND ultimo_error IS NULL",
    )
    .await;
    let sent = count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'").await;
    assert!(released >= 1, "no claim was given back (sent {sent})");
    assert_eq!(released + sent, 4);
    assert_eq!(sink.starts.lock().unwrap().len() as i64, sent);
    app.stop().await;
}

/// The Done-when, literally: `cantina-notify channel pause` run as its own process stops a running
/// `cantina-notify run` process within 5 s; `channel resume`, also its own process, sends what waited, once each.
#[tokio::test]
async fn the_pause_command_as_a_process_stops_a_running_service_process_within_5s() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let family = seed_family(&c, Some("ana@example.com"), None, 100_000).await;
    let addr = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
    );
    // Killed if an assertion fails first, so a failing run leaves no service behind.
    let mut service = ChildGuard(Some(
        Command::new(BIN)
            .arg("run")
            .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
            .env("DATABASE_URL", &db.url)
            .env("CANTINA__HTTP__ADDR", &addr)
            .env("CANTINA__SCHEDULER__ENABLED", "false")
            .env("EMAIL_BACKEND", "console")
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let recharge = |referencia: &'static str| {
        let (c, nro) = (&c, family.nro_tarjeta.clone());
        async move {
            c.execute(
                "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia) VALUES ($1, 10000, 'CONFIRMADO', $2)",
                &[&nro, &referencia],
            )
            .await
            .unwrap();
        }
    };
    recharge("antes").await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;

    let channel = |args: &[&str]| {
        Command::new(BIN)
            .arg("channel")
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("USER", "prueba")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    };
    let paused = channel(&["pause", "email", "--reason", "prueba de pausa"]);
    assert!(paused.status.success(), "{}", String::from_utf8_lossy(&paused.stderr));
    let paused_at = Instant::now();
    // The running process says it applied the pause, within the promised 5 s.
    poll_until("the service process applies the pause", Duration::from_secs(5), || async {
        match cantina_notify::http::get_url(&addr, "/metrics", Duration::from_secs(1)).await {
            Ok((200, body)) => {
                body.contains("cantina_notify_channel_paused_by_operator{channel=\"email\"} 1").then_some(())
            }
            _ => None,
        }
    })
    .await;
    assert!(paused_at.elapsed() <= Duration::from_secs(5));
    for r in ["durante-1", "durante-2", "durante-3"] {
        recharge(r).await;
    }
    // The drain records them; the dispatcher must not send them: two poll intervals pass with them untouched.
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Pendiente'", 3, SHORT).await;
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(2) {
        let sent: i64 = c
            .query_one("SELECT count(*) FROM solicitudes_notificacion WHERE estado <> 'Pendiente' OR intentos > 0", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(sent, 1, "a request was claimed or sent while the channel was paused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let resumed = channel(&["resume", "email"]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado' AND intentos = 1", 4, SHORT)
        .await;
    let service = service.0.take().unwrap();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(service.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || service.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success());
}

/// An operator resumes a channel that a running replica holds paused for a provider error: the resume says the
/// channel stays closed, with the provider's error (masked) and the next probe, from the replicas' recorded states.
#[tokio::test]
async fn a_resume_says_when_a_running_replica_still_holds_the_channel_for_a_provider_error() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let pause =
        ChannelCommand::Pause { channel: "email".into(), reason: "cambio de SMTP".into(), by: Some("ana".into()) };
    execute(&c, &pause).await.expect("pause");
    c.batch_execute(
        "INSERT INTO cantina_notify_estado_canales
             (replica, destino, configurado, proveedor, estado, motivo, desde, proxima_prueba, visto_en)
         VALUES ('pod-a', 'Email', true, 'smtp', 'pausado_proveedor',
                 'SMTP rechazó el usuario soporte@example.com', now(), '2026-07-01 15:00:30+00', now())",
    )
    .await
    .unwrap();
    let resume = ChannelCommand::Resume { channel: "email".into(), by: Some("luis".into()), reason: None };
    let out = execute(&c, &resume).await.expect("resume");
    assert!(
        out.ends_with(
            "\nAtención: el canal sigue pausado en el servicio en marcha por un error del proveedor: SMTP rechazó el usuario s***@example.com. Mientras ese error siga, las solicitudes nuevas esperan hasta que la prueba de conexión funcione (próxima prueba 01/07/2026 12:00)."
        ),
        "{out}"
    );
}
