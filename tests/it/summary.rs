//! The staff's daily summary over the real database and a real SMTP server (plain SMTP on loopback).

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use cantina_notify::channels::Channels;
use cantina_notify::config::Settings;
use cantina_notify::scheduler::summary::{self, DailySummary};
use cantina_notify::scheduler::{Clock, FiringOutcome, Scheduler, SweepKind};
use deadpool_postgres::Pool;
use jiff::{SignedDuration, Timestamp};
use mailin_embedded::response::{OK, Response};
use mailin_embedded::{Handler, Server};
use tokio_postgres::Client;

use crate::helpers::{
    Recorder, TestApp, TestDb, count, poll_until, scheduler_started_before, seed_family, test_settings,
};

/// (RCPT TO, DATA) of each message received.
type Mail = (Vec<String>, String);

#[derive(Clone, Default)]
struct Smtp {
    mails: Arc<Mutex<Vec<Mail>>>,
    /// Addresses answered `451` (temporary) while listed.
    refuse: Arc<Mutex<HashSet<String>>>,
    /// Addresses answered `550` (permanent).
    reject: Arc<Mutex<HashSet<String>>>,
    to: Vec<String>,
    buf: Vec<u8>,
}

impl Handler for Smtp {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> Response {
        self.to.clear();
        self.buf.clear();
        OK
    }
    fn rcpt(&mut self, to: &str) -> Response {
        if self.refuse.lock().unwrap().contains(to) {
            return Response::custom(451, "4.3.0 Mailbox temporarily unavailable".to_string());
        }
        if self.reject.lock().unwrap().contains(to) {
            return Response::custom(550, "5.1.1 No such user".to_string());
        }
        self.to.push(to.to_string());
        OK
    }
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        let data = String::from_utf8_lossy(&self.buf).into_owned();
        self.mails.lock().unwrap().push((self.to.clone(), data));
        OK
    }
}

impl Smtp {
    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
    fn count_to(&self, to: &str) -> usize {
        self.mails().iter().filter(|(rcpt, _)| rcpt.iter().any(|r| r == to)).count()
    }
}

/// A real SMTP server on loopback (no TLS: the service allows plain SMTP to a loopback relay when asked).
fn smtp_server() -> (u16, Smtp) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Smtp::default();
    let mut server = Server::new(handler.clone());
    server.with_name("localhost").with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, handler)
}

fn smtp_env(port: &str) -> Vec<(&'static str, String)> {
    vec![
        ("EMAIL_BACKEND", "smtp".into()),
        ("EMAIL_HOST", "127.0.0.1".into()),
        ("EMAIL_PORT", port.into()),
        ("EMAIL_USE_TLS", "False".into()),
        ("EMAIL_USE_SSL", "False".into()),
        ("DEFAULT_FROM_EMAIL", "Cantina Tita <noreply@cantinatita.com.py>".into()),
    ]
}

const STAFF: &str = "administracion@cantinatita.com.py, Gerencia@CantinaTita.com.py";
const ADMIN: &str = "administracion@cantinatita.com.py";
const GERENCIA: &str = "Gerencia@cantinatita.com.py";

