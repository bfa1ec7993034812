//! Least privilege: `migrate` with a runtime role grants it what the service needs (`sql/grants/runtime.sql`); the
//! whole service runs under that role, and what is not the service's fails with permission denied (42501).
//! Roles are cluster-wide: each test makes its own, and drops it at the end.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cantina_notify::channels::{Channel, Channels, PortalChannel};
use cantina_notify::config::{AlertSettings, RetentionSettings};
use cantina_notify::domain::ChannelKind;
use cantina_notify::migrate::{MigrateError, migrate_and_grant};
use cantina_notify::scheduler::{SweepKind, ledger, run_cleanup, run_sweep};
use cantina_notify::webhooks::{DeliveryState, record_receipt};
use deadpool_postgres::Pool;
use jiff::{SignedDuration, Timestamp};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_cantina-notify");

struct LoginRole {
    name: String,
    password: String,
}

impl LoginRole {
    /// A fresh LOGIN role with a password, as production creates it.
    async fn create(admin: &Client) -> LoginRole {
        let role = LoginRole {
            name: format!("cn_rol_{}_{}", std::process::id(), fastrand::u32(..)),
            password: format!("pw{}", fastrand::u64(..)),
        };
        admin
            .batch_execute(&format!("CREATE ROLE {} LOGIN PASSWORD '{}'", role.name, role.password))
            .await
            .expect("create role");
        role
    }

    /// `url` with this role's credentials instead of the superuser's.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        format!("{scheme}://{}:{}@{host}/{path}", self.name, self.password)
    }

    /// `admin` must be connected to the database the role was granted in; nothing of the role's may be open.
    async fn drop(self, admin: &Client) {
        admin.batch_execute(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.name)).await.expect("drop role");
    }
}

/// `cantina-notify migrate` as the operators' Job runs it (the superuser plays the migration role unless `url` says).
fn migrate_binary(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> String {
    migrate_binary_as(&db.url, args, env)
}

fn migrate_binary_as(url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    migrate_binary_logs(url, args, env).0
}

/// `cantina-notify migrate`'s stdout and its log (stderr).
fn migrate_binary_logs(url: &str, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let out = Command::new(BIN)
        .arg("migrate")
        .args(args)
        .env("DATABASE_URL", url)
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run migrate");
    assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn role_pool(url: &str) -> Pool {
    cantina_notify::db::pool(url, 4, Duration::from_secs(5)).expect("pool")
}

async fn portal_account(c: &Client, id_cliente: i32, email: &str) {
    c.execute("INSERT INTO usuario_portal (id_cliente, email) VALUES ($1, $2)", &[&id_cliente, &email])
        .await
        .expect("insert usuario_portal");
}

async fn one_string(c: &Client, sql: &str) -> Option<String> {
    c.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

#[tokio::test]
async fn the_service_runs_end_to_end_as_the_runtime_role() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let role = LoginRole::create(&c).await;
    let stdout = migrate_binary(&db, &[], &[("CANTINA__DATABASE__RUNTIME_ROLE", &role.name)]);
    assert!(stdout.contains(&format!("runtime role privileges: set for {}", role.name)), "{stdout}");

    let url = role.url(&db.url);
    let pool = role_pool(&url);
    let a = seed_family(&c, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    portal_account(&c, a.id_cliente, &format!("ana{}@example.com", fastrand::u32(..))).await;

    // An opt-out recorded as the runtime role (what the inbound SMS webhook does on STOP).
    assert!(
        cantina_notify::optouts::opt_out(&pool, ChannelKind::Sms, "+595981123456", "twilio", "STOP").await.unwrap()
    );
    // With a message id (migration 0017): the id is claimed, its repeat is refused, an opt-in of another number
    // leaves a row of its own.
    {
        use cantina_notify::optouts::{OptChange, Recorded, Source, record};
        let sms = |id| Source { message_id: Some(id), sent_at: None };
        let start = |id| record(&pool, ChannelKind::Sms, "+595982000111", OptChange::In, "twilio", "START", sms(id));
        assert_eq!(start("SMrol1").await.unwrap(), Recorded::Applied);
        assert_eq!(start("SMrol1").await.unwrap(), Recorded::Repeat);
    }

    let settings = test_settings(
        &db,
        &[
            ("DATABASE_URL", url.as_str()),
            ("SMS_PROVIDER", "console"),
            ("CANTINA__RULES__RECARGA_EXITOSA__FALLBACK", "sms,email"),
            ("CANTINA__RULES__SALDO_BAJO__CHANNELS", "email,portal"),
        ],
    );
    let (rules, _) = settings.validate(true).unwrap();
    let sms = Recorder::new(ChannelKind::Sms);
    let email = Recorder::new(ChannelKind::Email);
    let channels = Channels::new()
        .with(sms.clone() as Arc<dyn Channel>)
        .with(email.clone() as Arc<dyn Channel>)
        .with(Arc::new(PortalChannel::new(pool.clone())) as Arc<dyn Channel>);
    let app = TestApp::start_with(settings, Some(channels)).await;
    wait_count(
        &c,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{}' AND application_name = 'cantina-notify-listener'",
            role.name
        ),
        1,
        SHORT,
    )
    .await;
    // Ready once the listener has LISTENed (as the role) and the pool answers.
    poll_until("/readyz answers 200", SHORT, || async { (app.get("/readyz").await.0 == 200).then_some(()) }).await;

    // A recharge: the SMS link is opted out (Omitido), the fallback moves on to email, which is sent.
    recharge(&c, &a.nro_tarjeta, 10_000).await;
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'recarga_exitosa' AND destino = 'Email' AND estado = 'Enviado'",
        1,
        SHORT,
    )
    .await;
    let sms_row = one_string(
        &c,
        "SELECT estado || ': ' || ultimo_error FROM solicitudes_notificacion WHERE tipo = 'recarga_exitosa' AND destino = 'SMS'",
    )
    .await
    .unwrap_or_default();
    assert!(sms_row.starts_with("Omitido: el destinatario pidió no recibir"), "{sms_row}");
    assert_eq!(sms.sent_count(), 0);

    // A delivery receipt for that email.
    let sent_id: i64 = c
        .query_one(
            "SELECT id_solicitud FROM solicitudes_notificacion WHERE tipo = 'recarga_exitosa' AND destino = 'Email'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(record_receipt(&pool, "recorder", &format!("rec-{sent_id}"), DeliveryState::Delivered).await.unwrap());
    assert_eq!(
        one_string(&c, &format!("SELECT estado_entrega FROM solicitudes_notificacion WHERE id_solicitud = {sent_id}"))
            .await
            .as_deref(),
        Some("delivered")
    );

    // A low-balance crossing: email and portal sent, the card stamped.
    consume(&c, &a.nro_tarjeta, 20_000).await;
    wait_count(
        &c,
        "SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'saldo_bajo' AND estado = 'Enviado'",
        2,
        SHORT,
    )
    .await;
    assert_eq!(count(&c, "SELECT count(*) FROM notificacion WHERE tipo = 'saldo_bajo'").await, 1);
    wait_count(
        &c,
        &format!(
            "SELECT count(*) FROM tarjetas WHERE nro_tarjeta = '{}' AND ultima_notificacion_saldo IS NOT NULL",
            a.nro_tarjeta
        ),
        1,
        SHORT,
    )
    .await;

    // A manual request from the POS: completed and sent by the service.
    let manual: i64 = c
        .query_one(
            "INSERT INTO solicitudes_notificacion (id_cliente, nro_tarjeta, destino, estado) VALUES ($1, $2, 'Email', 'Pendiente')
             RETURNING id_solicitud",
            &[&a.id_cliente, &a.nro_tarjeta],
        )
        .await
        .unwrap()
        .get(0);
    wait_count(
        &c,
        &format!(
            "SELECT count(*) FROM solicitudes_notificacion
             WHERE id_solicitud = {manual} AND clave_dedup = 'manual:{manual}' AND estado = 'Enviado'"
        ),
        1,
        SHORT,
    )
    .await;

    // The sweeps: another family below the threshold, and a sale on account older than a week.
    let b = seed_family(&c, Some("beto@example.com"), None, 1_000).await;
    portal_account(&c, b.id_cliente, &format!("beto{}@example.com", fastrand::u32(..))).await;
    c.execute(
        "INSERT INTO ventas (id_cliente, fecha, monto_total, tipo_venta, saldo_pendiente, estado_pago, estado)
         VALUES ($1, now() - interval '10 days', 20000, 'CREDITO', 20000, 'PENDIENTE', 'PROCESADO')",
        &[&b.id_cliente],
    )
    .await
    .unwrap();
    let now = Timestamp::now();
    assert_eq!(run_sweep(&pool, &rules, SweepKind::SaldoBajo, now).await.unwrap(), 2, "email and portal for B only");
    assert_eq!(run_sweep(&pool, &rules, SweepKind::CuentaPendiente, now).await.unwrap(), 1);
    assert_eq!(run_sweep(&pool, &rules, SweepKind::RecordatorioDeuda, now).await.unwrap(), 0);
    // The spending sweeps read the purchases (consumos_tarjeta's granted columns) of the families that opted in.
    c.execute(
        "INSERT INTO cantina_notify_preferencias_cliente (id_cliente, tipo, canal, activo, cambiado_por)
         SELECT $1, t, 'Email', true, 'test' FROM unnest(ARRAY['consumo_realizado', 'resumen_consumos']) AS t",
        &[&b.id_cliente],
    )
    .await
    .unwrap();
    consume(&c, &b.nro_tarjeta, 500).await;
    let now = Timestamp::now();
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ConsumoRealizado, now).await.unwrap(), 1);
    // The summary that lists a purchase made now: the schedule's next firing (run ahead of time here).
    let firing =
        cantina_notify::scheduler::spending::resumen_firing_for(&rules.resumen_consumos_schedule, now).unwrap();
    assert_eq!(run_sweep(&pool, &rules, SweepKind::ResumenConsumos, firing).await.unwrap(), 1);
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Pendiente'", 0, SHORT).await;
    assert_eq!(count(&c, "SELECT count(*) FROM notificacion").await, 2);

    // A staff alert: a high failure rate raises one, a healthy one resolves it.
    let finished = |estado: &'static str, n: usize| {
        let c = &c;
        async move {
            for _ in 0..n {
                c.execute(
                    "INSERT INTO solicitudes_notificacion
                         (id_cliente, destino, estado, tipo, clave_dedup, destinatario, intentos, ultimo_error, actualizado_en)
                     VALUES ($1, 'WhatsApp', $2, 'recarga_exitosa', $3, '+595981123456', 1, 'Meta 131026', now())",
                    &[&a.id_cliente, &estado, &format!("prueba:{}", fastrand::u64(..))],
                )
                .await
                .unwrap();
            }
        }
    };
    finished("Error", 3).await;
    let alert_settings = AlertSettings { failure_rate_min_sends: 1, ..Default::default() };
    cantina_notify::alerts::check_failure_rates(&pool, &alert_settings).await.unwrap();
    let alert =
        "SELECT estado FROM alertas_sistema WHERE mensaje LIKE 'cantina-notify: tasa de fallos alta en WhatsApp%'";
    assert_eq!(one_string(&c, alert).await.as_deref(), Some("Pendiente"));
    finished("Enviado", 20).await;
    cantina_notify::alerts::check_failure_rates(&pool, &alert_settings).await.unwrap();
    assert_eq!(one_string(&c, alert).await.as_deref(), Some("Resuelta"));

    // The run ledger and the clean-up: old finished rows of the service go, the rest stays.
    let days_ago = |d: i64| now - SignedDuration::from_hours(24 * d);
    assert!(ledger::claim(&pool, "prueba", days_ago(200), "r1", days_ago(200)).await.unwrap());
    ledger::finish(&pool, "prueba", days_ago(200), "r1", days_ago(200), Ok(0), None).await.unwrap();
    assert!(ledger::claim(&pool, "prueba", now, "r1", now).await.unwrap());
    ledger::finish(&pool, "prueba", now, "r1", now, Ok(0), None).await.unwrap();
    c.execute(
        "INSERT INTO solicitudes_notificacion (id_cliente, destino, estado, tipo, clave_dedup, actualizado_en)
         VALUES ($1, 'Email', 'Enviado', 'recarga_exitosa', 'viejo', now() - interval '400 days')",
        &[&a.id_cliente],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO cantina_notify_eventos (tipo, id_ref, creado_en, procesado_en)
         VALUES ('recarga_confirmada', 1, now() - interval '40 days', now() - interval '40 days')",
        &[],
    )
    .await
    .unwrap();
    let before = count(&c, "SELECT count(*) FROM solicitudes_notificacion").await;
    c.execute(
        "UPDATE cantina_notify_mensajes_entrantes SET recibido_en = now() - interval '400 days' WHERE id_mensaje = 'SMrol1'",
        &[],
    )
    .await
    .unwrap();
    let report = run_cleanup(&pool, &RetentionSettings::default(), now).await.unwrap();
    assert_eq!((report.eventos, report.solicitudes, report.ejecuciones, report.mensajes), (1, 1, 1, 1), "{report}");
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion").await, before - 1);
    assert_eq!(count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE clave_dedup = 'viejo'").await, 0);

    // The channel levers as the runtime role: the command writes the pause and its history, the watcher reads it.
    let ops = connect(&url).await;
    let pause = cantina_notify::operator_pauses::ChannelCommand::Pause {
        channel: "sms".into(),
        reason: "prueba".into(),
        by: Some("rol".into()),
    };
    cantina_notify::operator_pauses::execute(&ops, &pause).await.expect("pause as the runtime role");
    poll_until("the watcher reads the pause as the runtime role", SHORT, || async {
        app.metrics.encode().contains("cantina_notify_channel_paused_by_operator{channel=\"sms\"} 1\n").then_some(())
    })
    .await;
    let resume =
        cantina_notify::operator_pauses::ChannelCommand::Resume { channel: "sms".into(), by: None, reason: None };
    cantina_notify::operator_pauses::execute(&ops, &resume).await.expect("resume as the runtime role");

    // The replica's channel states (migration 0021) are recorded as the runtime role, `channel list` reads them
    // as it, and a graceful stop removes them.
    wait_count(&c, "SELECT count(*) FROM cantina_notify_estado_canales WHERE estado = 'activo'", 3, SHORT).await;
    let list = cantina_notify::operator_pauses::execute(
        &ops,
        &cantina_notify::operator_pauses::ChannelCommand::List { history: 0 },
    )
    .await
    .expect("list as the runtime role");
    assert!(list.contains("Réplicas en marcha: 1 ("), "{list}");

    assert!(email.duplicates().is_empty());
    app.stop().await;
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_estado_canales").await, 0);
    pool.close();
    role.drop(&c).await;
}

