//! The request sweeps. Each reads the Cantina tables as of now, builds the requests for the firing instant `at`
//! and inserts them with `ON CONFLICT (clave_dedup) DO NOTHING`. Like the rules, the sweeps honour the portal
//! preferences: a channel the parent turned off for the type gets a request recorded `Omitido` with the reason (the
//! drain's own query, [`crate::cantina::preferences::turned_off`]).
//!
//! `saldo_bajo`, `recordatorio_deuda` and `tarjeta_por_vencer` are one job at different hours: the family's daily
//! scheduled message ([`family`]). Each firing gathers, per family, everything due (debt reminder, card expiry,
//! low-balance crossing or reminder); the first firing of a local day with anything due sends one message per
//! channel carrying all of it; a later firing that day sends only what is more urgent than what went (debt, then
//! expiry, then low balance) and leaves the rest due for the next day. The day's row
//! (`cantina_notify_mensaje_diario`) is locked while a family is decided, and the items sent are recorded
//! (`cantina_notify_avisos_enviados`), so replicas and re-runs send each item once. `cuenta_pendiente` stays
//! weekly and separate.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Pool};
use jiff::Timestamp;

use super::family::{self, DebtFact, ExpiryFact, FamilyFacts, Item, LowFact};
use super::{SweepKind, family_store};
use crate::config::RulesConfig;
use crate::db::DbError;
use crate::domain::{ChannelKind, DedupKey, Guaranies, NotificationType};
use crate::rules::{MessageData, NewRequest, Notice, Parent, TurnedOff, local_date, local_datetime};
/// A sale must be at least this old for the weekly `cuenta_pendiente` reminder.
pub const PENDING_SALE_MIN_DAYS: i64 = 7;

