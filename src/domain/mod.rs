//! Validated domain types: parse once at the edge, then trust the type.

mod attempt_limit;
mod channel;
mod channel_state;
pub mod cron;
pub mod dedup_key;
mod email;
mod event;
mod guaranies;
mod notification_type;
mod phone;
pub mod request_state;

pub use attempt_limit::AttemptLimit;
pub use channel::{ChannelKind, ParseChannelError};
pub use channel_state::StateKind;
pub use dedup_key::DedupKey;
pub use email::{EmailAddress, InvalidEmail};
pub use event::{EventKind, OutboxEvent};
pub use guaranies::Guaranies;
pub use notification_type::{NotificationType, UnknownNotificationType};
pub use phone::{InvalidPhone, MobilePhone};
pub use request_state::RequestState;