/// Runs `sql` as the runtime role and expects permission denied.
async fn denied(c: &Client, sql: &str) {
    let err = c.batch_execute(sql).await.expect_err(sql);
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{sql}: {err:?}");
}

#[tokio::test]
async fn the_runtime_role_cannot_touch_what_is_not_the_services() {
    let db = TestDb::new().await;
    let mut admin = db.client().await;
    let role = LoginRole::create(&admin).await;
    // The flag wins over the setting (which names a role that does not exist, so using it would fail).
    let stdout = migrate_binary(&db, &["--grant-to", &role.name], &[("CANTINA__DATABASE__RUNTIME_ROLE", "no_existe")]);
    assert!(stdout.contains(&format!("runtime role privileges: set for {}", role.name)), "{stdout}");

    let fam = seed_family(&admin, Some("ana@example.com"), None, 50_000).await;
    let rt = connect(&role.url(&db.url)).await;
    let user: String = rt.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(user, role.name);
    // What it does need works (so the denials below are about privileges, not a broken connection or schema).
    assert_eq!(count(&rt, "SELECT count(*) FROM clientes").await, 1);
    rt.batch_execute("UPDATE solicitudes_notificacion SET actualizado_en = now(), estado_entrega = 'sent' WHERE false")
        .await
        .unwrap();
    rt.batch_execute("UPDATE tarjetas SET ultima_notificacion_saldo = now() WHERE false").await.unwrap();
    rt.batch_execute(
        "SELECT id_consumo, nro_tarjeta, fecha_consumo, monto_consumido, detalle FROM consumos_tarjeta;
         INSERT INTO cantina_notify_preferencias_cliente (id_cliente, tipo, canal, activo, cambiado_por)
             VALUES (1, 'resumen_consumos', 'Email', true, 'cli');
         UPDATE cantina_notify_preferencias_cliente SET activo = false, cambiado_en = now(), cambiado_por = 'cli';
         DELETE FROM cantina_notify_preferencias_cliente",
    )
    .await
    .unwrap();
    rt.batch_execute(
        "INSERT INTO cantina_notify_estado_canales (replica, destino, configurado, proveedor, estado, desde)
             VALUES ('pod-a:1:0001', 'SMS', true, 'twilio', 'activo', now());
         UPDATE cantina_notify_estado_canales SET estado = 'pausado_proveedor', motivo = '401', visto_en = now();
         SELECT count(*) FROM cantina_notify_estado_canales;
         DELETE FROM cantina_notify_estado_canales",
    )
    .await
    .unwrap();

    let forbidden = [
        "UPDATE clientes SET email = 'otro@example.com'".to_string(),
        "DELETE FROM tarjetas".to_string(),
        "UPDATE tarjetas SET saldo_actual = 0".to_string(),
        "UPDATE solicitudes_notificacion SET fecha_solicitud = now()".to_string(),
        "UPDATE solicitudes_notificacion SET nro_tarjeta = NULL".to_string(),
        format!(
            "INSERT INTO solicitudes_notificacion (id_cliente, estado, fecha_solicitud) VALUES ({}, 'Pendiente', now())",
            fam.id_cliente
        ),
        "TRUNCATE solicitudes_notificacion".to_string(),
        "INSERT INTO cantina_notify_migraciones (version, nombre) VALUES (999, 'falsa')".to_string(),
        "INSERT INTO cantina_notify_eventos (tipo, nro_tarjeta) VALUES ('saldo_bajo', 'X')".to_string(),
        // The spending notices read what was bought (migration 0022's grants), not who sold it nor the balances
        // around each sale.
        "SELECT saldo_anterior FROM consumos_tarjeta".to_string(),
        "SELECT id_empleado_registro FROM consumos_tarjeta".to_string(),
        "SELECT * FROM consumos_tarjeta".to_string(),
        "INSERT INTO consumos_tarjeta (nro_tarjeta, monto_consumido) VALUES ('X', 1)".to_string(),
        "UPDATE cantina_notify_preferencias_cliente SET id_cliente = 0".to_string(),
        "SELECT count(*) FROM cantina_notify_restricciones_originales".to_string(),
        "SELECT mensaje FROM notificacion".to_string(),
        "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado) VALUES ('X', 1, 'CONFIRMADO')".to_string(),
        "CREATE TABLE cn_intrusa (id int)".to_string(),
        // The channel states: its own rows' state, never another name or channel for a row (no UPDATE of the key).
        "UPDATE cantina_notify_estado_canales SET replica = 'otra'".to_string(),
        "UPDATE cantina_notify_estado_canales SET destino = 'SMS'".to_string(),
        "TRUNCATE cantina_notify_estado_canales".to_string(),
    ];
    for sql in &forbidden {
        denied(&rt, sql).await;
    }
    // Identity columns need no grant on their sequences: none was given.
    let seq_usage: bool = admin
        .query_one(
            "SELECT has_sequence_privilege($1, pg_get_serial_sequence('solicitudes_notificacion', 'id_solicitud'), 'USAGE')",
            &[&role.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!seq_usage);

    // Exact, not cumulative: a privilege granted by hand is gone after the next migrate.
    admin
        .batch_execute(&format!(
            "GRANT UPDATE (fecha_solicitud) ON solicitudes_notificacion TO {0}; GRANT INSERT ON cantina_notify_eventos TO {0}",
            role.name
        ))
        .await
        .unwrap();
    rt.batch_execute("UPDATE solicitudes_notificacion SET fecha_solicitud = now() WHERE false").await.unwrap();
    let report = migrate_and_grant(&mut admin, false, Some(&role.name)).await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.granted_to.as_deref(), Some(role.name.as_str()));
    denied(&rt, "UPDATE solicitudes_notificacion SET fecha_solicitud = now() WHERE false").await;
    denied(&rt, "INSERT INTO cantina_notify_eventos (tipo) VALUES ('saldo_bajo')").await;

    // A role that does not exist, or a superuser, is refused with the reason.
    let err = migrate_and_grant(&mut admin, false, Some("no_existe")).await.unwrap_err();
    assert!(matches!(err, MigrateError::Grants { .. }), "{err}");
    assert!(err.to_string().contains("role no_existe does not exist"), "{err}");
    assert!(err.to_string().contains("CREATE ROLE no_existe LOGIN PASSWORD"), "{err}");
    let superuser: String = admin.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    let err = migrate_and_grant(&mut admin, false, Some(&superuser)).await.unwrap_err();
    // (The superuser here, or with an external DATABASE_URL at least the role running migrate.)
    assert!(err.to_string().contains("superuser") || err.to_string().contains("the role running migrate"), "{err}");

    // A Cantina table whose id is a serial column (older Django) instead of an identity: USAGE on its sequence.
    admin
        .batch_execute(
            "ALTER TABLE alertas_sistema ALTER COLUMN id_alerta DROP IDENTITY;
             CREATE SEQUENCE alertas_sistema_id_alerta_seq OWNED BY alertas_sistema.id_alerta;
             ALTER TABLE alertas_sistema ALTER COLUMN id_alerta SET DEFAULT nextval('alertas_sistema_id_alerta_seq')",
        )
        .await
        .unwrap();
    let alert =
        "INSERT INTO alertas_sistema (tipo, mensaje, estado) VALUES ('SISTEMA', 'cantina-notify: prueba', 'Pendiente')";
    denied(&rt, alert).await;
    migrate_and_grant(&mut admin, false, Some(&role.name)).await.unwrap();
    rt.batch_execute(alert).await.unwrap();
    denied(&rt, "SELECT setval('alertas_sistema_id_alerta_seq', 1000)").await;

    drop(rt);
    role.drop(&admin).await;
}