/// Runs one sweep for the firing instant `at` in one transaction; returns the number of requests created.
pub async fn sweep(pool: &Pool, rules: &RulesConfig, kind: SweepKind, at: Timestamp) -> Result<usize, DbError> {
    crate::db::guarded(async {
        let mut conn = pool.get().await?;
        let tx = conn.transaction().await?;
        let requests = match kind {
            SweepKind::SaldoBajo | SweepKind::RecordatorioDeuda | SweepKind::TarjetaPorVencer => {
                daily_messages(&tx, rules, at).await?
            }
            SweepKind::CuentaPendiente => cuenta_pendiente(&tx, rules, at).await?,
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

/// The families' daily messages for the firing `at` (see the module's notes).
async fn daily_messages(
    tx: &impl GenericClient,
    rules: &RulesConfig,
    at: Timestamp,
) -> Result<Vec<NewRequest>, DbError> {
    let today = local_date(at);
    let fecha = local_datetime(at);
    let dias_antes = rules.dias_aviso_vencimiento;
    let mut families: BTreeMap<i32, FamilyFacts> = BTreeMap::new();
    fn family(families: &mut BTreeMap<i32, FamilyFacts>, parent: Parent) -> &mut FamilyFacts {
        families.entry(parent.id_cliente).or_insert_with(|| FamilyFacts {
            parent,
            deudas: Vec::new(),
            bajas: Vec::new(),
            vencimientos: Vec::new(),
            ultimo_recordatorio: None,
        })
    }
    let alumno = |n: &str, a: &str| format!("{} {}", n.trim(), a.trim());
    for d in crate::cantina::sweeps::debt_cards(tx).await? {
        let fact = DebtFact {
            alumno: alumno(&d.nombre, &d.apellido),
            nro_tarjeta: d.nro_tarjeta,
            saldo: d.saldo_actual,
            desde: local_date(ts(d.desde)),
            primera: d.primera,
        };
        family(&mut families, d.parent).deudas.push(fact);
    }
    let in_debt: Vec<i32> = families.keys().copied().collect();
    for (id, last) in family_store::last_debt_reminders(tx, &in_debt).await? {
        if let Some(f) = families.get_mut(&id) {
            f.ultimo_recordatorio = Some(last);
        }
    }
    let low = crate::cantina::sweeps::low_cards(tx, &rules.umbral_saldo_bajo).await?;
    let low_nros: Vec<String> = low.iter().map(|c| c.nro_tarjeta.clone()).collect();
    // A card's latest crossing notice: the trigger's requests, or the crossings the sweep itself sent.
    let mut cruces: HashMap<String, jiff::civil::Date> = HashMap::new();
    let mut keys = crate::requests::reports::saldo_bajo_keys_of_cards(tx, &low_nros).await?;
    keys.extend(family_store::low_keys_of_cards(tx, &low_nros).await?);
    for (nro, key) in keys {
        if let Some(d) = family::crossing_date(&key, &nro) {
            let e = cruces.entry(nro).or_insert(d);
            *e = (*e).max(d);
        }
    }
    for c in low {
        let fact = LowFact {
            alumno: alumno(&c.nombre, &c.apellido),
            cruce: cruces.get(&c.nro_tarjeta).copied(),
            nro_tarjeta: c.nro_tarjeta,
            saldo: c.saldo_actual,
            umbral: c.umbral,
        };
        family(&mut families, c.parent).bajas.push(fact);
    }
    let span = jiff::Span::new().days(dias_antes);
    let (from, to) = (today.checked_sub(span).unwrap_or(today), today.checked_add(span).unwrap_or(today));
    for v in crate::cantina::sweeps::expiring_cards(tx, from, to).await? {
        let fact = ExpiryFact {
            alumno: alumno(&v.nombre, &v.apellido),
            nro_tarjeta: v.nro_tarjeta,
            vencida: v.estado == "Vencida",
            vence: v.fecha_vencimiento,
        };
        family(&mut families, v.parent).vencimientos.push(fact);
    }
    // What each family has due, before the ledger; families in client order, so replicas lock rows in one order.
    let due: Vec<(FamilyFacts, Vec<Item>)> = families
        .into_values()
        .map(|f| {
            let items = family::due_items(&f, today, rules.saldo_bajo_recordatorio, dias_antes, &fecha);
            (f, items)
        })
        .filter(|(_, items)| !items.is_empty())
        .collect();
    // An expired card's notice the trigger's rule already sent, on any channel, is not due again.
    let vencida_keys: Vec<String> = due
        .iter()
        .flat_map(|(_, items)| items.iter().filter(|i| i.tipo == NotificationType::TarjetaVencida))
        .flat_map(|i| ChannelKind::ALL.map(|c| DedupKey::for_channel(&i.key, c).into_string()))
        .collect();
    let vencida_taken = crate::requests::reports::keys_taken(tx, &vencida_keys).await?;
    let mut sending: Vec<(Parent, Vec<Item>)> = Vec::new();
    for (f, items) in due {
        let id = f.parent.id_cliente;
        let sent_today = family_store::lock_day(tx, id, today).await?;
        let all_keys: Vec<String> = items.iter().flat_map(|i| i.keys.iter().map(|(k, _)| k.clone())).collect();
        let sent = family_store::sent_keys(tx, &all_keys).await?;
        let items: Vec<Item> = items
            .into_iter()
            .filter(|i| !i.keys.iter().all(|(k, _)| sent.contains(k)))
            .filter(|i| {
                !(i.tipo == NotificationType::TarjetaVencida
                    && ChannelKind::ALL
                        .iter()
                        .any(|c| vencida_taken.contains(DedupKey::for_channel(&i.key, *c).as_str())))
            })
            .collect();
        let items = family::to_send(items, sent_today);
        let Some(top) = items.iter().map(|i| i.urgencia).max() else { continue };
        family_store::raise_day(tx, id, today, top).await?;
        for item in &items {
            for (key, nro) in &item.keys {
                family_store::record_sent(tx, key, id, item.tipo.as_str(), nro, today).await?;
            }
        }
        sending.push((f.parent, items));
    }
    let clients: Vec<i32> = sending.iter().map(|(p, _)| p.id_cliente).collect();
    let turned_off = crate::cantina::preferences::turned_off(tx, &clients, &rules.preference_defaults).await?;
    let mut out = Vec::new();
    for (parent, items) in sending {
        out.extend(family_requests(rules, &turned_off, &parent, &items));
    }
    Ok(out)
}

/// A family's message as requests, one per channel that any of its items goes to (`…__CHANNELS`, or the first of a
/// fallback list): on each, the items routed there and not turned off by the parent, the most urgent leading
/// ([`family::compose`]); a channel where all of them are off records the most urgent one's request `Omitido`.
/// (Taking only the lead item's channels would drop, say, a low-balance reminder routed to SMS behind an expiry
/// notice that goes by email only.)
fn family_requests(rules: &RulesConfig, turned_off: &TurnedOff, parent: &Parent, items: &[Item]) -> Vec<NewRequest> {
    let starts_on = |tipo: NotificationType, channel: ChannelKind| {
        let route = rules.channels_for(tipo);
        match route.fallback {
            true => route.channels.first() == Some(&channel),
            false => route.channels.contains(&channel),
        }
    };
    let on =
        |tipo: NotificationType, channel: ChannelKind| turned_off.reason(parent.id_cliente, tipo, channel).is_none();
    let (mut out, mut leads) = (Vec::new(), Vec::new());
    for channel in ChannelKind::ALL {
        let routed: Vec<Item> = items.iter().filter(|i| starts_on(i.tipo, channel)).cloned().collect();
        let Some(first) = routed.first() else { continue };
        let main = family::compose(&routed, channel, on).unwrap_or_else(|| first.clone());
        let notice = Notice {
            tipo: main.tipo,
            key_prefix: main.key.clone(),
            parent,
            nro_tarjeta: main.nro_tarjeta.clone(),
            saldo: main.saldo,
            data: main.data.clone(),
        };
        out.extend(
            notice.requests(rules.channels_for(main.tipo), turned_off).into_iter().filter(|r| r.channel == channel),
        );
        leads.push(main.key);
    }
    // An expired card that rode inside another type's message: its own key is recorded too (`Omitido`, naming the
    // message that carried it), so the trigger's notice when the app later sets `estado = 'Vencida'` (same key)
    // finds it taken instead of telling the parent twice.
    let carrier = leads.first().cloned().unwrap_or_default();
    for item in items.iter().filter(|i| i.tipo == NotificationType::TarjetaVencida && !leads.contains(&i.key)) {
        let notice = Notice {
            tipo: item.tipo,
            key_prefix: item.key.clone(),
            parent,
            nro_tarjeta: item.nro_tarjeta.clone(),
            saldo: item.saldo,
            data: item.data.clone(),
        };
        out.extend(notice.requests(rules.channels_for(item.tipo), turned_off).into_iter().map(|mut r| {
            r.omitted = Some(format!("incluido en el aviso del día {carrier}"));
            r
        }));
    }
    out
}

/// The drain's insert: one statement, `ON CONFLICT (clave_dedup) DO NOTHING`; returns how many were new.
pub async fn insert_requests(
    tx: &impl GenericClient,
    signer: &crate::signing::RowSigner,
    requests: Vec<NewRequest>,
) -> Result<usize, DbError> {
    Ok(crate::requests::write::insert_requests(tx, signer, requests).await?.len())
}
