//! /metrics, /healthz, /readyz.

use cantina_notify::domain::ChannelKind;

use crate::helpers::*;

#[tokio::test]
async fn metrics_expose_the_pipeline_figures() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let none = seed_family(&c, None, None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    recharge(&c, &none.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado IN ('Enviado', 'Error')", 2, SHORT)
        .await;
    let (status, body) = app.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"cantina_notify_events_received_total{kind="recarga_confirmada"} 2"#,
        r#"cantina_notify_requests_created_total{type="recarga_exitosa",channel="email",outcome="pending"} 1"#,
        r#"cantina_notify_requests_created_total{type="recarga_exitosa",channel="email",outcome="error"} 1"#,
        r#"cantina_notify_sends_total{channel="email",provider="recorder",outcome="sent"} 1"#,
        r#"cantina_notify_send_duration_seconds_count{channel="email",provider="recorder"} 1"#,
        "cantina_notify_listener_connected 1",
        "cantina_notify_listener_reconnects_total 0",
        "# TYPE cantina_notify_outbox_lag_seconds gauge",
        "# TYPE process_resident_memory_bytes gauge",
        // The text format 0.0.4 (what curl and promtool get): a counter's TYPE names its `_total` samples.
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE cantina_notify_sends_total counter",
    ] {
        assert!(body.contains(line), "missing `{line}` in:\n{body}");
    }
    assert!(!body.contains("# EOF"), "{body}");
    // Prometheus asks for OpenMetrics and gets it.
    let om = reqwest::Client::new()
        .get(format!("http://{}/metrics", app.addr))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .await
        .expect("scrape");
    assert!(
        om.headers()["content-type"].to_str().unwrap_or_default().starts_with("application/openmetrics-text"),
        "{:?}",
        om.headers()
    );
    let om = om.text().await.expect("body");
    assert!(om.contains("# TYPE cantina_notify_sends counter") && om.ends_with("# EOF\n"), "{om}");
    assert!(
        !body.contains("ana@example.com") && !body.contains(&fam.nro_tarjeta),
        "no addresses or card numbers in labels"
    );
    app.stop().await;
}

#[tokio::test]
async fn readyz_follows_the_listener_connection() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    assert_eq!(app.get("/healthz").await.0, 200);
    poll_until("ready", SHORT, || async { (app.get("/readyz").await.0 == 200).then_some(()) }).await;

    // Keep the listener from coming back, then kill its session.
    let admin = connect(&url_for("postgres")).await;
    admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name)).await.unwrap();
    c.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cantina-notify-listener' AND datname = current_database()",
        &[],
    )
    .await
    .unwrap();
    let body = poll_until("unready", SHORT, || async {
        let (status, body) = app.get("/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(body.contains("listener: disconnected"), "{body}");
    assert_eq!(app.get("/healthz").await.0, 200, "alive while unready");

    admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name)).await.unwrap();
    poll_until("ready again", SHORT, || async { (app.get("/readyz").await.0 == 200).then_some(()) }).await;
    let metrics = app.get("/metrics").await.1;
    assert!(metrics.contains("cantina_notify_listener_reconnects_total 1"), "{metrics}");
    app.stop().await;
}