/// Production's shape: the migration role owns the database (so the Cantina tables, the service's tables and the
/// trigger functions) and is no superuser; the service runs as the runtime role it grants to.
#[tokio::test]
async fn a_migration_role_that_is_no_superuser_sets_everything_up_for_the_runtime_role() {
    let db = TestDb::empty().await;
    let admin = db.client().await;
    let (migration, runtime) = (LoginRole::create(&admin).await, LoginRole::create(&admin).await);
    admin.batch_execute(&format!("ALTER DATABASE {} OWNER TO {}", db.name, migration.name)).await.unwrap();
    let migration_url = migration.url(&db.url);
    for _ in 0..2 {
        let (stdout, log) =
            migrate_binary_logs(&migration_url, &["--reference-schema", "--grant-to", &runtime.name], &[]);
        assert!(stdout.contains(&format!("runtime role privileges: set for {}", runtime.name)), "{stdout}");
        assert!(!log.contains("superuser"), "no warning for the tables' owner: {log}");
    }
    let owner: String = admin
        .query_one(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'cantina_notify_eventos'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, migration.name);

    let fam = seed_family(&admin, Some("ana@example.com"), None, 12_000).await;
    let rec = Recorder::new(ChannelKind::Email);
    let url = runtime.url(&db.url);
    let app = TestApp::start(test_settings(&db, &[("DATABASE_URL", url.as_str())]), &rec).await;
    recharge(&admin, &fam.nro_tarjeta, 10_000).await;
    wait_count(&admin, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(rec.sent_count(), 1);
    app.stop().await;

    let rt = connect(&url).await;
    denied(&rt, "UPDATE solicitudes_notificacion SET fecha_solicitud = now()").await;
    denied(&rt, "CREATE TABLE cn_intrusa (id int)").await;
    drop(rt);

    runtime.drop(&admin).await;
    admin
        .batch_execute(&format!(
            "REASSIGN OWNED BY {0} TO CURRENT_USER; DROP OWNED BY {0}; DROP ROLE {0}",
            migration.name
        ))
        .await
        .expect("drop the migration role");
}

/// A superuser running `migrate` makes every trigger function run as a superuser: it works, with a warning.
#[tokio::test]
async fn migrate_warns_when_it_runs_as_a_superuser() {
    let db = TestDb::empty().await;
    let (stdout, log) = migrate_binary_logs(&db.url, &["--reference-schema"], &[]);
    assert!(stdout.contains("migrations applied"), "{stdout}");
    assert!(log.contains("WARN") && log.contains("migrate is running as a superuser"), "{log}");
    assert!(log.contains("run migrate as the owner of the Cantina tables instead"), "{log}");
}

/// The event triggers run with the owner's rights and without a search_path of their own (migrations 0014 and
/// 0015): an app role that points its search_path at look-alikes of the service's tables and of the functions and
/// operators the triggers use must not get them used. Each event goes to the service's outbox, with the real
/// threshold, and nothing of the caller's runs with the owner's rights.
#[tokio::test]
async fn the_event_triggers_resolve_nothing_through_the_callers_search_path() {
    type Event = (String, Option<i64>, Option<i64>, Option<i64>);
    let db = TestDb::new().await;
    let admin = db.client().await;
    let fam = seed_family(&admin, Some("ana@example.com"), None, 0).await;
    // A sale from 6.000 to 4.000 crosses the default threshold (5.000); with the look-alike threshold (1) it would not.
    admin
        .execute(
            "UPDATE tarjetas SET saldo_actual = 6000, saldo_alerta = 0 WHERE nro_tarjeta = $1",
            &[&fam.nro_tarjeta],
        )
        .await
        .expect("balance above the threshold");
    let app = LoginRole::create(&admin).await;
    admin
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO {0};
             GRANT SELECT, INSERT, UPDATE ON cargas_saldo, tarjetas, hijos, clientes, solicitudes_notificacion TO {0};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {0};
             CREATE SCHEMA evil AUTHORIZATION {0};
             GRANT USAGE ON SCHEMA evil TO PUBLIC",
            app.name
        ))
        .await
        .expect("grants");
    let with_config: Vec<String> = admin
        .query(
            "SELECT proname::text FROM pg_proc WHERE proname LIKE 'cantina_notify_evento%' AND proconfig IS NOT NULL",
            &[],
        )
        .await
        .expect("proconfig")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(with_config.is_empty(), "no SET clause, no search_path switch per call: {with_config:?}");

    let (c, conn) = tokio_postgres::connect(&app.url(&db.url), tokio_postgres::NoTls).await.expect("connect as app");
    let conn = tokio::spawn(conn);
    // Every look-alike records who called it: the app's own (invoker) trigger functions resolve names through
    // the app's search_path by design, so only a call as someone else (the triggers' owner) is a hijack.
    c.batch_execute(
        "CREATE TABLE evil.llamadas (que text, quien text DEFAULT current_user);
         CREATE TABLE evil.cantina_notify_eventos
             (tipo text, id_ref bigint, nro_tarjeta text, saldo_anterior bigint, saldo_nuevo bigint);
         CREATE TEMP TABLE cantina_notify_eventos
             (tipo text, id_ref bigint, nro_tarjeta text, saldo_anterior bigint, saldo_nuevo bigint);
         CREATE TABLE evil.cantina_notify_ajustes (umbral_saldo_bajo bigint);
         INSERT INTO evil.cantina_notify_ajustes VALUES (1);
         CREATE TEMP TABLE cantina_notify_ajustes (umbral_saldo_bajo bigint);
         INSERT INTO pg_temp.cantina_notify_ajustes VALUES (1);
         CREATE FUNCTION evil.pg_notify(text, text) RETURNS void LANGUAGE sql
             AS $$ INSERT INTO evil.llamadas (que) VALUES ('pg_notify') $$;
         CREATE FUNCTION evil.pg_try_advisory_xact_lock_shared(integer, integer) RETURNS boolean LANGUAGE sql
             AS $$ INSERT INTO evil.llamadas (que) VALUES ('lock') RETURNING false $$;
         CREATE FUNCTION evil.lt(bigint, bigint) RETURNS boolean LANGUAGE sql
             AS $$ INSERT INTO evil.llamadas (que) VALUES ('<') RETURNING $1 OPERATOR(pg_catalog.<) $2 $$;
         CREATE FUNCTION evil.ge(bigint, bigint) RETURNS boolean LANGUAGE sql
             AS $$ INSERT INTO evil.llamadas (que) VALUES ('>=') RETURNING $1 OPERATOR(pg_catalog.>=) $2 $$;
         CREATE FUNCTION evil.gt(bigint, integer) RETURNS boolean LANGUAGE sql
             AS $$ INSERT INTO evil.llamadas (que) VALUES ('>') RETURNING $1 OPERATOR(pg_catalog.>) $2 $$;
         CREATE OPERATOR evil.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.lt);
         CREATE OPERATOR evil.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.ge);
         CREATE OPERATOR evil.> (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = evil.gt);
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO PUBLIC;
         GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA evil TO PUBLIC;
         SET search_path = pg_temp, evil, pg_catalog, public",
    )
    .await
    .expect("look-alikes");
    // Every look-alike function and operator is in reach: unqualified calls of the app's own resolve to them.
    c.batch_execute(
        "SELECT 2::bigint < 3::bigint, 2::bigint >= 3::bigint, 2::bigint > 0,
                pg_try_advisory_xact_lock_shared(1, 1), pg_notify('x', '')",
    )
    .await
    .expect("unqualified calls");
    let reached: Vec<String> = c
        .query("SELECT que FROM evil.llamadas ORDER BY que", &[])
        .await
        .expect("calls")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reached, ["<", ">", ">=", "lock", "pg_notify"], "the look-alikes shadow pg_catalog's here");
    c.execute("DELETE FROM evil.llamadas", &[]).await.expect("clear");

    // As a waiting listener: the triggers' lock test fails and they NOTIFY, so all of their function calls run.
    admin.execute("SELECT pg_advisory_lock(1668183142, 1)", &[]).await.expect("lock");
    let mut expected: Vec<Event> = Vec::new();
    // Twice: with the temporary look-alike tables, which are looked up first, then with the `evil` ones.
    for (pass, schema) in [(1, "pg_temp"), (2, "evil")] {
        let found: String = c
            .query_one(
                "SELECT n.nspname::text FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace
                 WHERE k.oid = 'cantina_notify_eventos'::regclass",
                &[],
            )
            .await
            .expect("resolve the outbox's name")
            .get(0);
        assert!(found.starts_with(schema), "pass {pass}: the app's `cantina_notify_eventos` is {found}");
        // Back above the threshold and unblocked (as the owner: no event for either).
        admin
            .execute(
                "UPDATE tarjetas SET saldo_actual = 6000, estado = 'Activa' WHERE nro_tarjeta = $1",
                &[&fam.nro_tarjeta],
            )
            .await
            .expect("reset the card");
        let id_carga: i64 = c
            .query_one(
                "INSERT INTO public.cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia)
                 VALUES ($1, 10000, 'CONFIRMADO', 'test') RETURNING id_carga",
                &[&fam.nro_tarjeta],
            )
            .await
            .expect("recharge as the app")
            .get(0);
        // The recharge raised the balance to 16.000; a sale down to 4.000 crosses the threshold.
        c.execute("UPDATE public.tarjetas SET saldo_actual = 4000 WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta])
            .await
            .expect("sale as the app");
        c.execute("UPDATE public.tarjetas SET estado = 'Bloqueada' WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta])
            .await
            .expect("block as the app");
        c.execute("UPDATE public.tarjetas SET estado = 'Vencida' WHERE nro_tarjeta = $1", &[&fam.nro_tarjeta])
            .await
            .expect("expire as the app");
        let id_solicitud: i64 = c
            .query_one(
                "INSERT INTO public.solicitudes_notificacion
                     (id_cliente, nro_tarjeta, saldo_alerta, mensaje, destino, estado)
                 VALUES ($1, $2, 3000, 'Aviso manual', 'Email', 'Pendiente') RETURNING id_solicitud",
                &[&fam.id_cliente, &fam.nro_tarjeta],
            )
            .await
            .expect("POS request as the app")
            .get(0);
        expected.extend([
            ("recarga_confirmada".to_string(), Some(id_carga), None, None),
            ("saldo_bajo".to_string(), None, Some(16000), Some(4000)),
            ("tarjeta_bloqueada".to_string(), None, None, None),
            ("tarjeta_vencida".to_string(), None, None, None),
            ("solicitud_manual".to_string(), Some(id_solicitud), None, None),
        ]);
        let hijacked: Vec<(String, String)> = c
            .query("SELECT que, quien FROM evil.llamadas WHERE quien <> current_user", &[])
            .await
            .expect("calls")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert!(hijacked.is_empty(), "pass {pass}: look-alikes called with another role's rights: {hijacked:?}");
        assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_eventos").await, 0, "pass {pass}: {found}");
        if pass == 1 {
            c.batch_execute("DROP TABLE pg_temp.cantina_notify_eventos, pg_temp.cantina_notify_ajustes")
                .await
                .expect("drop the temporary look-alikes");
        }
    }
    drop(c);
    let _ = conn.await;
    admin.execute("SELECT pg_advisory_unlock(1668183142, 1)", &[]).await.expect("unlock");
    let events: Vec<Event> = admin
        .query(
            "SELECT tipo::text, id_ref, saldo_anterior, saldo_nuevo FROM cantina_notify_eventos
             WHERE nro_tarjeta = $1 ORDER BY id",
            &[&fam.nro_tarjeta],
        )
        .await
        .expect("events")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(events, expected);
    admin.batch_execute("DROP SCHEMA evil CASCADE").await.expect("drop evil");
    app.drop(&admin).await;
}

/// The runtime role (`migrate --grant-to`, as production sets it up) and an app role that may read and write
/// `tables` as the POS does (with the sequences behind them).
async fn runtime_and_app(admin: &mut Client, tables: &str) -> (LoginRole, LoginRole) {
    let runtime = LoginRole::create(admin).await;
    migrate_and_grant(admin, false, Some(&runtime.name)).await.expect("grant the runtime role");
    let app = LoginRole::create(admin).await;
    admin
        .batch_execute(&format!(
            "GRANT SELECT, INSERT, UPDATE ON {tables} TO {0}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {0}",
            app.name
        ))
        .await
        .expect("the app's grants");
    (runtime, app)
}

/// The names a body could reach through the caller's search_path: identifiers (tables, functions, types) and
/// operator symbols, plus the operators SQL looks up without writing them (`IS DISTINCT FROM`, `nullif` and a
/// simple `CASE` use `=` or `<>`; `LIKE` is `~~`; `BETWEEN` is `>=` and `<=`).
fn reachable_names(body: &str) -> (std::collections::BTreeSet<String>, std::collections::BTreeSet<String>) {
    let mut idents = std::collections::BTreeSet::new();
    let mut ops: std::collections::BTreeSet<String> =
        ["=", "<>", "<", ">", "<=", ">=", "~~", "!~~", "~~*", "!~~*"].iter().map(|s| s.to_string()).collect();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphabetic() || c == '_' {
            let mut word = String::new();
            while let Some(&c) = chars.peek().filter(|c| c.is_ascii_alphanumeric() || **c == '_' || **c == '$') {
                word.push(c.to_ascii_lowercase());
                chars.next();
            }
            idents.insert(word);
        } else if "+-*/<>=~!@#%^&|`?".contains(c) {
            let mut op = String::new();
            while let Some(&c) = chars.peek().filter(|c| "+-*/<>=~!@#%^&|`?".contains(**c)) {
                op.push(c);
                chars.next();
            }
            ops.insert(op);
        } else {
            chars.next();
        }
    }
    (idents, ops)
}

