//! `cantina-notify demo`: the whole flow on sample data in one command. Uses `DATABASE_URL` if set (a dev
//! database: it adds the reference schema if missing and a few sample rows), otherwise a throwaway PostgreSQL
//! from the installed server binaries, removed at the end. A development tool, not part of the service.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::app::Application;
use crate::config::{DatabaseUrl, RulesSettings, Settings};
use crate::pg_cluster::PgCluster;
use crate::requests::staff;

pub async fn run(mut settings: Settings) -> anyhow::Result<ExitCode> {
    let mut cluster = None;
    let url = match &settings.database.url {
        Some(u) => {
            println!("Usando DATABASE_URL ({})", u.masked());
            u.expose().to_string()
        }
        None => {
            println!("Iniciando un PostgreSQL temporal…");
            let c = tokio::task::spawn_blocking(PgCluster::start).await??;
            let admin = crate::db::connect(&c.url("postgres"), "cantina-notify-demo").await?;
            admin.batch_execute("CREATE DATABASE cantina_demo").await?;
            let url = c.url("cantina_demo");
            cluster = Some(c);
            url
        }
    };
    let result = demo(&mut settings, &url).await;
    if let Some(mut c) = cluster {
        tokio::task::spawn_blocking(move || c.stop()).await?;
        println!("PostgreSQL temporal detenido y eliminado.");
    }
    result.map(|()| ExitCode::SUCCESS)
}

async fn demo(settings: &mut Settings, url: &str) -> anyhow::Result<()> {
    settings.database.url = Some(DatabaseUrl::new(url));
    settings.database.listen_url = None;
    settings.http.addr = "127.0.0.1:0".into();
    settings.email.backend = "console".into();
    settings.rules = RulesSettings::default();
    // The demo shows the event flow; the sweeps would add notices depending on the time of day.
    settings.scheduler.enabled = false;
    if settings.database.signing_key.is_none() {
        // The demo's own requests only: a key for this run.
        let key: String = (0..48).map(|_| fastrand::alphanumeric()).collect();
        settings.database.signing_key = Some(crate::config::Secret::new(key));
    }

    let mut client = crate::db::connect(url, "cantina-notify-demo").await?;
    crate::migrate::migrate(&mut client, true).await.context("creating the schema")?;
    let suffix = format!("{:04}", fastrand::u16(..10_000));
    let (card, other) = seed(&client, &suffix).await?;
    println!("Datos de ejemplo: familia Benítez (tarjeta {card}, saldo Gs. 12.000) y familia Ortiz.\n");

    let app = Application::build(settings.clone(), None).await?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));

    println!("1) La cantina confirma una recarga de Gs. 50.000 para Luis Benítez:\n");
    client
        .execute(
            "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia) VALUES ($1, 50000, 'CONFIRMADO', 'Caja 1')",
            &[&card],
        )
        .await?;
    wait_sent(&client, &card, "recarga_exitosa").await?;

    println!("\n2) Luis compra el almuerzo por Gs. 58.000 y su saldo baja de Gs. 5.000:\n");
    client
        .execute(
            "INSERT INTO consumos_tarjeta (nro_tarjeta, monto_consumido, detalle) VALUES ($1, 58000, 'Almuerzo')",
            &[&card],
        )
        .await?;
    wait_sent(&client, &card, "saldo_bajo").await?;

    println!("\n3) Se confirma una recarga para Sofía Ortiz, cuyo padre no tiene correo registrado:\n");
    client
        .execute(
            "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia) VALUES ($1, 20000, 'CONFIRMADO', 'Caja 1')",
            &[&other],
        )
        .await?;
    let reason = wait_failed(&client, &other).await?;
    println!("   No se envía: la solicitud queda en estado Error con el motivo «{reason}».");

    println!("\nsolicitudes_notificacion de la tarjeta {card}:");
    for r in staff::demo_card_requests(&client, &card).await? {
        let (id, tipo, destino, estado, fecha, mensaje) = (r.id, r.tipo, r.destino, r.estado, r.enviada, r.mensaje);
        println!(
            "  #{id} {tipo:<16} {destino:<6} {estado:<8} {}  {}",
            fecha.unwrap_or_default(),
            mensaje.unwrap_or_default()
        );
    }
    shutdown.cancel();
    running.await??;
    println!("\nDemo terminada.");
    Ok(())
}

/// Two families; returns the demo card and the other family's card.
async fn seed(client: &tokio_postgres::Client, suffix: &str) -> anyhow::Result<(String, String)> {
    let mut cards = Vec::new();
    for (nombres, apellidos, email, telefono, hijo, saldo) in [
        ("Ana", "Benítez", Some("ana.benitez@example.com"), Some("0981 123456"), "Luis", 12_000i64),
        ("Carlos", "Ortiz", None, Some("021 555 123"), "Sofía", 30_000),
    ] {
        let id_cliente: i32 = client
            .query_one(
                "INSERT INTO clientes (nombres, apellidos, ruc_ci, email, telefono) VALUES ($1, $2, $3, $4, $5) RETURNING id_cliente",
                &[&nombres, &apellidos, &format!("demo-{apellidos}-{suffix}"), &email, &telefono],
            )
            .await?
            .get(0);
        let id_hijo: i32 = client
            .query_one(
                "INSERT INTO hijos (id_cliente_responsable, nombre, apellido, grado) VALUES ($1, $2, $3, '3er grado') RETURNING id_hijo",
                &[&id_cliente, &hijo, &apellidos],
            )
            .await?
            .get(0);
        let nro = format!("D{suffix}-{}", &hijo[..1]);
        client
            .execute(
                "INSERT INTO tarjetas (nro_tarjeta, id_hijo, saldo_actual) VALUES ($1, $2, $3)",
                &[&nro, &id_hijo, &saldo],
            )
            .await?;
        cards.push(nro);
    }
    let other = cards.pop().unwrap_or_default();
    let card = cards.pop().unwrap_or_default();
    Ok((card, other))
}

/// Waits for the request of `card` to be recorded as `Error` and returns its reason.
async fn wait_failed(client: &tokio_postgres::Client, card: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(reason) = staff::demo_card_error(client, card).await? {
            return Ok(reason.unwrap_or_default());
        }
        if Instant::now() > deadline {
            bail!("the request for card {card} was not recorded within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_sent(client: &tokio_postgres::Client, card: &str, tipo: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (sent, failed, error) = staff::demo_card_outcomes(client, card, tipo).await?;
        if sent > 0 {
            return Ok(());
        }
        if failed > 0 {
            bail!("the {tipo} notice failed: {}", error.unwrap_or_default());
        }
        if Instant::now() > deadline {
            bail!("no {tipo} notice was sent within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
