//! Reads of the Cantina app's own tables (cards, students, parents, recharges, portal preferences) for every
//! producer of requests: the drain, the sweeps and the fallback. The service only reads them, except the card's
//! low-balance stamp ([`cards::stamp_low_balance`]), which the app and the rules read back.

pub mod cards;
pub mod context;
pub mod parents;
pub mod preferences;
pub mod sweeps;

use std::time::SystemTime;

use jiff::Timestamp;

pub(crate) fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}
