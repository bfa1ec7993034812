use super::{Decision, MessageData, RuleInput, holder, per_channel};
use crate::domain::NotificationType;

/// `tarjeta_vencida`: a card's `estado` became `Vencida`. Once per card and expiry date: the key
/// `tarjeta_vencida:<nro>:<fecha_vencimiento>` is the daily sweep's too, so whichever comes first (this event or the
/// date passing) notifies, and the other finds the key taken. A card without a date is keyed `sin-fecha`.
pub(super) fn decide(input: &RuleInput<'_>, nro_tarjeta: &str) -> Decision {
    let (card, student, parent) = match holder(input.ctx, nro_tarjeta) {
        Ok(h) => h,
        Err(reason) => return Decision::Ignore(reason),
    };
    let (fecha, vencio) = match card.fecha_vencimiento {
        Some(d) => (d.to_string(), crate::present::format::fecha(d)),
        None => ("sin-fecha".to_string(), crate::present::format::fecha(input.today())),
    };
    let data = MessageData::TarjetaVencida {
        padre: parent.nombres.trim().to_string(),
        alumno: student.full_name(),
        nro_tarjeta: card.nro_tarjeta.clone(),
        vencio,
        ademas: Vec::new(),
    };
    per_channel(
        input,
        NotificationType::TarjetaVencida,
        &crate::rules::expiry_key(NotificationType::TarjetaVencida, nro_tarjeta, &fecha),
        parent,
        Some(card),
        None,
        data,
    )
}