/// Every SECURITY DEFINER function in the service's schema, found in the catalog (so one a later migration adds is
/// covered without anyone listing it), is fired by the runtime role and by an app role whose session puts a
/// look-alike of every name the function could reach first: temporary views for its tables (recording reads and
/// writes), temporary domains for its types (PostgreSQL looks types up in pg_temp first, before pg_catalog),
/// and, in a schema of the caller's ahead of pg_catalog, functions and operators with the same signatures. Each
/// look-alike records `current_user`: a record made as anyone but the caller is code of the caller's run with the
/// function owner's rights.
#[tokio::test]
async fn no_security_definer_function_reaches_a_look_alike_of_its_callers() {
    let db = TestDb::new().await;
    let mut admin = db.client().await;
    let fam = seed_family(&admin, Some("ana@example.com"), None, 6000).await;
    let (runtime, app) =
        runtime_and_app(&mut admin, "cargas_saldo, tarjetas, hijos, clientes, solicitudes_notificacion").await;

    // The functions under test and every function of the schema their bodies name (their bodies run in the same
    // context), to a fixed point.
    let definer: Vec<String> = admin
        .query(
            "SELECT p.proname::text FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef ORDER BY 1",
            &[],
        )
        .await
        .expect("definer functions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(definer.len() >= 6, "the event and history triggers at least: {definer:?}");
    let bodies: std::collections::HashMap<String, String> = admin
        .query(
            "SELECT p.proname::text, string_agg(p.prosrc, ' ') FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace GROUP BY 1",
            &[],
        )
        .await
        .expect("bodies")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut seen: std::collections::BTreeSet<String> = definer.iter().cloned().collect();
    let mut todo: Vec<String> = definer.clone();
    let (mut idents, mut ops) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    while let Some(f) = todo.pop() {
        let (i, o) = reachable_names(&bodies[&f]);
        for name in &i {
            if bodies.contains_key(name) && seen.insert(name.clone()) {
                todo.push(name.clone());
            }
        }
        idents.extend(i);
        ops.extend(o);
    }
    let idents: Vec<String> = idents.into_iter().collect();
    let ops: Vec<String> = ops.into_iter().collect();

    // The look-alikes' DDL, from the catalog. Relations: every table or view of the schema the bodies name.
    let relations: Vec<(String, String)> = admin
        .query(
            "SELECT c.relname::text,
                    string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                               ORDER BY a.attnum)
             FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v')
               AND c.relname = ANY ($1)
             GROUP BY 1 ORDER BY 1",
            &[&idents],
        )
        .await
        .expect("relations")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(relations.iter().any(|(r, _)| r == "cantina_notify_historial"), "{relations:?}");
    // Functions of pg_catalog and of the schema with those names, each overload with its exact signature (a
    // look-alike with identical argument types earlier in the path wins). Pseudo-typed ones (variadic "any")
    // cannot be copied: the bodies write those qualified.
    let functions: Vec<(String, String, String, String)> = admin
        .query(
            "SELECT p.proname::text, p.pronamespace::regnamespace::text,
                    coalesce((SELECT string_agg(format_type(t, NULL), ', ' ORDER BY o)
                              FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, o)), ''),
                    format_type(p.prorettype, NULL)
             FROM pg_proc p
             WHERE p.pronamespace IN ('pg_catalog'::regnamespace, 'public'::regnamespace) AND p.prokind = 'f'
               AND NOT p.proretset AND p.proname = ANY ($1)
               AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[] || p.prorettype) t
                               JOIN pg_type y ON y.oid = t WHERE y.typtype = 'p' AND y.oid <> 'void'::regtype)
             ORDER BY 1, 3",
            &[&idents],
        )
        .await
        .expect("functions")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    // Binary operators with those symbols between the types of the schema's columns and the common built-ins.
    let operators: Vec<(String, String, String, String)> = admin
        .query(
            "WITH t AS (
                 SELECT array_agg(DISTINCT a.atttypid) || '{text,name,bool,int4,int8,numeric,timestamptz}'::regtype[]::oid[]
                        AS tipos
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0)
             SELECT o.oprname::text, format_type(o.oprleft, NULL), format_type(o.oprright, NULL),
                    format_type(o.oprresult, NULL)
             FROM pg_operator o, t
             WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprkind = 'b' AND o.oprname = ANY ($1)
               AND o.oprleft = ANY (t.tipos) AND o.oprright = ANY (t.tipos)
               AND (SELECT y.typtype FROM pg_type y WHERE y.oid = o.oprresult) <> 'p'
             ORDER BY 1, 2, 3",
            &[&ops],
        )
        .await
        .expect("operators")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert!(operators.iter().any(|(o, l, r, _)| o == "=" && l == "text" && r == "text"), "{operators:?}");
    // Built-in types with those names: PostgreSQL looks an unqualified type up in pg_temp before pg_catalog.
    let types: Vec<String> = admin
        .query(
            "SELECT t.typname::text FROM pg_type t
             WHERE t.typnamespace = 'pg_catalog'::regnamespace AND t.typtype = 'b' AND t.typcategory <> 'A'
               AND t.typname = ANY ($1) ORDER BY 1",
            &[&idents],
        )
        .await
        .expect("types")
        .iter()
        .map(|r| r.get(0))
        .collect();

    let mut ddl = String::from(
        "CREATE TABLE evil.llamadas (que pg_catalog.text, quien pg_catalog.text DEFAULT current_user);
         GRANT SELECT, INSERT ON evil.llamadas TO PUBLIC;
         CREATE FUNCTION evil.llamada(pg_catalog.text) RETURNS boolean LANGUAGE sql
             AS $$ INSERT INTO evil.llamadas (que) VALUES ($1) RETURNING true $$;
         CREATE FUNCTION evil.escritura() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN PERFORM evil.llamada('escribe ' || TG_TABLE_NAME); RETURN NULL; END $$;\n",
    );
    for (name, columns) in &relations {
        // One row, so a read evaluates the recording condition; writes are recorded instead of done.
        ddl.push_str(&format!(
            "CREATE TEMP TABLE \"{name}_datos\" ({columns});
             INSERT INTO pg_temp.\"{name}_datos\" DEFAULT VALUES;
             CREATE TEMP VIEW \"{name}\" AS SELECT * FROM pg_temp.\"{name}_datos\" WHERE evil.llamada('lee {name}');
             CREATE TRIGGER escritura INSTEAD OF INSERT OR UPDATE OR DELETE ON pg_temp.\"{name}\"
                 FOR EACH ROW EXECUTE FUNCTION evil.escritura();\n"
        ));
    }
    for (name, schema, args, ret) in &functions {
        let params: Vec<String> =
            (1..=args.split(", ").filter(|a| !a.is_empty()).count()).map(|i| format!("${i}")).collect();
        ddl.push_str(&format!(
            "CREATE FUNCTION evil.\"{name}\"({args}) RETURNS {ret} LANGUAGE sql
                 AS $$ SELECT evil.llamada('{name}'); SELECT {schema}.\"{name}\"({}) $$;\n",
            params.join(", ")
        ));
    }
    for (i, (op, left, right, ret)) in operators.iter().enumerate() {
        ddl.push_str(&format!(
            "CREATE FUNCTION evil.op_{i}({left}, {right}) RETURNS {ret} LANGUAGE sql
                 AS $$ SELECT evil.llamada('{op}'); SELECT $1 OPERATOR(pg_catalog.{op}) $2 $$;
             CREATE OPERATOR evil.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = evil.op_{i});\n"
        ));
    }
    // Last: from then on an unqualified type name in the session means the look-alike.
    let mut ddl_types = String::new();
    for name in &types {
        ddl_types.push_str(&format!(
            "CREATE DOMAIN pg_temp.\"{name}\" AS pg_catalog.\"{name}\" CHECK (evil.llamada('tipo {name}'));\n"
        ));
    }

    // Statements that fire the triggers, as the POS, the app or the service write. A role without the
    // privilege gets 42501 before anything fires; any other error is a failure (a look-alike reached, say).
    let firing = [
        format!(
            "INSERT INTO public.cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia)
             VALUES ('{0}', 10000, 'CONFIRMADO', 'test')",
            fam.nro_tarjeta
        ),
        format!("UPDATE public.tarjetas SET saldo_actual = 1000 WHERE nro_tarjeta = '{}'", fam.nro_tarjeta),
        format!("UPDATE public.tarjetas SET estado = 'Bloqueada' WHERE nro_tarjeta = '{}'", fam.nro_tarjeta),
        format!("UPDATE public.tarjetas SET estado = 'Vencida' WHERE nro_tarjeta = '{}'", fam.nro_tarjeta),
        format!(
            "INSERT INTO public.solicitudes_notificacion (id_cliente, nro_tarjeta, saldo_alerta, mensaje, destino, estado)
             VALUES ({}, '{}', 3000, 'Aviso manual', 'Email', 'Pendiente')",
            fam.id_cliente, fam.nro_tarjeta
        ),
        format!(
            "UPDATE public.solicitudes_notificacion SET estado = 'Error', ultimo_error = 'prueba'
             WHERE nro_tarjeta = '{}'",
            fam.nro_tarjeta
        ),
        // The functions the service calls (migration 0020), the whole body run: with the service's mark.
        "SET LOCAL cantina_notify.historial = 'propio';
         SELECT public.cantina_notify_historial_creadas('{x}'), public.cantina_notify_historial_enviadas('{1}')"
            .to_string(),
    ];

    // As a waiting listener: the triggers' lock test fails and they NOTIFY, so every call in them runs.
    admin.execute("SELECT pg_advisory_lock(1668183142, 1)", &[]).await.expect("lock");
    let mut fired_by_any = std::collections::BTreeSet::new();
    for role in [&app, &runtime] {
        admin
            .batch_execute(&format!(
                "UPDATE tarjetas SET saldo_actual = 6000, estado = 'Activa' WHERE nro_tarjeta = '{1}';
                 CREATE SCHEMA evil AUTHORIZATION {0};
                 GRANT USAGE ON SCHEMA evil TO PUBLIC;
                 ALTER ROLE {0} SET track_functions = 'all'",
                role.name, fam.nro_tarjeta
            ))
            .await
            .expect("reset the card, the role's schema, function statistics");
        let (mut c, conn) =
            tokio_postgres::connect(&role.url(&db.url), tokio_postgres::NoTls).await.expect("connect as the role");
        let conn = tokio::spawn(conn);
        c.batch_execute(&ddl).await.unwrap_or_else(|e| panic!("{}: look-alikes: {e:?}", role.name));
        c.batch_execute("SET search_path = pg_temp, evil, pg_catalog, public").await.expect("search_path");

        // Each look-alike is what this session's own unqualified names reach.
        for (name, _) in &relations {
            let schema: String = c
                .query_one("SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = to_regclass($1)", &[name])
                .await
                .expect("resolve a relation")
                .get(0);
            assert!(schema.starts_with("pg_temp"), "{name} resolves to {schema}");
        }
        for (name, _, args, _) in &functions {
            let found: Option<String> = c
                .query_one(
                    "SELECT pronamespace::regnamespace::text FROM pg_proc WHERE oid = to_regprocedure($1)",
                    &[&format!("\"{name}\"({args})")],
                )
                .await
                .map(|r| r.get(0))
                .ok();
            assert_eq!(found.as_deref(), Some("evil"), "{name}({args})");
        }
        for (op, left, right, _) in &operators {
            let found: Option<String> = c
                .query_one(
                    "SELECT oprnamespace::regnamespace::text FROM pg_operator WHERE oid = to_regoperator($1)",
                    &[&format!("{op}({left},{right})")],
                )
                .await
                .map(|r| r.get(0))
                .ok();
            assert_eq!(found.as_deref(), Some("evil"), "{op}({left},{right})");
        }
        c.batch_execute(&ddl_types).await.unwrap_or_else(|e| panic!("{}: type look-alikes: {e:?}", role.name));
        for name in &types {
            let schema: String = c
                .query_one(
                    "SELECT typnamespace::regnamespace::text FROM pg_type WHERE oid = to_regtype($1)",
                    &[&format!("\"{name}\"")],
                )
                .await
                .expect("resolve a type")
                .get(0);
            assert!(schema.starts_with("pg_temp"), "type {name} resolves to {schema}");
        }
        c.batch_execute("DELETE FROM evil.llamadas").await.expect("clear");

        let tx = c.transaction().await.expect("begin");
        let mut refused = Vec::new();
        for sql in &firing {
            tx.batch_execute("SAVEPOINT s").await.expect("savepoint");
            match tx.batch_execute(sql).await {
                Ok(()) => {}
                Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT s").await.expect("rollback to savepoint");
                    refused.push(sql.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
                }
                Err(e) => panic!("{}: {sql}: {e:?}", role.name),
            }
        }
        let fired: Vec<String> = tx
            .query(
                "SELECT p.proname::text FROM pg_stat_xact_user_functions s JOIN pg_proc p ON p.oid = s.funcid
                 WHERE p.prosecdef AND s.calls > 0 ORDER BY 1",
                &[],
            )
            .await
            .expect("functions called")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let hijacked: Vec<(String, String)> = tx
            .query("SELECT que, quien FROM evil.llamadas WHERE quien OPERATOR(pg_catalog.<>) current_user", &[])
            .await
            .expect("calls")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        tx.rollback().await.expect("rollback");
        assert!(hijacked.is_empty(), "{}: look-alikes run with another role's rights: {hijacked:?}", role.name);
        if role.name != app.name {
            assert!(
                fired.iter().any(|f| f == "cantina_notify_historial_update")
                    && fired.iter().any(|f| f == "cantina_notify_historial_creadas"),
                "the runtime role fires the history trigger and calls the service's functions: {fired:?} (refused: {refused:?})"
            );
        }
        fired_by_any.extend(fired);
        // Temporary objects go now, not in the backend's exit, which would race the DROP SCHEMA below for the
        // locks on the look-alikes' triggers (a deadlock).
        c.batch_execute("DISCARD TEMP").await.expect("drop the temporary look-alikes");
        drop(c);
        let _ = conn.await;
        admin
            .batch_execute(&format!("DROP SCHEMA evil CASCADE; ALTER ROLE {} RESET track_functions", role.name))
            .await
            .expect("drop evil");
    }
    admin.execute("SELECT pg_advisory_unlock(1668183142, 1)", &[]).await.expect("unlock");
    assert_eq!(
        fired_by_any.into_iter().collect::<Vec<_>>(),
        definer,
        "every SECURITY DEFINER function is fired (add a statement for a new one)"
    );

    // Nobody calls the trigger functions directly (triggers fire without an EXECUTE check); only the runtime role
    // may call the two the service calls.
    let callable: Vec<(String, bool, bool, bool)> = admin
        .query(
            "SELECT p.proname::text, has_function_privilege('public', p.oid, 'EXECUTE'),
                    has_function_privilege($1, p.oid, 'EXECUTE'), has_function_privilege($2, p.oid, 'EXECUTE')
             FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef ORDER BY 1",
            &[&app.name, &runtime.name],
        )
        .await
        .expect("EXECUTE privileges")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    for (name, public, by_app, by_runtime) in &callable {
        let service_calls = name == "cantina_notify_historial_creadas" || name == "cantina_notify_historial_enviadas";
        assert_eq!((*public, *by_app, *by_runtime), (false, false, service_calls), "EXECUTE on {name}");
    }
    app.drop(&admin).await;
    runtime.drop(&admin).await;
}

