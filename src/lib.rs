//! cantina-notify: turns changes in the Cantina Tita database into notices for parents.
//!
//! Triggers write lean events to an outbox in the app's own transactions; the listener drains them through the
//! pure rules into deduplicated rows of `solicitudes_notificacion`; the dispatcher sends those through the
//! channel adapters and records every outcome.

pub mod alerts;
pub mod app;
pub mod cantina;
pub mod channel_state;
pub mod channels;
pub mod cli;
pub mod config;
pub mod db;
#[doc(hidden)]
pub mod devtools;
pub mod dispatch;
pub mod domain;
pub mod events;
pub mod fds;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod operator_pauses;
pub mod ops;
pub mod optouts;
/// The development tool at its old path (tests, benches and examples import `cantina_notify::pg_cluster`).
#[doc(hidden)]
pub use devtools::pg_cluster;
pub mod present;
pub mod render;
pub mod requests;
pub mod rules;
pub mod scheduler;
pub mod signing;
pub mod telemetry;
pub mod webhooks;

/// A development tool (`cantina-notify demo`), see [`devtools`].
#[doc(hidden)]
pub use devtools::demo;