fn settings(db: &TestDb, port: u16, destinatarios: &str) -> Settings {
    let port = port.to_string();
    let mut env = smtp_env(&port);
    env.push(("CANTINA__RESUMEN_DIARIO__DESTINATARIOS", destinatarios.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    test_settings(db, &env)
}

struct FakeClock(Mutex<Timestamp>);

impl FakeClock {
    fn new(t: Timestamp) -> Arc<FakeClock> {
        Arc::new(FakeClock(Mutex::new(t)))
    }
    fn advance(&self, d: SignedDuration) {
        let mut t = self.0.lock().unwrap();
        *t = t.checked_add(d).unwrap();
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Tuesday 24/11/2026 21:00:30 in Asunción (UTC-3): the 21:00 firing reports Monday 23/11.
const RUN: &str = "2026-11-25T00:00:30Z";
const FIRING: &str = "2026-11-25T00:00:00Z";

/// The pause table of migration 0008 (created here when the tree does not have that migration yet).
async fn ensure_pause_table(c: &Client) {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS cantina_notify_canales_pausados (
             destino varchar(20) PRIMARY KEY, motivo text NOT NULL, pausado_por text NOT NULL,
             pausado_en timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
}

async fn request(
    c: &Client,
    id_cliente: i32,
    tipo: &str,
    destino: &str,
    estado: &str,
    error: Option<&str>,
    when: &str,
) -> i64 {
    c.query_one(
        "INSERT INTO solicitudes_notificacion
             (id_cliente, tipo, destino, estado, ultimo_error, fecha_solicitud, clave_dedup, intentos)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1) RETURNING id_solicitud",
        &[
            &id_cliente,
            &tipo,
            &destino,
            &estado,
            &error,
            &std::time::SystemTime::from(at(when)),
            &format!("t:{}", fastrand::u64(..)),
        ],
    )
    .await
    .unwrap()
    .get(0)
}

struct Seeded {
    smtp_550: Vec<i64>,
    receipt_failed: i64,
}

/// Requests of Sunday 22/11, Monday 23/11 (the reported day, local) and Tuesday 24/11; cards, alerts, a pause.
async fn seed(c: &Client) -> Seeded {
    ensure_pause_table(c).await;
    let low = seed_family(c, Some("ana@example.com"), None, 1_500).await; // under the default 5.000
    let own = seed_family(c, Some("rosa@example.com"), None, 50_000).await; // under its own 60.000
    c.execute("UPDATE tarjetas SET saldo_alerta = 60000 WHERE nro_tarjeta = $1", &[&own.nro_tarjeta]).await.unwrap();
    let blocked = seed_family(c, Some("pedro@example.com"), None, 100).await; // blocked: not listed
    c.execute("UPDATE tarjetas SET estado = 'Bloqueada' WHERE nro_tarjeta = $1", &[&blocked.nro_tarjeta])
        .await
        .unwrap();
    let _fine = seed_family(c, Some("juan@example.com"), None, 80_000).await;
    let id = low.id_cliente;
    // Monday 23/11 local = [03:00Z on the 23rd, 03:00Z on the 24th).
    // Providers quote the address in their errors, as stored: two addresses that mask alike make one reason.
    let bounce = |to: &str| format!("SMTP 550 de smtp.example.com:587: 5.1.1 <{to}>: buzón inexistente");
    let mut smtp_550 = Vec::new();
    for _ in 0..3 {
        request(c, id, "recarga_exitosa", "Email", "Enviado", None, "2026-11-23T13:00:00Z").await;
    }
    let (ana, alberto) = (bounce("ana.perez@example.com"), bounce("alberto@example.com"));
    smtp_550.push(request(c, id, "recarga_exitosa", "Email", "Error", Some(&ana), "2026-11-23T03:00:00Z").await);
    smtp_550.push(request(c, id, "recarga_exitosa", "Email", "Error", Some(&alberto), "2026-11-24T02:59:59Z").await);
    request(c, id, "saldo_bajo", "SMS", "Error", Some("Twilio 21614: no es un móvil"), "2026-11-23T20:00:00Z").await;
    // Sent, but the delivery receipt said failed: a failure too (as `stats` counts it).
    let undelivered = "Twilio 30005: +595981123456 desconocido";
    let receipt_failed =
        request(c, id, "saldo_bajo", "SMS", "Enviado", Some(undelivered), "2026-11-23T21:00:00Z").await;
    c.execute(
        "UPDATE solicitudes_notificacion SET estado_entrega = 'failed' WHERE id_solicitud = $1",
        &[&receipt_failed],
    )
    .await
    .unwrap();
    request(c, id, "saldo_bajo", "WhatsApp", "Omitido", Some("el padre lo desactivó"), "2026-11-23T20:00:00Z").await;
    request(c, id, "saldo_bajo", "SMS", "Pendiente", None, "2026-11-23T23:00:00Z").await;
    // Outside the day: Sunday evening local and Tuesday just after midnight local.
    request(c, id, "recarga_exitosa", "Email", "Error", Some("fuera del día"), "2026-11-23T02:59:59Z").await;
    request(c, id, "recarga_exitosa", "Email", "Enviado", None, "2026-11-24T03:00:00Z").await;
    request(c, id, "tarjeta_bloqueada", "SMS", "Error", Some("fuera del día"), "2026-11-24T15:00:00Z").await;
    c.execute(
        "INSERT INTO cantina_notify_canales_pausados (destino, motivo, pausado_por, pausado_en)
         VALUES ('SMS', 'saldo de Tigo agotado', 'rocio', '2026-11-24T11:10:00Z')",
        &[],
    )
    .await
    .unwrap();
    c.batch_execute(
        "INSERT INTO alertas_sistema (tipo, mensaje, estado, fecha_creacion) VALUES
             ('SISTEMA', 'cantina-notify: canal SMS pausado', 'Pendiente', '2026-11-24T11:10:30Z'),
             ('STOCK_MINIMO', 'Coca-Cola 500 ml bajo el mínimo', 'Leida', '2026-11-24T12:00:00Z'),
             ('SISTEMA', 'ya resuelta', 'Resuelta', '2026-11-20T12:00:00Z')",
    )
    .await
    .unwrap();
    Seeded { smtp_550, receipt_failed }
}

struct Setup {
    db: TestDb,
    c: Client,
    pool: Pool,
    settings: Settings,
    smtp: Smtp,
    port: u16,
}

async fn setup(destinatarios: &str) -> Setup {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (port, smtp) = smtp_server();
    let settings = settings(&db, port, destinatarios);
    let pool = cantina_notify::db::pool(&db.url, 6, Duration::from_secs(5)).unwrap();
    Setup { db, c, pool, settings, smtp, port }
}

/// The adapters as the service builds them (wrapped when `CANTINA__DISPATCH__DRY_RUN` is on).
fn channels(settings: &Settings, pool: &Pool) -> Channels {
    let providers = settings.channel_providers().unwrap();
    let channels = Channels::from_settings(settings, &providers, pool).unwrap();
    if settings.dispatch.dry_run { channels.dry_run() } else { channels }
}

fn scheduler(settings: &Settings, pool: &Pool, replica: &str, clock: Arc<FakeClock>) -> Scheduler {
    let (rules, _) = settings.validate(true).unwrap();
    let s =
        Scheduler::new(pool.clone(), rules.clone(), &settings.scheduler, &settings.retention, replica, clock).unwrap();
    match DailySummary::new(pool.clone(), &settings.resumen_diario, rules.umbral_saldo_bajo, &channels(settings, pool))
        .unwrap()
    {
        Some(summary) => s.with_summary(summary),
        None => s,
    }
}

fn summaries_ran(out: &[FiringOutcome]) -> Vec<(Timestamp, Result<usize, String>)> {
    out.iter()
        .filter_map(|o| match o {
            FiringOutcome::Ran { kind: SweepKind::ResumenDiario, at, result } => Some((*at, result.clone())),
            _ => None,
        })
        .collect()
}

/// The decoded text/plain part of a raw message (quoted-printable, base64 or 7bit).
fn text_part(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let start = raw.find("Content-Type: text/plain").expect("a text/plain part");
    let part = &raw[start..];
    let (headers, body) = part.split_once("\n\n").unwrap();
    let body = &body[..body.find("\n--").unwrap_or(body.len())];
    if headers.contains("Content-Transfer-Encoding: base64") {
        let clean: String = body.split_whitespace().collect();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(clean).unwrap()).unwrap()
    } else if headers.contains("Content-Transfer-Encoding: quoted-printable") {
        let joined = body.replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    } else {
        body.to_string()
    }
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": "))).map(str::trim)
}

