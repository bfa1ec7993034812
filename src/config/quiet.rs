//! `settings.quiet_hours`, validated into the window the dispatcher applies (`crate::dispatch::quiet`).

use jiff::civil::Time;
use serde::{Deserialize, Serialize};

use crate::domain::{ChannelKind, NotificationType};

/// `CANTINA__QUIET_HOURS__START` / `__END` (`HH:MM`), `__CHANNELS` (default `sms,whatsapp`), `__EXEMPT_TYPES`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct QuietHoursSettings {
    pub start: Option<String>,
    pub end: Option<String>,
    pub channels: Option<String>,
    /// Types that go through anyway (urgent ones), comma-separated.
    pub exempt_types: Option<String>,
}

/// The validated window.
#[derive(Debug, Clone, PartialEq)]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
    pub channels: Vec<ChannelKind>,
    pub exempt: Vec<NotificationType>,
}

impl QuietHoursSettings {
    /// `Ok(None)` when off (no start/end); errors name the key.
    pub fn parse(&self) -> Result<Option<QuietHours>, Vec<String>> {
        let (Some(start), Some(end)) = (self.start.as_deref(), self.end.as_deref()) else {
            return if self.start.is_some() || self.end.is_some() {
                Err(vec!["CANTINA__QUIET_HOURS__START and __END: set both (HH:MM) or neither".into()])
            } else {
                Ok(None)
            };
        };
        let mut errors = Vec::new();
        let time = |key: &str, v: &str, errors: &mut Vec<String>| {
            v.trim()
                .parse::<Time>()
                .map_err(|_| errors.push(format!("CANTINA__QUIET_HOURS__{key}: expected HH:MM (got '{v}')")))
                .ok()
        };
        let (start, end) = (time("START", start, &mut errors), time("END", end, &mut errors));
        let mut channels = Vec::new();
        for name in
            self.channels.as_deref().unwrap_or("sms,whatsapp").split(',').map(str::trim).filter(|s| !s.is_empty())
        {
            match ChannelKind::parse(name) {
                Ok(c) => channels.push(c),
                Err(e) => errors.push(format!("CANTINA__QUIET_HOURS__CHANNELS: {e}")),
            }
        }
        let mut exempt = Vec::new();
        for name in self.exempt_types.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match NotificationType::parse(name) {
                Ok(t) => exempt.push(t),
                Err(e) => errors.push(format!("CANTINA__QUIET_HOURS__EXEMPT_TYPES: {e}")),
            }
        }
        match (start, end) {
            (Some(start), Some(end)) if errors.is_empty() => Ok(Some(QuietHours { start, end, channels, exempt })),
            _ => Err(errors),
        }
    }
}
