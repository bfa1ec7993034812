//! The SQL of the family's daily message (migration 0023): the day's row per client, locked while a sweep decides,
//! and the ledger of the items sent.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;
use jiff::civil::Date;

use super::family::{LastDebtReminder, Urgencia, debt_level};
use crate::db::DbError;

/// Makes sure the day's row exists (urgency 0: nothing sent yet).
const ENSURE_DAY: &str = "
    INSERT INTO cantina_notify_mensaje_diario (id_cliente, fecha, urgencia)
    VALUES ($1, $2::text::date, 0) ON CONFLICT (id_cliente, fecha) DO NOTHING";

/// Locks the day's row until the sweep's transaction ends: a second replica (or re-run) waits here and then reads
/// what the first one committed.
const LOCK_DAY: &str = "
    SELECT urgencia FROM cantina_notify_mensaje_diario WHERE id_cliente = $1 AND fecha = $2::text::date FOR UPDATE";

/// Raises the day's urgency to what was just sent (never lowers it).
const RAISE_DAY: &str = "
    UPDATE cantina_notify_mensaje_diario SET urgencia = $3, actualizado_en = now()
    WHERE id_cliente = $1 AND fecha = $2::text::date AND urgencia < $3";

const SENT_KEYS: &str = "SELECT clave FROM cantina_notify_avisos_enviados WHERE clave = ANY($1)";

const RECORD_SENT: &str = "
    INSERT INTO cantina_notify_avisos_enviados (clave, id_cliente, tipo, nro_tarjeta, fecha)
    VALUES ($1, $2, $3, $4, $5::text::date) ON CONFLICT (clave) DO NOTHING";

const DEBT_KEYS_OF_CLIENTS: &str = "
    SELECT id_cliente, fecha::text, clave FROM cantina_notify_avisos_enviados
    WHERE tipo = 'recordatorio_deuda' AND id_cliente = ANY($1)";

const LOW_KEYS_OF_CARDS: &str = "
    SELECT nro_tarjeta, clave FROM cantina_notify_avisos_enviados
    WHERE tipo = 'saldo_bajo' AND nro_tarjeta = ANY($1)";

/// Locks client `id_cliente`'s row of `day` and returns the urgency already sent that day (`None`: nothing yet).
pub async fn lock_day(tx: &impl GenericClient, id_cliente: i32, day: Date) -> Result<Option<Urgencia>, DbError> {
    let day = day.to_string();
    tx.execute(ENSURE_DAY, &[&id_cliente, &day]).await?;
    let row = tx.query_one(LOCK_DAY, &[&id_cliente, &day]).await?;
    Ok(match row.get::<_, i16>(0) {
        0 => None,
        1 => Some(Urgencia::SaldoBajo),
        2 => Some(Urgencia::Vencimiento),
        _ => Some(Urgencia::Deuda),
    })
}

pub async fn raise_day(tx: &impl GenericClient, id_cliente: i32, day: Date, urgencia: Urgencia) -> Result<(), DbError> {
    tx.execute(RAISE_DAY, &[&id_cliente, &day.to_string(), &urgencia.as_i16()]).await?;
    Ok(())
}

/// Which of `keys` the ledger holds (sent before, in whatever message).
pub async fn sent_keys(tx: &impl GenericClient, keys: &[String]) -> Result<HashSet<String>, DbError> {
    Ok(tx.query(SENT_KEYS, &[&keys]).await?.iter().map(|r| r.get(0)).collect())
}

/// Records one item key (and its card) as sent on `day`.
pub async fn record_sent(
    tx: &impl GenericClient,
    key: &str,
    id_cliente: i32,
    tipo: &str,
    nro_tarjeta: &str,
    day: Date,
) -> Result<(), DbError> {
    tx.execute(RECORD_SENT, &[&key, &id_cliente, &tipo, &nro_tarjeta, &day.to_string()]).await?;
    Ok(())
}

/// `(nro_tarjeta, clave)` of the low-balance items sent about `cards` (crossings among them).
pub async fn low_keys_of_cards(tx: &impl GenericClient, cards: &[String]) -> Result<Vec<(String, String)>, DbError> {
    Ok(tx.query(LOW_KEYS_OF_CARDS, &[&cards]).await?.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Each of `clients`' last debt reminder in the ledger: the latest date, and the highest level sent that day.
pub async fn last_debt_reminders(
    tx: &impl GenericClient,
    clients: &[i32],
) -> Result<HashMap<i32, LastDebtReminder>, DbError> {
    let mut last: HashMap<i32, LastDebtReminder> = HashMap::new();
    for r in tx.query(DEBT_KEYS_OF_CLIENTS, &[&clients]).await? {
        let (Ok(fecha), Some(nivel)) = (r.get::<_, String>(1).parse::<Date>(), debt_level(r.get(2))) else { continue };
        let this = LastDebtReminder { fecha, nivel };
        let e = last.entry(r.get(0)).or_insert(this);
        if (this.fecha, this.nivel) > (e.fecha, e.nivel) {
            *e = this;
        }
    }
    Ok(last)
}
