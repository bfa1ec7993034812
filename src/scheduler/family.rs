//! The family's daily scheduled message, as pure functions: what is due for one family on a local day
//! ([`due_items`]), what a firing sends given what already went that day ([`to_send`]), and what one channel's
//! message carries ([`compose`]). The sweep ([`super::sweeps`]) reads the facts and writes the result.
//!
//! Items and their keys (the dedup key without the channel; the ledger `cantina_notify_avisos_enviados` holds one
//! row per item sent, whichever message carried it):
//! - debt: `recordatorio_deuda:<id_cliente>:<id_autorizacion>:<level>`, the authorisation that started the family's
//!   oldest card debt (a card's debt starts at the sale that took it below zero: see `cantina::sweeps`), level 3, 7
//!   or 15 by the local days since that authorisation; only the highest level reached is due. A
//!   family still in the debt of its last reminder (some card now in debt has been since that reminder's day or
//!   before) gets no level at or below that reminder's again: paying the oldest card while a younger one stays
//!   in debt does not restart the levels at the friendly one;
//! - expiry: `tarjeta_por_vencer:<nro>:<fecha_vencimiento>` from `dias_antes` days before the date until the day
//!   before; `tarjeta_vencida:<nro>:<fecha_vencimiento>` from the date (or the card's `Vencida` state) for
//!   `dias_antes` days (a card that expired long before the service existed is not notified);
//! - low balance, per card: with no crossing on record, the crossing itself `saldo_bajo:<nro>:<date>` (the
//!   trigger's key); otherwise the latest reminder due, `saldo_bajo:recordatorio:<nro>:<due date>`, the due dates
//!   being the crossing + `primero` days, then every `cada` days. A card in debt gets none (the debt reminder
//!   covers it).

use crate::present::format::fecha;
use jiff::civil::Date;

use crate::config::ReminderSchedule;
use crate::domain::{ChannelKind, Guaranies, NotificationType};
use crate::rules::{
    Ademas, AvisoDeuda, AvisoSaldoBajo, MessageData, NivelRecordatorio, Parent, TarjetaDeuda, TarjetaSaldoBajo,
    enumeracion,
};

/// Days after the family's oldest open authorisation at which a debt reminder level is due.
pub const REMINDER_DAYS: [i32; 3] = [3, 7, 15];

/// How urgent an item is; a day's later firing sends only what is more urgent than what went that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgencia {
    SaldoBajo = 1,
    Vencimiento = 2,
    Deuda = 3,
}

impl Urgencia {
    pub fn as_i16(self) -> i16 {
        self as i16
    }
}

/// A card in debt, as the sweep read it.
#[derive(Debug, Clone, PartialEq)]
pub struct DebtFact {
    pub nro_tarjeta: String,
    pub alumno: String,
    pub saldo: i64,
    /// The local date the card's current negative streak started, and that authorisation's id.
    pub desde: Date,
    pub primera: i64,
}

/// A card under its threshold, with the local date of its latest crossing notice (trigger or sweep), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct LowFact {
    pub nro_tarjeta: String,
    pub alumno: String,
    pub saldo: i64,
    pub umbral: i64,
    pub cruce: Option<Date>,
}

/// A card with an expiry date near or just past.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiryFact {
    pub nro_tarjeta: String,
    pub alumno: String,
    pub vencida: bool,
    pub vence: Date,
}

/// Everything the sweep read about one family.
#[derive(Debug, Clone)]
pub struct FamilyFacts {
    pub parent: Parent,
    /// Oldest debt first.
    pub deudas: Vec<DebtFact>,
    pub bajas: Vec<LowFact>,
    pub vencimientos: Vec<ExpiryFact>,
    /// The family's last debt reminder (the ledger), if any.
    pub ultimo_recordatorio: Option<LastDebtReminder>,
}

/// The last debt reminder sent to a family: its local date and level (the highest that day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastDebtReminder {
    pub fecha: Date,
    pub nivel: i32,
}

/// The level of a debt item key (`recordatorio_deuda:<id_cliente>:<id_autorizacion>:<level>`).
pub fn debt_level(key: &str) -> Option<i32> {
    let rest = key.strip_prefix("recordatorio_deuda:")?;
    let mut parts = rest.split(':');
    let (_, _, level) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    level.parse().ok()
}

/// One due item of a family's daily message.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub tipo: NotificationType,
    pub urgencia: Urgencia,
    /// The request key (without the channel) when this item is a message's main one.
    pub key: String,
    /// Every ledger key the item stands for, with its card (a low-balance item lists each card's).
    pub keys: Vec<(String, String)>,
    pub nro_tarjeta: Option<String>,
    pub saldo: Option<Guaranies>,
    pub data: MessageData,
    /// This item as one line of another message ("Además: …").
    pub resumen: Ademas,
}