#[tokio::test]
async fn two_replicas_send_one_summary_of_yesterday_to_each_recipient() {
    let Setup { c, pool, settings, smtp, .. } = setup(STAFF).await;
    let seeded = seed(&c).await;
    // A running replica has WhatsApp paused for a provider error (the message carries a number).
    c.batch_execute(
        "INSERT INTO cantina_notify_estado_canales
             (replica, destino, configurado, proveedor, estado, motivo, desde, proxima_prueba, visto_en)
         VALUES ('pod-a', 'WhatsApp', true, 'business_api', 'pausado_proveedor',
                 'Meta rechazó el token para +595981123456', '2026-11-24T12:00:00Z', now() + interval '30 s', now()),
                ('pod-a', 'SMS', true, 'twilio', 'activo', NULL, '2026-11-24T11:00:00Z', NULL, now())",
    )
    .await
    .unwrap();
    let clock = FakeClock::new(at(RUN));
    scheduler_started_before(&c, clock.now()).await;
    let a = scheduler(&settings, &pool, "replica-a", clock.clone());
    let b = scheduler(&settings, &pool, "replica-b", clock.clone());

    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    let mut ran = summaries_ran(&ra.unwrap());
    ran.extend(summaries_ran(&rb.unwrap()));
    assert_eq!(ran, [(at(FIRING), Ok(2))], "exactly one replica ran the firing and sent two emails");

    // Both replicas again, a minute and then an hour later: nothing more.
    for step in [SignedDuration::from_mins(1), SignedDuration::from_hours(1)] {
        clock.advance(step);
        let (ra, rb) = tokio::join!(a.tick(), b.tick());
        assert!(summaries_ran(&ra.unwrap()).is_empty() && summaries_ran(&rb.unwrap()).is_empty());
    }
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(smtp.count_to(ADMIN), 1);
    assert_eq!(smtp.count_to(GERENCIA), 1, "addresses are deduplicated; the domain is lower-cased");

    let raw = &mails[0].1;
    assert_eq!(header(raw, "Subject"), Some("Cantina Tita: resumen de notificaciones del 23/11/2026"));
    assert!(raw.contains("multipart/alternative"));
    assert!(!raw.contains("List-Unsubscribe"), "staff did not subscribe to anything");
    let text = text_part(raw);
    assert!(text.starts_with("Resumen de notificaciones del lunes 23/11/2026\n"), "{text}");
    // Only Monday's 9 requests: 3 sent + 2 errors by email, 1 SMS sent (receipt failed), 1 SMS error, 1 omitted,
    // 1 pending.
    assert!(text.contains("SOLICITUDES DEL DÍA: 9\nEnviado: 4 · Pendiente: 1 · Error: 3 · Omitido: 1\n"), "{text}");
    assert!(text.contains("\nRecarga exitosa  Email           3          0      2        0      5\n"), "{text}");
    assert!(text.contains("\nSaldo bajo       SMS             1          1      1        0      3\n"), "{text}");
    assert!(text.contains("\nSaldo bajo       WhatsApp        0          0      0        1      1\n"), "{text}");
    assert!(!text.contains("Tarjeta bloqueada") && !text.contains("fuera del día"), "{text}");
    let ids = seeded.smtp_550.iter().map(|id| format!("#{id}")).collect::<Vec<_>>().join(", ");
    assert!(
        text.contains(&format!(
            "FALLOS: 4 solicitudes (3 en Error, 1 enviada no entregada según el recibo del proveedor), 3 motivos\n- 2 × SMTP 550 de smtp.example.com:587: 5.1.1 <a***@example.com>: buzón inexistente\n  Canal: Email. Ejemplos: {ids}\n- 1 × Twilio 21614: no es un móvil\n  Canal: SMS.",
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "- 1 × Twilio 30005: +595 98* *** 456 desconocido\n  Canal: SMS. Ejemplos: #{}\n",
            seeded.receipt_failed
        )),
        "{text}"
    );
    // Neither part quotes an address or a number as stored.
    for raw_address in ["ana.perez@", "alberto@", "981123456"] {
        assert!(!raw.contains(raw_address), "{raw_address} in {raw}");
    }
    assert!(
        text.contains(
            "CANALES PAUSADOS: 2\n- SMS, pausado el 24/11/2026 08:10 por rocio: saldo de Tigo agotado\n\
             - WhatsApp, pausado el 24/11/2026 09:00 por un error del proveedor: Meta rechazó el token para +595 98* *** 456\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "ALERTAS ABIERTAS: 2\n- 24/11/2026 09:00 · STOCK_MINIMO · Leida: Coca-Cola 500 ml bajo el mínimo\n- 24/11/2026 08:10 · SISTEMA · Pendiente: cantina-notify: canal SMS pausado\n"
        ),
        "{text}"
    );
    assert!(!text.contains("ya resuelta"));
    assert!(text.contains("TARJETAS BAJO EL UMBRAL: 2\n- Luis Benítez · tarjeta "), "{text}");
    assert!(text.contains(" · saldo Gs. 1.500 (umbral Gs. 5.000)\n"), "{text}");
    assert!(text.contains(" · saldo Gs. 50.000 (umbral Gs. 60.000)\n"), "{text}");
    assert!(text.contains("situación al 24/11/2026 21:00."), "{text}");

    // The ledger: the firing once, and one row per recipient without the address.
    let rows = c
        .query(
            "SELECT programa, estado, detalle FROM cantina_notify_ejecuciones WHERE programa LIKE 'resumen_diario%'
             AND detalle IS DISTINCT FROM $1 ORDER BY programa",
            &[&cantina_notify::scheduler::ledger::BASELINE_DETAIL],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let firing: (String, String, String) = (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    assert_eq!(firing.0, "resumen_diario");
    assert_eq!(firing.1, "completada");
    assert!(
        firing.2.starts_with("resumen del 23/11/2026: enviado a a***@cantinatita.com.py, G***@cantinatita.com.py"),
        "{firing:?}"
    );
    for r in &rows[1..] {
        let (programa, estado): (String, String) = (r.get(0), r.get(1));
        assert!(programa.starts_with("resumen_diario/") && !programa.contains('@'), "{programa}");
        assert_eq!(estado, "completada");
    }
}

#[tokio::test]
async fn a_recipient_that_failed_is_retried_alone_by_the_ledger() {
    let Setup { c, pool, settings, smtp, .. } = setup(STAFF).await;
    seed(&c).await;
    smtp.refuse.lock().unwrap().insert(GERENCIA.to_string());
    let clock = FakeClock::new(at(RUN));
    scheduler_started_before(&c, clock.now()).await;
    let s = scheduler(&settings, &pool, "replica-a", clock.clone());
    let ran = summaries_ran(&s.tick().await.unwrap());
    let [(firing, Err(e))] = ran.as_slice() else { panic!("{ran:?}") };
    assert_eq!(*firing, at(FIRING));
    assert!(e.contains("enviado a a***@cantinatita.com.py") && e.contains("falló para G***@cantinatita.com.py"), "{e}");
    assert!(!e.contains("Gerencia@"), "addresses are masked: {e}");
    assert_eq!((smtp.count_to(ADMIN), smtp.count_to(GERENCIA)), (1, 0));
    let alert = count(&c, "SELECT count(*) FROM alertas_sistema WHERE mensaje LIKE 'cantina-notify: barrido resumen_diario falló%' AND estado = 'Pendiente'").await;
    assert_eq!(alert, 1);

    // The server recovers; the ledger retries the failed firing after 5 minutes, for the missing recipient only.
    smtp.refuse.lock().unwrap().clear();
    clock.advance(SignedDuration::from_mins(2));
    assert!(summaries_ran(&s.tick().await.unwrap()).is_empty(), "not before the retry delay");
    clock.advance(SignedDuration::from_mins(4));
    let ran = summaries_ran(&s.tick().await.unwrap());
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].1, Ok(1));
    assert_eq!((smtp.count_to(ADMIN), smtp.count_to(GERENCIA)), (1, 1));
    let text = text_part(&smtp.mails()[1].1);
    assert!(text.starts_with("Resumen de notificaciones del lunes 23/11/2026\n"), "the retry reports the firing's day");
    let alert = count(&c, "SELECT count(*) FROM alertas_sistema WHERE mensaje LIKE 'cantina-notify: barrido resumen_diario falló%' AND estado = 'Resuelta'").await;
    assert_eq!(alert, 1, "the staff alert is resolved by the successful retry");
}