/// Rows written by anyone but the service choose nothing: a keyed `Pendiente` row inserted by the app's role or
/// the runtime role (a phishing text to an address of the attacker's) is recorded `Error` with the reason and never
/// sent, nor is a signed row whose address was changed afterwards; the staff get one alert, not one per row; and
/// the fallback does not copy an altered row's data into a new request of its own.
#[tokio::test]
async fn rows_the_service_did_not_write_are_never_sent() {
    use cantina_notify::dispatch::fallback;
    use cantina_notify::domain::NotificationType;
    use cantina_notify::rules::MessageData;

    let db = TestDb::new().await;
    let mut admin = db.client().await;
    let fam = seed_family(&admin, Some("ana@example.com"), Some("0981 123456"), 12_000).await;
    let (runtime, app) = runtime_and_app(&mut admin, "solicitudes_notificacion").await;
    let datos = serde_json::to_value(MessageData::sample(NotificationType::RecargaExitosa)).unwrap();
    let forge = "INSERT INTO solicitudes_notificacion
                     (id_cliente, nro_tarjeta, destino, estado, tipo, clave_dedup, destinatario, datos, proximo_intento,
                      actualizado_en)
                 VALUES ($1, $2, 'Email', 'Pendiente', 'recarga_exitosa', $3, 'victima@example.com', $4, now(), now())
                 RETURNING id_solicitud";
    // A legitimate row, signed as the service signs, waiting for its retry; and its control twin.
    let mut legit = Vec::new();
    for clave in ["recarga_exitosa:900:email", "recarga_exitosa:901:email", "recarga_exitosa:902:email"] {
        let id: i64 = admin
            .query_one(
                "INSERT INTO solicitudes_notificacion
                     (id_cliente, nro_tarjeta, destino, estado, tipo, clave_dedup, destinatario, datos, proximo_intento,
                      actualizado_en)
                 VALUES ($1, $2, 'Email', 'Pendiente', 'recarga_exitosa', $3, 'ana@example.com', $4,
                         now() + interval '1 hour', now())
                 RETURNING id_solicitud",
                &[&fam.id_cliente, &fam.nro_tarjeta, &clave, &datos],
            )
            .await
            .unwrap()
            .get(0);
        legit.push(id);
    }
    sign_by_hand(&admin).await;

    let rec = Recorder::new(ChannelKind::Email);
    let service = TestApp::start(test_settings(&db, &[]), &rec).await;
    let mut forged = Vec::new();
    for (role, clave) in [(&app, "phishing:app:email"), (&runtime, "phishing:runtime:email")] {
        let c = connect(&role.url(&db.url)).await;
        forged.push(
            c.query_one(forge, &[&fam.id_cliente, &fam.nro_tarjeta, &clave, &datos])
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", role.name))
                .get::<_, i64>(0),
        );
    }
    // The runtime role redirects the signed row to its own address and makes it due.
    let rt = connect(&runtime.url(&db.url)).await;
    rt.execute(
        "UPDATE solicitudes_notificacion SET destinatario = 'victima@example.com', proximo_intento = now()
         WHERE id_solicitud = $1",
        &[&legit[0]],
    )
    .await
    .expect("tamper");
    // Another family's: the signature covers the client (the fallback finds the next address from it).
    let other = seed_family(&admin, Some("otra@example.com"), None, 0).await;
    rt.execute(
        "UPDATE solicitudes_notificacion SET id_cliente = $2, proximo_intento = now() WHERE id_solicitud = $1",
        &[&legit[2], &other.id_cliente],
    )
    .await
    .expect("tamper the client");
    admin
        .execute("UPDATE solicitudes_notificacion SET proximo_intento = now() WHERE id_solicitud = $1", &[&legit[1]])
        .await
        .unwrap();
    wait_count(
        &admin,
        "SELECT count(*) FROM solicitudes_notificacion WHERE estado <> 'Pendiente' AND clave_dedup NOT LIKE 'recarga_exitosa:901%'",
        4,
        SHORT,
    )
    .await;
    wait_count(&admin, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    for id in forged.iter().chain([&legit[0], &legit[2]]) {
        let (estado, error): (String, String) = admin
            .query_one("SELECT estado, ultimo_error FROM solicitudes_notificacion WHERE id_solicitud = $1", &[id])
            .await
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!(estado, "Error", "row {id}");
        assert!(error.contains("no lleva la firma del servicio"), "row {id}: {error}");
    }
    let sent: Vec<String> = rec.sent.lock().unwrap().iter().map(|m| m.recipient.as_str().to_string()).collect();
    assert_eq!(sent, ["ana@example.com"], "only the untouched signed row went out");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM alertas_sistema WHERE mensaje LIKE 'cantina-notify: solicitudes sin firma%'"
        )
        .await,
        1,
        "one alert for four refused rows"
    );
    let metrics = service.get("/metrics").await.1;
    assert!(metrics.contains("cantina_notify_unsigned_requests_refused_total{channel=\"email\"} 4"), "{metrics}");
    service.stop().await;

    // The fallback copies a failed link's data into the next channel's request: not when the data was altered.
    admin
        .execute(
            "UPDATE solicitudes_notificacion SET canales_respaldo = 'sms' WHERE id_solicitud = ANY($1)",
            &[&&legit[..2]],
        )
        .await
        .unwrap();
    rt.execute(
        "UPDATE solicitudes_notificacion SET estado = 'Error', datos = jsonb_set(datos, '{alumno}', '\"Visite http://phish.example\"')
         WHERE id_solicitud = $1",
        &[&legit[1]],
    )
    .await
    .expect("tamper the data");
    let pool = role_pool(&runtime.url(&db.url));
    let advanced = fallback::advance(&pool, &test_signer(), 10, &Default::default()).await.unwrap();
    assert!(advanced.created.is_empty(), "{advanced:?}");
    assert_eq!(count(&admin, "SELECT count(*) FROM solicitudes_notificacion WHERE destino = 'SMS'").await, 0);
    pool.close();
    drop(rt);
    app.drop(&admin).await;
    runtime.drop(&admin).await;
}

