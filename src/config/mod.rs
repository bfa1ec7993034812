//! Layered configuration: built-in defaults → optional TOML file → the Cantina team's `.env` names →
//! `CANTINA__SECTION__KEY` environment variables (most specific wins). A `.env` file in the working directory is
//! read as their Django setup reads it; the process environment wins over it. `NAME_FILE` gives a secret as a file.

pub mod checks;
pub mod dotenv;
pub mod gateway;
mod quiet;
mod scheduler;
mod secret;
mod settings;
mod sources;
mod summary;
mod typed;
mod validate;

pub use gateway::GatewaySettings;
pub use quiet::{QuietHours, QuietHoursSettings};
pub use scheduler::{SchedulerSettings, SweepKind};
pub use secret::{DatabaseUrl, Secret, mask_url_password};
pub(crate) use settings::string_or_list;
pub use settings::*;
pub use sources::{ConfigError, LoadOptions};
pub use summary::SummarySettings;
pub use validate::{
    ChannelProviders, EmailBackend, ReminderSchedule, Route, RulesConfig, SmsProvider, ValidationErrors,
    WhatsAppProvider,
};
