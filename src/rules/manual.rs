use super::{Decision, ManualCompletion, MessageData, NewRequest, RuleInput, local_datetime, resolve_recipient};
use crate::domain::{ChannelKind, DedupKey, Guaranies, NotificationType, RequestState};

/// The POS "Notificar" button: a low-balance notice for one card, on the channel the row names (or the first
/// channel configured for `saldo_bajo`). The service completes the row itself; it is never duplicated.
pub(super) fn decide(input: &RuleInput<'_>, id_solicitud: i64) -> Decision {
    let Some(row) = input.ctx.manual.get(&id_solicitud) else {
        return Decision::Ignore(format!("la solicitud {id_solicitud} ya no existe"));
    };
    if row.clave_dedup.is_some() || row.estado != RequestState::Pendiente.as_str() {
        return Decision::Ignore(format!("la solicitud {id_solicitud} ya fue procesada"));
    }
    let clave_dedup = DedupKey::manual(id_solicitud).into_string();
    let fail = |channel, reason: String| Decision::CompleteManual {
        id_solicitud,
        completion: Box::new(ManualCompletion::Fail { clave_dedup: clave_dedup.clone(), channel, reason }),
    };

    let channel = match row.destino.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => match ChannelKind::parse(d) {
            Ok(c) => c,
            Err(_) => {
                return fail(None, format!("destino desconocido '{d}' (se espera Email, SMS, WhatsApp o Portal)"));
            }
        },
        None => match input.config.channels_for(NotificationType::SaldoBajo).first() {
            Some(c) => *c,
            None => {
                return fail(None, "la solicitud no indica destino y saldo_bajo no tiene canales configurados".into());
            }
        },
    };
    if !input.config.available.contains(&channel) {
        return fail(Some(channel), format!("el canal {} no está configurado en el servicio", channel.destino()));
    }
    let Some(nro_tarjeta) = row.nro_tarjeta.as_deref() else {
        return fail(Some(channel), "la solicitud manual no indica nro_tarjeta".into());
    };
    let Some(card) = input.ctx.cards.get(nro_tarjeta) else {
        return fail(Some(channel), format!("la tarjeta {nro_tarjeta} no existe"));
    };
    // The row's client wins (the POS chose whom to notify); otherwise the card holder's parent.
    let parent = match row.id_cliente {
        Some(id) => input.ctx.parents.get(&id),
        None => card.parent.as_ref(),
    };
    let Some(parent) = parent else {
        return fail(Some(channel), format!("no se encontró el cliente a notificar para la tarjeta {nro_tarjeta}"));
    };
    let alumno = card.student.as_ref().map_or_else(|| format!("tarjeta {nro_tarjeta}"), |s| s.full_name());
    let data = MessageData::SaldoBajo(super::AvisoSaldoBajo::una(
        parent.nombres.trim().to_string(),
        super::TarjetaSaldoBajo {
            alumno,
            nro_tarjeta: nro_tarjeta.to_string(),
            saldo: Guaranies(card.saldo_actual),
            umbral: Guaranies(card.threshold(input.config.umbral_saldo_bajo)),
        },
        local_datetime(input.event.created_at),
    ));
    Decision::CompleteManual {
        id_solicitud,
        completion: Box::new(ManualCompletion::Send(NewRequest {
            tipo: NotificationType::SaldoBajo,
            channel,
            clave_dedup,
            id_cliente: parent.id_cliente,
            nro_tarjeta: Some(nro_tarjeta.to_string()),
            saldo: Some(Guaranies(card.saldo_actual)),
            recipient: resolve_recipient(channel, parent),
            data,
            // Staff pressed the button for this parent: an explicit request, not subject to preferences.
            omitted: None,
            fallback: Vec::new(),
            origin: None,
        })),
    }
}
