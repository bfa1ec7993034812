//! The dispatcher's outcome policy: what a failed send leads to, as a pure function of the error's class, the
//! attempt that failed and the settings. No I/O here; [`super::Dispatcher`] applies the [`Verdict`] (metrics, log,
//! opt-out, the request's write, the channel's pause, in that order).

use std::time::Duration;

use super::retry;
use crate::channels::SendError;
use crate::config::DispatchSettings;
use crate::metrics::SendOutcome;

pub use crate::domain::AttemptLimit;

/// The settings the outcome of a failed send depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub limit: AttemptLimit,
    /// First retry delay of a temporary error; doubles per attempt, with jitter, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long a request whose send hit a configuration error waits before it is due again: the probe interval
    /// (at least a second), by when the paused channel may have been resumed.
    pub probe_interval: Duration,
}

impl Policy {
    pub fn new(s: &DispatchSettings) -> Self {
        Policy {
            limit: AttemptLimit::new(s.max_attempts),
            retry_base: Duration::from_millis(s.retry_base_ms),
            retry_max: Duration::from_millis(s.retry_max_ms),
            probe_interval: Duration::from_secs(s.probe_interval_seconds.max(1)),
        }
    }
}

/// What a failed send leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The `outcome` label of the send counter.
    pub metric: SendOutcome,
    pub log: Log,
    /// What the request becomes.
    pub write: Write,
    /// Pause the channel, after the request's write, with this reason (the provider's, as it said it).
    pub pause: Option<String>,
}

/// The request's write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// `Pendiente`, due again in `delay`, with `reason` as `ultimo_error`.
    RetryIn { delay: Duration, reason: String },
    /// `Error`, final.
    Fail { reason: String },
    /// The address is recorded as opted out, then the request becomes `Omitido` with `reason`.
    OptOut { reason: String },
}

impl Write {
    /// What `ultimo_error` will say.
    pub fn reason(&self) -> &str {
        match self {
            Write::RetryIn { reason, .. } | Write::Fail { reason } | Write::OptOut { reason } => reason,
        }
    }
}

/// The dispatcher's log line for the failure (the messages are in [`super::Dispatcher`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Log {
    /// warn "send failed; will retry", with the delay and the provider's reason as it came (the stored one says
    /// the attempt).
    WillRetry { retry_in: Duration, reason: String },
    /// warn "giving up", with the stored reason.
    GivingUp,
    /// warn "permanent failure", with the stored reason.
    PermanentFailure,
    /// info "recipient opted out", with the masked address.
    OptedOut,
    /// Nothing here: a configuration error is logged when it pauses the channel (once per pause).
    Silent,
}

/// The verdict on a send that failed with `error` on attempt `attempt` (the claim's `intentos`). `jitter` in
/// [0, 1] spreads the retries of a temporary error (see [`retry::retry_delay`]).
pub fn decide(error: SendError, attempt: i32, policy: &Policy, jitter: f64) -> Verdict {
    let another = policy.limit.allows_another(attempt);
    match error {
        SendError::Transient { reason, retry_after } if another => {
            let delay = retry::retry_delay(attempt, policy.retry_base, policy.retry_max, retry_after, jitter);
            Verdict {
                metric: SendOutcome::Retry,
                write: Write::RetryIn { delay, reason: format!("intento {attempt}: {reason}") },
                log: Log::WillRetry { retry_in: delay, reason },
                pause: None,
            }
        }
        SendError::Transient { reason, .. } => Verdict {
            metric: SendOutcome::Error,
            log: Log::GivingUp,
            write: Write::Fail { reason: retry::exhausted(attempt, &reason) },
            pause: None,
        },
        // The channel stops until a probe passes; the rest of the queue waits untouched. This request's attempt
        // counts: a "configuration" error that is really about this request or its type (a missing template, a
        // country not enabled) then ends as Error after the last attempt instead of cycling forever. Counted as a
        // retry in the metrics even then.
        SendError::Configuration { reason } => Verdict {
            metric: SendOutcome::Retry,
            log: Log::Silent,
            write: if another {
                Write::RetryIn { delay: policy.probe_interval, reason: format!("intento {attempt}: {reason}") }
            } else {
                Write::Fail { reason: retry::exhausted(attempt, &reason) }
            },
            pause: Some(reason),
        },
        SendError::Permanent { reason } => Verdict {
            metric: SendOutcome::Error,
            log: Log::PermanentFailure,
            write: Write::Fail { reason },
            pause: None,
        },
        SendError::OptedOut { reason } => {
            Verdict { metric: SendOutcome::OptedOut, log: Log::OptedOut, write: Write::OptOut { reason }, pause: None }
        }
    }
}

#[cfg(test)]
mod tests;
