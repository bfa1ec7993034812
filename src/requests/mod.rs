//! `solicitudes_notificacion`, the requests: the only Rust code with SQL that reads or writes the table.
//!
//! A request is created `Pendiente` by a producer (the drain [`write`], the POS rows [`manual`], the sweeps, the
//! fallback [`fallback`]; or already `Error`/`Omitido` when there is nothing to send), claimed under a lease by a
//! dispatcher ([`claim`], handed over in memory by the drain through [`handoff`]), typed once as it leaves SQL
//! ([`row`]), and ends `Enviado` ([`sent`]), `Error` or `Omitido` ([`outcome`], [`state::RequestState`]). Its delivery
//! state (`estado_entrega`) then moves forward with the providers' receipts ([`receipts`]), and the clean-up deletes
//! it after its retention period ([`retention`]). Every change leaves a history row ([`history`]). The opt-out
//! condition ([`optout_sql`]) and the dedup key ([`key`]) are written here once, for SQL and Rust alike.

pub mod chain;
pub mod claim;
pub mod fallback;
pub mod handoff;
pub mod history;
pub mod key;
pub mod manual;
pub mod optout_sql;
pub mod optouts;
pub mod outcome;
pub mod receipts;
pub mod reports;
pub mod retention;
pub mod row;
pub mod sent;
pub mod signing_upgrade;
pub mod staff;
pub mod state;
pub mod taken;
pub mod write;

pub use history::HistoryRow;
pub use key::DedupKey;
pub use state::RequestState;
