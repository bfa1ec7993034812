//! Quiet hours: SMS and WhatsApp notices that fall inside the window (local time, America/Asuncion) wait until it
//! ends, as `Pendiente` with their next attempt time; never dropped. Off by default; email is exempt unless listed.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
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

impl QuietHours {
    /// When a notice may go out: `None` if now is fine, else the end of the current window.
    pub fn deferral(&self, now: Timestamp, channel: ChannelKind, tipo: NotificationType) -> Option<Timestamp> {
        if !self.channels.contains(&channel) || self.exempt.contains(&tipo) || self.start == self.end {
            return None;
        }
        let tz = TimeZone::get("America/Asuncion").unwrap_or(TimeZone::UTC);
        let local = now.to_zoned(tz.clone());
        let t = local.time();
        let inside =
            if self.start < self.end { t >= self.start && t < self.end } else { t >= self.start || t < self.end };
        if !inside {
            return None;
        }
        // The window ends today if we are before its end, otherwise tomorrow (a window across midnight).
        let day = if t < self.end { local.date() } else { local.date().checked_add(1.day()).ok()? };
        day.to_datetime(self.end).to_zoned(tz).ok().map(|z| z.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: &str, end: &str) -> QuietHours {
        QuietHoursSettings {
            start: Some(start.into()),
            end: Some(end.into()),
            channels: None,
            exempt_types: Some("tarjeta_bloqueada".into()),
        }
        .parse()
        .unwrap()
        .unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_window_across_midnight_defers_to_its_end_in_asuncion() {
        let q = window("21:00", "07:00");
        let sms = ChannelKind::Sms;
        let t = NotificationType::RecargaExitosa;
        // 22:30 local (01:30Z next day) → 07:00 local next day (10:00Z).
        assert_eq!(q.deferral(at("2026-11-24T01:30:00Z"), sms, t), Some(at("2026-11-24T10:00:00Z")));
        // 05:00 local → 07:00 the same day.
        assert_eq!(q.deferral(at("2026-11-24T08:00:00Z"), sms, t), Some(at("2026-11-24T10:00:00Z")));
        // 21:00 sharp is inside; 07:00 sharp and 20:59 are outside.
        assert_eq!(q.deferral(at("2026-11-24T00:00:00Z"), sms, t), Some(at("2026-11-24T10:00:00Z")));
        assert_eq!(q.deferral(at("2026-11-24T10:00:00Z"), sms, t), None);
        assert_eq!(q.deferral(at("2026-11-23T23:59:00Z"), sms, t), None);
    }

    #[test]
    fn email_exempt_types_and_a_daytime_window() {
        let q = window("21:00", "07:00");
        let night = at("2026-11-24T01:30:00Z");
        assert_eq!(
            q.deferral(night, ChannelKind::Email, NotificationType::RecargaExitosa),
            None,
            "email exempt by default"
        );
        assert_eq!(q.deferral(night, ChannelKind::WhatsApp, NotificationType::TarjetaBloqueada), None, "urgent type");
        assert!(q.deferral(night, ChannelKind::WhatsApp, NotificationType::SaldoBajo).is_some());
        let day = window("12:00", "14:00");
        assert_eq!(
            day.deferral(at("2026-11-24T16:00:00Z"), ChannelKind::Sms, NotificationType::SaldoBajo),
            Some(at("2026-11-24T17:00:00Z"))
        );
        assert_eq!(day.deferral(at("2026-11-24T17:30:00Z"), ChannelKind::Sms, NotificationType::SaldoBajo), None);
    }

    #[test]
    fn settings_are_validated_with_key_names() {
        assert_eq!(QuietHoursSettings::default().parse(), Ok(None));
        let half = QuietHoursSettings { start: Some("21:00".into()), ..Default::default() }.parse().unwrap_err();
        assert!(half[0].contains("CANTINA__QUIET_HOURS__START"));
        let bad = QuietHoursSettings {
            start: Some("9pm".into()),
            end: Some("07:00".into()),
            channels: Some("sms,fax".into()),
            exempt_types: None,
        }
        .parse()
        .unwrap_err();
        assert!(bad.iter().any(|e| e.contains("__START")) && bad.iter().any(|e| e.contains("__CHANNELS")), "{bad:?}");
    }
}