#[tokio::test]
async fn without_recipients_there_is_no_summary_and_no_ledger_row() {
    let Setup { c, pool, settings, smtp, .. } = setup("").await;
    seed(&c).await;
    let clock = FakeClock::new(at(RUN));
    let s = scheduler(&settings, &pool, "replica-a", clock);
    let out = s.tick().await.unwrap();
    assert!(summaries_ran(&out).is_empty(), "{out:?}");
    assert_eq!(
        count(&c, "SELECT count(*) FROM cantina_notify_ejecuciones WHERE programa LIKE 'resumen_diario%'").await,
        0
    );
    // The other schedules recorded their first start (the ledger is in use).
    assert!(count(&c, "SELECT count(*) FROM cantina_notify_ejecuciones").await > 0);
    assert!(smtp.mails().is_empty());
}

#[tokio::test]
async fn recipients_without_an_email_channel_are_refused_at_start_up() {
    let db = TestDb::new().await;
    let settings = test_settings(
        &db,
        &[("CANTINA__SCHEDULER__ENABLED", "true"), ("CANTINA__RESUMEN_DIARIO__DESTINATARIOS", ADMIN)],
    );
    let sms = Recorder::new(cantina_notify::domain::ChannelKind::Sms);
    let channels = Channels::new().with(sms as Arc<dyn cantina_notify::channels::Channel>);
    let err = match cantina_notify::app::Application::build(settings, Some(channels)).await {
        Ok(_) => panic!("the service started without an email channel for the summary"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("CANTINA__RESUMEN_DIARIO__DESTINATARIOS") && err.contains("EMAIL_BACKEND"), "{err}");

    // A bad address is refused by the configuration check, naming the key and masking the address.
    let bad = test_settings(&db, &[("CANTINA__RESUMEN_DIARIO__DESTINATARIOS", "admin@cantina, ok@example.com")]);
    let err = bad.validate(true).unwrap_err().to_string();
    assert!(err.contains("CANTINA__RESUMEN_DIARIO__DESTINATARIOS: address 1 is invalid"), "{err}");
    assert!(!err.contains("admin@cantina"), "{err}");

    // With a recipient and the scheduler on, a service with the email channel starts and stops cleanly.
    let ok = test_settings(
        &db,
        &[("CANTINA__SCHEDULER__ENABLED", "true"), ("CANTINA__RESUMEN_DIARIO__DESTINATARIOS", ADMIN)],
    );
    let email = Recorder::new(cantina_notify::domain::ChannelKind::Email);
    TestApp::start(ok, &email).await.stop().await;
}

#[tokio::test]
async fn a_missing_pause_table_is_reported_not_fatal() {
    let Setup { c, pool, .. } = setup(ADMIN).await;
    c.batch_execute("DROP TABLE IF EXISTS cantina_notify_canales_pausados CASCADE").await.unwrap();
    let data = summary::collect(&pool, jiff::civil::Date::constant(2026, 11, 23), at(RUN), 5000).await.unwrap();
    assert_eq!(data.pausas, None);
    let text = summary::render(&data, None).unwrap().text;
    assert!(text.contains("CANALES PAUSADOS: no se pudo consultar (falta la migración 0008)\n"), "{text}");
    assert!(text.contains("SOLICITUDES DEL DÍA: 0\nNo se creó ninguna solicitud ese día.\n"), "{text}");
}

#[tokio::test]
async fn the_cli_sends_yesterdays_summary_now_and_prints_masked_recipients() {
    let Setup { db, c, smtp, port, .. } = setup(STAFF).await;
    ensure_pause_table(&c).await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    // One request yesterday and one today, local time.
    let now = Timestamp::now();
    let yesterday = now
        .checked_sub(SignedDuration::from_hours(24))
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("America/Asuncion").unwrap());
    let noon_yesterday = yesterday.date().at(12, 0, 0, 0).to_zoned(yesterday.time_zone().clone()).unwrap().timestamp();
    let yesterday_s = noon_yesterday.to_string();
    request(&c, fam.id_cliente, "recarga_exitosa", "Email", "Enviado", None, &yesterday_s).await;
    request(&c, fam.id_cliente, "recarga_exitosa", "Email", "Enviado", None, &now.to_string()).await;

    let port = port.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_cantina-notify"))
        .args(["sweep", "resumen_diario"])
        .env_clear()
        .env("CANTINA__DATABASE__SIGNING_KEY", crate::helpers::TEST_SIGNING_KEY)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .envs(smtp_env(&port))
        .env("CANTINA__RESUMEN_DIARIO__DESTINATARIOS", STAFF)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let day = summary::fecha(yesterday.date());
    assert_eq!(
        stdout.trim(),
        format!("sweep resumen_diario: resumen del {day}: enviado a a***@cantinatita.com.py, G***@cantinatita.com.py")
    );
    poll_until("two emails", Duration::from_secs(10), || async { (smtp.mails().len() == 2).then_some(()) }).await;
    let text = text_part(&smtp.mails()[0].1);
    assert!(text.contains("SOLICITUDES DEL DÍA: 1\n"), "only yesterday's request: {text}");
    // Not recorded in the ledger (an operator's explicit run).
    assert_eq!(
        count(&c, "SELECT count(*) FROM cantina_notify_ejecuciones WHERE programa LIKE 'resumen_diario%'").await,
        0
    );

    // Without recipients the command says the summary is off.
    let out = Command::new(env!("CARGO_BIN_EXE_cantina-notify"))
        .args(["sweep", "resumen_diario"])
        .env_clear()
        .env("CANTINA__DATABASE__SIGNING_KEY", crate::helpers::TEST_SIGNING_KEY)
        .env("DATABASE_URL", &db.url)
        .envs(smtp_env(&port))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CANTINA__RESUMEN_DIARIO__DESTINATARIOS"));
}

