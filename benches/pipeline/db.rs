//! Databases in the throwaway cluster: create, seed, fill a backlog, count.

use anyhow::{Context, Result};
use cantina_notify::pg_cluster::PgCluster;
use tokio_postgres::{Client, NoTls};

pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.with_context(|| format!("connect {url}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The Cantina tables and the app_* balance triggers only: the app as it is without the service.
    Reference,
    /// The same plus the service's migrations (outbox tables and triggers).
    WithService,
}

pub struct Db {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl Db {
    /// A fresh database with `families` parents, each with one student and one card (`B1` … `B<families>`), every
    /// parent with a valid email.
    pub async fn create(cluster: &PgCluster, name: &str, schema: Schema, families: u32) -> Result<Db> {
        let admin_url = cluster.url("postgres");
        let admin = connect(&admin_url).await?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await.context("drop database")?;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.context("create database")?;
        let url = cluster.url(name);
        let mut c = connect(&url).await?;
        match schema {
            Schema::Reference => {
                c.batch_execute(cantina_notify::migrate::REFERENCE_SCHEMA).await.context("reference schema")?
            }
            Schema::WithService => {
                cantina_notify::migrate::migrate(&mut c, true).await.context("migrate --reference-schema")?;
            }
        }
        let n = families as i32;
        c.execute(
            "INSERT INTO clientes (id_cliente, nombres, apellidos, ruc_ci, email)
             SELECT g, 'Ana', 'Benítez', 'ci-' || g, 'padre' || g || '@example.com' FROM generate_series(1, $1) g",
            &[&n],
        )
        .await
        .context("seed clientes")?;
        c.execute(
            "INSERT INTO hijos (id_hijo, id_cliente_responsable, nombre, apellido)
             SELECT g, g, 'Luis', 'Benítez' FROM generate_series(1, $1) g",
            &[&n],
        )
        .await
        .context("seed hijos")?;
        c.execute(
            "INSERT INTO tarjetas (nro_tarjeta, id_hijo, saldo_actual)
             SELECT 'B' || g, g, 100000 FROM generate_series(1, $1) g",
            &[&n],
        )
        .await
        .context("seed tarjetas")?;
        c.batch_execute("VACUUM ANALYZE").await.context("vacuum analyze")?;
        Ok(Db { name: name.to_string(), url, admin_url })
    }

    /// Empties the recharge and sale tables (and the outbox) and vacuums the cards, so that every app-overhead
    /// measurement starts from the same state instead of from the previous rounds' rows and dead tuples.
    pub async fn reset_recharges(&self, schema: Schema) -> Result<()> {
        let c = self.client().await?;
        let outbox = if schema == Schema::WithService { ", cantina_notify_eventos" } else { "" };
        c.batch_execute(&format!("TRUNCATE cargas_saldo, consumos_tarjeta, autorizacion_saldo_negativo{outbox}"))
            .await
            .context("truncate")?;
        c.batch_execute("VACUUM ANALYZE tarjetas").await.context("vacuum tarjetas")?;
        c.batch_execute("CHECKPOINT").await.context("checkpoint")?;
        Ok(())
    }

    pub async fn client(&self) -> Result<Client> {
        connect(&self.url).await
    }

    /// `rows` confirmed recharges spread round-robin over the cards, `chunk` rows per statement (and transaction).
    /// The triggers fire per row, as for the POS's single-row inserts. Ends with ANALYZE, as autovacuum would have
    /// done while a real backlog built up.
    pub async fn insert_backlog(&self, families: u32, rows: u32, chunk: u32) -> Result<()> {
        let c = self.client().await?;
        let mut from = 1i32;
        while from <= rows as i32 {
            let to = (from + chunk as i32 - 1).min(rows as i32);
            c.execute(
                "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia)
                 SELECT 'B' || (1 + g % $3::int4), 10000, 'CONFIRMADO', 'bench' FROM generate_series($1::int4, $2::int4) g",
                &[&from, &to, &(families as i32)],
            )
            .await
            .context("insert backlog")?;
            from = to + 1;
        }
        c.batch_execute("ANALYZE").await.context("analyze")?;
        Ok(())
    }

    pub async fn drop(self) -> Result<()> {
        let admin = connect(&self.admin_url).await?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await.context("drop")?;
        Ok(())
    }
}

/// Where the requests are: outbox events not yet turned into requests, and requests by state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub events_pending: i64,
    pub pendiente: i64,
    pub enviado: i64,
    /// `Error` or `Omitido`: never expected here.
    pub other: i64,
}

pub async fn counts(c: &Client) -> Result<Counts> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL),
                    count(*) FILTER (WHERE estado = 'Pendiente'),
                    count(*) FILTER (WHERE estado = 'Enviado'),
                    count(*) FILTER (WHERE estado NOT IN ('Pendiente', 'Enviado'))
             FROM solicitudes_notificacion",
            &[],
        )
        .await
        .context("counts")?;
    Ok(Counts { events_pending: row.get(0), pendiente: row.get(1), enviado: row.get(2), other: row.get(3) })
}

