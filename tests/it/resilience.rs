//! Nothing is lost while the service is stopped or its LISTEN connection is killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cantina_notify::domain::ChannelKind;

use crate::helpers::*;

#[tokio::test]
async fn recharges_made_while_stopped_are_all_sent_once() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 0).await;
    let n: i64 = 1_000;
    // Like the POS: one recharge per transaction.
    for _ in 0..n {
        recharge(&c, &fam.nro_tarjeta, 1_000).await;
    }
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL").await, n);
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'recarga_exitosa' AND estado = 'Enviado'",
        n,
        LONG,
    )
    .await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, n);
    assert_eq!(count(&c, "SELECT count(DISTINCT clave_dedup) FROM solicitudes_notificacion").await, n);
    assert_eq!(rec.sent_count() as i64, n);
    assert!(rec.duplicates().is_empty());
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn killing_the_listener_during_inserts_loses_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 0).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    poll_until("listener connected", SHORT, || async { app.metrics.listener_is_connected().then_some(()) }).await;

    let killer_db = db.url.clone();
    let name = db.name.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_killer = stop.clone();
    let kills = Arc::new(AtomicU32::new(0));
    let killed = kills.clone();
    let killer = tokio::spawn(async move {
        let k = connect(&killer_db).await;
        while !stop_killer.is_cancelled() {
            let n: i64 = k
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE application_name = 'cantina-notify-listener' AND datname = $1",
                    &[&name],
                )
                .await
                .map(|r| r.get(0))
                .unwrap_or(0);
            killed.fetch_add(u32::try_from(n).unwrap_or(0), Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Keep inserting, one recharge per transaction, until the listener has been killed several times.
    let mut n: i64 = 0;
    let deadline = std::time::Instant::now() + LONG;
    while n < 300 || kills.load(Ordering::SeqCst) < 3 {
        recharge(&c, &fam.nro_tarjeta, 1_000).await;
        n += 1;
        assert!(std::time::Instant::now() < deadline, "listener killed only {} times", kills.load(Ordering::SeqCst));
    }
    stop.cancel();
    killer.await.unwrap();
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", n, LONG).await;
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, n);
    assert!(rec.duplicates().is_empty());
    let metrics = app.get("/metrics").await.1;
    let reconnects: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cantina_notify_listener_reconnects_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("reconnect counter");
    assert!(reconnects >= 1, "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn wake_ups_deliver_without_waiting_for_the_safety_tick() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 0).await;
    let rec = Recorder::new(ChannelKind::Email);
    // A tick an hour away: only NOTIFY can bring these in within the deadline.
    let settings = test_settings(&db, &[("CANTINA__LISTENER__SAFETY_TICK_SECONDS", "3600")]);
    let app = TestApp::start(settings, &rec).await;
    poll_until("listener connected", SHORT, || async { app.metrics.listener_is_connected().then_some(()) }).await;
    // Let the start-up drain finish and re-enable wake-ups.
    wait_count(&c, "SELECT count(*) FROM cantina_notify_ajustes WHERE despertar", 1, SHORT).await;
    recharge(&c, &fam.nro_tarjeta, 1_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, Duration::from_secs(5))
        .await;
    // A burst: the listener turns wake-ups off while busy and back on when done.
    for _ in 0..200 {
        recharge(&c, &fam.nro_tarjeta, 1_000).await;
    }
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'",
        201,
        Duration::from_secs(10),
    )
    .await;
    wait_count(&c, "SELECT count(*) FROM cantina_notify_ajustes WHERE despertar", 1, Duration::from_secs(5)).await;
    recharge(&c, &fam.nro_tarjeta, 1_000).await;
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'",
        202,
        Duration::from_secs(5),
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_failure_that_hits_every_event_sets_nothing_aside() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 0).await;
    // Something refuses every request (say, a new NOT NULL column the service does not fill).
    c.batch_execute(
        "CREATE FUNCTION reject_all() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'columna nueva obligatoria'; END $$;
         CREATE TRIGGER reject_all BEFORE INSERT ON solicitudes_notificacion FOR EACH ROW EXECUTE FUNCTION reject_all();",
    )
    .await
    .unwrap();
    for _ in 0..10 {
        recharge(&c, &fam.nro_tarjeta, 1_000).await;
    }
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    let metrics = app.metrics.clone();
    poll_until("drain errors reported", SHORT, || {
        let m = metrics.clone();
        async move { m.encode().contains("cantina_notify_drain_errors_total 1").then_some(()) }
    })
    .await;
    // Nothing was set aside: the events wait for the cause to be fixed.
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL").await, 10);
    assert!(metrics.encode().contains("cantina_notify_events_set_aside_total 0"));
    c.batch_execute("DROP TRIGGER reject_all ON solicitudes_notificacion").await.unwrap();
    // The next safety tick (5 s) retries them all.
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 10, LONG).await;
    app.stop().await;
}
