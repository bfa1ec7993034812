use std::time::Duration;

/// Delay before attempt `attempt + 1`, after `attempt` failed: exponential from `base`, capped at `max`, with
/// "equal jitter" (half fixed, half random) so a provider outage does not end in a synchronised stampede.
/// A provider's `Retry-After` is honoured as a floor.
pub fn retry_delay(
    attempt: i32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    let jitter = jitter.clamp(0.0, 1.0);
    let delay = raw.mul_f64(0.5 + 0.5 * jitter);
    match retry_after {
        Some(ra) => delay.max(ra.min(max)),
        None => delay,
    }
}

/// The reason a request ends `Error` with after its last attempt: the adapters' temporary errors promise a retry
/// ("…; se reintentará"), which staff must not read on a request that will not be retried.
pub fn exhausted(attempts: i32, last: &str) -> String {
    let last = last.replace("; se reintentará más tarde", "").replace("; se reintentará", "");
    format!("agotados {attempts} intentos; último error: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_error_promises_no_retry() {
        assert_eq!(
            exhausted(8, "Error temporal de Twilio; se reintentará"),
            "agotados 8 intentos; último error: Error temporal de Twilio"
        );
        assert_eq!(
            exhausted(3, "sin conexión con Twilio; se reintentará (connection refused)"),
            "agotados 3 intentos; último error: sin conexión con Twilio (connection refused)"
        );
        assert_eq!(
            exhausted(2, "Meta. Se alcanzó el límite de envíos de Meta; se reintentará más tarde"),
            "agotados 2 intentos; último error: Meta. Se alcanzó el límite de envíos de Meta"
        );
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_per_attempt_up_to_the_cap() {
        let max = Duration::from_secs(60);
        assert_eq!(retry_delay(1, S, max, None, 1.0), S);
        assert_eq!(retry_delay(2, S, max, None, 1.0), 2 * S);
        assert_eq!(retry_delay(3, S, max, None, 1.0), 4 * S);
        assert_eq!(retry_delay(10, S, max, None, 1.0), max);
        assert_eq!(retry_delay(1000, S, max, None, 1.0), max);
    }

    #[test]
    fn jitter_keeps_at_least_half() {
        let max = Duration::from_secs(60);
        assert_eq!(retry_delay(3, S, max, None, 0.0), 2 * S);
        assert_eq!(retry_delay(3, S, max, None, 0.5), Duration::from_secs(3));
    }

    #[test]
    fn retry_after_is_a_floor_but_capped() {
        let max = Duration::from_secs(60);
        assert_eq!(retry_delay(1, S, max, Some(Duration::from_secs(7)), 1.0), Duration::from_secs(7));
        assert_eq!(retry_delay(3, S, max, Some(Duration::from_millis(10)), 1.0), 4 * S);
        assert_eq!(retry_delay(1, S, max, Some(Duration::from_secs(3600)), 1.0), max);
    }

    #[test]
    fn odd_attempt_numbers_do_not_panic() {
        let max = Duration::from_secs(60);
        assert_eq!(retry_delay(0, S, max, None, 1.0), S);
        assert_eq!(retry_delay(-5, S, max, None, 1.0), S);
    }
}
