//! Rules: pure functions from an outbox event and the rows it refers to, to the notification requests it needs.
//! No I/O here: the drain loads the context in bulk, calls [`decide`], and writes the result in one transaction.

mod bloqueo;
mod context;
mod manual;
mod message;
mod recarga;
mod recipient;
mod saldo_bajo;
#[cfg(test)]
pub(crate) mod test_support;
mod vencida;

#[cfg(test)]
mod tests;

pub use context::{Card, Context, ManualRow, Parent, Recharge, Student};
pub use message::{
    Ademas, AvisoDeuda, AvisoSaldoBajo, Consumo, ConsumosHijo, MessageData, NivelRecordatorio, ResumenConsumos,
    TarjetaDeuda, TarjetaSaldoBajo, enumeracion, local_date, local_datetime,
};
pub use recipient::{Recipient, resolve_recipient};

use jiff::civil::Date;

use crate::config::{Route, RulesConfig};
use crate::domain::{ChannelKind, DedupKey, Guaranies, NotificationType};
use crate::domain::{EventKind, OutboxEvent};

/// A request to insert into `solicitudes_notificacion`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    pub tipo: NotificationType,
    pub channel: ChannelKind,
    pub clave_dedup: String,
    pub id_cliente: i32,
    pub nro_tarjeta: Option<String>,
    /// The balance the notice is about (`solicitudes_notificacion.saldo_alerta`).
    pub saldo: Option<Guaranies>,
    /// The address, or why there is none usable (recorded as `Error` with that reason).
    pub recipient: Result<Recipient, String>,
    pub data: MessageData,
    /// Deliberately not sent (the parent turned this channel off): recorded `Omitido` with this reason.
    pub omitted: Option<String>,
    /// The channels still to try, in order, if this one fails (a type with a fallback list); empty otherwise.
    pub fallback: Vec<ChannelKind>,
    /// The first request of a fallback chain (`id_solicitud_origen`); `None` on the first itself.
    pub origin: Option<i64>,
}

/// The key (without the channel) of a card-expiry notice: `tarjeta_por_vencer:<nro>:<yyyy-mm-dd>` or
/// `tarjeta_vencida:<nro>:<yyyy-mm-dd>`, shared by the event rule and the daily sweep.
pub fn expiry_key(tipo: NotificationType, nro_tarjeta: &str, fecha_vencimiento: &str) -> String {
    format!("{tipo}:{nro_tarjeta}:{fecha_vencimiento}")
}

/// The reason recorded on a request for a channel the parent turned off in the portal.
pub fn turned_off_reason(id_cliente: i32, tipo: NotificationType, channel: ChannelKind) -> String {
    format!("el cliente {id_cliente} desactivó los avisos {tipo} por {} en el portal", channel.destino())
}

/// What to do with a manual request the POS inserted.
#[derive(Debug, Clone, PartialEq)]
// Only ever held boxed (in `Decision::CompleteManual`), so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum ManualCompletion {
    /// Fill in the row and let the dispatcher send it.
    Send(NewRequest),
    /// Record the row as `Error` with this reason, under the type it asked for.
    Fail { tipo: NotificationType, clave_dedup: String, channel: Option<ChannelKind>, reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Create(Vec<NewRequest>),
    CompleteManual {
        id_solicitud: i64,
        completion: Box<ManualCompletion>,
    },
    /// Nothing to send, and why (kept on the event row).
    Ignore(String),
}

/// What the rules need besides the rows: configuration and the event's local date.
pub struct RuleInput<'a> {
    pub event: &'a OutboxEvent,
    pub ctx: &'a Context,
    pub config: &'a RulesConfig,
}

impl RuleInput<'_> {
    /// The event's date in America/Asuncion: "once per day" means the parents' day.
    pub fn today(&self) -> Date {
        local_date(self.event.created_at)
    }
}

pub fn decide(input: &RuleInput<'_>) -> Decision {
    match &input.event.kind {
        EventKind::RecargaConfirmada { id_carga } => recarga::decide(input, *id_carga),
        EventKind::SaldoBajo { nro_tarjeta, saldo_anterior, saldo_nuevo } => {
            saldo_bajo::decide(input, nro_tarjeta, *saldo_anterior, *saldo_nuevo)
        }
        EventKind::TarjetaBloqueada { nro_tarjeta } => bloqueo::decide(input, nro_tarjeta),
        EventKind::TarjetaVencida { nro_tarjeta } => vencida::decide(input, nro_tarjeta),
        EventKind::SolicitudManual { id_solicitud } => manual::decide(input, *id_solicitud),
        EventKind::Invalid { reason } => Decision::Ignore(reason.clone()),
    }
}

/// Channels each client turned off per type, from the portal preferences.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnedOff(std::collections::HashMap<(i32, NotificationType, ChannelKind), OffBy>);

/// Why a channel is off for a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffBy {
    /// An explicit choice in `cantina_notify_preferencias_cliente`: who recorded it (`cambiado_por`), and when.
    Explicit { por: String, en: jiff::Timestamp },
    /// The parent switched it off in the portal.
    Portal,
    /// An opt-in type (`NotificationType::opt_in`) the parent did not switch on for this channel.
    OptIn,
    /// The parent never said, and the channel is off by default (`CANTINA__PREFERENCES__…=false`).
    Default,
}

