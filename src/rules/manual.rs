use super::{
    Decision, ManualCompletion, ManualRow, MessageData, NewRequest, RuleInput, local_datetime, resolve_recipient,
};
use crate::domain::{ChannelKind, DedupKey, Guaranies, NotificationType, RequestState};

/// The POS "Notificar" button: one notice for one card (or client), on the channel the row names (or the first
/// channel configured for its type). What the row asks for decides the type ([`requested_type`]): the staff's text
/// (`mensaje_cantina`), a type the row names, or today's low-balance notice. The service completes the row itself;
/// it is never duplicated, and like every explicit request it is not subject to preferences.
pub(super) fn decide(input: &RuleInput<'_>, id_solicitud: i64) -> Decision {
    let Some(row) = input.ctx.manual.get(&id_solicitud) else {
        return Decision::Ignore(format!("la solicitud {id_solicitud} ya no existe"));
    };
    if row.clave_dedup.is_some() || row.estado != RequestState::Pendiente.as_str() {
        return Decision::Ignore(format!("la solicitud {id_solicitud} ya fue procesada"));
    }
    let clave_dedup = DedupKey::manual(id_solicitud).into_string();
    let fail = |tipo, channel, reason: String| Decision::CompleteManual {
        id_solicitud,
        completion: Box::new(ManualCompletion::Fail { tipo, clave_dedup: clave_dedup.clone(), channel, reason }),
    };
    let tipo = match requested_type(row) {
        Ok(t) => t,
        Err((tipo, reason)) => return fail(tipo, None, reason),
    };

    let channel = match row.destino.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => match ChannelKind::parse(d) {
            Ok(c) => c,
            Err(_) => {
                return fail(
                    tipo,
                    None,
                    format!("destino desconocido '{d}' (se espera Email, SMS, WhatsApp o Portal)"),
                );
            }
        },
        None => match input.config.channels_for(tipo).first() {
            Some(c) => *c,
            None => {
                return fail(
                    tipo,
                    None,
                    format!("la solicitud no indica destino y {tipo} no tiene canales configurados"),
                );
            }
        },
    };
    if !input.config.available.contains(&channel) {
        return fail(tipo, Some(channel), format!("el canal {} no está configurado en el servicio", channel.destino()));
    }
    let card = match row.nro_tarjeta.as_deref() {
        Some(nro_tarjeta) => match input.ctx.cards.get(nro_tarjeta) {
            Some(card) => Some(card),
            None => return fail(tipo, Some(channel), format!("la tarjeta {nro_tarjeta} no existe")),
        },
        // The staff's text may go to a client without naming a card; the card's own notices need the card.
        None if tipo == NotificationType::MensajeCantina && row.id_cliente.is_some() => None,
        None if tipo == NotificationType::MensajeCantina => {
            return fail(tipo, Some(channel), "la solicitud manual no indica nro_tarjeta ni id_cliente".into());
        }
        None => return fail(tipo, Some(channel), "la solicitud manual no indica nro_tarjeta".into()),
    };
    // The row's client wins (the POS chose whom to notify); otherwise the card holder's parent.
    let parent = match row.id_cliente {
        Some(id) => input.ctx.parents.get(&id),
        None => card.and_then(|c| c.parent.as_ref()),
    };
    let Some(parent) = parent else {
        let reason = match card {
            Some(c) => format!("no se encontró el cliente a notificar para la tarjeta {}", c.nro_tarjeta),
            None => format!("no se encontró el cliente {}", row.id_cliente.unwrap_or_default()),
        };
        return fail(tipo, Some(channel), reason);
    };
    let padre = parent.nombres.trim().to_string();
    let fecha = local_datetime(input.event.created_at);
    let alumno =
        card.map(|c| c.student.as_ref().map_or_else(|| format!("tarjeta {}", c.nro_tarjeta), |s| s.full_name()));
    let (data, saldo) = match (tipo, card, alumno) {
        (NotificationType::SaldoBajo, Some(card), Some(alumno)) => (
            MessageData::SaldoBajo(super::AvisoSaldoBajo::una(
                padre,
                super::TarjetaSaldoBajo {
                    alumno,
                    nro_tarjeta: card.nro_tarjeta.clone(),
                    saldo: Guaranies(card.saldo_actual),
                    umbral: Guaranies(card.threshold(input.config.umbral_saldo_bajo)),
                },
                fecha,
            )),
            Some(Guaranies(card.saldo_actual)),
        ),
        (NotificationType::TarjetaBloqueada, Some(card), Some(alumno)) => {
            (MessageData::TarjetaBloqueada { padre, alumno, nro_tarjeta: card.nro_tarjeta.clone(), fecha }, None)
        }
        (NotificationType::MensajeCantina, _, alumno) => {
            // The staff's own words, as they typed them (`requested_type` saw them non-empty).
            let mensaje = row.mensaje.as_deref().unwrap_or_default().trim().to_string();
            (MessageData::MensajeCantina { padre, alumno, mensaje, fecha }, None)
        }
        // `requested_type` returns no other type, and the card's notices have their card by now.
        (tipo, _, _) => return fail(tipo, Some(channel), format!("el tipo {tipo} no puede enviarse desde la caja")),
    };
    Decision::CompleteManual {
        id_solicitud,
        completion: Box::new(ManualCompletion::Send(NewRequest {
            tipo,
            channel,
            clave_dedup,
            id_cliente: parent.id_cliente,
            nro_tarjeta: card.map(|c| c.nro_tarjeta.clone()),
            saldo,
            recipient: resolve_recipient(channel, parent),
            data,
            // Staff pressed the button for this parent: an explicit request, not subject to preferences.
            omitted: None,
            fallback: Vec::new(),
            origin: None,
        })),
    }
}

/// The types a POS row may name in its `tipo`: those built from the card alone.
const FROM_A_CARD: [NotificationType; 2] = [NotificationType::SaldoBajo, NotificationType::TarjetaBloqueada];

/// What the row asks for: its non-empty `mensaje` is the staff's text (`mensaje_cantina`, whatever `tipo` says);
/// otherwise the type its `tipo` names, if it can be built from a POS row; with neither, the low-balance notice
/// the button always sent. Err: the type to record the row under and why it cannot be sent.
fn requested_type(row: &ManualRow) -> Result<NotificationType, (NotificationType, String)> {
    if row.mensaje.as_deref().is_some_and(|m| !m.trim().is_empty()) {
        return Ok(NotificationType::MensajeCantina);
    }
    let Some(tipo) = row.tipo.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(NotificationType::SaldoBajo);
    };
    let choices = "saldo_bajo o tarjeta_bloqueada, o un mensaje escrito";
    match NotificationType::parse(tipo) {
        Ok(t) if FROM_A_CARD.contains(&t) => Ok(t),
        Ok(NotificationType::MensajeCantina) => Err((
            NotificationType::MensajeCantina,
            "la solicitud indica tipo mensaje_cantina pero no trae mensaje".into(),
        )),
        Ok(t) => Err((t, format!("el tipo {t} no puede enviarse desde la caja (se espera {choices})"))),
        // Recorded under the button's default type; the reason names what the row said.
        Err(_) => {
            Err((NotificationType::SaldoBajo, format!("tipo de aviso desconocido '{tipo}' (se espera {choices})")))
        }
    }
}