/// The marks the service's statements set (`cantina_notify.historial = 'propio'`: "I write my own history";
/// `cantina_notify.origen`, `.evento`, `application_name`) count only in the runtime role's sessions: the app's role
/// setting them still leaves a history row, under its own name.
#[tokio::test]
async fn only_the_service_can_skip_or_sign_the_history() {
    let db = TestDb::new().await;
    let mut admin = db.client().await;
    let fam = seed_family(&admin, Some("ana@example.com"), None, 12_000).await;
    let (runtime, app) = runtime_and_app(&mut admin, "solicitudes_notificacion").await;
    let id = pos_manual_request(&admin, &fam).await;
    let history = |id: i64| {
        let admin = &admin;
        async move {
            admin
                .query(
                    "SELECT evento, estado, origen FROM cantina_notify_historial WHERE id_solicitud = $1 ORDER BY id",
                    &[&id],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1), r.get::<_, String>(2)))
                .collect::<Vec<_>>()
        }
    };
    let before = history(id).await.len();

    let c = connect(&app.url(&db.url)).await;
    c.batch_execute(
        "SET application_name = 'cantina-notify';
         BEGIN;
         SET LOCAL cantina_notify.historial = 'propio';
         SET LOCAL cantina_notify.origen = 'operador: Directora';
         SET LOCAL cantina_notify.evento = 'reenviada';",
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE solicitudes_notificacion SET estado = 'Error', ultimo_error = 'x' WHERE id_solicitud = $1",
        &[&id],
    )
    .await
    .unwrap();
    let inserted: i64 = c
        .query_one(
            "INSERT INTO solicitudes_notificacion (id_cliente, nro_tarjeta, destino, estado)
             VALUES ($1, $2, 'Email', 'Error') RETURNING id_solicitud",
            &[&fam.id_cliente, &fam.nro_tarjeta],
        )
        .await
        .unwrap()
        .get(0);
    c.batch_execute("COMMIT").await.unwrap();
    let origin = format!("app: {}/cantina-notify", app.name);
    let after = history(id).await;
    assert_eq!(after.len(), before + 1, "{after:?}");
    assert_eq!(after[before], ("error".to_string(), Some("Error".to_string()), origin.clone()));
    assert_eq!(history(inserted).await, [("creada".to_string(), Some("Error".to_string()), origin)]);

    // The runtime role's own marks still count (the service's statements rely on them).
    let rt = connect(&runtime.url(&db.url)).await;
    rt.batch_execute(&format!(
        "SET application_name = 'cantina-notify'; BEGIN; SET LOCAL cantina_notify.evento = 'reenviada';
         SET LOCAL cantina_notify.origen = 'operador: Directora';
         UPDATE solicitudes_notificacion SET estado = 'Pendiente' WHERE id_solicitud = {id};
         COMMIT;
         BEGIN; SET LOCAL cantina_notify.historial = 'propio';
         UPDATE solicitudes_notificacion SET estado = 'Error' WHERE id_solicitud = {id};
         COMMIT;"
    ))
    .await
    .unwrap();
    let last = history(id).await;
    assert_eq!(last.len(), before + 2, "the marked update wrote no row of the trigger's: {last:?}");
    assert_eq!(
        last[before + 1],
        ("reenviada".to_string(), Some("Pendiente".to_string()), "operador: Directora".into())
    );
    drop((c, rt));
    app.drop(&admin).await;
    runtime.drop(&admin).await;
}

