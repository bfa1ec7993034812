//! The spending sweeps (opt-in, issue 18 item 6): `consumo_realizado`, one notice per purchase, and
//! `resumen_consumos`, one summary per family and firing (the purchases since the previous firing). Both read only the purchases of the families that
//! switched the type on ([`crate::cantina::spending`]) and insert through the normal request path
//! ([`super::sweeps::insert_requests`]), so quiet hours, preferences, dry run, stats, metrics and the history apply.
//!
//! Nothing runs on a sale: the POS's insert into `consumos_tarjeta` costs what it did, for every family. A purchase
//! is noticed by the next `consumo_realizado` firing (every minute by default), so it reaches the parent within
//! about a minute plus the send. Exactly once through the keys: `consumo_realizado:<id_consumo>:<channel>` and
//! `resumen_consumos:<id_cliente>:<local date>:<channel>` (`ON CONFLICT (clave_dedup) DO NOTHING`).

use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use jiff::{SignedDuration, Timestamp};

use crate::cantina::spending::Purchase;
use crate::config::RulesConfig;
use crate::db::DbError;
use crate::domain::{Guaranies, NotificationType};
use crate::rules::{Consumo, ConsumosHijo, MessageData, NewRequest, Notice, Parent, ResumenConsumos, local_datetime};

/// A purchase older than this at the firing is not notified one by one (the service was down for longer, or the
/// parent switched the notice on later): a notice about yesterday's lunch is noise. The daily summary still has it.
pub const CONSUMO_MAX_AGE: SignedDuration = SignedDuration::from_hours(24);

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The `destino` names of the type's configured channels: only families that switched it on for one of them are
/// read (a choice for a channel the service does not use for the type would only make `Omitido` rows).
fn canales(rules: &RulesConfig, tipo: NotificationType) -> Vec<&'static str> {
    rules.channels_for(tipo).channels.iter().map(|c| c.destino()).collect()
}

/// A notice a spending sweep decided on, before the channels and the parent's preferences make it requests.
struct Found {
    /// The dedup key without the channel.
    key_prefix: String,
    parent: Parent,
    nro_tarjeta: Option<String>,
    saldo: Option<Guaranies>,
    data: MessageData,
}

/// The requests of the notices, with the preferences of all their clients in one query.
async fn requests(
    tx: &impl GenericClient,
    rules: &RulesConfig,
    tipo: NotificationType,
    notices: Vec<Found>,
) -> Result<Vec<NewRequest>, DbError> {
    let mut clients: Vec<i32> = notices.iter().map(|n| n.parent.id_cliente).collect();
    clients.sort_unstable();
    clients.dedup();
    let turned_off = crate::cantina::preferences::turned_off(tx, &clients, &rules.preference_defaults).await?;
    Ok(notices
        .into_iter()
        .flat_map(|Found { key_prefix, parent, nro_tarjeta, saldo, data }| {
            Notice { tipo, key_prefix, parent: &parent, nro_tarjeta, saldo, data }
                .requests(rules.channels_for(tipo), &turned_off)
        })
        .collect())
}

fn alumno(p: &Purchase) -> String {
    format!("{} {}", p.nombre.trim(), p.apellido.trim()).trim().to_string()
}

fn detalle(p: &Purchase) -> String {
    if p.detalle.is_empty() { "Consumo".to_string() } else { p.detalle.clone() }
}

