//! Logging: human-readable by default, JSON with `CANTINA__LOG__FORMAT=json`, level from `RUST_LOG` (default info).
//! Addresses are masked where they are logged (see `domain`); secrets are never formatted (see `config::Secret`).

use tracing_subscriber::EnvFilter;

pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // try_init: a second call (tests, demo) keeps the first subscriber.
    let _ = if format == "json" { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
