//! The outcome policy as a table: every error class × the first, a middle, the last retried, the last and a past-
//! the-limit attempt × two policies. Pure calls, no database, no I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{AttemptLimit, Log, Policy, Verdict, Write, decide};
use crate::channels::SendError;
use crate::config::DispatchSettings;
use crate::metrics::SendOutcome;

const TEMP: &str = "Error temporal de Twilio; se reintentará";
const CONFIG: &str = "credenciales rechazadas por Twilio (401)";
const PERM: &str = "número inválido";
const STOP: &str = "el destinatario respondió STOP";

/// The defaults: 8 attempts, 5 s doubling up to an hour, probes every 30 s.
fn default_policy() -> Policy {
    Policy::new(&DispatchSettings::default())
}

/// 3 attempts, 1 s doubling up to 4 s, probe interval 0 (taken as 1 s).
fn tight_policy() -> Policy {
    Policy::new(&DispatchSettings {
        max_attempts: 3,
        retry_base_ms: 1_000,
        retry_max_ms: 4_000,
        probe_interval_seconds: 0,
        ..DispatchSettings::default()
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Temporary, the provider did not say when to come back.
    Temp,
    /// Temporary, with a `Retry-After` of 2 minutes.
    TempAfter,
    Config,
    Perm,
    OptedOut,
}

const CLASSES: [Class; 5] = [Class::Temp, Class::TempAfter, Class::Config, Class::Perm, Class::OptedOut];

fn error(class: Class) -> SendError {
    match class {
        Class::Temp => SendError::Transient { reason: TEMP.into(), retry_after: None },
        Class::TempAfter => SendError::Transient { reason: TEMP.into(), retry_after: Some(Duration::from_secs(120)) },
        Class::Config => SendError::Configuration { reason: CONFIG.into() },
        Class::Perm => SendError::Permanent { reason: PERM.into() },
        Class::OptedOut => SendError::OptedOut { reason: STOP.into() },
    }
}

fn retry_in(ms: u64, reason: &str) -> Write {
    Write::RetryIn { delay: Duration::from_millis(ms), reason: reason.into() }
}

fn fail(reason: &str) -> Write {
    Write::Fail { reason: reason.into() }
}

fn will_retry(ms: u64) -> Log {
    Log::WillRetry { retry_in: Duration::from_millis(ms), reason: TEMP.into() }
}

fn v(metric: SendOutcome, log: Log, write: Write, pause: Option<&str>) -> Verdict {
    Verdict { metric, log, write, pause: pause.map(str::to_string) }
}

use Class::*;
use SendOutcome::{Error as MError, OptedOut as MOptedOut, Retry as MRetry};

/// (policy, class, attempt, jitter, verdict). "d" is the default policy, "t" the tight one.
fn table() -> Vec<(&'static str, Class, i32, f64, Verdict)> {
    let opt_out = || v(MOptedOut, Log::OptedOut, Write::OptOut { reason: STOP.into() }, None);
    let perm = || v(MError, Log::PermanentFailure, fail(PERM), None);
    vec![
        // Default policy (limit 8, 5 s → 1 h, probe 30 s), jitter 1 (the full delay).
        ("d", Temp, 1, 1.0, v(MRetry, will_retry(5_000), retry_in(5_000, &format!("intento 1: {TEMP}")), None)),
        ("d", Temp, 4, 1.0, v(MRetry, will_retry(40_000), retry_in(40_000, &format!("intento 4: {TEMP}")), None)),
        ("d", Temp, 7, 1.0, v(MRetry, will_retry(320_000), retry_in(320_000, &format!("intento 7: {TEMP}")), None)),
        (
            "d",
            Temp,
            8,
            1.0,
            v(MError, Log::GivingUp, fail("agotados 8 intentos; último error: Error temporal de Twilio"), None),
        ),
        (
            "d",
            Temp,
            9,
            1.0,
            v(MError, Log::GivingUp, fail("agotados 9 intentos; último error: Error temporal de Twilio"), None),
        ),
        // Retry-After (2 min) is a floor.
        (
            "d",
            TempAfter,
            1,
            1.0,
            v(MRetry, will_retry(120_000), retry_in(120_000, &format!("intento 1: {TEMP}")), None),
        ),
        (
            "d",
            TempAfter,
            4,
            1.0,
            v(MRetry, will_retry(120_000), retry_in(120_000, &format!("intento 4: {TEMP}")), None),
        ),
        (
            "d",
            TempAfter,
            7,
            1.0,
            v(MRetry, will_retry(320_000), retry_in(320_000, &format!("intento 7: {TEMP}")), None),
        ),
        (
            "d",
            TempAfter,
            8,
            1.0,
            v(MError, Log::GivingUp, fail("agotados 8 intentos; último error: Error temporal de Twilio"), None),
        ),
        (
            "d",
            TempAfter,
            9,
            1.0,
            v(MError, Log::GivingUp, fail("agotados 9 intentos; último error: Error temporal de Twilio"), None),
        ),
        // A configuration error pauses the channel every time and is counted as a retry, even on the last
        // attempt, which ends the request as Error.
        ("d", Config, 1, 1.0, v(MRetry, Log::Silent, retry_in(30_000, &format!("intento 1: {CONFIG}")), Some(CONFIG))),
        ("d", Config, 4, 1.0, v(MRetry, Log::Silent, retry_in(30_000, &format!("intento 4: {CONFIG}")), Some(CONFIG))),
        ("d", Config, 7, 1.0, v(MRetry, Log::Silent, retry_in(30_000, &format!("intento 7: {CONFIG}")), Some(CONFIG))),
        (
            "d",
            Config,
            8,
            1.0,
            v(MRetry, Log::Silent, fail(&format!("agotados 8 intentos; último error: {CONFIG}")), Some(CONFIG)),
        ),
        (
            "d",
            Config,
            9,
            1.0,
            v(MRetry, Log::Silent, fail(&format!("agotados 9 intentos; último error: {CONFIG}")), Some(CONFIG)),
        ),
        // Permanent and opted out: the attempt does not matter.
        ("d", Perm, 1, 1.0, perm()),
        ("d", Perm, 4, 1.0, perm()),
        ("d", Perm, 7, 1.0, perm()),
        ("d", Perm, 8, 1.0, perm()),
        ("d", Perm, 9, 1.0, perm()),
        ("d", OptedOut, 1, 1.0, opt_out()),
        ("d", OptedOut, 4, 1.0, opt_out()),
        ("d", OptedOut, 7, 1.0, opt_out()),
        ("d", OptedOut, 8, 1.0, opt_out()),
        ("d", OptedOut, 9, 1.0, opt_out()),
        // Tight policy (limit 3, 1 s → 4 s, probe 0 s taken as 1 s), jitter 0 (half the delay).
        ("t", Temp, 1, 0.0, v(MRetry, will_retry(500), retry_in(500, &format!("intento 1: {TEMP}")), None)),
        ("t", Temp, 2, 0.0, v(MRetry, will_retry(1_000), retry_in(1_000, &format!("intento 2: {TEMP}")), None)),
        (
            "t",
            Temp,
            3,
            0.0,
            v(MError, Log::GivingUp, fail("agotados 3 intentos; último error: Error temporal de Twilio"), None),
        ),
        (
            "t",
            Temp,
            4,
            0.0,
            v(MError, Log::GivingUp, fail("agotados 4 intentos; último error: Error temporal de Twilio"), None),
        ),
        // Retry-After beyond the cap is capped (4 s).
        ("t", TempAfter, 1, 0.0, v(MRetry, will_retry(4_000), retry_in(4_000, &format!("intento 1: {TEMP}")), None)),
        ("t", TempAfter, 2, 0.0, v(MRetry, will_retry(4_000), retry_in(4_000, &format!("intento 2: {TEMP}")), None)),
        (
            "t",
            TempAfter,
            3,
            0.0,
            v(MError, Log::GivingUp, fail("agotados 3 intentos; último error: Error temporal de Twilio"), None),
        ),
        (
            "t",
            TempAfter,
            4,
            0.0,
            v(MError, Log::GivingUp, fail("agotados 4 intentos; último error: Error temporal de Twilio"), None),
        ),
        ("t", Config, 1, 0.0, v(MRetry, Log::Silent, retry_in(1_000, &format!("intento 1: {CONFIG}")), Some(CONFIG))),
        ("t", Config, 2, 0.0, v(MRetry, Log::Silent, retry_in(1_000, &format!("intento 2: {CONFIG}")), Some(CONFIG))),
        (
            "t",
            Config,
            3,
            0.0,
            v(MRetry, Log::Silent, fail(&format!("agotados 3 intentos; último error: {CONFIG}")), Some(CONFIG)),
        ),
        (
            "t",
            Config,
            4,
            0.0,
            v(MRetry, Log::Silent, fail(&format!("agotados 4 intentos; último error: {CONFIG}")), Some(CONFIG)),
        ),
        ("t", Perm, 1, 0.0, perm()),
        ("t", Perm, 2, 0.0, perm()),
        ("t", Perm, 3, 0.0, perm()),
        ("t", Perm, 4, 0.0, perm()),
        ("t", OptedOut, 1, 0.0, opt_out()),
        ("t", OptedOut, 2, 0.0, opt_out()),
        ("t", OptedOut, 3, 0.0, opt_out()),
        ("t", OptedOut, 4, 0.0, opt_out()),
        // Jitter between: three quarters of the delay.
        ("d", Temp, 2, 0.5, v(MRetry, will_retry(7_500), retry_in(7_500, &format!("intento 2: {TEMP}")), None)),
    ]
}

fn policy(name: &str) -> Policy {
    match name {
        "d" => default_policy(),
        "t" => tight_policy(),
        other => panic!("no policy {other}"),
    }
}

#[test]
fn every_case_of_the_table() {
    for (name, class, attempt, jitter, want) in table() {
        let got = decide(error(class), attempt, &policy(name), jitter);
        assert_eq!(got, want, "policy {name}, {class:?}, attempt {attempt}, jitter {jitter}");
    }
}

/// The table holds, for each policy and each class, the first attempt, one in the middle (the default policy
/// only: the tight one has none), the last that is retried, the last, and one past the limit (the limit was
/// lowered while the request waited).
#[test]
fn the_table_covers_every_class_and_attempt() {
    let cases: BTreeSet<(&str, Class, i32)> = table().into_iter().map(|(p, c, a, _, _)| (p, c, a)).collect();
    for (name, attempts) in [("d", [1, 4, 7, 8, 9].as_slice()), ("t", [1, 2, 3, 4].as_slice())] {
        let limit = policy(name).limit.get();
        assert_eq!(attempts[attempts.len() - 3..], [limit - 1, limit, limit + 1], "policy {name}");
        for class in CLASSES {
            for &attempt in attempts {
                assert!(
                    cases.contains(&(name, class, attempt)),
                    "missing: policy {name}, {class:?}, attempt {attempt}"
                );
            }
        }
    }
}

#[test]
fn the_settings_make_the_policy() {
    assert_eq!(
        default_policy(),
        Policy {
            limit: AttemptLimit::new(8),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            probe_interval: Duration::from_secs(30),
        }
    );
    assert_eq!(tight_policy().probe_interval, Duration::from_secs(1));
}

/// Retries and the end of a request follow the same rule as the claim (`intentos < max`).
#[test]
fn a_retry_exactly_while_the_limit_allows_another_attempt() {
    for name in ["d", "t"] {
        let p = policy(name);
        for attempt in 0..=p.limit.get() + 2 {
            for class in [Temp, Config] {
                let retried = matches!(decide(error(class), attempt, &p, 1.0).write, Write::RetryIn { .. });
                assert_eq!(retried, p.limit.allows_another(attempt), "policy {name}, {class:?}, attempt {attempt}");
            }
        }
    }
}
