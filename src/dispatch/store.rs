//! The dispatcher's view of the requests table; the SQL lives in [`crate::requests`] (re-exported at this path).

pub use crate::requests::claim::{claim, defer, release};
pub use crate::requests::outcome::{Outcome, close_abandoned, oldest_due, record, restore_sent, sent_row};
pub use crate::requests::row::Claimed;
pub use crate::requests::signing_upgrade::sign_pending_at_upgrade;