impl TurnedOff {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, id_cliente: i32, tipo: NotificationType, channel: ChannelKind, by: OffBy) {
        self.0.insert((id_cliente, tipo, channel), by);
    }

    /// The reason recorded on an `Omitido` request, if the channel is off for this parent and type.
    pub fn reason(&self, id_cliente: i32, tipo: NotificationType, channel: ChannelKind) -> Option<String> {
        self.0.get(&(id_cliente, tipo, channel)).map(|by| match by {
            OffBy::Explicit { por, en } => format!(
                "el cliente {id_cliente} desactivó los avisos {tipo} por {} (cambiado por {} el {})",
                channel.destino(),
                por.trim(),
                crate::present::format::fecha(local_date(*en))
            ),
            OffBy::Portal => turned_off_reason(id_cliente, tipo, channel),
            OffBy::OptIn => format!(
                "el cliente {id_cliente} no activó los avisos {tipo} por {} (se envían solo a quien los activa)",
                channel.destino()
            ),
            OffBy::Default => format!(
                "el cliente {id_cliente} no activó los avisos {tipo} por {} (desactivados salvo que el cliente los active en el portal)",
                channel.destino()
            ),
        })
    }
}

/// Turned off in the portal (tests and callers that only know that).
impl FromIterator<(i32, NotificationType, ChannelKind)> for TurnedOff {
    fn from_iter<I: IntoIterator<Item = (i32, NotificationType, ChannelKind)>>(iter: I) -> Self {
        TurnedOff(iter.into_iter().map(|k| (k, OffBy::Portal)).collect())
    }
}

/// A notice for one parent, before it becomes one request per channel (the rules and the sweeps share this).
pub struct Notice<'a> {
    pub tipo: NotificationType,
    /// The dedup key without the channel: `recarga_exitosa:<id_carga>`.
    pub key_prefix: String,
    pub parent: &'a Parent,
    pub nro_tarjeta: Option<String>,
    pub saldo: Option<Guaranies>,
    pub data: MessageData,
}

impl Notice<'_> {
    /// One request per channel, each with its own dedup key (`<prefix>:<channel>`); with a fallback route only the
    /// first channel's, carrying the rest (the dispatcher creates the next when it fails). A channel the parent
    /// turned off is marked `omitted` (and, in a fallback chain, moves on to the next).
    pub fn requests(self, route: Route<'_>, turned_off: &TurnedOff) -> Vec<NewRequest> {
        let Notice { tipo, key_prefix, parent, nro_tarjeta, saldo, data } = self;
        let (now, rest) = match (route.fallback, route.channels.split_first()) {
            (true, Some((first, rest))) => (std::slice::from_ref(first), rest.to_vec()),
            _ => (route.channels, Vec::new()),
        };
        now.iter()
            .map(|&channel| NewRequest {
                tipo,
                channel,
                clave_dedup: DedupKey::for_channel(&key_prefix, channel).into_string(),
                id_cliente: parent.id_cliente,
                nro_tarjeta: nro_tarjeta.clone(),
                saldo,
                recipient: resolve_recipient(channel, parent),
                data: data.clone(),
                omitted: turned_off.reason(parent.id_cliente, tipo, channel),
                fallback: rest.clone(),
                origin: None,
            })
            .collect()
    }
}

/// One request per configured channel of the type, or why there is none.
fn per_channel(
    input: &RuleInput<'_>,
    tipo: NotificationType,
    key_prefix: &str,
    parent: &Parent,
    card: Option<&Card>,
    saldo: Option<Guaranies>,
    data: MessageData,
) -> Decision {
    let channels = input.config.channels_for(tipo);
    if channels.is_empty() {
        return Decision::Ignore(format!("ningún canal configurado para {tipo}"));
    }
    let notice = Notice {
        tipo,
        key_prefix: key_prefix.to_string(),
        parent,
        nro_tarjeta: card.map(|c| c.nro_tarjeta.clone()),
        saldo,
        data,
    };
    Decision::Create(notice.requests(channels, &input.ctx.turned_off))
}

/// The card's holder and its responsible parent, or why the notice cannot be addressed.
fn holder<'c>(ctx: &'c Context, nro_tarjeta: &str) -> Result<(&'c Card, &'c Student, &'c Parent), String> {
    let card = ctx.cards.get(nro_tarjeta).ok_or_else(|| format!("la tarjeta {nro_tarjeta} no existe"))?;
    let student = card.student.as_ref().ok_or_else(|| format!("la tarjeta {nro_tarjeta} no tiene alumno asignado"))?;
    let parent = card
        .parent
        .as_ref()
        .ok_or_else(|| format!("el alumno de la tarjeta {nro_tarjeta} no tiene cliente responsable"))?;
    if !parent.activo {
        return Err(format!("el cliente {} está inactivo", parent.id_cliente));
    }
    Ok((card, student, parent))
}