/// Up to five reasons for requests that ended neither `Enviado` nor `Pendiente` (for the error message).
pub async fn failures(c: &Client) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT estado || ': ' || coalesce(ultimo_error, '') FROM solicitudes_notificacion
             WHERE estado NOT IN ('Pendiente', 'Enviado') LIMIT 5",
            &[],
        )
        .await
        .context("failures")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub async fn server_version(c: &Client) -> Result<String> {
    Ok(c.query_one("SHOW server_version", &[]).await.context("server_version")?.get(0))
}

/// Database-side timestamps of the recharges from `first_id` on, in ms (p50, p99 each): the recharge transaction's
/// start → the rules' transaction's start (commit, wake-up, listener), and that → the outcome transaction's start
/// (rules, claim, render, the HTTP call). Server clock; `now()` is each transaction's start.
pub async fn latency_breakdown(c: &Client, first_id: i64) -> Result<[f64; 4]> {
    let row = c
        .query_one(
            "WITH m AS (
                 SELECT extract(epoch FROM e.procesado_en - e.creado_en)::float8 * 1000 AS to_rules,
                        extract(epoch FROM s.fecha_envio - e.procesado_en)::float8 * 1000 AS to_sent
                 FROM cantina_notify_eventos e
                 JOIN solicitudes_notificacion s ON s.clave_dedup = 'recarga_exitosa:' || e.id_ref || ':email'
                 WHERE e.tipo = 'recarga_confirmada' AND e.id_ref >= $1)
             SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY to_rules), 0),
                    coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY to_rules), 0),
                    coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY to_sent), 0),
                    coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY to_sent), 0)
             FROM m",
            &[&first_id],
        )
        .await
        .context("latency breakdown")?;
    Ok([row.get(0), row.get(1), row.get(2), row.get(3)])
}

/// Diagnostics (`BENCH_PG_LOG_STATEMENTS=1`): new sessions of this database log every statement with its duration.
pub async fn log_statements(db: &Db) -> Result<()> {
    let admin = connect(&db.admin_url).await?;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {0} SET log_min_duration_statement = 0; ALTER DATABASE {0} SET log_parameter_max_length = 0",
            db.name
        ))
        .await
        .context("log statements")?;
    Ok(())
}

/// The server log's statements from byte `from` on, grouped by protocol step and text: (what, count, total ms),
/// largest total first. Wall time inside the server, commit excluded except for explicit COMMITs.
pub fn statement_profile(log: &std::path::Path, from: u64) -> Result<Vec<(String, u64, f64)>> {
    let bytes = std::fs::read(log).with_context(|| format!("read {}", log.display()))?;
    let text = String::from_utf8_lossy(bytes.get(from as usize..).unwrap_or_default());
    let mut groups: std::collections::HashMap<String, (u64, f64)> = std::collections::HashMap::new();
    let mut current: Option<(String, f64)> = None;
    let mut flush = |current: &mut Option<(String, f64)>| {
        if let Some((what, ms)) = current.take() {
            let mut what: String = what.split_whitespace().collect::<Vec<_>>().join(" ");
            if let Some((cut, _)) = what.char_indices().nth(110) {
                what.truncate(cut);
            }
            let entry = groups.entry(what).or_default();
            entry.0 += 1;
            entry.1 += ms;
        }
    };
    for line in text.lines() {
        if let Some(cont) = line.strip_prefix('\t') {
            if let Some((what, _)) = current.as_mut() {
                what.push(' ');
                what.push_str(cont);
            }
            continue;
        }
        flush(&mut current);
        let Some(rest) = line.split_once("LOG:  duration: ").map(|(_, r)| r) else { continue };
        let Some((ms, what)) = rest.split_once(" ms  ") else { continue };
        let Ok(ms) = ms.parse::<f64>() else { continue };
        // "execute s12: SELECT …" → "execute: SELECT …" (statement names differ per connection).
        let what = match what.split_once(": ") {
            Some((step, sql)) => format!("{}: {sql}", step.split_whitespace().next().unwrap_or(step)),
            None => what.to_string(),
        };
        current = Some((what, ms));
    }
    flush(&mut current);
    let mut out: Vec<(String, u64, f64)> = groups.into_iter().map(|(k, (n, ms))| (k, n, ms)).collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(out)
}

/// Outbox events and requests not finished yet; both through partial indexes, so cheap when few are left.
pub async fn unfinished(c: &Client) -> Result<i64> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL)
                  + (SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Pendiente' AND clave_dedup IS NOT NULL)",
            &[],
        )
        .await
        .context("unfinished")?;
    Ok(row.get(0))
}

/// Outbox events not yet turned into requests (the partial index of pending events).
pub async fn outbox_pending(c: &Client) -> Result<i64> {
    let row = c
        .query_one("SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL", &[])
        .await
        .context("outbox pending")?;
    Ok(row.get(0))
}

/// Seconds ago that autovacuum last analyzed / vacuumed the requests table (`None`: never). The dispatcher's claim
/// plan depends on those statistics, so the drain's speed depends on when autovacuum got to it.
pub async fn autovacuum_ago(c: &Client) -> Result<(Option<f64>, Option<f64>)> {
    let row = c
        .query_one(
            "SELECT extract(epoch FROM now() - last_autoanalyze)::float8, extract(epoch FROM now() - last_autovacuum)::float8
             FROM pg_stat_user_tables WHERE relname = 'solicitudes_notificacion'",
            &[],
        )
        .await
        .context("autovacuum")?;
    Ok((row.get(0), row.get(1)))
}
