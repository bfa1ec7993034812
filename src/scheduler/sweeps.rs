//! The three sweeps. Each reads the Cantina tables as of now, builds the requests for the firing instant `at`
//! and inserts them with `ON CONFLICT (clave_dedup) DO NOTHING`: the keys are derived from the firing (local
//! date, ISO week, days since the authorisation), so running a sweep again, on another replica, from the CLI, or
//! after a trigger already notified the same crossing, creates nothing new. Like the rules, the sweeps honour the
//! portal preferences: a channel the parent turned off for the type gets a request recorded `Omitido` with the
//! reason (the drain's own query, [`crate::cantina::preferences::turned_off`]).

use std::collections::HashSet;
use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Pool};
use jiff::Timestamp;

use super::SweepKind;
use crate::config::RulesConfig;
use crate::db::DbError;
use crate::domain::{Guaranies, NotificationType};
use crate::rules::{
    AvisoSaldoBajo, MessageData, NewRequest, NivelRecordatorio, Notice, Parent, TarjetaSaldoBajo, local_date,
    local_datetime,
};

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
            SweepKind::ConsumoRealizado => super::spending::consumo_realizado(&tx, rules, at).await?,
            SweepKind::ResumenConsumos => super::spending::resumen_consumos(&tx, rules, at).await?,
            // Deletes rather than creates: scheduler::cleanup, which the scheduler and the CLI call instead.
            SweepKind::Limpieza => Vec::new(),
            // Sends an email instead: scheduler::summary.
            SweepKind::ResumenDiario => Vec::new(),
        };
        let n = insert_requests(&tx, &rules.signer, requests).await?;
        tx.commit().await?;
        Ok(n)
    })
    .await
}

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A notice a sweep decided on, before the configured channels and the parent's preferences make it requests.
struct Found {
    tipo: NotificationType,
    /// The dedup key without the channel.
    key_prefix: String,
    parent: Parent,
    nro_tarjeta: Option<String>,
    saldo: Option<Guaranies>,
    data: MessageData,
}

/// The requests of the notices, per configured channel; the preferences of all their clients in one query.
async fn requests(tx: &impl GenericClient, rules: &RulesConfig, found: Vec<Found>) -> Result<Vec<NewRequest>, DbError> {
    let mut clients: Vec<i32> = found.iter().map(|f| f.parent.id_cliente).collect();
    clients.sort_unstable();
    clients.dedup();
    let turned_off = crate::cantina::preferences::turned_off(tx, &clients, &rules.preference_defaults).await?;
    Ok(found
        .into_iter()
        .flat_map(|Found { tipo, key_prefix, parent, nro_tarjeta, saldo, data }| {
            Notice { tipo, key_prefix, parent: &parent, nro_tarjeta, saldo, data }
                .requests(rules.channels_for(tipo), &turned_off)
        })
        .collect())
}

