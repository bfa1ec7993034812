//! The three sweeps. Each reads the Cantina tables as of now, builds the requests for the firing instant `at`
//! and inserts them with `ON CONFLICT (clave_dedup) DO NOTHING`: the keys are derived from the firing (local
//! date, ISO week, days since the authorisation), so running a sweep again, on another replica, from the CLI, or
//! after a trigger already notified the same crossing, creates nothing new.

use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Pool};
use jiff::Timestamp;

use super::SweepKind;
use crate::config::RulesConfig;
use crate::db::DbError;
use crate::domain::{Guaranies, NotificationType};
use crate::rules::{MessageData, NewRequest, NivelRecordatorio, Notice, Parent, TurnedOff, local_date, local_datetime};

/// Days after the authorisation at which a `recordatorio_deuda` goes out.
pub const REMINDER_DAYS: [i32; 3] = [3, 7, 15];
/// A sale must be at least this old for the weekly `cuenta_pendiente` reminder.
pub const PENDING_SALE_MIN_DAYS: i64 = 7;

/// Runs one sweep for the firing instant `at` in one transaction; returns the number of requests created.
pub async fn sweep(pool: &Pool, rules: &RulesConfig, kind: SweepKind, at: Timestamp) -> Result<usize, DbError> {
    crate::db::guarded(async {
        let mut conn = pool.get().await?;
        let tx = conn.transaction().await?;
        let requests = match kind {
            SweepKind::SaldoBajo => saldo_bajo(&tx, rules, at).await?,
            SweepKind::CuentaPendiente => cuenta_pendiente(&tx, rules, at).await?,
            SweepKind::RecordatorioDeuda => recordatorio_deuda(&tx, rules, at).await?,
        };
        let n = insert_requests(&tx, requests).await?;
        tx.commit().await?;
        Ok(n)
    })
    .await
}

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn parent_from(r: &tokio_postgres::Row, first: usize) -> Parent {
    Parent {
        id_cliente: r.get(first),
        nombres: r.get(first + 1),
        apellidos: r.get(first + 2),
        email: r.get(first + 3),
        telefono: r.get(first + 4),
        activo: true,
    }
}

fn per_channel(
    rules: &RulesConfig,
    tipo: NotificationType,
    key_prefix: &str,
    parent: &Parent,
    nro_tarjeta: Option<&str>,
    saldo: Option<Guaranies>,
    data: &MessageData,
) -> Vec<NewRequest> {
    let notice = Notice {
        tipo,
        key_prefix: key_prefix.to_string(),
        parent,
        nro_tarjeta: nro_tarjeta.map(str::to_string),
        saldo,
        data: data.clone(),
    };
    // Preferences (issue 4 point 2) are not applied by the sweeps yet.
    notice.requests(rules.channels_for(tipo), &TurnedOff::new())
}

const SALDO_BAJO: &str = "
    SELECT t.nro_tarjeta, t.saldo_actual, CASE WHEN t.saldo_alerta > 0 THEN t.saldo_alerta ELSE $1 END,
           t.ultima_notificacion_saldo, h.nombre, h.apellido,
           c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono
    FROM tarjetas t
    JOIN hijos h ON h.id_hijo = t.id_hijo
    JOIN clientes c ON c.id_cliente = h.id_cliente_responsable
    WHERE t.estado = 'Activa' AND coalesce(t.notificar_saldo_bajo, true) AND coalesce(c.activo, true)
      AND t.saldo_actual < CASE WHEN t.saldo_alerta > 0 THEN t.saldo_alerta ELSE $1 END
    ORDER BY c.id_cliente, t.nro_tarjeta";

/// Cards under their threshold with no low-balance notice on the firing's local date. One request per card and
/// channel, keyed `saldo_bajo:<card>:<local date>:<channel>` like the trigger's.
async fn saldo_bajo(tx: &impl GenericClient, rules: &RulesConfig, at: Timestamp) -> Result<Vec<NewRequest>, DbError> {
    let today = local_date(at);
    let fecha = local_datetime(at);
    let mut out = Vec::new();
    for r in tx.query(SALDO_BAJO, &[&rules.umbral_saldo_bajo]).await? {
        let nro_tarjeta: String = r.get(0);
        let saldo: i64 = r.get(1);
        let umbral: i64 = r.get(2);
        if r.get::<_, Option<SystemTime>>(3).map(ts).is_some_and(|t| local_date(t) == today) {
            continue;
        }
        let nombre: String = r.get(4);
        let apellido: String = r.get(5);
        let parent = parent_from(&r, 6);
        let data = MessageData::SaldoBajo {
            padre: parent.nombres.trim().to_string(),
            alumno: format!("{} {}", nombre.trim(), apellido.trim()),
            nro_tarjeta: nro_tarjeta.clone(),
            saldo: Guaranies(saldo),
            umbral: Guaranies(umbral),
            fecha: fecha.clone(),
        };
        out.extend(per_channel(
            rules,
            NotificationType::SaldoBajo,
            &format!("saldo_bajo:{nro_tarjeta}:{today}"),
            &parent,
            Some(&nro_tarjeta),
            Some(Guaranies(saldo)),
            &data,
        ));
    }
    Ok(out)
}

const CUENTA_PENDIENTE: &str = "
    SELECT c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono, c.razon_social, c.ruc_ci,
           sum(v.saldo_pendiente)::int8, count(*), min(v.fecha)
    FROM ventas v
    JOIN clientes c ON c.id_cliente = v.id_cliente
    WHERE v.estado = 'PROCESADO' AND v.estado_pago IN ('PENDIENTE', 'PARCIAL') AND coalesce(c.activo, true)
    GROUP BY c.id_cliente
    HAVING sum(v.saldo_pendiente) > 0 AND bool_or(v.saldo_pendiente > 0 AND v.fecha <= $1)
    ORDER BY c.id_cliente";

