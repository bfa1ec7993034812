use super::{Decision, MessageData, RuleInput, holder, local_datetime, per_channel};
use crate::domain::NotificationType;

/// `tarjeta_bloqueada`: each time a card becomes `Bloqueada` (the event id tells blockings apart).
pub(super) fn decide(input: &RuleInput<'_>, nro_tarjeta: &str) -> Decision {
    let (card, student, parent) = match holder(input.ctx, nro_tarjeta) {
        Ok(h) => h,
        Err(reason) => return Decision::Ignore(reason),
    };
    let data = MessageData::TarjetaBloqueada {
        padre: parent.nombres.trim().to_string(),
        alumno: student.full_name(),
        nro_tarjeta: card.nro_tarjeta.clone(),
        fecha: local_datetime(input.event.created_at),
    };
    per_channel(
        input,
        NotificationType::TarjetaBloqueada,
        &format!("tarjeta_bloqueada:{nro_tarjeta}:{}", input.event.id),
        parent,
        Some(card),
        None,
        data,
    )
}
