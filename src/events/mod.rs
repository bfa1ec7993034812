//! The outbox: decoding event rows, draining them into requests, and the listener that says when to drain.

pub mod drain;
pub mod listener;
pub mod outbox;
pub mod wake;

pub use crate::domain::{EventKind, OutboxEvent};
