//! Opt-outs per address: a parent who replies STOP to an SMS, BAJA on WhatsApp, or reports an email as spam gets no
//! more notices on that channel until they opt back in (START, ALTA). Kept in `cantina_notify_bajas`; the
//! dispatcher records requests to an opted-out address as `Omitido` with the reason instead of sending them.
//! Changes follow the order the parent sent them in, not the order they arrive in (see [`record`]).

use std::time::SystemTime;

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

/// Where a change comes from, to order it and to apply each message once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Source<'a> {
    /// The provider's id of the message (or event) that asked for it; a repeat of an id already applied changes
    /// nothing. `None` when there is no message to tell apart (a send refused with 21610).
    pub message_id: Option<&'a str>,
    /// When the parent sent it, by the provider's clock; `None` when the provider gives no timestamp, and then the
    /// database's clock at arrival stands in for it.
    pub sent_at: Option<SystemTime>,
}

/// What recording a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// It set the address's state.
    Applied,
    /// A newer change (or, for an opt-in, an opt-out just as new) is already recorded: refused.
    Older,
    /// This message id was applied before: nothing done.
    Repeat,
    /// Not an address of the channel: nothing done.
    NotAnAddress,
}

// One statement decides, so replicas receiving webhooks at once cannot race: the message id is claimed
// (`visto`, skipped without an id) and the change is applied only if the id was new, and then only if it is newer
// than the change that set the current state, or just as new and an opt-out (an opt-out wins a tie). `cambiado_en` is
// the provider's timestamp, or the database's clock at arrival when there is none. An opt-in keeps the lifted
// opt-out's reason and provider as history; for an address with no row it leaves a row with only `fecha_alta`, so
// an older opt-out arriving after it is refused.
const RECORD: &str = "
    WITH visto AS (
        INSERT INTO cantina_notify_mensajes_entrantes (proveedor, id_mensaje)
        SELECT $4::text, $5::text WHERE $5::text IS NOT NULL
        ON CONFLICT DO NOTHING
        RETURNING 1),
    cambio AS (
        INSERT INTO cantina_notify_bajas AS b
            (destino, destinatario, motivo, proveedor, fecha_baja, fecha_alta, cambiado_en)
        SELECT $1::text, $2::text, CASE WHEN $6::bool THEN $3::text END, $4::text,
               CASE WHEN $6::bool THEN now() END, CASE WHEN NOT $6::bool THEN now() END,
               -- A provider clock more than 5 minutes ahead of ours is not believed (arrival time instead): a
               -- change stamped years ahead would otherwise outrank every real one after it.
               CASE WHEN $7::timestamptz <= clock_timestamp() + interval '5 minutes' THEN $7::timestamptz
                    ELSE clock_timestamp() END
        WHERE $5::text IS NULL OR EXISTS (SELECT 1 FROM visto)
        ON CONFLICT (destino, destinatario) DO UPDATE
        SET motivo = coalesce(EXCLUDED.motivo, b.motivo),
            proveedor = CASE WHEN $6 THEN EXCLUDED.proveedor ELSE coalesce(b.proveedor, EXCLUDED.proveedor) END,
            fecha_baja = coalesce(EXCLUDED.fecha_baja, b.fecha_baja),
            fecha_alta = CASE WHEN $6 THEN NULL ELSE coalesce(b.fecha_alta, EXCLUDED.fecha_alta) END,
            cambiado_en = EXCLUDED.cambiado_en
        WHERE EXCLUDED.cambiado_en > b.cambiado_en OR ($6 AND EXCLUDED.cambiado_en = b.cambiado_en)
        RETURNING 1)
    SELECT $5::text IS NULL OR EXISTS (SELECT 1 FROM visto), EXISTS (SELECT 1 FROM cambio)";

/// Records an opt-out (renewing the reason of one already active) or an opt-in, if it is newer than the address's
/// current state and its message was not applied before (see [`Source`]).
pub async fn record(
    pool: &Pool,
    channel: ChannelKind,
    address: &str,
    change: OptChange,
    provider: &str,
    motivo: &str,
    source: Source<'_>,
) -> Result<Recorded, DbError> {
    let Some(address) = normalise(channel, address) else {
        return Ok(Recorded::NotAnAddress);
    };
    let out = change == OptChange::Out;
    // Both come from the provider: cleaned so that they cannot make the statement fail (a NUL, say).
    let motivo = crate::channels::provider_text::clean_reason(motivo);
    let message_id = source.message_id.and_then(crate::channels::provider_text::clean_id);
    let row = pool
        .get()
        .await?
        .query_one(RECORD, &[&channel.destino(), &address, &motivo, &provider, &message_id, &out, &source.sent_at])
        .await?;
    Ok(match (row.get::<_, bool>(0), row.get::<_, bool>(1)) {
        (false, _) => Recorded::Repeat,
        (true, true) => Recorded::Applied,
        (true, false) => Recorded::Older,
    })
}

/// A provider refused a send because the recipient opted out (no message id, no timestamp: it happens now).
/// Returns false when the address is not one of the channel.
pub async fn opt_out(
    pool: &Pool,
    channel: ChannelKind,
    address: &str,
    provider: &str,
    motivo: &str,
) -> Result<bool, DbError> {
    let recorded = record(pool, channel, address, OptChange::Out, provider, motivo, Source::default()).await?;
    Ok(recorded != Recorded::NotAnAddress)
}

/// Due requests to an opted-out address are recorded `Omitido` before they are claimed (so also those created
/// before the opt-out, and the POS's manual ones: a STOP must be respected whoever asks).
pub async fn omit_opted_out(pool: &Pool) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    Ok(crate::requests::optouts::omit_opted_out(&conn).await?)
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
