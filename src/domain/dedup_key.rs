//! `clave_dedup`, the key that makes a notice exactly-once, as the rules, the fallback and the sweeps build it. Its
//! SQL spelling (`requests::key::next_key_sql!`) sits next to the statements and is tested against this one.

use std::fmt;

use super::{ChannelKind, NotificationType};

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

    /// Everything before the last part, as `requests::key::NEXT_KEY_SQL` takes it (the whole key when it has one part).
    pub fn head(&self) -> &str {
        self.0.rsplit_once(SEPARATOR).map_or(&self.0, |(head, _)| head)
    }

    /// The key of the next link of a fallback chain, on `next`: what `requests::key::NEXT_KEY_SQL` computes in SQL.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_pattern_escapes_the_type() {
        assert_eq!(DedupKey::day_pattern(NotificationType::SaldoBajo, "2026-11-24"), "saldo\\_bajo:%:2026-11-24:%");
        assert_eq!(like_escape("a%b\\c"), "a\\%b\\\\c");
    }
}
