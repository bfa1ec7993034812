//! `clave_dedup`, the key that makes a notice exactly-once (a UNIQUE index): `<prefix>:<channel>` for the service's
//! notices, where the prefix names the notice (`recarga_exitosa:<id>`, `saldo_bajo:<card>:<date>`, …) and the channel
//! is [`ChannelKind`](crate::domain::ChannelKind)'s configuration name (`email`, `sms`, `whatsapp`, `portal`); `manual:<id>` for a POS row the
//! service took (no channel: the POS chose it). The format is written once, for Rust ([`DedupKey`], in
//! `domain` so that the rules build keys with it) and for SQL here ([`NEXT_KEY_SQL`], [`DedupKey::day_pattern`]); a
//! test runs the SQL in PostgreSQL against the Rust.

pub use crate::domain::dedup_key::{DedupKey, SEPARATOR};

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
    use crate::domain::ChannelKind;

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
}