/// The staff alert for refused rows takes an advisory lock, and any role can take one and hold it: the sends must
/// not wait for it. With the lock held and more refused rows than send slots, a real recharge still goes out.
#[tokio::test]
async fn a_held_alert_lock_does_not_hold_up_the_sends() {
    use cantina_notify::domain::NotificationType;
    use cantina_notify::rules::MessageData;

    let db = TestDb::new().await;
    let admin = db.client().await;
    let fam = seed_family(&admin, Some("ana@example.com"), None, 12_000).await;
    let holder = db.client().await;
    holder.execute("SELECT pg_advisory_lock(hashtext('cantina-notify-alertas'))", &[]).await.unwrap();
    let datos = serde_json::to_value(MessageData::sample(NotificationType::RecargaExitosa)).unwrap();
    for i in 0..10 {
        admin
            .execute(
                "INSERT INTO solicitudes_notificacion
                     (id_cliente, nro_tarjeta, destino, estado, tipo, clave_dedup, destinatario, datos, proximo_intento)
                 VALUES ($1, $2, 'Email', 'Pendiente', 'recarga_exitosa', $3, 'x@example.com', $4, now())",
                &[&fam.id_cliente, &fam.nro_tarjeta, &format!("sin-firma:{i}"), &datos],
            )
            .await
            .unwrap();
    }
    let rec = Recorder::new(ChannelKind::Email);
    // Four send slots (the tests' concurrency) against ten refused rows.
    let app = TestApp::start(test_settings(&db, &[]), &rec).await;
    wait_count(&admin, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Error'", 10, SHORT).await;
    recharge(&admin, &fam.nro_tarjeta, 10_000).await;
    wait_count(&admin, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(rec.sent_count(), 1);
    holder.execute("SELECT pg_advisory_unlock_all()", &[]).await.unwrap();
    app.stop().await;
}

/// A sent request put back to `Pendiente` by the app's role (estado, attempts, date reset) is not sent again: its
/// history records the send, and only the owner's functions write the history.
#[tokio::test]
async fn a_sent_request_put_back_to_pending_is_not_sent_again() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    let fam = seed_family(&admin, Some("ana@example.com"), None, 12_000).await;
    let app = LoginRole::create(&admin).await;
    admin
        .batch_execute(&format!("GRANT SELECT, INSERT, UPDATE ON solicitudes_notificacion TO {}", app.name))
        .await
        .unwrap();
    let rec = Recorder::new(ChannelKind::Email);
    let service = TestApp::start(test_settings(&db, &[]), &rec).await;
    recharge(&admin, &fam.nro_tarjeta, 10_000).await;
    wait_count(&admin, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    let c = connect(&app.url(&db.url)).await;
    c.batch_execute(
        "UPDATE solicitudes_notificacion
         SET estado = 'Pendiente', intentos = 0, fecha_envio = NULL, proximo_intento = now()",
    )
    .await
    .unwrap();
    wait_count(
        &admin,
        "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado' AND ultimo_error LIKE 'ya se envió%'",
        1,
        SHORT,
    )
    .await;
    assert_eq!(rec.sent_count(), 1, "sent once");
    service.stop().await;
    drop(c);
    app.drop(&admin).await;
}

/// The channel states (migration 0021) are the service's alone: the app's role (here with the POS's rights on the
/// requests and the alerts) and PUBLIC get nothing on them; the runtime role writes them.
#[tokio::test]
async fn the_app_role_gets_nothing_on_the_channel_states() {
    let db = TestDb::new().await;
    let mut admin = db.client().await;
    let (runtime, app) = runtime_and_app(&mut admin, "solicitudes_notificacion, alertas_sistema").await;
    let rt = connect(&runtime.url(&db.url)).await;
    rt.batch_execute(
        "INSERT INTO cantina_notify_estado_canales (replica, destino, configurado, proveedor, estado, desde)
         VALUES ('pod-a:1:0001', 'Email', true, 'smtp', 'activo', now())",
    )
    .await
    .expect("the runtime role records its state");
    let pos = connect(&app.url(&db.url)).await;
    for sql in [
        "SELECT count(*) FROM cantina_notify_estado_canales",
        "INSERT INTO cantina_notify_estado_canales (replica, destino, configurado, estado, desde)
             VALUES ('falsa', 'SMS', false, 'no_configurado', now())",
        "UPDATE cantina_notify_estado_canales SET estado = 'activo'",
        "DELETE FROM cantina_notify_estado_canales",
    ] {
        denied(&pos, sql).await;
    }
    let public: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = 'cantina_notify_estado_canales'::regclass AND a.grantee = 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(public, 0, "PUBLIC has nothing on the channel states");
    assert_eq!(count(&admin, "SELECT count(*) FROM cantina_notify_estado_canales").await, 1);
    drop((rt, pos));
    runtime.drop(&admin).await;
    app.drop(&admin).await;
}

/// `migrate` run as the service's runtime role by mistake: the server's refusal, once, then which role it connected
/// as and which role to use instead (the trial saw only `database error: db error: db error: ERROR: permission
/// denied for schema public`).
#[tokio::test]
async fn migrate_as_the_runtime_role_names_the_role_and_the_one_to_use() {
    let hint = |role: &str| {
        format!(
            "migrate connected as {role}, which may not change the schema; run migrate as the owner of the Cantina tables (a role that can create in schema public and alter the Cantina tables), not as the service's runtime role: see docs/exactly-once.md#database-roles"
        )
    };
    let run = |url: &str, args: &[&str]| {
        let out = Command::new(BIN)
            .arg("migrate")
            .args(args)
            .env("DATABASE_URL", url)
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run migrate");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // A fresh database: the first CREATE in schema public is refused.
    let empty = TestDb::empty().await;
    let admin = empty.client().await;
    let role = LoginRole::create(&admin).await;
    let stderr = run(&role.url(&empty.url), &["--reference-schema"]);
    assert_eq!(
        stderr,
        format!("error: database error: ERROR: permission denied for schema public (42501): {}\n", hint(&role.name))
    );
    role.drop(&admin).await;

    // The service's tables in place and the role granted as the runtime role: a migration's change is refused.
    let db = TestDb::empty().await;
    let admin = db.client().await;
    let role = LoginRole::create(&admin).await;
    migrate_binary(&db, &["--reference-schema", "--grant-to", &role.name], &[]);
    admin.batch_execute("DELETE FROM cantina_notify_migraciones WHERE version = (SELECT max(version) FROM cantina_notify_migraciones)").await.expect("forget the last migration");
    let stderr = run(&role.url(&db.url), &[]);
    assert_eq!(stderr.matches("(42501)").count(), 1, "{stderr}");
    assert!(stderr.ends_with(&format!(": {}\n", hint(&role.name))), "{stderr}");
    assert!(!stderr.contains("db error"), "{stderr}");
    role.drop(&admin).await;
}