/// Clients whose debt includes a sale at least 7 days old at the firing; the amount is the whole debt. Keyed by
/// the firing's ISO week: `cuenta_pendiente:<id_cliente>:<2026-W48>:<channel>`.
async fn cuenta_pendiente(
    tx: &impl GenericClient,
    rules: &RulesConfig,
    at: Timestamp,
) -> Result<Vec<NewRequest>, DbError> {
    let cutoff =
        SystemTime::from(at.checked_sub(jiff::SignedDuration::from_hours(24 * PENDING_SALE_MIN_DAYS)).unwrap_or(at));
    let week = local_date(at).iso_week_date();
    let week = format!("{:04}-W{:02}", week.year(), week.week());
    let mut out = Vec::new();
    for r in tx.query(CUENTA_PENDIENTE, &[&cutoff]).await? {
        let parent = parent_from(&r, 0);
        let razon_social: Option<String> = r.get(5);
        let cliente = razon_social
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("{} {}", parent.nombres.trim(), parent.apellidos.trim()));
        let monto = Guaranies(r.get(7));
        let desde = ts(r.get(9)).to_zoned(super::asuncion()).strftime("%d/%m/%Y").to_string();
        let data = MessageData::CuentaPendiente {
            padre: parent.nombres.trim().to_string(),
            cliente,
            ruc_ci: r.get::<_, String>(6),
            monto,
            ventas: r.get(8),
            desde,
        };
        out.extend(per_channel(
            rules,
            NotificationType::CuentaPendiente,
            &format!("cuenta_pendiente:{}:{week}", parent.id_cliente),
            &parent,
            None,
            Some(monto),
            &data,
        ));
    }
    Ok(out)
}

const RECORDATORIO_DEUDA: &str = "
    SELECT a.id_autorizacion, a.nro_tarjeta, a.fecha_autorizacion, t.saldo_actual, a.saldo_resultante,
           h.nombre, h.apellido,
           c.id_cliente, c.nombres, c.apellidos, c.email, c.telefono
    FROM autorizacion_saldo_negativo a
    JOIN tarjetas t ON t.nro_tarjeta = a.nro_tarjeta
    JOIN hijos h ON h.id_hijo = t.id_hijo
    JOIN clientes c ON c.id_cliente = h.id_cliente_responsable
    WHERE NOT coalesce(a.regularizado, false) AND a.fecha_autorizacion IS NOT NULL AND coalesce(c.activo, true)
      AND a.fecha_autorizacion BETWEEN $1 AND $2
    ORDER BY a.id_autorizacion";

/// Unregularised authorisations whose age in local days is exactly 3, 7 or 15 on the firing's date. Keyed
/// `recordatorio_deuda:<id_autorizacion>:<dias>:<channel>`. The amount is the card's negative balance (or, if
/// the card is already back above zero but the authorisation is still open, the authorised negative balance).
async fn recordatorio_deuda(
    tx: &impl GenericClient,
    rules: &RulesConfig,
    at: Timestamp,
) -> Result<Vec<NewRequest>, DbError> {
    let today = local_date(at);
    let fecha = local_datetime(at);
    // A generous window in instants; the exact local-day count is checked below.
    let from = SystemTime::from(at.checked_sub(jiff::SignedDuration::from_hours(24 * 17)).unwrap_or(at));
    let to = SystemTime::from(at.checked_sub(jiff::SignedDuration::from_hours(24)).unwrap_or(at));
    let mut out = Vec::new();
    for r in tx.query(RECORDATORIO_DEUDA, &[&from, &to]).await? {
        let id: i64 = r.get(0);
        let nro_tarjeta: String = r.get(1);
        let autorizada = local_date(ts(r.get(2)));
        let Ok(span) = autorizada.until((jiff::Unit::Day, today)) else { continue };
        let dias = span.get_days();
        if !REMINDER_DAYS.contains(&dias) {
            continue;
        }
        let saldo: i64 = r.get(3);
        let resultante: Option<i64> = r.get(4);
        let monto = if saldo < 0 { -saldo } else { resultante.filter(|s| *s < 0).map_or(0, |s| -s) };
        let parent = parent_from(&r, 7);
        let nombre: String = r.get(5);
        let apellido: String = r.get(6);
        let data = MessageData::RecordatorioDeuda {
            padre: parent.nombres.trim().to_string(),
            alumno: format!("{} {}", nombre.trim(), apellido.trim()),
            nro_tarjeta: nro_tarjeta.clone(),
            monto: Guaranies(monto),
            dias,
            nivel: NivelRecordatorio::for_days(dias),
            fecha: fecha.clone(),
        };
        out.extend(per_channel(
            rules,
            NotificationType::RecordatorioDeuda,
            &format!("recordatorio_deuda:{id}:{dias}"),
            &parent,
            Some(&nro_tarjeta),
            Some(Guaranies(saldo)),
            &data,
        ));
    }
    Ok(out)
}

/// The drain's insert: one statement, `ON CONFLICT (clave_dedup) DO NOTHING`; returns how many were new.
pub async fn insert_requests(tx: &impl GenericClient, requests: Vec<NewRequest>) -> Result<usize, DbError> {
    Ok(crate::events::drain::insert_requests(tx, requests).await?.len())
}
