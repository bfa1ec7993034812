//! Retries, permanent failures, replicas and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use cantina_notify::channels::SendError;
use cantina_notify::domain::ChannelKind;
use tokio::sync::Notify;

use crate::helpers::*;

fn transient(reason: &str) -> SendError {
    SendError::Transient { reason: reason.into(), retry_after: None }
}

#[tokio::test]
async fn a_transient_failure_is_retried_then_sent() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    rec.then(Script::Fail(transient("503 Service Unavailable")));
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    let r = c.query_one("SELECT intentos, ultimo_error FROM solicitudes_notificacion", &[]).await.unwrap();
    assert_eq!(r.get::<_, i32>(0), 2);
    assert_eq!(r.get::<_, Option<String>>(1), None);
    assert_eq!(rec.attempts.lock().unwrap().values().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(rec.sent_count(), 1);
    let metrics = app.get("/metrics").await.1;
    assert!(
        metrics.contains(r#"cantina_notify_sends_total{channel="email",provider="recorder",outcome="retry"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"cantina_notify_sends_total{channel="email",provider="recorder",outcome="sent"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retry_waits_for_its_time_on_the_row() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    rec.then(Script::Fail(SendError::Transient { reason: "429".into(), retry_after: Some(Duration::from_secs(3600)) }));
    let settings = test_settings(&db, &[("CANTINA__DISPATCH__RETRY_MAX_MS", "7200000")]);
    let app = TestApp::start(settings, &rec).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE ultimo_error IS NOT NULL", 1, SHORT).await;
    // Retry-After is honoured: the next attempt is stored about an hour ahead, the row waits as Pendiente.
    let secs: f64 = c
        .query_one("SELECT extract(epoch FROM proximo_intento - now())::float8 FROM solicitudes_notificacion", &[])
        .await
        .unwrap()
        .get(0);
    assert!((3500.0..=3601.0).contains(&secs), "{secs}");
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Pendiente'").await, 1);
    let err: String = c.query_one("SELECT ultimo_error FROM solicitudes_notificacion", &[]).await.unwrap().get(0);
    assert_eq!(err, "intento 1: 429");
    app.stop().await;
}

#[tokio::test]
async fn a_permanent_failure_is_an_error_with_its_reason() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    rec.then(Script::Fail(SendError::Permanent { reason: "550 mailbox unavailable".into() }));
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Error'", 1, SHORT).await;
    let r = c
        .query_one("SELECT intentos, ultimo_error, fecha_envio IS NULL FROM solicitudes_notificacion", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, i32>(0), 1, "not retried");
    assert_eq!(r.get::<_, String>(1), "550 mailbox unavailable");
    assert!(r.get::<_, bool>(2));
    assert_eq!(rec.sent_count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn exhausted_attempts_become_an_error() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    rec.always_fail(transient("connection refused"));
    let app = TestApp::start(test_settings(&db, &[("CANTINA__DISPATCH__MAX_ATTEMPTS", "3")]), &rec).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Error'", 1, SHORT).await;
    let r = c.query_one("SELECT intentos, ultimo_error FROM solicitudes_notificacion", &[]).await.unwrap();
    assert_eq!(r.get::<_, i32>(0), 3);
    assert_eq!(r.get::<_, String>(1), "agotados 3 intentos; último error: connection refused");
    assert_eq!(rec.attempts.lock().unwrap().values().copied().collect::<Vec<_>>(), [3]);
    app.stop().await;
}

#[tokio::test]
async fn an_expired_lease_is_taken_over() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    // Turn the event into a request without sending, then pretend a worker claimed it and died.
    let settings = test_settings(&db, &[]);
    let (rules, _) = settings.validate(true).unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    cantina_notify::events::drain::drain_batch(&pool, &rules, 10, None).await.unwrap();
    c.execute("UPDATE solicitudes_notificacion SET intentos = 1, proximo_intento = now() + interval '1 second'", &[])
        .await
        .unwrap();
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(settings, &rec).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(count(&c, "SELECT intentos::int8 FROM solicitudes_notificacion").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn two_replicas_share_the_work_without_duplicates() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let a = TestApp::start(test_settings(&db, &[]), &rec).await;
    let b = TestApp::start(test_settings(&db, &[]), &rec).await;
    let n = 400;
    for _ in 0..n {
        recharge(&c, &fam.nro_tarjeta, 1_000).await;
    }
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", n, LONG).await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, n);
    assert_eq!(rec.sent_count() as i64, n);
    assert!(rec.duplicates().is_empty(), "{:?}", rec.duplicates());
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn sigterm_lets_in_flight_sends_finish() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    rec.then(Script::Hold { started: started.clone(), release: release.clone() });
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    tokio::time::timeout(SHORT, started.notified()).await.expect("send started");
    // Shutdown begins while the send is in flight; it is allowed to finish and its outcome is recorded.
    app.shutdown.cancel();
    let metrics = app.metrics.clone();
    poll_until("listener stopped", SHORT, || {
        let m = metrics.clone();
        async move { (!m.listener_is_connected()).then_some(()) }
    })
    .await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'").await, 0);
    release.notify_one();
    app.stop().await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'").await, 1);
    assert_eq!(rec.sent_count(), 1);
}

#[tokio::test]
async fn a_stale_holder_cannot_overwrite_a_takeover() {
    use cantina_notify::dispatch::store::{self, Outcome};
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    let settings = test_settings(&db, &[]);
    let (rules, _) = settings.validate(true).unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    cantina_notify::events::drain::drain_batch(&pool, &rules, 10, None).await.unwrap();

    let first = store::claim(&pool, 10, Duration::from_secs(60), &["Email"], 8).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store::claim(&pool, 10, Duration::from_secs(60), &["Email"], 8).await.unwrap().is_empty(), "leased");
    // The lease runs out and a second worker takes the request over.
    c.execute("UPDATE solicitudes_notificacion SET proximo_intento = now()", &[]).await.unwrap();
    let second = store::claim(&pool, 10, Duration::from_secs(60), &["Email"], 8).await.unwrap();
    assert_eq!(second[0].intentos, 2);
    // The slow first holder finally answers: its write must not land.
    let n = store::record(&pool, &first[0], &Outcome::Error { provider: "x", reason: "tarde" }).await.unwrap();
    assert_eq!(n, 0);
    let n = store::record(
        &pool,
        &second[0],
        &Outcome::Sent { provider: "x", provider_id: Some("p-2"), warning: None, await_receipt: None },
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    let r = c.query_one("SELECT estado, id_proveedor, ultimo_error FROM solicitudes_notificacion", &[]).await.unwrap();
    assert_eq!(r.get::<_, String>(0), "Enviado");
    assert_eq!(r.get::<_, String>(1), "p-2");
    assert_eq!(r.get::<_, Option<String>>(2), None);
}

#[tokio::test]
async fn claims_that_never_recorded_an_outcome_are_closed_at_the_attempt_limit() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    let settings = test_settings(&db, &[("CANTINA__DISPATCH__MAX_ATTEMPTS", "3")]);
    let (rules, _) = settings.validate(true).unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    cantina_notify::events::drain::drain_batch(&pool, &rules, 10, None).await.unwrap();
    // Three workers claimed it and died before recording anything; the last lease has run out.
    c.execute("UPDATE solicitudes_notificacion SET intentos = 3, proximo_intento = now()", &[]).await.unwrap();
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(settings, &rec).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Error'", 1, SHORT).await;
    let reason: String = c.query_one("SELECT ultimo_error FROM solicitudes_notificacion", &[]).await.unwrap().get(0);
    assert!(reason.contains("sin resultado registrado tras 3 intentos"), "{reason}");
    assert_eq!(rec.sent_count(), 0, "not sent a fourth time");
    app.stop().await;
}

/// One attempt rule, read three ways: a request may be tried again exactly when `AttemptLimit::allows_another`
/// says so, the claim takes exactly those (`intentos < $n`), and the clean-up closes exactly the others
/// (`intentos >= $n`).
#[tokio::test]
async fn the_claim_and_the_clean_up_follow_the_attempt_limit() {
    use cantina_notify::dispatch::store;
    use cantina_notify::domain::AttemptLimit;
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    recharge(&c, &fam.nro_tarjeta, 20_000).await;
    let settings = test_settings(&db, &[]);
    let (rules, _) = settings.validate(true).unwrap();
    let pool = cantina_notify::db::pool(&db.url, 2, Duration::from_secs(5)).unwrap();
    cantina_notify::events::drain::drain_batch(&pool, &rules, 10, None).await.unwrap();
    let limit = AttemptLimit::new(3);
    // One request one attempt short of the limit, one at it; both due.
    let ids: Vec<i64> = c
        .query("SELECT id_solicitud FROM solicitudes_notificacion ORDER BY id_solicitud", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 2);
    let (short, at) = (ids[0], ids[1]);
    c.execute(
        "UPDATE solicitudes_notificacion SET proximo_intento = now(),
             intentos = CASE WHEN id_solicitud = $1 THEN 2 ELSE 3 END",
        &[&short],
    )
    .await
    .unwrap();
    assert!(limit.allows_another(2) && !limit.allows_another(3));

    let claimed = store::claim(&pool, 10, Duration::from_secs(60), &["Email"], limit).await.unwrap();
    assert_eq!(claimed.iter().map(|c| (c.id, c.intentos)).collect::<Vec<_>>(), [(short, 3)]);
    assert_eq!(store::close_abandoned(&pool, limit).await.unwrap(), 1);
    let estados: Vec<(i64, String)> = c
        .query("SELECT id_solicitud, estado FROM solicitudes_notificacion ORDER BY id_solicitud", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The claimed one is under its lease, Pendiente; the one at the limit is closed.
    assert_eq!(estados, [(short, "Pendiente".to_string()), (at, "Error".to_string())]);
}

#[tokio::test]
async fn quiet_hours_defer_sms_to_the_end_of_the_window_and_let_email_through() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    // A window around the current local time in Asunción.
    let tz = jiff::tz::TimeZone::get("America/Asuncion").unwrap();
    let now = jiff::Timestamp::now().to_zoned(tz);
    let hhmm = |z: jiff::Zoned| z.strftime("%H:%M").to_string();
    let start = hhmm(now.checked_sub(jiff::Span::new().hours(1)).unwrap());
    let end_zoned = now.checked_add(jiff::Span::new().hours(1)).unwrap();
    let end = hhmm(end_zoned.clone());
    let email = Recorder::new(ChannelKind::Email);
    let sms = Recorder::new(ChannelKind::Sms);
    let settings = test_settings(
        &db,
        &[
            ("SMS_PROVIDER", "console"),
            ("CANTINA__RULES__RECARGA_EXITOSA__CHANNELS", "email,sms"),
            ("CANTINA__QUIET_HOURS__START", &start),
            ("CANTINA__QUIET_HOURS__END", &end),
        ],
    );
    let channels = cantina_notify::channels::Channels::new().with(email.clone()).with(sms.clone());
    let app = TestApp::start_with(settings, Some(channels)).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'Email' AND estado = 'Enviado'",
        1,
        SHORT,
    )
    .await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'SMS' AND ultimo_error = 'en espera: horario de silencio'", 1, SHORT).await;
    let r = c
        .query_one(
            "SELECT estado, intentos, extract(epoch FROM proximo_intento)::int8 FROM solicitudes_notificacion WHERE destino = 'SMS'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "Pendiente", "deferred, not dropped");
    assert_eq!(r.get::<_, i32>(1), 0, "a deferral is not an attempt");
    // Due at the end of the window (to the minute).
    let due = r.get::<_, i64>(2);
    let expected = end_zoned.timestamp().as_second() / 60 * 60;
    assert_eq!(due, expected, "deferred to {end} local");
    assert_eq!(sms.sent_count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn the_oldest_due_request_is_measured_per_channel_while_it_waits() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    rec.then(Script::Hold { started: started.clone(), release: release.clone() });
    // One send at a time: while the first is held, the second waits, due.
    let settings = test_settings(&db, &[("CANTINA__DISPATCH__CONCURRENCY", "1")]);
    let app = TestApp::start(settings, &rec).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    tokio::time::timeout(SHORT, started.notified()).await.expect("first send started");
    recharge(&c, &fam.nro_tarjeta, 5_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion", 2, SHORT).await;
    // Backdate the waiting request's creation so its age is unmistakable. It waits in the table or, handed over
    // by the drain, in the dispatcher's memory: either way it counts.
    c.execute(
        "UPDATE solicitudes_notificacion SET fecha_solicitud = now() - interval '10 minutes'
         WHERE id_solicitud = (SELECT max(id_solicitud) FROM solicitudes_notificacion)",
        &[],
    )
    .await
    .unwrap();
    let age = |text: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(r#"cantina_notify_oldest_pending_request_age_seconds{channel="email"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let metrics = app.metrics.clone();
    let seen = poll_until("the waiting request's age", SHORT, || {
        let m = metrics.clone();
        async move { age(&m.encode()).filter(|a| *a >= 600.0) }
    })
    .await;
    assert!(seen < 660.0, "{seen}");
    release.notify_one();
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    poll_until("the age back to 0", SHORT, || {
        let m = metrics.clone();
        async move { age(&m.encode()).filter(|a| *a == 0.0) }
    })
    .await;
    app.stop().await;
}
