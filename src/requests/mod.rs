//! `solicitudes_notificacion`, the requests: the only Rust code with SQL that reads or writes the table.
//!
//! A request is created `Pendiente` (or already `Error`/`Omitido` when there is nothing to send), claimed under a
//! lease by a dispatcher, and ends `Enviado`, `Error` or `Omitido` ([`state::RequestState`]); its delivery state
//! (`estado_entrega`) then moves forward with the providers' receipts ([`receipts`]), and the clean-up deletes it
//! after its retention period ([`retention`]). Every change leaves a history row ([`history`]). The opt-out
//! condition ([`optout_sql`]) and the dedup key ([`key`]) are written here once, for SQL and Rust alike.

pub mod history;
pub mod key;
pub mod optout_sql;
pub mod optouts;
pub mod receipts;
pub mod reports;
pub mod retention;
pub mod staff;
pub mod state;

pub use history::HistoryRow;
pub use key::DedupKey;
pub use state::RequestState;
