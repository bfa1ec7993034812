//! `solicitudes_notificacion`, the notice requests: the SQL that writes and reads the table lives here, so its life
//! cycle (created `Pendiente` by a producer, claimed with a lease, recorded `Enviado`/`Error`/`Omitido`) is in one
//! place. The producers (the drain, the sweeps, the fallback) and the dispatcher call in; they hold no SQL on it.

pub mod claim;
pub mod fallback;
pub mod handoff;
pub mod key;
pub mod manual;
pub mod outcome;
pub mod row;
pub mod sent;
pub mod signing_upgrade;
pub mod write;