/// Cards under their threshold that had no low-balance notice on the firing's local date: not stamped today
/// (`ultima_notificacion_saldo`, set when a notice went out), and not in any request of today (a trigger's notice
/// still pending, or a sweep's notice to a parent the card belonged to). One notice per parent listing all of
/// their cards (first card = the row's `nro_tarjeta` and `saldo_alerta`), keyed
/// `saldo_bajo:cliente:<id_cliente>:<local date>:<channel>`: whatever the cards, a parent gets at most one sweep
/// notice a day, so a second run (CLI, another replica, catch-up) creates nothing even when more cards fell low
/// since (those crossings have the trigger's own notice).
async fn saldo_bajo(tx: &impl GenericClient, rules: &RulesConfig, at: Timestamp) -> Result<Vec<NewRequest>, DbError> {
    let today = local_date(at);
    let fecha = local_datetime(at);
    let mut notified: HashSet<String> = HashSet::new();
    // Every `saldo_bajo` request of the firing's local date, by the trigger (`saldo_bajo:<card>:<date>:<channel>`)
    // or by a sweep (`saldo_bajo:cliente:<id>:<date>:<channel>`): the row's card and the cards its data lists.
    for (nro_tarjeta, datos) in crate::requests::reports::saldo_bajo_of_day(tx, today).await? {
        notified.extend(nro_tarjeta);
        let data = datos.and_then(|d| serde_json::from_value(d).ok());
        if let Some(MessageData::SaldoBajo(aviso)) = data {
            notified.extend(aviso.tarjetas().iter().map(|t| t.nro_tarjeta.clone()));
        }
    }
    // Rows come ordered by client: consecutive cards of one client make one notice.
    let mut parents: Vec<(Parent, Vec<TarjetaSaldoBajo>)> = Vec::new();
    for card in crate::cantina::sweeps::low_cards(tx, &rules.umbral_saldo_bajo).await? {
        let stamped_today = card.ultima_notificacion_saldo.map(ts).is_some_and(|t| local_date(t) == today);
        if stamped_today || notified.contains(&card.nro_tarjeta) {
            continue;
        }
        let tarjeta = TarjetaSaldoBajo {
            alumno: format!("{} {}", card.nombre.trim(), card.apellido.trim()),
            nro_tarjeta: card.nro_tarjeta,
            saldo: Guaranies(card.saldo_actual),
            umbral: Guaranies(card.umbral),
        };
        match parents.last_mut() {
            Some((p, cards)) if p.id_cliente == card.parent.id_cliente => cards.push(tarjeta),
            _ => parents.push((card.parent, vec![tarjeta])),
        }
    }
    let found = parents
        .into_iter()
        .filter_map(|(parent, cards)| {
            let aviso = AvisoSaldoBajo::varias(parent.nombres.trim().to_string(), cards, fecha.clone())?;
            let first = aviso.primera();
            // The row names one card: the first, with its own balance (a sum would not match the card shown).
            let (nro_tarjeta, saldo) = (Some(first.nro_tarjeta.clone()), Some(first.saldo));
            Some(Found {
                tipo: NotificationType::SaldoBajo,
                key_prefix: format!("saldo_bajo:cliente:{}:{today}", parent.id_cliente),
                parent,
                nro_tarjeta,
                saldo,
                data: MessageData::SaldoBajo(aviso),
            })
        })
        .collect();
    requests(tx, rules, found).await
}

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
    let mut found = Vec::new();
    for account in crate::cantina::sweeps::pending_accounts(tx, &cutoff).await? {
        let parent = account.parent;
        let cliente = account
            .razon_social
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("{} {}", parent.nombres.trim(), parent.apellidos.trim()));
        let monto = Guaranies(account.deuda);
        let desde = ts(account.desde).to_zoned(super::asuncion()).strftime("%d/%m/%Y").to_string();
        let data = MessageData::CuentaPendiente {
            padre: parent.nombres.trim().to_string(),
            cliente,
            ruc_ci: account.ruc_ci,
            monto,
            ventas: account.ventas,
            desde,
        };
        found.push(Found {
            tipo: NotificationType::CuentaPendiente,
            key_prefix: format!("cuenta_pendiente:{}:{week}", parent.id_cliente),
            parent,
            nro_tarjeta: None,
            saldo: Some(monto),
            data,
        });
    }
    requests(tx, rules, found).await
}

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
    let mut found = Vec::new();
    for a in crate::cantina::sweeps::open_authorisations(tx, &from, &to).await? {
        let (id, nro_tarjeta) = (a.id_autorizacion, a.nro_tarjeta);
        let autorizada = local_date(ts(a.fecha_autorizacion));
        let Ok(span) = autorizada.until((jiff::Unit::Day, today)) else { continue };
        let dias = span.get_days();
        if !REMINDER_DAYS.contains(&dias) {
            continue;
        }
        let saldo = a.saldo_actual;
        let monto = if saldo < 0 { -saldo } else { a.saldo_resultante.filter(|s| *s < 0).map_or(0, |s| -s) };
        let parent = a.parent;
        let data = MessageData::RecordatorioDeuda {
            padre: parent.nombres.trim().to_string(),
            alumno: format!("{} {}", a.nombre.trim(), a.apellido.trim()),
            nro_tarjeta: nro_tarjeta.clone(),
            monto: Guaranies(monto),
            dias,
            nivel: NivelRecordatorio::for_days(dias),
            fecha: fecha.clone(),
        };
        found.push(Found {
            tipo: NotificationType::RecordatorioDeuda,
            key_prefix: format!("recordatorio_deuda:{id}:{dias}"),
            parent,
            nro_tarjeta: Some(nro_tarjeta),
            saldo: Some(Guaranies(saldo)),
            data,
        });
    }
    requests(tx, rules, found).await
}

/// The drain's insert: one statement, `ON CONFLICT (clave_dedup) DO NOTHING`; returns how many were new.
pub async fn insert_requests(
    tx: &impl GenericClient,
    signer: &crate::signing::RowSigner,
    requests: Vec<NewRequest>,
) -> Result<usize, DbError> {
    Ok(crate::requests::write::insert_requests(tx, signer, requests).await?.len())
}
