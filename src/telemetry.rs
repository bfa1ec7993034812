//! Logging: human-readable by default, JSON with `CANTINA__LOG__FORMAT=json`, level from `RUST_LOG` (default info).
//! Addresses are masked where they are logged (see `domain`); secrets are never formatted (see `config::Secret`).

use std::io::IsTerminal;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `RUST_LOG` raises the service's own modules only. The libraries log at most INFO whatever it says:
/// tokio-postgres logs every statement's parameters at DEBUG (addresses, names, balances, the messages), lettre the
/// SMTP conversation, and the HTTP stack what it sends. An allow-list, so a library added later cannot leak either.
pub fn shown(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= Level::INFO || metadata.target().starts_with(env!("CARGO_CRATE_NAME"))
}

pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(filter_fn(shown));
    // try_init: a second call (tests, demo) keeps the first subscriber.
    let _ = if format == "json" {
        registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr))
            .try_init()
    } else {
        // No colour codes in a file or a pod's log.
        let ansi = std::io::stderr().is_terminal();
        registry.with(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)).try_init()
    };
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    struct Site;
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("not registered")
        }
    }
    static SITE: Site = Site;

    fn meta(target: &'static str, level: Level) -> tracing::Metadata<'static> {
        tracing::Metadata::new("e", target, level, None, None, None, FieldSet::new(&[], Identifier(&SITE)), Kind::EVENT)
    }

    #[test]
    fn libraries_stop_at_info_and_the_service_logs_at_any_level() {
        assert!(!super::shown(&meta("tokio_postgres::query", Level::DEBUG)));
        assert!(!super::shown(&meta("lettre::transport::smtp", Level::TRACE)));
        assert!(super::shown(&meta("tokio_postgres::connection", Level::WARN)));
        assert!(super::shown(&meta("cantina_notify::dispatch", Level::TRACE)));
        assert!(super::shown(&meta("cantina_notify", Level::DEBUG)));
    }
}
