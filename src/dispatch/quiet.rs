//! Quiet hours: SMS and WhatsApp notices that fall inside the window (local time, America/Asuncion) wait until it
//! ends, as `Pendiente` with their next attempt time; never dropped. Off by default; email is exempt unless listed.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::domain::{ChannelKind, NotificationType};

pub use crate::config::{QuietHours, QuietHoursSettings};

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
