//! Delivery states and the one rule that moves them, in Rust (pure, for tests and callers) and in SQL (the
//! UPDATE that applies a receipt, so two concurrent callbacks cannot move a request backwards).
//!
//! One delivery state per request, in `solicitudes_notificacion.estado_entrega` (never in `estado`):
//!
//! | state       | meaning                                                       |
//! |-------------|---------------------------------------------------------------|
//! | `sent`      | the provider handed it to the carrier / WhatsApp              |
//! | `failed`    | the provider reports it could not be delivered                |
//! | `delivered` | it reached the handset                                        |
//! | `read`      | the recipient opened it (WhatsApp)                            |
//!
//! The states are ranked `sent < failed < delivered < read` and a receipt only ever moves a request to a
//! higher rank; anything else (a repeat, or a late `sent` after `delivered`) changes nothing. So:
//! - out-of-order and repeated callbacks are harmless, and a skipped `delivered` (Meta may send `read` only) is fine;
//! - `failed` overrides `sent`, but a `delivered` or `read` arriving after `failed` wins: it is positive proof
//!   from the handset, which is stronger evidence than a failure report (implausible, but if it happens the
//!   parent did get the notice); and a `failed` after `delivered`/`read` is ignored for the same reason.
//!
//! Provider statuses that say nothing beyond "the provider accepted it" (Twilio `accepted`, `queued`,
//! `scheduled`, `sending`) are ignored: `estado = 'Enviado'` already records that.

use std::sync::LazyLock;

use deadpool_postgres::Pool;

use crate::channels::provider_text::{clean_id, clean_reason};
use crate::db::DbError;
use crate::domain::ChannelKind;
use crate::requests::receipts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Sent,
    Failed,
    Delivered,
    Read,
}

impl DeliveryState {
    /// Every state, in rank order.
    pub const ALL: [DeliveryState; 4] =
        [DeliveryState::Sent, DeliveryState::Failed, DeliveryState::Delivered, DeliveryState::Read];

    /// The value stored in `estado_entrega` (and used as the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Position in the only order a request may move in; no state (NULL) is 0.
    pub fn rank(self) -> i32 {
        match self {
            DeliveryState::Sent => 1,
            DeliveryState::Failed => 2,
            DeliveryState::Delivered => 3,
            DeliveryState::Read => 4,
        }
    }

    /// The state after a receipt saying `incoming` arrives for a request in `current`: `Some` when it moves,
    /// `None` when the receipt changes nothing. [`record_receipt`] applies the same rule in SQL.
    pub fn advance(current: Option<DeliveryState>, incoming: DeliveryState) -> Option<DeliveryState> {
        (incoming.rank() > current.map_or(0, DeliveryState::rank)).then_some(incoming)
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Twilio's `MessageStatus` (SMS and WhatsApp) as a delivery state; `None` for statuses that are ignored.
/// `undelivered`, `failed` and `canceled` (a scheduled message that will never go) are `failed`.
pub fn twilio_state(message_status: &str) -> Option<DeliveryState> {
    match message_status.trim().to_ascii_lowercase().as_str() {
        "sent" => Some(DeliveryState::Sent),
        "delivered" => Some(DeliveryState::Delivered),
        "read" => Some(DeliveryState::Read),
        "undelivered" | "failed" | "canceled" => Some(DeliveryState::Failed),
        // accepted, scheduled, queued, sending: still inside Twilio, nothing beyond 'Enviado';
        // receiving, received: inbound messages; anything newer: unknown, ignored.
        _ => None,
    }
}

/// Meta WhatsApp Cloud API `statuses[].status` as a delivery state; `None` for anything else
/// (`deleted`, `warning`, future values).
pub fn meta_state(status: &str) -> Option<DeliveryState> {
    match status.trim().to_ascii_lowercase().as_str() {
        "sent" => Some(DeliveryState::Sent),
        "delivered" => Some(DeliveryState::Delivered),
        "read" => Some(DeliveryState::Read),
        "failed" => Some(DeliveryState::Failed),
        _ => None,
    }
}

/// The statement that applies a receipt only if it moves the request forward
/// ([`crate::requests::receipts::record_receipt_sql`]), with the delivery states ranked by [`DeliveryState::rank`]
/// so SQL and Rust agree.
static RECORD_RECEIPT: LazyLock<String> = LazyLock::new(|| receipts::record_receipt_sql(&ranks()));

/// Each delivery state with its [`DeliveryState::rank`], for the SQL.
fn ranks() -> Vec<(&'static str, i32)> {
    DeliveryState::ALL.iter().map(|s| (s.as_str(), s.rank())).collect()
}

/// Records a receipt for the request the provider knows as `provider_id`; true if the request's delivery
/// state changed (false for an unknown id, a repeat, or an older state arriving late).
pub async fn record_receipt(
    pool: &Pool,
    provider: &str,
    provider_id: &str,
    state: DeliveryState,
) -> Result<bool, DbError> {
    Ok(record_receipt_detail(pool, provider, provider_id, state, None).await?.is_some())
}

/// [`record_receipt`], with the provider's failure detail for `ultimo_error` (used only when the state becomes
/// `failed`), returning the `id_solicitud` whose state changed (for a fallback to pick up).
pub async fn record_receipt_detail(
    pool: &Pool,
    provider: &str,
    provider_id: &str,
    state: DeliveryState,
    failure_detail: Option<&str>,
) -> Result<Option<i64>, DbError> {
    // Cleaned as the sent id was (crate::channels::provider_text), so it matches, and NUL cannot fail the query.
    let Some(provider_id) = clean_id(provider_id) else {
        return Ok(None);
    };
    let failure_detail = failure_detail.map(clean_reason);
    let conn = pool.get().await?;
    Ok(receipts::record_receipt(
        &conn,
        &RECORD_RECEIPT,
        provider,
        &provider_id,
        state.as_str(),
        failure_detail.as_deref(),
    )
    .await?)
}

/// The channel and address of the request the provider knows as `provider_id` (for an opt-out the provider
/// reports about it); `None` for an unknown id or a request without an address.
pub async fn request_address(
    pool: &Pool,
    provider: &str,
    provider_id: &str,
) -> Result<Option<(ChannelKind, String)>, DbError> {
    let Some(provider_id) = clean_id(provider_id) else {
        return Ok(None);
    };
    let conn = pool.get().await?;
    let row = receipts::request_address(&conn, provider, &provider_id).await?;
    Ok(row.and_then(|(destino, destinatario)| Some((ChannelKind::parse(&destino).ok()?, destinatario))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryState::*;

    #[test]
    fn twilio_statuses() {
        for (status, expected) in [
            ("accepted", None),
            ("scheduled", None),
            ("queued", None),
            ("sending", None),
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Read)),
            ("undelivered", Some(Failed)),
            ("failed", Some(Failed)),
            ("canceled", Some(Failed)),
            ("received", None),
            ("receiving", None),
            ("Delivered", Some(Delivered)),
            ("", None),
            ("partially_delivered", None),
        ] {
            assert_eq!(twilio_state(status), expected, "{status}");
        }
    }

    #[test]
    fn meta_statuses() {
        for (status, expected) in [
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Read)),
            ("failed", Some(Failed)),
            ("deleted", None),
            ("warning", None),
            ("", None),
        ] {
            assert_eq!(meta_state(status), expected, "{status}");
        }
    }