/// What one family has due on `today`, most urgent first. What was sent already (the ledger, and an expired card's
/// request from the trigger's rule) is taken out afterwards, by [`Item::keys`].
pub fn due_items(f: &FamilyFacts, today: Date, schedule: ReminderSchedule, dias_antes: i64, fecha: &str) -> Vec<Item> {
    let padre = f.parent.nombres.trim().to_string();
    let mut items = Vec::new();
    if let Some(item) = debt_item(f, &padre, today) {
        items.push(item);
    }
    for v in &f.vencimientos {
        if let Some(item) = expiry_item(v, &padre, today, dias_antes) {
            items.push(item);
        }
    }
    if let Some(item) = low_item(f, &padre, today, schedule, fecha) {
        items.push(item);
    }
    // Stable: within an urgency, debt's order, then expired before expiring, then the cards' order.
    items.sort_by_key(|i| (std::cmp::Reverse(i.urgencia), i.tipo != NotificationType::TarjetaVencida));
    items
}

fn days_between(from: Date, to: Date) -> i64 {
    from.until((jiff::Unit::Day, to)).map_or(0, |s| i64::from(s.get_days()))
}

fn debt_item(f: &FamilyFacts, padre: &str, today: Date) -> Option<Item> {
    let oldest = f.deudas.iter().min_by_key(|d| (d.desde, d.primera))?;
    let dias = i32::try_from(days_between(oldest.desde, today)).ok()?;
    let level = REMINDER_DAYS.iter().copied().filter(|l| *l <= dias).max()?;
    // The debt of the last reminder goes on when a card now in debt has been since that reminder's day (a card's
    // streak is unbroken by definition): then only a higher level than that reminder's is news to the parent.
    if let Some(last) = f.ultimo_recordatorio
        && level <= last.nivel
        && f.deudas.iter().any(|d| d.desde <= last.fecha)
    {
        return None;
    }
    let mut cards: Vec<&DebtFact> = f.deudas.iter().collect();
    cards.sort_by_key(|d| (d.desde, d.primera));
    let tarjetas: Vec<TarjetaDeuda> = cards
        .iter()
        .map(|d| TarjetaDeuda {
            alumno: d.alumno.clone(),
            nro_tarjeta: d.nro_tarjeta.clone(),
            monto: Guaranies(-d.saldo),
            desde: fecha(d.desde),
        })
        .collect();
    let aviso = AvisoDeuda {
        padre: padre.to_string(),
        tarjetas,
        dias,
        nivel: NivelRecordatorio::for_days(level),
        ademas: Vec::new(),
    };
    let total = aviso.total();
    let alumnos = enumeracion(aviso.tarjetas.iter().map(|t| t.alumno.as_str()));
    let resumen = Ademas {
        texto: format!(
            "Saldo negativo de {total} en {} de {alumnos} desde el {}. Realice una recarga para regularizarlo.",
            if aviso.tarjetas.len() > 1 { "las tarjetas" } else { "la tarjeta" },
            fecha(oldest.desde)
        ),
        breve: format!("saldo negativo de {total}"),
    };
    let key = format!("recordatorio_deuda:{}:{}:{level}", f.parent.id_cliente, oldest.primera);
    Some(Item {
        tipo: NotificationType::RecordatorioDeuda,
        urgencia: Urgencia::Deuda,
        keys: vec![(key.clone(), oldest.nro_tarjeta.clone())],
        key,
        nro_tarjeta: Some(oldest.nro_tarjeta.clone()),
        saldo: Some(Guaranies(oldest.saldo)),
        data: MessageData::RecordatorioDeuda(aviso),
        resumen,
    })
}

fn expiry_item(v: &ExpiryFact, padre: &str, today: Date, dias_antes: i64) -> Option<Item> {
    let left = days_between(today, v.vence);
    let vence = fecha(v.vence);
    let (nro, alumno) = (v.nro_tarjeta.clone(), v.alumno.clone());
    let (tipo, data, resumen) = if v.vencida || left <= 0 {
        // Expired: from the date (or the state) for `dias_antes` days.
        if -left >= dias_antes {
            return None;
        }
        let resumen = Ademas {
            texto: format!("La tarjeta {nro} de {alumno} venció el {vence}: renuévela en la cantina."),
            breve: format!("tarjeta de {alumno} vencida"),
        };
        let data = MessageData::TarjetaVencida {
            padre: padre.into(),
            alumno,
            nro_tarjeta: nro,
            vencio: vence,
            ademas: Vec::new(),
        };
        (NotificationType::TarjetaVencida, data, resumen)
    } else {
        if left > dias_antes {
            return None;
        }
        let resumen = Ademas {
            texto: format!(
                "La tarjeta {nro} de {alumno} vence el {vence}: renuévela en la cantina antes de esa fecha."
            ),
            breve: format!("tarjeta de {alumno} vence el {}", &vence[..5]),
        };
        let data = MessageData::TarjetaPorVencer {
            padre: padre.into(),
            alumno,
            nro_tarjeta: nro,
            vence,
            dias: left,
            ademas: Vec::new(),
        };
        (NotificationType::TarjetaPorVencer, data, resumen)
    };
    let key = crate::rules::expiry_key(tipo, &v.nro_tarjeta, &v.vence.to_string());
    Some(Item {
        tipo,
        urgencia: Urgencia::Vencimiento,
        keys: vec![(key.clone(), v.nro_tarjeta.clone())],
        key,
        nro_tarjeta: Some(v.nro_tarjeta.clone()),
        saldo: None,
        data,
        resumen,
    })
}

