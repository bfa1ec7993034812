//! A request's fallback chain: `canales_respaldo`, the channels still to try after this one (`,`-joined).

use crate::domain::ChannelKind;

/// `canales_respaldo` for a list of channels still to try (`None` when there is none).
pub fn chain_column(rest: &[ChannelKind]) -> Option<String> {
    (!rest.is_empty()).then(|| rest.iter().map(ChannelKind::to_string).collect::<Vec<_>>().join(","))
}

/// The channels in a stored `canales_respaldo` (unknown names are skipped: the list was validated when written).
pub fn parse_chain(column: &str) -> Vec<ChannelKind> {
    column.split(',').filter_map(|c| ChannelKind::parse(c.trim()).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChannelKind::*;

    #[test]
    fn the_chain_column_round_trips() {
        assert_eq!(chain_column(&[]), None);
        assert_eq!(chain_column(&[Sms, Email]).as_deref(), Some("sms,email"));
        assert_eq!(parse_chain("sms,email"), [Sms, Email]);
        assert_eq!(parse_chain(" whatsapp , bogus,portal"), [WhatsApp, Portal]);
        assert!(parse_chain("").is_empty());
    }
}