    #[test]
    fn states_only_move_forward() {
        // From nothing, anything.
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::advance(None, s), Some(s));
        }
        // Repeats change nothing.
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::advance(Some(s), s), None, "{s} repeated");
        }
        assert_eq!(DeliveryState::advance(Some(Sent), Delivered), Some(Delivered));
        assert_eq!(DeliveryState::advance(Some(Sent), Read), Some(Read), "delivered skipped");
        assert_eq!(DeliveryState::advance(Some(Delivered), Read), Some(Read));
        assert_eq!(DeliveryState::advance(Some(Delivered), Sent), None, "late sent");
        assert_eq!(DeliveryState::advance(Some(Read), Delivered), None, "late delivered");
        assert_eq!(DeliveryState::advance(Some(Sent), Failed), Some(Failed));
        assert_eq!(DeliveryState::advance(Some(Failed), Sent), None, "a late sent does not undo a failure");
        assert_eq!(DeliveryState::advance(Some(Failed), Delivered), Some(Delivered), "handset proof wins");
        assert_eq!(DeliveryState::advance(Some(Failed), Read), Some(Read));
        assert_eq!(DeliveryState::advance(Some(Delivered), Failed), None);
        assert_eq!(DeliveryState::advance(Some(Read), Failed), None);
    }

    /// Any order of the same receipts ends in the same state: the highest rank seen.
    #[test]
    fn order_does_not_matter() {
        fn permutations(rest: Vec<DeliveryState>) -> Vec<Vec<DeliveryState>> {
            if rest.is_empty() {
                return vec![vec![]];
            }
            let mut out = Vec::new();
            for (i, first) in rest.iter().enumerate() {
                let mut others = rest.clone();
                others.remove(i);
                for mut tail in permutations(others) {
                    tail.insert(0, *first);
                    out.push(tail);
                }
            }
            out
        }
        let orders = permutations(vec![Sent, Delivered, Failed, Read]);
        assert_eq!(orders.len(), 24);
        for order in orders {
            let end = order.iter().fold(None, |cur, r| DeliveryState::advance(cur, *r).or(cur));
            assert_eq!(end, Some(Read), "{order:?}");
        }
    }

    #[test]
    fn names_round_trip_and_fit_the_column() {
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
            assert!(s.as_str().len() <= 20, "estado_entrega is varchar(20)");
        }
        assert_eq!(DeliveryState::parse("queued"), None);
    }

    fn rank_sql(expr: &str) -> String {
        receipts::rank_sql(expr, &ranks())
    }

    #[test]
    fn the_sql_ranks_match_the_rust_ranks() {
        assert_eq!(
            rank_sql("estado_entrega"),
            "CASE estado_entrega WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 0 END"
        );
        assert!(RECORD_RECEIPT.contains(&format!("{} < {}", rank_sql("estado_entrega"), rank_sql("$3::varchar"))));
    }
}
