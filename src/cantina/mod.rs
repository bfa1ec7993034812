//! Reads of the Cantina app's own tables (cards, students, parents, recharges, portal preferences) for every
//! producer of requests: the drain, the sweeps and the fallback. The service only reads them, except the card's
//! low-balance stamp ([`cards::stamp_low_balance`]), which the app and the rules read back.

pub mod cards;
pub mod context;
pub mod parents;
pub mod preferences;
pub mod spending;
pub mod sweeps;

use std::time::SystemTime;

use jiff::Timestamp;
use tokio_postgres::Row;

pub(crate) fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A text column the Cantina's schema declares NOT NULL (names, `ruc_ci`), read so that a row breaking that (an older
/// app version, a hand-made row) gives an empty text instead of a panic that would stop its whole batch.
/// A `date` column read as text (`::text`, ISO), as a civil date; `None` for NULL.
pub(crate) fn date(r: &Row, column: &str) -> Option<jiff::civil::Date> {
    r.get::<_, Option<String>>(column).and_then(|s| s.parse().ok())
}

pub(crate) fn text(r: &Row, column: &str) -> String {
    r.get::<_, Option<String>>(column).unwrap_or_default()
}
