use super::{Decision, MessageData, RuleInput, holder, local_datetime, per_channel};
use crate::domain::{Guaranies, NotificationType};

/// `recarga_exitosa`: one notice per confirmed recharge, to the card holder's parent.
pub(super) fn decide(input: &RuleInput<'_>, id_carga: i64) -> Decision {
    let Some(r) = input.ctx.recharges.get(&id_carga) else {
        return Decision::Ignore(format!("la recarga {id_carga} no existe"));
    };
    if r.estado != "CONFIRMADO" {
        return Decision::Ignore(format!("la recarga {id_carga} ya no está CONFIRMADO (estado {})", r.estado));
    }
    let (card, student, parent) = match holder(input.ctx, &r.nro_tarjeta) {
        Ok(h) => h,
        Err(reason) => return Decision::Ignore(reason),
    };
    let data = MessageData::RecargaExitosa {
        padre: parent.nombres.trim().to_string(),
        alumno: student.full_name(),
        nro_tarjeta: card.nro_tarjeta.clone(),
        monto: Guaranies(r.monto),
        saldo: Guaranies(card.saldo_actual),
        fecha: local_datetime(r.fecha),
        referencia: r.referencia.clone().filter(|s| !s.trim().is_empty()),
    };
    per_channel(
        input,
        NotificationType::RecargaExitosa,
        &format!("recarga_exitosa:{id_carga}"),
        parent,
        Some(card),
        Some(Guaranies(card.saldo_actual)),
        data,
    )
}
