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
    let out = Command::new(BIN)
        .arg("migrate")
        .args(args)
        .env("DATABASE_URL", url)
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run migrate");
    assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
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

    assert!(email.duplicates().is_empty());
    app.stop().await;
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
        "SELECT count(*) FROM consumos_tarjeta".to_string(),
        "SELECT count(*) FROM cantina_notify_restricciones_originales".to_string(),
        "SELECT mensaje FROM notificacion".to_string(),
        "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado) VALUES ('X', 1, 'CONFIRMADO')".to_string(),
        "CREATE TABLE cn_intrusa (id int)".to_string(),
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
        let stdout = migrate_binary_as(&migration_url, &["--reference-schema", "--grant-to", &runtime.name], &[]);
        assert!(stdout.contains(&format!("runtime role privileges: set for {}", runtime.name)), "{stdout}");
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
