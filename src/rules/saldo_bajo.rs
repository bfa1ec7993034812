use super::{
    AvisoSaldoBajo, Decision, MessageData, RuleInput, TarjetaSaldoBajo, holder, local_date, local_datetime, per_channel,
};
use crate::domain::{Guaranies, NotificationType};

/// `saldo_bajo`: the balance crossed below the card's threshold. At most once per crossing (the trigger only
/// reports crossings) and once per card per local day (the dedup key carries the date, shared with the daily sweep).
pub(super) fn decide(input: &RuleInput<'_>, nro_tarjeta: &str, saldo_anterior: i64, saldo_nuevo: i64) -> Decision {
    let (card, student, parent) = match holder(input.ctx, nro_tarjeta) {
        Ok(h) => h,
        Err(reason) => return Decision::Ignore(reason),
    };
    if card.estado != "Activa" {
        return Decision::Ignore(format!("la tarjeta {nro_tarjeta} no está Activa (estado {})", card.estado));
    }
    if !card.notificar_saldo_bajo {
        return Decision::Ignore(format!("la tarjeta {nro_tarjeta} tiene desactivado el aviso de saldo bajo"));
    }
    let umbral = card.threshold(input.config.umbral_saldo_bajo);
    if !(saldo_nuevo < umbral && saldo_anterior >= umbral) {
        return Decision::Ignore(format!(
            "el cambio de saldo {saldo_anterior} → {saldo_nuevo} no cruza el umbral {umbral} de la tarjeta {nro_tarjeta}"
        ));
    }
    if card.saldo_actual >= umbral {
        return Decision::Ignore(format!(
            "la tarjeta {nro_tarjeta} ya recuperó saldo ({})",
            Guaranies(card.saldo_actual)
        ));
    }
    let today = input.today();
    if card.ultima_notificacion_saldo.is_some_and(|t| local_date(t) == today) {
        return Decision::Ignore(format!("la tarjeta {nro_tarjeta} ya recibió un aviso de saldo bajo hoy"));
    }
    let data = MessageData::SaldoBajo(AvisoSaldoBajo::una(
        parent.nombres.trim().to_string(),
        TarjetaSaldoBajo {
            alumno: student.full_name(),
            nro_tarjeta: card.nro_tarjeta.clone(),
            saldo: Guaranies(card.saldo_actual),
            umbral: Guaranies(umbral),
        },
        local_datetime(input.event.created_at),
    ));
    per_channel(
        input,
        NotificationType::SaldoBajo,
        &format!("saldo_bajo:{nro_tarjeta}:{today}"),
        parent,
        Some(card),
        Some(Guaranies(card.saldo_actual)),
        data,
    )
}
