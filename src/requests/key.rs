//! `clave_dedup`, the key that makes a notice exactly-once (a UNIQUE index): `<prefix>:<channel>` for the service's
//! notices, where the prefix names the notice (`recarga_exitosa:<id>`, `saldo_bajo:<card>:<date>`, …) and the channel
//! is [`ChannelKind`]'s configuration name (`email`, `sms`, `whatsapp`, `portal`); `manual:<id>` for a POS row the
//! service took (no channel: the POS chose it). The format is written here once, for Rust ([`DedupKey`]) and for SQL
//! ([`NEXT_KEY_SQL`], [`DedupKey::day_pattern`]); a test runs the SQL in PostgreSQL against the Rust.

use std::fmt;

use crate::domain::{ChannelKind, NotificationType};

/// A request's `clave_dedup`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey(String);

/// The separator of the key's parts.
pub const SEPARATOR: char = ':';

impl DedupKey {
    /// The key of a notice on one channel: `<prefix>:<channel>`.
    pub fn for_channel(prefix: &str, channel: ChannelKind) -> DedupKey {
        DedupKey(format!("{prefix}{SEPARATOR}{channel}"))
    }

    /// The key of a POS row the service took: `manual:<id_solicitud>`.
    pub fn manual(id_solicitud: i64) -> DedupKey {
        DedupKey(format!("manual{SEPARATOR}{id_solicitud}"))
    }

    /// A key as the table holds it.
    pub fn from_stored(key: impl Into<String>) -> DedupKey {
        DedupKey(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The prefix of a notice on `channel`, when the key is that notice's (`None` for another channel's key or a
    /// manual one).
    pub fn prefix_for(&self, channel: ChannelKind) -> Option<&str> {
        self.0.strip_suffix(channel.config_name())?.strip_suffix(SEPARATOR)
    }

    /// The key split into prefix and channel, when it ends in a channel (`None` for `manual:<id>`).
    pub fn split(&self) -> Option<(&str, ChannelKind)> {
        let (prefix, last) = self.0.rsplit_once(SEPARATOR)?;
        let channel = ChannelKind::ALL.into_iter().find(|c| c.config_name() == last)?;
        Some((prefix, channel))
    }

    /// Everything before the last part, as [`NEXT_KEY_SQL`] takes it (the whole key when it has one part).
    pub fn head(&self) -> &str {
        self.0.rsplit_once(SEPARATOR).map_or(&self.0, |(head, _)| head)
    }

    /// The key of the next link of a fallback chain, on `next`: what [`NEXT_KEY_SQL`] computes in SQL.
    pub fn next_link(&self, next: ChannelKind) -> DedupKey {
        DedupKey::for_channel(self.head(), next)
    }

    /// A `LIKE` pattern for the keys of a sweep's type on one local day, whatever sits between the type and the
    /// date (a card, `cliente:<id>`) and whatever the channel: `saldo\_bajo:%:2026-11-24:%`.
    pub fn day_pattern(tipo: NotificationType, day: impl fmt::Display) -> String {
        format!("{}{SEPARATOR}%{SEPARATOR}{day}{SEPARATOR}%", like_escape(tipo.as_str()))
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `s` matched literally by `LIKE` (the default escape character is the backslash).
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The key of the next link of the chain of the row `$r` (its `clave_dedup` and `canales_respaldo`), in SQL: the
/// key's head, the separator, and the first channel still to try (`canales_respaldo` is `,`-joined).
macro_rules! next_key_sql {
    ($r:literal) => {
        concat!(
            "regexp_replace(",
            $r,
            ".clave_dedup, ':[^:]*$', '')
                              || ':' || btrim(split_part(",
            $r,
            ".canales_respaldo, ',', 1))"
        )
    };
}
pub(crate) use next_key_sql;

/// [`next_key_sql!`] for a row aliased `s` (a test runs it in PostgreSQL).
pub const NEXT_KEY_SQL: &str = next_key_sql!("s");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefix_separator_channel() {
        let k = DedupKey::for_channel("recarga_exitosa:12", ChannelKind::WhatsApp);
        assert_eq!(k.as_str(), "recarga_exitosa:12:whatsapp");
        assert_eq!(k.split(), Some(("recarga_exitosa:12", ChannelKind::WhatsApp)));
        assert_eq!(k.prefix_for(ChannelKind::WhatsApp), Some("recarga_exitosa:12"));
        assert_eq!(k.prefix_for(ChannelKind::Sms), None);
        assert_eq!(k.next_link(ChannelKind::Sms).as_str(), "recarga_exitosa:12:sms");
        let m = DedupKey::manual(7);
        assert_eq!(m.as_str(), "manual:7");
        assert_eq!(m.split(), None);
        assert_eq!(m.prefix_for(ChannelKind::Email), None);
        // The separator in the SQL is the Rust one.
        assert!(NEXT_KEY_SQL.contains(&format!("'{SEPARATOR}[^{SEPARATOR}]*$'")));
        assert!(NEXT_KEY_SQL.contains(&format!("|| '{SEPARATOR}' ||")));
    }

    #[test]
    fn the_day_pattern_escapes_the_type() {
        assert_eq!(DedupKey::day_pattern(NotificationType::SaldoBajo, "2026-11-24"), "saldo\\_bajo:%:2026-11-24:%");
        assert_eq!(like_escape("a%b\\c"), "a\\%b\\\\c");
    }
}
