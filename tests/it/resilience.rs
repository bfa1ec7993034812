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

/// The wake-up lock (migration 0010) held exclusively, as a waiting listener holds it.
const LISTENER_WAITING: &str = "SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND classid = 1668183142 AND objid = 1 AND objsubid = 2 AND mode = 'ExclusiveLock'
      AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// A LISTEN session on the service's channel that collects every notification's payload.
async fn listen(url: &str) -> (tokio_postgres::Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use futures_util::future::poll_fn;
    let (client, mut conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(m)) = poll_fn(|cx| conn.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    client.batch_execute("LISTEN cantina_notify").await.expect("listen");
    (client, rx)
}

/// The payloads that arrived before `marker`, which the caller NOTIFYs after the commits it asks about:
/// notifications arrive in commit order, so this proves what those commits sent without waiting for a timeout.
async fn notifications_before(
    c: &tokio_postgres::Client,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    marker: &str,
) -> Vec<String> {
    c.execute("SELECT pg_notify('cantina_notify', $1)", &[&marker]).await.expect("marker");
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(SHORT, rx.recv()).await {
            Ok(Some(p)) if p == marker => return seen,
            Ok(Some(p)) => seen.push(p),
            other => panic!("marker {marker} never arrived ({other:?}); before it: {seen:?}"),
        }
    }
}

#[tokio::test]
async fn the_triggers_notify_only_while_a_listener_waits() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 0).await;
    let (_l, mut rx) = listen(&db.url).await;

    // Nobody waits (the service stopped, or its listener draining): a recharge commits without NOTIFY.
    recharge(&c, &fam.nro_tarjeta, 1_000).await;
    assert_eq!(notifications_before(&c, &mut rx, "m1").await, Vec::<String>::new());

    // A listener waits: every event's commit NOTIFYs (an empty payload: a wake-up only).
    let waiter = db.client().await;
    waiter.execute("SELECT pg_advisory_lock(1668183142, 1)", &[]).await.expect("lock");
    recharge(&c, &fam.nro_tarjeta, 1_000).await;
    recharge(&c, &fam.nro_tarjeta, 1_000).await;
    assert_eq!(notifications_before(&c, &mut rx, "m2").await, vec![String::new(), String::new()]);

    // No wake-up lost while a listener goes idle: taking the lock waits for a transaction that wrote an event and
    // has not committed, so the listener's next look sees that event; and while it waits, commits NOTIFY.
    waiter.execute("SELECT pg_advisory_unlock(1668183142, 1)", &[]).await.expect("unlock");
    // Another card: the app's balance trigger locks the card's row until the commit.
    let other = seed_family(&c, Some("bea@example.com"), None, 0).await;
    let open = db.client().await;
    open.batch_execute("BEGIN").await.expect("begin");
    recharge(&open, &other.nro_tarjeta, 1_000).await;
    let going_idle = tokio::spawn(async move {
        waiter.execute("SELECT pg_advisory_lock(1668183142, 1)", &[]).await.expect("lock");
        waiter
    });
    wait_count(
        &c,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1668183142 AND objid = 1
           AND mode = 'ExclusiveLock' AND NOT granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        1,
        SHORT,
    )
    .await;
    recharge(&c, &fam.nro_tarjeta, 1_000).await;
    assert_eq!(notifications_before(&c, &mut rx, "m3").await, vec![String::new()]);
    assert!(!going_idle.is_finished(), "the lock was taken before the open transaction committed");
    open.batch_execute("COMMIT").await.expect("commit");
    let _waiter = going_idle.await.expect("lock taken after the commit");
    assert_eq!(count(&c, LISTENER_WAITING).await, 1);
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL").await, 5);
}

#[tokio::test]
async fn one_listener_of_several_replicas_holds_the_wake_up_lock_and_it_is_taken_again_when_its_session_dies() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 0).await;
    let rec = Recorder::new(ChannelKind::Email);
    let settings = || test_settings(&db, &[("CANTINA__LISTENER__SAFETY_TICK_SECONDS", "1")]);
    let a = TestApp::start(settings(), &rec).await;
    let b = TestApp::start(settings(), &rec).await;
    for app in [&a, &b] {
        poll_until("listener connected", SHORT, || async { app.metrics.listener_is_connected().then_some(()) }).await;
    }
    wait_count(&c, LISTENER_WAITING, 1, SHORT).await;
    // Exactly one holds it (the other lost the election) and both deliver.
    assert_eq!(count(&c, LISTENER_WAITING).await, 1);
    recharge(&c, &fam.nro_tarjeta, 1_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    // The holder's session dies: a listener (the other replica at its tick, or the same one reconnecting) holds it
    // again, and wake-ups work again.
    let holder: i32 = c
        .query_one(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 1668183142 AND objid = 1
               AND mode = 'ExclusiveLock' AND granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .expect("holder")
        .get(0);
    c.execute("SELECT pg_terminate_backend($1)", &[&holder]).await.expect("terminate");
    wait_count(&c, &format!("{LISTENER_WAITING} AND pid <> {holder}"), 1, SHORT).await;
    recharge(&c, &fam.nro_tarjeta, 1_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 2, SHORT).await;
    assert!(rec.duplicates().is_empty());
    a.stop().await;
    b.stop().await;
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
    // The listener waits: it holds the wake-up lock.
    wait_count(&c, LISTENER_WAITING, 1, SHORT).await;
    recharge(&c, &fam.nro_tarjeta, 1_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, Duration::from_secs(5))
        .await;
    // A burst: the listener releases the lock while busy and takes it again when done.
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
    wait_count(&c, LISTENER_WAITING, 1, Duration::from_secs(5)).await;
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
