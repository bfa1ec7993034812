//! `cantina-notify migrate`: applies `sql/migrations` in order, once each, under an advisory lock so replicas
//! starting together do not race. `--reference-schema` first creates the Cantina tables (dev and test databases).

use tokio_postgres::Client;

/// The Cantina Tita tables, for databases that do not have them (tests, demo, benchmarks).
pub const REFERENCE_SCHEMA: &str = include_str!("../sql/reference/cantina_schema.sql");

/// The service's own migrations: (version, name, SQL). Only ever append to this list.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "tablas_servicio", include_str!("../sql/migrations/0001_tablas_servicio.sql")),
    (2, "disparadores", include_str!("../sql/migrations/0002_disparadores.sql")),
    (3, "indice_proveedor", include_str!("../sql/migrations/0003_indice_proveedor.sql")),
    (4, "ledger", include_str!("../sql/migrations/0004_ledger.sql")),
    (5, "preferencias", include_str!("../sql/migrations/0005_preferencias.sql")),
    (6, "bajas_y_respaldo", include_str!("../sql/migrations/0006_bajas_y_respaldo.sql")),
];

/// Arbitrary but fixed: every replica must use the same key.
const MIGRATION_LOCK_KEY: i64 = 0x0063_616e_7469_6e61; // "cantina"

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "the Cantina tables are missing (no solicitudes_notificacion): is DATABASE_URL the Cantina database? For an empty dev/test database use `migrate --reference-schema`"
    )]
    NoCantinaTables,
    #[error("migration {version} ({name}) failed: {source}")]
    Migration { version: i32, name: &'static str, source: tokio_postgres::Error },
    #[error("database is not migrated: {0} migration(s) pending; run `cantina-notify migrate` first")]
    Pending(usize),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    pub reference_schema: bool,
    pub applied: Vec<i32>,
    pub already: usize,
}

pub async fn migrate(client: &mut Client, reference_schema: bool) -> Result<MigrateReport, MigrateError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    let result = migrate_locked(client, reference_schema).await;
    // Unlock even after a failure; if this fails too, closing the session releases the lock.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
    result
}

async fn migrate_locked(client: &mut Client, reference_schema: bool) -> Result<MigrateReport, MigrateError> {
    let mut report = MigrateReport { reference_schema, ..Default::default() };
    if reference_schema {
        client.batch_execute(REFERENCE_SCHEMA).await?;
    }
    let has_cantina: bool =
        client.query_one("SELECT to_regclass('solicitudes_notificacion') IS NOT NULL", &[]).await?.get(0);
    if !has_cantina {
        return Err(MigrateError::NoCantinaTables);
    }
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS cantina_notify_migraciones (
                 version     integer PRIMARY KEY,
                 nombre      text NOT NULL,
                 aplicada_en timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    // Versions newer than this build are fine: migrations only add, so an older build keeps working.
    let applied = applied_versions(client).await?;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            report.already += 1;
            continue;
        }
        let tx = client.transaction().await?;
        let wrap = |source| MigrateError::Migration { version: *version, name, source };
        // Altering an app table waits for its lock; never for long, or every POS transaction queues behind us.
        tx.batch_execute("SET LOCAL lock_timeout = '10s'").await.map_err(wrap)?;
        tx.batch_execute(sql).await.map_err(wrap)?;
        tx.execute("INSERT INTO cantina_notify_migraciones (version, nombre) VALUES ($1, $2)", &[version, name])
            .await
            .map_err(wrap)?;
        tx.commit().await.map_err(wrap)?;
        tracing::info!(version, name, "migration applied");
        report.applied.push(*version);
    }
    Ok(report)
}

async fn applied_versions(client: &Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    let rows = client.query("SELECT version FROM cantina_notify_migraciones ORDER BY version", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// `run` refuses to start on a database that is not fully migrated, with the command to fix it.
pub async fn ensure_migrated(client: &Client) -> Result<(), MigrateError> {
    let exists: bool =
        client.query_one("SELECT to_regclass('cantina_notify_migraciones') IS NOT NULL", &[]).await?.get(0);
    let applied = if exists { applied_versions(client).await? } else { Vec::new() };
    let pending = MIGRATIONS.iter().filter(|(v, _, _)| !applied.contains(v)).count();
    if pending > 0 { Err(MigrateError::Pending(pending)) } else { Ok(()) }
}
