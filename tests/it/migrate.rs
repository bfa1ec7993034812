//! `migrate`: idempotent, safe from two processes at once, additive on a database holding Cantina data.

use cantina_notify::domain::ChannelKind;
use cantina_notify::migrate::{MIGRATIONS, MigrateError, REFERENCE_SCHEMA, migrate};

use crate::helpers::*;

#[tokio::test]
async fn migrate_is_idempotent_and_two_at_once_do_not_race() {
    let db = TestDb::empty().await;
    let mut a = db.client().await;
    let mut b = db.client().await;
    let (ra, rb) = tokio::join!(migrate(&mut a, true), migrate(&mut b, true));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut applied: Vec<i32> = ra.applied.iter().chain(rb.applied.iter()).copied().collect();
    applied.sort();
    let all: Vec<i32> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
    assert_eq!(applied, all, "each migration applied exactly once across both");
    let again = migrate(&mut a, true).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.already, MIGRATIONS.len());
    assert_eq!(count(&a, "SELECT count(*) FROM cantina_notify_migraciones").await, MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn migrate_refuses_a_database_without_the_cantina_tables() {
    let db = TestDb::empty().await;
    let mut c = db.client().await;
    let err = migrate(&mut c, false).await.unwrap_err();
    assert!(matches!(err, MigrateError::NoCantinaTables), "{err}");
    assert!(err.to_string().contains("--reference-schema"));
}

#[tokio::test]
async fn installing_on_a_live_database_keeps_every_row_and_sends_nothing_retroactively() {
    let db = TestDb::empty().await;
    let mut c = db.client().await;
    c.batch_execute(REFERENCE_SCHEMA).await.unwrap();
    // Cantina data from before the service: a family, recharges, and a manual request never sent.
    let fam = seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    recharge(&c, &fam.nro_tarjeta, 50_000).await;
    c.execute(
        "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado) VALUES ($1, 7000, 'PENDIENTE')",
        &[&fam.nro_tarjeta],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO solicitudes_notificacion (id_cliente, nro_tarjeta, mensaje, destino, estado) VALUES ($1, $2, 'viejo', 'SMS', 'Pendiente')",
        &[&fam.id_cliente, &fam.nro_tarjeta],
    )
    .await
    .unwrap();
    let before = snapshot(&c).await;

    migrate(&mut c, false).await.unwrap();
    assert_eq!(snapshot(&c).await, before, "every Cantina row kept as it was");
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 0, "nothing retroactive");

    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    // The old pending recharge confirmed now is a new confirmation: that one is notified.
    c.execute("UPDATE cargas_saldo SET estado = 'CONFIRMADO' WHERE estado = 'PENDIENTE'", &[]).await.unwrap();
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    let old: (String, Option<String>) = {
        let r = c
            .query_one("SELECT estado, clave_dedup FROM solicitudes_notificacion WHERE mensaje = 'viejo'", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(old, ("Pendiente".to_string(), None), "the old manual row is left alone");
    assert_eq!(rec.sent_count(), 1);
    app.stop().await;

    // The widened checks accept the service's values and still reject nonsense.
    c.execute(
        "INSERT INTO solicitudes_notificacion (id_cliente, destino, estado, clave_dedup) VALUES ($1, 'Portal', 'Omitido', 'x')",
        &[&fam.id_cliente],
    )
    .await
    .unwrap();
    let bad = c
        .execute("INSERT INTO solicitudes_notificacion (id_cliente, destino, estado, clave_dedup) VALUES ($1, 'Fax', 'Pendiente', 'y')", &[&fam.id_cliente])
        .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn run_refuses_an_unmigrated_database() {
    let db = TestDb::empty().await;
    let c = db.client().await;
    c.batch_execute(REFERENCE_SCHEMA).await.unwrap();
    let err = cantina_notify::app::Application::build(test_settings(&db, &[]), None).await.err().expect("refused");
    assert!(err.to_string().contains("cantina-notify migrate"), "{err}");
}

/// Row counts and a checksum of every Cantina table.
async fn snapshot(c: &tokio_postgres::Client) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    // solicitudes_notificacion gains columns: compare the app's own.
    let solicitudes = "(SELECT id_solicitud, id_cliente, nro_tarjeta, saldo_alerta, mensaje, destino, estado, fecha_solicitud, fecha_envio FROM solicitudes_notificacion)";
    for t in ["clientes", "hijos", "tarjetas", "cargas_saldo", "consumos_tarjeta", solicitudes] {
        let r = c
            .query_one(
                &format!("SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x"),
                &[],
            )
            .await
            .unwrap();
        out.push((t.to_string(), r.get(0), r.get(1)));
    }
    out
}

/// The upgrade to signed requests (migration 0018): what was waiting when `migrate` ran was written by the service
/// before it signed anything, and goes out; a keyed row written after it without the service's signature (an
/// older replica during the rollout, or anyone else) is refused with the reason.
#[tokio::test]
async fn requests_pending_when_signing_arrived_are_signed_and_sent() {
    use cantina_notify::domain::NotificationType;
    use cantina_notify::rules::MessageData;

    let db = TestDb::empty().await;
    let mut c = db.client().await;
    c.batch_execute(REFERENCE_SCHEMA).await.unwrap();
    c.batch_execute(
        "CREATE TABLE cantina_notify_migraciones (version integer PRIMARY KEY, nombre text NOT NULL,
                         aplicada_en timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
    // The database as the previous release left it.
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v < 18) {
        c.batch_execute(sql).await.unwrap_or_else(|e| panic!("{version}: {e}"));
        c.execute("INSERT INTO cantina_notify_migraciones (version, nombre) VALUES ($1, $2)", &[version, name])
            .await
            .unwrap();
    }
    let fam = seed_family(&c, Some("ana@example.com"), None, 12_000).await;
    let datos = serde_json::to_value(MessageData::sample(NotificationType::RecargaExitosa)).unwrap();
    let insert = "INSERT INTO solicitudes_notificacion
                      (id_cliente, nro_tarjeta, destino, estado, tipo, clave_dedup, destinatario, datos, proximo_intento,
                       actualizado_en)
                  VALUES ($1, $2, 'Email', 'Pendiente', 'recarga_exitosa', $3, 'ana@example.com', $4, now(), now())";
    c.execute(insert, &[&fam.id_cliente, &fam.nro_tarjeta, &"recarga_exitosa:1:email", &datos]).await.unwrap();
    c.execute(insert, &[&fam.id_cliente, &fam.nro_tarjeta, &"recarga_exitosa:3:email", &datos]).await.unwrap();
    // A failed link of a fallback chain, still to be followed to SMS.
    c.execute(
        "INSERT INTO solicitudes_notificacion
             (id_cliente, nro_tarjeta, destino, estado, tipo, clave_dedup, destinatario, datos, canales_respaldo,
              intentos, ultimo_error, actualizado_en)
         VALUES ($1, $2, 'Email', 'Error', 'recarga_exitosa', 'recarga_exitosa:4:email', 'ana@example.com', $3, 'sms',
                 1, 'rebotó', now())",
        &[&fam.id_cliente, &fam.nro_tarjeta, &datos],
    )
    .await
    .unwrap();
    let report = migrate(&mut c, false).await.unwrap();
    // Listed by the migration, then redirected before the new service signs it: not signed, not sent.
    c.execute(
        "UPDATE solicitudes_notificacion SET destinatario = 'attacker@example.com' WHERE clave_dedup = 'recarga_exitosa:3:email'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(report.applied, MIGRATIONS.iter().map(|m| m.0).filter(|v| *v >= 18).collect::<Vec<_>>());
    c.execute(insert, &[&fam.id_cliente, &fam.nro_tarjeta, &"recarga_exitosa:2:email", &datos]).await.unwrap();

    let rec = Recorder::new(ChannelKind::Email);
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion
         WHERE estado <> 'Pendiente' AND destino = 'Email' AND clave_dedup <> 'recarga_exitosa:4:email'",
        3,
        SHORT,
    )
    .await;
    // The chain goes on: its SMS link is created (and signed) from the listed row.
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE clave_dedup = 'recarga_exitosa:4:sms'",
        1,
        SHORT,
    )
    .await;
    let states: Vec<(String, String)> = c
        .query(
            "SELECT clave_dedup, estado FROM solicitudes_notificacion WHERE clave_dedup LIKE '%:email'
               AND clave_dedup <> 'recarga_exitosa:4:email' ORDER BY id_solicitud",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        states,
        [
            ("recarga_exitosa:1:email".to_string(), "Enviado".to_string()),
            ("recarga_exitosa:3:email".to_string(), "Error".to_string()),
            ("recarga_exitosa:2:email".to_string(), "Error".to_string())
        ]
    );
    assert_eq!(rec.sent_count(), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_sin_firma").await, 0, "the list is used up");
    app.stop().await;
}

/// Migration 0017 on a database with opt-outs recorded before it: each row's `cambiado_en` is the time of its last
/// change, an active opt-out stays one, and an older change arriving afterwards is refused.
#[tokio::test]
async fn migration_0017_keeps_the_opt_outs_recorded_before_it() {
    let db = TestDb::empty().await;
    let mut c = db.client().await;
    c.batch_execute(REFERENCE_SCHEMA).await.unwrap();
    c.batch_execute(
        "CREATE TABLE cantina_notify_migraciones (
             version integer PRIMARY KEY, nombre text NOT NULL, aplicada_en timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v < 17) {
        c.batch_execute(sql).await.unwrap();
        c.execute("INSERT INTO cantina_notify_migraciones (version, nombre) VALUES ($1, $2)", &[version, name])
            .await
            .unwrap();
    }
    c.batch_execute(
        "INSERT INTO cantina_notify_bajas (destino, destinatario, motivo, proveedor, fecha_baja, fecha_alta) VALUES
             ('SMS', '+595981123456', 'respondió STOP', 'twilio', '2026-01-10T12:00:00Z', NULL),
             ('WhatsApp', '+595981123456', 'respondió BAJA', 'meta', '2026-01-10T12:00:00Z', '2026-02-01T08:00:00Z')",
    )
    .await
    .unwrap();
    let report = migrate(&mut c, false).await.unwrap();
    assert_eq!(report.applied, MIGRATIONS.iter().map(|m| m.0).filter(|v| *v >= 17).collect::<Vec<_>>());
    let rows: Vec<(String, bool, String)> = c
        .query(
            "SELECT destino, fecha_alta IS NULL, to_char(cambiado_en AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
             FROM cantina_notify_bajas ORDER BY destino",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            ("SMS".to_string(), true, "2026-01-10 12:00".to_string()),
            ("WhatsApp".to_string(), false, "2026-02-01 08:00".to_string())
        ]
    );
    // A START sent before the STOP (2026-01-09), arriving now, is refused.
    let pool = cantina_notify::db::pool(&db.url, 1, std::time::Duration::from_secs(5)).unwrap();
    let before_stop = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_960_000);
    let source = cantina_notify::optouts::Source { message_id: Some("SMold"), sent_at: Some(before_stop) };
    let recorded = cantina_notify::optouts::record(
        &pool,
        ChannelKind::Sms,
        "+595981123456",
        cantina_notify::optouts::OptChange::In,
        "twilio",
        "respondió START",
        source,
    )
    .await
    .unwrap();
    assert_eq!(recorded, cantina_notify::optouts::Recorded::Older);
    // An opted-out row without its reason is refused by the new constraint.
    let err = c
        .execute("UPDATE cantina_notify_bajas SET motivo = NULL WHERE destino = 'SMS'", &[])
        .await
        .expect_err("an active opt-out keeps its reason");
    let constraint = err.as_db_error().and_then(|e| e.constraint().map(str::to_string));
    assert_eq!(constraint.as_deref(), Some("cantina_notify_bajas_baja_con_motivo"), "{err:?}");
}