/// One request per channel for each purchase not notified yet (since `at` − [`CONSUMO_MAX_AGE`]) of the families
/// with `consumo_realizado` on: the purchases of the window, less those with a request under any channel's key.
pub async fn consumo_realizado(
    tx: &impl GenericClient,
    rules: &RulesConfig,
    at: Timestamp,
) -> Result<Vec<NewRequest>, DbError> {
    let tipo = NotificationType::ConsumoRealizado;
    let canales = canales(rules, tipo);
    if canales.is_empty() {
        return Ok(Vec::new());
    }
    let desde = SystemTime::from(at.checked_sub(CONSUMO_MAX_AGE).unwrap_or(at));
    let purchases = crate::cantina::spending::new_purchases(tx, &canales, &desde).await?;
    let prefix = |p: &Purchase| format!("consumo_realizado:{}", p.id_consumo);
    let prefixes: Vec<String> = purchases.iter().map(prefix).collect();
    let taken = crate::requests::taken::prefixes_taken(tx, &prefixes).await?;
    let mut notices = Vec::new();
    for p in purchases.into_iter().filter(|p| !taken.contains(&prefix(p))) {
        let data = MessageData::ConsumoRealizado {
            padre: p.parent.nombres.trim().to_string(),
            alumno: alumno(&p),
            nro_tarjeta: p.nro_tarjeta.clone(),
            detalle: detalle(&p),
            monto: Guaranies(p.monto),
            saldo: Guaranies(p.saldo_actual),
            fecha: local_datetime(ts(p.fecha_consumo)),
        };
        notices.push(Found {
            key_prefix: prefix(&p),
            parent: p.parent,
            nro_tarjeta: Some(p.nro_tarjeta),
            // The balance the notice is about (`saldo_alerta`): the card's, as the notice shows it.
            saldo: Some(Guaranies(p.saldo_actual)),
            data,
        });
    }
    requests(tx, rules, tipo, notices).await
}

/// A purchase stamped this little before a summary's firing goes in the next summary, not this one: a sale's
/// `fecha_consumo` is its transaction's start, so one stamped just before the firing may commit just after the
/// summary read the table. Five minutes covers a slow POS transaction, not a POS that syncs an hour later.
pub const RESUMEN_GRACE: SignedDuration = SignedDuration::from_mins(5);

/// How far back the firings of the summary's schedule are looked for (a monthly schedule still has two).
const RESUMEN_LOOKBACK: SignedDuration = SignedDuration::from_hours(24 * 62);

/// The summary window for `at`: the schedule's last firing at or before `at` (so a run at any instant, a re-run or
/// the CLI, redoes that firing's summary under the same key) and the previous firing. The summary of firing `f`
/// lists the purchases stamped in `[prev − grace, f − grace)`: consecutive firings' windows meet, so each purchase
/// is in exactly one summary whatever the schedule. Without a firing in the look-back, `at` itself and the day
/// before.
pub fn resumen_window(
    schedule: &crate::domain::cron::CronSchedule,
    at: Timestamp,
) -> (Timestamp, Timestamp, Timestamp) {
    let tz = super::asuncion();
    let firings = schedule.firings_between(&tz, at.checked_sub(RESUMEN_LOOKBACK).unwrap_or(at), at);
    let day = SignedDuration::from_hours(24);
    let (prev, firing) = match firings.as_slice() {
        [.., prev, f] => (*prev, *f),
        [f] => (f.checked_sub(day).unwrap_or(*f), *f),
        [] => (at.checked_sub(day).unwrap_or(at), at),
    };
    let minus_grace = |t: Timestamp| t.checked_sub(RESUMEN_GRACE).unwrap_or(t);
    (firing, minus_grace(prev), minus_grace(firing))
}

/// The firing whose summary lists a purchase stamped at `t`: the first one more than the grace after it (`None`
/// when the schedule does not fire in the look-back's span after `t`).
pub fn resumen_firing_for(schedule: &crate::domain::cron::CronSchedule, t: Timestamp) -> Option<Timestamp> {
    let after = t.checked_add(RESUMEN_GRACE).ok()?;
    schedule.firings_between(&super::asuncion(), after, after.checked_add(RESUMEN_LOOKBACK).ok()?).first().copied()
}

