//! How loud a failed probe of a paused channel is. The probe runs every 30 s while a provider keeps refusing, so
//! logging each failure at WARN would bury everything else (120 lines an hour): the first failure and any change of
//! error are WARN, a reminder that the channel is still paused is INFO every [`REMINDER`], the rest DEBUG.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::domain::ChannelKind;

/// How often a channel that stays paused with the same error is mentioned at INFO.
pub const REMINDER: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loudness {
    /// First failure since the channel paused, or another error than the last one.
    Warn,
    /// The same error, and the last mention was [`REMINDER`] ago.
    Reminder,
    /// The same error, mentioned recently.
    Quiet,
}

struct Seen {
    error: String,
    mentioned_at: Instant,
}

/// The last failure per paused channel (owned by the probe loop).
#[derive(Default)]
pub struct ProbeLog {
    last: HashMap<ChannelKind, Seen>,
}

impl ProbeLog {
    pub fn failed(&mut self, kind: ChannelKind, error: &str, now: Instant) -> Loudness {
        let loudness = match self.last.get(&kind) {
            Some(seen) if seen.error == error => {
                if now.duration_since(seen.mentioned_at) >= REMINDER {
                    Loudness::Reminder
                } else {
                    Loudness::Quiet
                }
            }
            _ => Loudness::Warn,
        };
        if loudness != Loudness::Quiet {
            self.last.insert(kind, Seen { error: error.to_string(), mentioned_at: now });
        }
        loudness
    }

    /// Forgets the channels no longer paused (resumed), so a later pause starts with a WARN again.
    pub fn keep_only(&mut self, paused: &[ChannelKind]) {
        self.last.retain(|k, _| paused.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_and_a_change_are_loud_repeats_are_quiet_with_a_reminder() {
        let mut log = ProbeLog::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let sms = ChannelKind::Sms;
        assert_eq!(log.failed(sms, "401 Authenticate", at(0)), Loudness::Warn);
        assert_eq!(log.failed(sms, "401 Authenticate", at(30)), Loudness::Quiet);
        assert_eq!(log.failed(sms, "401 Authenticate", at(60)), Loudness::Quiet);
        // Another channel is tracked apart.
        assert_eq!(log.failed(ChannelKind::Email, "535 auth", at(60)), Loudness::Warn);
        // A different error is news.
        assert_eq!(log.failed(sms, "403 suspended", at(90)), Loudness::Warn);
        assert_eq!(log.failed(sms, "403 suspended", at(120)), Loudness::Quiet);
        // Half an hour after the last mention: one reminder, then quiet again.
        let r = 90 + REMINDER.as_secs();
        assert_eq!(log.failed(sms, "403 suspended", at(r - 1)), Loudness::Quiet);
        assert_eq!(log.failed(sms, "403 suspended", at(r)), Loudness::Reminder);
        assert_eq!(log.failed(sms, "403 suspended", at(r + 30)), Loudness::Quiet);
        // 120 probes an hour with the same error: 1 WARN and 1 reminder.
        let mut log = ProbeLog::default();
        let loud = (0..120).filter(|i| log.failed(sms, "401", at(i * 30)) != Loudness::Quiet).count();
        assert_eq!(loud, 2);
        // Resumed and paused again: the first failure is a WARN again.
        log.keep_only(&[]);
        assert_eq!(log.failed(sms, "401", at(4000)), Loudness::Warn);
    }
}