/// The key of a low card's item on `today`: its crossing (no crossing on record) or its latest reminder due.
pub fn low_key(nro: &str, cruce: Option<Date>, today: Date, s: ReminderSchedule) -> Option<String> {
    let Some(cruce) = cruce else { return Some(format!("saldo_bajo:{nro}:{today}")) };
    let days = days_between(cruce, today);
    if days < s.primero {
        return None;
    }
    let due = cruce.checked_add(jiff::Span::new().days(s.primero + (days - s.primero) / s.cada * s.cada)).ok()?;
    Some(format!("saldo_bajo:recordatorio:{nro}:{due}"))
}

/// The date of a crossing key (`saldo_bajo:<nro>:<date>`, with or without the channel) of card `nro`.
pub fn crossing_date(key: &str, nro: &str) -> Option<Date> {
    let rest = key.strip_prefix("saldo_bajo:")?.strip_prefix(nro)?.strip_prefix(':')?;
    rest.split(':').next()?.parse().ok()
}

fn low_item(f: &FamilyFacts, padre: &str, today: Date, s: ReminderSchedule, fecha: &str) -> Option<Item> {
    let mut keys = Vec::new();
    let mut cards = Vec::new();
    for b in &f.bajas {
        // A card in debt: the debt reminder covers it.
        if f.deudas.iter().any(|d| d.nro_tarjeta == b.nro_tarjeta) {
            continue;
        }
        if let Some(key) = low_key(&b.nro_tarjeta, b.cruce, today, s) {
            keys.push((key, b.nro_tarjeta.clone()));
            cards.push(TarjetaSaldoBajo {
                alumno: b.alumno.clone(),
                nro_tarjeta: b.nro_tarjeta.clone(),
                saldo: Guaranies(b.saldo),
                umbral: Guaranies(b.umbral),
            });
        }
    }
    // A reminder says since when the cards are low (a mix with a first sighting reads as a new notice).
    let desde = match keys.iter().all(|(k, _)| k.starts_with("saldo_bajo:recordatorio:")) {
        true => f.bajas.iter().filter(|b| keys.iter().any(|(_, n)| *n == b.nro_tarjeta)).filter_map(|b| b.cruce).min(),
        false => None,
    };
    let mut aviso = AvisoSaldoBajo::varias(padre.to_string(), cards, fecha.to_string())?;
    aviso.desde = desde.map(crate::present::format::fecha);
    let first = aviso.primera().clone();
    let resumen = Ademas {
        texto: format!(
            "Saldo bajo: {}. Recargue en el portal de padres o en la cantina.",
            enumeracion(aviso.tarjetas().iter().map(|t| match t.saldo.0 < 0 {
                // "Luis tiene Gs. -1.500" reads as money left.
                true => format!("{} {}", t.alumno, t.saldo.saldo()),
                false => format!("{} tiene {}", t.alumno, t.saldo),
            }))
        ),
        breve: format!("saldo bajo de {}", enumeracion(aviso.tarjetas().iter().map(|t| t.alumno.as_str()))),
    };
    Some(Item {
        tipo: NotificationType::SaldoBajo,
        urgencia: Urgencia::SaldoBajo,
        key: keys[0].0.clone(),
        keys,
        nro_tarjeta: Some(first.nro_tarjeta),
        saldo: Some(first.saldo),
        data: MessageData::SaldoBajo(aviso),
        resumen,
    })
}

/// What a firing sends of the due items (not yet in the ledger), given the urgency already sent that day
/// (`None`: nothing yet): everything on the day's first message; later, only what is more urgent than what went.
pub fn to_send(items: Vec<Item>, sent_today: Option<Urgencia>) -> Vec<Item> {
    match sent_today {
        None => items,
        Some(u) => items.into_iter().filter(|i| i.urgencia > u).collect(),
    }
}

/// One channel's message: the items whose type is on for it (`on`), the most urgent as the main one carrying the
/// others as "Además"; `None` when none is on.
pub fn compose(
    items: &[Item],
    channel: ChannelKind,
    on: impl Fn(NotificationType, ChannelKind) -> bool,
) -> Option<Item> {
    let mut carried = items.iter().filter(|i| on(i.tipo, channel));
    let main = carried.next()?;
    let mut out = main.clone();
    out.data.set_ademas(carried.map(|i| i.resumen.clone()).collect());
    Some(out)
}

#[cfg(test)]
mod tests;