/// One summary per family with `resumen_consumos` on and purchases in the firing's window ([`resumen_window`]),
/// listing each child's purchases (time, `detalle`, amount; the date too for one not on the firing's local date)
/// and the card's balance now. Keyed `resumen_consumos:<id_cliente>:<local date of the firing>` (one firing a day:
/// a second firing the same local day finds its key taken); a window without purchases sends nothing.
pub async fn resumen_consumos(
    tx: &impl GenericClient,
    rules: &RulesConfig,
    at: Timestamp,
) -> Result<Vec<NewRequest>, DbError> {
    let tipo = NotificationType::ResumenConsumos;
    let canales = canales(rules, tipo);
    if canales.is_empty() {
        return Ok(Vec::new());
    }
    let tz = super::asuncion();
    let (firing, start, end) = resumen_window(&rules.resumen_consumos_schedule, at);
    let day = firing.to_zoned(tz.clone()).date();
    let fecha = crate::present::format::fecha(day);
    let rows = crate::cantina::spending::purchases_between(tx, &canales, &start.into(), &end.into()).await?;
    // Rows come ordered by client, child and card: consecutive rows make one family's summary.
    let mut families: Vec<(Parent, Vec<ConsumosHijo>)> = Vec::new();
    for p in rows {
        let when = ts(p.fecha_consumo).to_zoned(tz.clone());
        // A purchase from before the firing's day (after the previous summary) says which day.
        let hora = if when.date() == day { when.strftime("%H:%M") } else { when.strftime("%d/%m %H:%M") };
        let consumo = Consumo { hora: hora.to_string(), detalle: detalle(&p), monto: Guaranies(p.monto) };
        if families.last().is_none_or(|(parent, _)| parent.id_cliente != p.parent.id_cliente) {
            families.push((p.parent.clone(), Vec::new()));
        }
        let Some((_, hijos)) = families.last_mut() else { continue };
        match hijos.last_mut() {
            Some(h) if h.nro_tarjeta == p.nro_tarjeta => h.consumos.push(consumo),
            _ => hijos.push(ConsumosHijo {
                alumno: alumno(&p),
                nro_tarjeta: p.nro_tarjeta.clone(),
                consumos: vec![consumo],
                saldo: Guaranies(p.saldo_actual),
            }),
        }
    }
    let notices = families
        .into_iter()
        .map(|(parent, hijos)| {
            let resumen = ResumenConsumos { padre: parent.nombres.trim().to_string(), fecha: fecha.clone(), hijos };
            // No single balance: the summary lists each card's.
            Found {
                key_prefix: format!("resumen_consumos:{}:{day}", parent.id_cliente),
                parent,
                nro_tarjeta: None,
                saldo: None,
                data: MessageData::ResumenConsumos(resumen),
            }
        })
        .collect();
    requests(tx, rules, tipo, notices).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cron::CronSchedule;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_late_run_redoes_its_firing_whose_window_starts_at_the_previous_one() {
        let daily = CronSchedule::parse("0 20 * * *").unwrap();
        let (firing, start, end) = resumen_window(&daily, at("2026-12-09T20:40:00-03:00"));
        assert_eq!(firing, at("2026-12-09T20:00:00-03:00"));
        assert_eq!((start, end), (at("2026-12-08T19:55:00-03:00"), at("2026-12-09T19:55:00-03:00")));
        // Weekdays only: Monday's summary has the weekend's purchases (Friday 2026-12-04 to Monday 2026-12-07).
        let weekdays = CronSchedule::parse("0 20 * * 1-5").unwrap();
        let (_, start, end) = resumen_window(&weekdays, at("2026-12-07T20:00:00-03:00"));
        assert_eq!((start, end), (at("2026-12-04T19:55:00-03:00"), at("2026-12-07T19:55:00-03:00")));
    }

    #[test]
    fn every_instant_is_in_the_window_of_exactly_the_firing_that_lists_it() {
        for expr in ["0 20 * * *", "30 7 * * *", "0 20 * * 1-5", "0 0 1 * *"] {
            let schedule = CronSchedule::parse(expr).unwrap();
            let mut t = at("2026-12-01T00:00:00-03:00");
            while t < at("2026-12-10T00:00:00-03:00") {
                let f = resumen_firing_for(&schedule, t).unwrap();
                let (firing, start, end) = resumen_window(&schedule, f);
                assert_eq!(firing, f, "{expr}");
                assert!(start <= t && t < end, "{expr}: {t} not in [{start}, {end}) of {f}");
                // The windows of consecutive firings meet: the previous firing's ends where this one starts.
                let (_, _, before_end) = resumen_window(&schedule, start + RESUMEN_GRACE);
                assert_eq!(before_end, start, "{expr} at {t}");
                t += SignedDuration::from_mins(37);
            }
        }
    }
}
