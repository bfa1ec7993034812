//! `cantina-notify migrate`: applies `sql/migrations` in order, once each, under an advisory lock so replicas
//! starting together do not race. `--reference-schema` first creates the Cantina tables (dev and test databases).
//! With a runtime role configured, every run ends by setting that role's privileges (`sql/grants/runtime.sql`).

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
    (7, "historial", include_str!("../sql/migrations/0007_historial.sql")),
    (8, "pausas", include_str!("../sql/migrations/0008_pausas.sql")),
    (9, "indice_fecha_solicitud", include_str!("../sql/migrations/0009_indice_fecha_solicitud.sql")),
    (10, "despertar_por_bloqueo", include_str!("../sql/migrations/0010_despertar_por_bloqueo.sql")),
    (11, "historial_propio", include_str!("../sql/migrations/0011_historial_propio.sql")),
    (12, "historial_alta_propia", include_str!("../sql/migrations/0012_historial_alta_propia.sql")),
    (13, "indices_parciales", include_str!("../sql/migrations/0013_indices_parciales.sql")),
    (14, "recarga_sin_search_path", include_str!("../sql/migrations/0014_recarga_sin_search_path.sql")),
    (15, "disparadores_sin_search_path", include_str!("../sql/migrations/0015_disparadores_sin_search_path.sql")),
    (16, "historial_sin_search_path", include_str!("../sql/migrations/0016_historial_sin_search_path.sql")),
    (17, "bajas_orden", include_str!("../sql/migrations/0017_bajas_orden.sql")),
    (18, "firma_solicitudes", include_str!("../sql/migrations/0018_firma_solicitudes.sql")),
    (19, "historial_solo_servicio", include_str!("../sql/migrations/0019_historial_solo_servicio.sql")),
    (20, "historial_por_funciones", include_str!("../sql/migrations/0020_historial_por_funciones.sql")),
    (21, "estado_canales", include_str!("../sql/migrations/0021_estado_canales.sql")),
    (22, "preferencias_cliente", include_str!("../sql/migrations/0022_preferencias_cliente.sql")),
    (23, "mensaje_diario", include_str!("../sql/migrations/0023_mensaje_diario.sql")),
];

/// Run after every migration run, so a function a later migration adds is covered without anyone remembering:
/// nobody calls the service's SECURITY DEFINER functions directly (triggers fire them without an EXECUTE check),
/// so PUBLIC's default EXECUTE on them goes. Returns how many functions it revoked from.
const LOCK_DOWN_DEFINER_FUNCTIONS: &str = "
    DO $lock$
    DECLARE
        f regprocedure;
    BEGIN
        FOR f IN
            SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = pg_catalog.current_schema()::regnamespace AND p.prosecdef
              AND p.proname LIKE 'cantina\\_notify\\_%'
        LOOP
            EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        END LOOP;
    END $lock$";

/// The runtime role's privileges, re-applied at the end of every run that names a runtime role.
pub const RUNTIME_GRANTS: &str = include_str!("../sql/grants/runtime.sql");

/// Arbitrary but fixed: every replica must use the same key.
const MIGRATION_LOCK_KEY: i64 = 0x0063_616e_7469_6e61; // "cantina"

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "the Cantina tables are missing (no solicitudes_notificacion): is DATABASE_URL the Cantina database? For an empty dev/test database use `migrate --reference-schema`"
    )]
    NoCantinaTables,
    // The tokio-postgres errors are described in the messages (the server's words) and not exposed as sources,
    // whose text would repeat them after a bare `db error`.
    #[error("migration {version} ({name}) failed: {}", crate::db::describe(.error))]
    Migration { version: i32, name: &'static str, error: tokio_postgres::Error },
    #[error("granting the runtime role {role} its privileges failed: {}", grant_failure(.error))]
    Grants { role: String, error: tokio_postgres::Error },
    #[error("database is not migrated: {0} migration(s) pending; run `cantina-notify migrate` first")]
    Pending(usize),
    #[error("database error: {}", crate::db::describe(.0))]
    Db(tokio_postgres::Error),
    /// 42501 while changing the schema: typically the service's runtime role given to `migrate`.
    #[error(
        "{cause}: migrate connected as {role}, which may not change the schema; run migrate as the owner of the Cantina tables (a role that can create in schema public and alter the Cantina tables), not as the service's runtime role: see docs/exactly-once.md#database-roles"
    )]
    NotOwner { role: String, cause: String },
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Db(e)
    }
}

impl MigrateError {
    /// The error a schema change fails with when the role lacks the privilege, as the server said it.
    fn insufficient_privilege(&self) -> Option<String> {
        let e = match self {
            MigrateError::Migration { error, .. } | MigrateError::Db(error) => error,
            _ => return None,
        };
        (e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)).then(|| self.to_string())
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    pub reference_schema: bool,
    /// The role running `migrate` is a superuser: the trigger functions it creates run with a superuser's rights.
    pub as_superuser: Option<String>,
    pub applied: Vec<i32>,
    pub already: usize,
    /// The runtime role whose privileges this run set, if one was named.
    pub granted_to: Option<String>,
}

