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
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL"
        )
        .await,
        n
    );
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'recarga_exitosa' AND estado = 'Enviado'", n, LONG).await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM solicitudes_notificacion").await,
        n
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(DISTINCT clave_dedup) FROM solicitudes_notificacion"
        )
        .await,
        n
    );
    assert_eq!(rec.sent_count() as i64, n);
    assert!(rec.duplicates().is_empty());
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL"
        )
        .await,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn killing_the_listener_during_inserts_loses_nothing() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 0).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    poll_until("listener connected", SHORT, || async {
        app.metrics.listener_is_connected().then_some(())
    })
    .await;

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
        assert!(
            std::time::Instant::now() < deadline,
            "listener killed only {} times",
            kills.load(Ordering::SeqCst)
        );
    }
    stop.cancel();
    killer.await.unwrap();
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'",
        n,
        LONG,
    )
    .await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM solicitudes_notificacion").await,
        n
    );
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
