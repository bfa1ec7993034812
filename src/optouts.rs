//! Opt-outs per address: a parent who replies STOP to an SMS, BAJA on WhatsApp, or reports an email as spam gets no
//! more notices on that channel until they opt back in (START, ALTA). Kept in `cantina_notify_bajas`; the
//! dispatcher records requests to an opted-out address as `Omitido` with the reason instead of sending them.

use deadpool_postgres::Pool;

use crate::db::DbError;
use crate::domain::{ChannelKind, EmailAddress, MobilePhone};

/// What an inbound message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptChange {
    Out,
    In,
}

/// The carriers' and Twilio's standard keywords, plus the Spanish words parents in Paraguay use. Only a message
/// that is exactly one keyword counts (a parent writing "no puedo parar de reír" has not opted out).
pub fn keyword(body: &str) -> Option<OptChange> {
    let word: String = body
        .trim()
        .trim_matches(|c: char| c.is_ascii_punctuation() || c == '¡' || c == '¿')
        .to_uppercase()
        .replace('Á', "A");
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "BAJA" | "PARAR" | "DETENER" | "CANCELAR" => {
            Some(OptChange::Out)
        }
        "START" | "UNSTOP" | "YES" | "ALTA" | "SUSCRIBIR" => Some(OptChange::In),
        _ => None,
    }
}

/// The address as `cantina_notify_bajas.destinatario` keeps it: E.164 for phones (a provider's `whatsapp:+595…`
/// or Meta's bare `595…` included), lower case for email. `None` when it is not an address of that channel.
pub fn normalise(channel: ChannelKind, raw: &str) -> Option<String> {
    match channel {
        ChannelKind::Sms | ChannelKind::WhatsApp => {
            let raw = raw.trim();
            let raw = raw.strip_prefix("whatsapp:").unwrap_or(raw);
            let with_plus = if raw.starts_with('+') { raw.to_string() } else { format!("+{raw}") };
            MobilePhone::parse(Some(&with_plus)).ok().map(|p| p.as_str().to_string())
        }
        ChannelKind::Email => EmailAddress::parse(Some(raw)).ok().map(|e| e.as_str().to_lowercase()),
        ChannelKind::Portal => None,
    }
}

/// Records an opt-out (or renews it with the new reason). Returns false when the address is not one of the channel.
pub async fn opt_out(
    pool: &Pool,
    channel: ChannelKind,
    address: &str,
    provider: &str,
    motivo: &str,
) -> Result<bool, DbError> {
    let Some(address) = normalise(channel, address) else {
        return Ok(false);
    };
    // The reason may quote the provider: cleaned so that it cannot make the opt-out fail.
    let motivo = crate::channels::provider_text::clean_reason(motivo);
    pool.get()
        .await?
        .execute(
            "INSERT INTO cantina_notify_bajas (destino, destinatario, motivo, proveedor)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (destino, destinatario) DO UPDATE
             SET motivo = EXCLUDED.motivo, proveedor = EXCLUDED.proveedor, fecha_baja = now(), fecha_alta = NULL",
            &[&channel.destino(), &address, &motivo, &provider],
        )
        .await?;
    Ok(true)
}

/// The parent opted back in: later notices go out again. Returns whether an active opt-out was lifted.
pub async fn opt_in(pool: &Pool, channel: ChannelKind, address: &str) -> Result<bool, DbError> {
    let Some(address) = normalise(channel, address) else {
        return Ok(false);
    };
    let n = pool
        .get()
        .await?
        .execute(
            "UPDATE cantina_notify_bajas SET fecha_alta = now()
             WHERE destino = $1 AND destinatario = $2 AND fecha_alta IS NULL",
            &[&channel.destino(), &address],
        )
        .await?;
    Ok(n > 0)
}

/// Due requests to an opted-out address are recorded `Omitido` before they are claimed (so also those created
/// before the opt-out, and the POS's manual ones: a STOP must be respected whoever asks).
pub async fn omit_opted_out(pool: &Pool) -> Result<u64, DbError> {
    Ok(pool
        .get()
        .await?
        .execute(
            "UPDATE solicitudes_notificacion s
             SET estado = 'Omitido', proximo_intento = NULL, actualizado_en = now(),
                 ultimo_error = 'el destinatario pidió no recibir más mensajes por ' || s.destino
                     || ' (' || b.motivo || ', ' || to_char(b.fecha_baja AT TIME ZONE 'America/Asuncion', 'DD/MM/YYYY') || ')'
             FROM cantina_notify_bajas b
             WHERE s.estado = 'Pendiente' AND s.clave_dedup IS NOT NULL AND s.proximo_intento <= now()
               AND b.fecha_alta IS NULL AND b.destino = s.destino
               AND b.destinatario = CASE WHEN s.destino = 'Email' THEN lower(s.destinatario) ELSE s.destinatario END",
            &[],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_messages_in_either_language() {
        for w in ["STOP", "stop", " Baja ", "BAJA.", "parar", "¡Detener!", "unsubscribe"] {
            assert_eq!(keyword(w), Some(OptChange::Out), "{w}");
        }
        for w in ["START", "alta", "Unstop", "ALTA!"] {
            assert_eq!(keyword(w), Some(OptChange::In), "{w}");
        }
        for w in ["", "hola", "no quiero parar", "STOP por favor", "gracias"] {
            assert_eq!(keyword(w), None, "{w}");
        }
    }

    #[test]
    fn addresses_are_normalised_per_channel() {
        assert_eq!(normalise(ChannelKind::Sms, "+595981123456").as_deref(), Some("+595981123456"));
        assert_eq!(normalise(ChannelKind::WhatsApp, "whatsapp:+595981123456").as_deref(), Some("+595981123456"));
        // Meta's wa_id has no plus sign.
        assert_eq!(normalise(ChannelKind::WhatsApp, "595981123456").as_deref(), Some("+595981123456"));
        assert_eq!(normalise(ChannelKind::Email, "Ana.Perez@Example.COM").as_deref(), Some("ana.perez@example.com"));
        assert_eq!(normalise(ChannelKind::Email, "no es correo"), None);
        assert_eq!(normalise(ChannelKind::Sms, "hola"), None);
        assert_eq!(normalise(ChannelKind::Portal, "cliente:1"), None);
    }
}