/// The server's message and, when the grants script gave one, its hint (how to create a missing role).
fn grant_failure(e: &tokio_postgres::Error) -> String {
    let mut text = crate::db::describe(e);
    if let Some(hint) = e.as_db_error().and_then(|d| d.hint()) {
        text.push_str("; hint: ");
        text.push_str(hint);
    }
    text
}

/// The runtime role to grant to: `migrate --grant-to` wins over CANTINA__DATABASE__RUNTIME_ROLE; blank means none.
pub fn runtime_role<'a>(flag: Option<&'a str>, setting: Option<&'a str>) -> Option<&'a str> {
    flag.or(setting).map(str::trim).filter(|r| !r.is_empty())
}

pub async fn migrate(client: &mut Client, reference_schema: bool) -> Result<MigrateReport, MigrateError> {
    migrate_and_grant(client, reference_schema, None).await
}

/// [`migrate`], then (under the same lock) the runtime role's privileges when `runtime_role` names one.
pub async fn migrate_and_grant(
    client: &mut Client,
    reference_schema: bool,
    runtime_role: Option<&str>,
) -> Result<MigrateReport, MigrateError> {
    // `DROP … IF EXISTS` on a fresh database makes the server send `NOTICE: … does not exist, skipping`, which
    // tokio-postgres logs at INFO: noise for the operator. Warnings (sql/grants/runtime.sql raises one) still show.
    client.batch_execute("SET client_min_messages = warning").await?;
    // Asked now: after a failed migration the session may be in an aborted transaction.
    let connected_as: String = client.query_one("SELECT current_user::text", &[]).await?.get(0);
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    let mut result = migrate_locked(client, reference_schema).await;
    if let (Ok(report), Some(role)) = (&mut result, runtime_role) {
        match grant_runtime(client, role).await {
            Ok(()) => report.granted_to = Some(role.to_string()),
            Err(error) => result = Err(MigrateError::Grants { role: role.to_string(), error }),
        }
    }
    // Unlock even after a failure; if this fails too, closing the session releases the lock.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
    match result {
        Err(e) => match e.insufficient_privilege() {
            Some(cause) => Err(MigrateError::NotOwner { role: connected_as, cause }),
            None => Err(e),
        },
        ok => ok,
    }
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
    let superuser: Option<String> = client
        .query_one(
            "SELECT CASE WHEN r.rolsuper THEN r.rolname::text END FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await?
        .get(0);
    if let Some(role) = &superuser {
        tracing::warn!(
            role = role.as_str(),
            "migrate is running as a superuser: the service's trigger functions will run with a superuser's rights; \
             run migrate as the owner of the Cantina tables instead (docs/exactly-once.md, Database roles)"
        );
    }
    report.as_superuser = superuser;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            report.already += 1;
            continue;
        }
        let tx = client.transaction().await?;
        let wrap = |error| MigrateError::Migration { version: *version, name, error };
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
    client.batch_execute(LOCK_DOWN_DEFINER_FUNCTIONS).await?;
    Ok(report)
}

/// Sets `role`'s privileges to exactly those of `sql/grants/runtime.sql`, in one transaction. The name travels as a
/// setting, never spliced into SQL here; the script quotes it with `%I`.
async fn grant_runtime(client: &mut Client, role: &str) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // Revoking and granting touch the catalog only, but never queue the POS behind a long lock wait.
    tx.batch_execute("SET LOCAL lock_timeout = '10s'").await?;
    tx.execute("SELECT set_config('cantina_notify.rol_ejecucion', $1, true)", &[&role]).await?;
    tx.batch_execute(RUNTIME_GRANTS).await?;
    tx.commit().await?;
    tracing::info!(role, "runtime role privileges applied");
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_overrides_the_setting_and_blank_means_none() {
        assert_eq!(runtime_role(None, None), None);
        assert_eq!(runtime_role(None, Some("cantina_notify_app")), Some("cantina_notify_app"));
        assert_eq!(runtime_role(Some("otro"), Some("cantina_notify_app")), Some("otro"));
        assert_eq!(runtime_role(Some(" otro "), None), Some("otro"));
        assert_eq!(runtime_role(None, Some("  ")), None);
    }

    /// A table a migration creates must be weighed in the grants file (granted, or named as getting nothing), so a
    /// new table is not silently left unreachable for the runtime role.
    #[test]
    fn every_table_the_migrations_create_is_named_in_the_grants() {
        let mut tables = Vec::new();
        for (_, _, sql) in MIGRATIONS {
            for part in sql.split("CREATE TABLE IF NOT EXISTS ").skip(1) {
                let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                tables.push(name);
            }
        }
        assert!(tables.iter().any(|t| t == "cantina_notify_eventos"), "{tables:?}");
        for t in &tables {
            assert!(RUNTIME_GRANTS.contains(&format!("'{t}'")) || RUNTIME_GRANTS.contains(&format!("{t},")), "{t}");
        }
    }

    #[test]
    fn the_role_name_is_only_spliced_quoted() {
        // Every format() that builds a GRANT or REVOKE takes the role as %I, never %s or by concatenation.
        for line in RUNTIME_GRANTS.lines().filter(|l| l.contains("format(") && l.contains(" rol")) {
            assert!(line.contains("%I"), "{line}");
        }
        assert!(!RUNTIME_GRANTS.contains("|| rol"), "the role is never concatenated into SQL");
    }
}