#[tokio::test]
async fn a_dry_run_builds_the_summary_and_sends_nothing() {
    let Setup { db, c, pool, smtp, port, .. } = setup(STAFF).await;
    seed(&c).await;
    let port = port.to_string();
    let mut env = smtp_env(&port);
    env.push(("CANTINA__RESUMEN_DIARIO__DESTINATARIOS", STAFF.into()));
    env.push(("CANTINA__DISPATCH__DRY_RUN", "true".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let settings = test_settings(&db, &env);
    scheduler_started_before(&c, at(RUN)).await;
    let s = scheduler(&settings, &pool, "replica-a", FakeClock::new(at(RUN)));
    let ran = summaries_ran(&s.tick().await.unwrap());
    assert_eq!(ran, [(at(FIRING), Ok(0))]);
    assert!(smtp.mails().is_empty());
    let detalle: String = c
        .query_one(
            "SELECT detalle FROM cantina_notify_ejecuciones WHERE programa = 'resumen_diario' AND estado <> 'omitida'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        detalle.contains("simulacro (CANTINA__DISPATCH__DRY_RUN), no enviado a a***@cantinatita.com.py"),
        "{detalle}"
    );
}

#[tokio::test]
async fn an_address_refused_for_good_is_not_retried() {
    let Setup { c, pool, settings, smtp, .. } = setup(STAFF).await;
    smtp.reject.lock().unwrap().insert(GERENCIA.to_string());
    let clock = FakeClock::new(at(RUN));
    scheduler_started_before(&c, clock.now()).await;
    let s = scheduler(&settings, &pool, "replica-a", clock.clone());
    let ran = summaries_ran(&s.tick().await.unwrap());
    let [(_, Err(e))] = ran.as_slice() else { panic!("{ran:?}") };
    assert!(e.contains("rechazado para G***@cantinatita.com.py (no se reintenta): SMTP 550"), "{e}");
    let estado: String = c
        .query_one(
            "SELECT estado FROM cantina_notify_ejecuciones WHERE programa LIKE 'resumen_diario/%' AND detalle LIKE 'G***%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(estado, "omitida");

    // The ledger retries the firing (it failed), but the refused address is not tried again.
    smtp.reject.lock().unwrap().clear();
    clock.advance(SignedDuration::from_mins(6));
    let ran = summaries_ran(&s.tick().await.unwrap());
    assert_eq!(ran.len(), 1, "{ran:?}");
    let detalle: String = c
        .query_one(
            "SELECT detalle FROM cantina_notify_ejecuciones WHERE programa = 'resumen_diario' AND estado <> 'omitida'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ran[0].1, Ok(0), "{detalle}");
    assert_eq!(
        detalle,
        "resumen del 23/11/2026: ya enviado antes a a***@cantinatita.com.py; rechazado antes (no se reintenta) para G***@cantinatita.com.py"
    );
    assert_eq!((smtp.count_to(ADMIN), smtp.count_to(GERENCIA)), (1, 0));
}

/// A ledger row written by hand, as a replica that died mid-run leaves it.
async fn ledger_row(c: &Client, programa: &str, estado: &str, replica: &str, iniciada_en: Timestamp) {
    c.execute(
        "INSERT INTO cantina_notify_ejecuciones (programa, programada_en, estado, replica, iniciada_en, detalle)
         VALUES ($1, $2, $3, $4, $5, 'a mano')",
        &[
            &programa,
            &std::time::SystemTime::from(at(FIRING)),
            &estado,
            &replica,
            &std::time::SystemTime::from(iniciada_en),
        ],
    )
    .await
    .unwrap();
}

fn programa_of(address: &str) -> String {
    summary::recipient_programa(&cantina_notify::domain::EmailAddress::parse(Some(address)).unwrap())
}

#[tokio::test]
async fn a_recipient_left_en_curso_by_a_restart_with_the_same_name_is_sent_once_stale() {
    let Setup { c, pool, settings, smtp, .. } = setup(STAFF).await;
    seed(&c).await;
    // The container (replica name HOSTNAME:1, the same after a restart in the pod) died while sending to the first
    // recipient, two minutes into the run; the second had been sent.
    let started = at(RUN);
    ledger_row(&c, "resumen_diario", "en_curso", "cantina-0:1", started).await;
    ledger_row(
        &c,
        &programa_of(ADMIN),
        "en_curso",
        "cantina-0:1",
        started.checked_add(SignedDuration::from_mins(2)).unwrap(),
    )
    .await;
    ledger_row(&c, &programa_of(GERENCIA), "completada", "cantina-0:1", started).await;

    // Restarted with the same name: 31 minutes on, the firing is stale and re-run, but the recipient's row is only
    // 29 minutes old. It is not known to be sent: reported as such, and the firing fails so the ledger retries it.
    let clock = FakeClock::new(started.checked_add(SignedDuration::from_mins(31)).unwrap());
    scheduler_started_before(&c, clock.now()).await;
    let s = scheduler(&settings, &pool, "cantina-0:1", clock.clone());
    let ran = summaries_ran(&s.tick().await.unwrap());
    let [(firing, Err(e))] = ran.as_slice() else { panic!("{ran:?}") };
    assert_eq!(*firing, at(FIRING));
    assert!(e.contains("en curso sin confirmar") && e.contains("para a***@cantinatita.com.py"), "{e}");
    assert!(e.contains("ya enviado antes a G***@cantinatita.com.py") && !e.contains("antes a a***"), "{e}");
    assert!(smtp.mails().is_empty());

    // The retry 6 minutes later finds the row past the stale limit and takes it over, same name or not.
    clock.advance(SignedDuration::from_mins(6));
    let ran = summaries_ran(&s.tick().await.unwrap());
    assert_eq!(ran, [(at(FIRING), Ok(1))]);
    assert_eq!((smtp.count_to(ADMIN), smtp.count_to(GERENCIA)), (1, 0));
    let estado: String = c
        .query_one(
            "SELECT estado FROM cantina_notify_ejecuciones WHERE programa = $1 AND programada_en = $2",
            &[&programa_of(ADMIN), &std::time::SystemTime::from(at(FIRING))],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(estado, "completada");
}

#[tokio::test]
async fn an_operator_pause_of_the_email_channel_holds_the_summary_until_resumed() {
    let Setup { c, pool, settings, smtp, .. } = setup(STAFF).await;
    seed(&c).await;
    c.execute(
        "INSERT INTO cantina_notify_canales_pausados (destino, motivo, pausado_por)
         VALUES ('Email', 'SMTP en mantenimiento, avisar al 0981 123 456', 'rocio')",
        &[],
    )
    .await
    .unwrap();
    let clock = FakeClock::new(at(RUN));
    scheduler_started_before(&c, clock.now()).await;
    let s = scheduler(&settings, &pool, "replica-a", clock.clone());
    let ran = summaries_ran(&s.tick().await.unwrap());
    let [(_, Err(e))] = ran.as_slice() else { panic!("{ran:?}") };
    assert!(
        e.contains(
            "no enviado a a***@cantinatita.com.py, G***@cantinatita.com.py (canal Email pausado por rocio: SMTP en \
             mantenimiento, avisar al "
        ) && e.ends_with("; se reintenta)"),
        "{e}"
    );
    assert!(!e.contains("123 456"), "the operator's reason is masked: {e}");
    let rows = c
        .query(
            "SELECT estado, detalle FROM cantina_notify_ejecuciones WHERE programa LIKE 'resumen_diario/%' ORDER BY detalle",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows.len(), 2);
    for (estado, detalle) in &rows {
        assert_eq!(estado, "fallida");
        assert!(detalle.contains(": no enviado, canal Email pausado por rocio"), "{detalle}");
    }
    // The CLI's run honours the pause too.
    let summary =
        DailySummary::new(pool.clone(), &settings.resumen_diario, 5000, &channels(&settings, &pool)).unwrap().unwrap();
    let report = summary.send_now(at(RUN)).await.unwrap();
    assert_eq!(report.pausados.len(), 2);
    assert!(!report.ok());
    assert!(smtp.mails().is_empty(), "nothing went through the paused channel");

    // Resumed: the ledger's retry sends to both.
    c.execute("DELETE FROM cantina_notify_canales_pausados WHERE destino = 'Email'", &[]).await.unwrap();
    clock.advance(SignedDuration::from_mins(6));
    let ran = summaries_ran(&s.tick().await.unwrap());
    assert_eq!(ran, [(at(FIRING), Ok(2))]);
    assert_eq!((smtp.count_to(ADMIN), smtp.count_to(GERENCIA)), (1, 1));
}

#[tokio::test]
async fn the_day_and_stats_filters_on_creation_time_can_use_an_index() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // The test table is tiny, so the planner would scan it anyway; forbid that to see whether an index exists.
    c.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan = |sql: &'static str| {
        let c = &c;
        async move {
            let rows = c.query(&format!("EXPLAIN {sql}"), &[]).await.unwrap();
            rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
        }
    };
    // The summary's day (src/scheduler/summary.rs) and the `stats` / `requests list --since` period (src/ops).
    let day = plan(
        "SELECT count(*) FROM solicitudes_notificacion
         WHERE fecha_solicitud >= '2026-11-23T03:00:00Z' AND fecha_solicitud < '2026-11-24T03:00:00Z'",
    )
    .await;
    assert!(day.contains("solicitudes_notificacion_fecha_solicitud"), "{day}");
    // `stats`'s form of coalesce(fecha_solicitud, actualizado_en) >= $1: each half has an index (migration 0013).
    let period = plan(
        "SELECT count(*) FROM solicitudes_notificacion
         WHERE fecha_solicitud >= now() - interval '1 day'
            OR (fecha_solicitud IS NULL AND actualizado_en >= now() - interval '1 day')",
    )
    .await;
    assert!(period.contains("solicitudes_notificacion_fecha_solicitud"), "{period}");
    assert!(period.contains("solicitudes_notificacion_sin_fecha"), "{period}");
    // The expression index over every row, which each insert and send wrote to, is gone.
    let gone: bool =
        c.query_one("SELECT to_regclass('solicitudes_notificacion_creada') IS NULL", &[]).await.unwrap().get(0);
    assert!(gone, "the index over coalesce(fecha_solicitud, actualizado_en) is gone");
    // The failure-rate alert's window (src/alerts.rs), by the index that holds only finished requests.
    let alert = plan(
        "SELECT destino, count(*) FROM solicitudes_notificacion
         WHERE clave_dedup IS NOT NULL AND destino IS NOT NULL AND intentos > 0 AND estado IN ('Enviado', 'Error')
           AND actualizado_en >= now() - make_interval(mins => 60)
         GROUP BY destino",
    )
    .await;
    assert!(alert.contains("solicitudes_notificacion_actualizado"), "{alert}");
}
