//! File descriptors. `run` raises its soft limit to the hard limit and refuses to start when the HTTP connection
//! cap plus what the service opens itself would not fit, so a full inbound cap cannot starve the database pool,
//! the LISTEN session and the providers' connections of descriptors (sends failing with "Too many open files").

use crate::config::Settings;

/// Connections lettre's SMTP pool keeps (src/channels/smtp.rs).
const SMTP_POOL: u64 = 10;
/// HTTP providers one reqwest client may hold connections to at once (Twilio, Meta, SendGrid or a gateway): idle
/// connections are kept for 90 s, so each may still hold one per send in flight of an earlier burst.
const HTTP_PROVIDERS: u64 = 3;
/// Everything not counted above: stdio, the listening socket, epoll and its wakers, template and tz files, DNS,
/// the file backends' writes.
const SPARE: u64 = 64;

/// How many descriptors the service may need at most, and what they are for (for the error message).
pub fn needed(settings: &Settings) -> (u64, String) {
    let inbound = settings.http.max_connections as u64;
    let pool = settings.database.pool_size as u64;
    let outbound = settings.dispatch.concurrency as u64 * HTTP_PROVIDERS;
    let total = inbound + pool + 1 + outbound + SMTP_POOL + SPARE;
    let why = format!(
        "CANTINA__HTTP__MAX_CONNECTIONS {inbound} + CANTINA__DATABASE__POOL_SIZE {pool} + 1 LISTEN session + \
         CANTINA__DISPATCH__CONCURRENCY {} × {HTTP_PROVIDERS} provider connections + {SMTP_POOL} SMTP + {SPARE} spare",
        settings.dispatch.concurrency
    );
    (total, why)
}

/// Whether what the service needs fits under `limit` (the soft limit after raising it); the error names the keys
/// to lower.
pub fn check_budget(settings: &Settings, limit: u64) -> Result<(), String> {
    let (total, why) = needed(settings);
    if total <= limit {
        return Ok(());
    }
    Err(format!(
        "CANTINA__HTTP__MAX_CONNECTIONS: the service may need {total} file descriptors ({why}) but may open only \
         {limit} (RLIMIT_NOFILE); lower CANTINA__HTTP__MAX_CONNECTIONS (or the pool size or the concurrency), or \
         raise the hard limit (ulimit -Hn, systemd LimitNOFILE, the container runtime's nofile)"
    ))
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns (soft before, soft now). When the raise is refused the
/// soft limit stays as it was (and the budget is checked against it).
pub fn raise_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    // Linux refuses RLIM_INFINITY for NOFILE (it is capped by fs.nr_open): keep the soft limit then.
    if lim.rlim_max != libc::RLIM_INFINITY && lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        return Ok((before, raised.rlim_cur));
    }
    Ok((before, before))
}

/// The start-up line about descriptors: says "raised" only when the soft limit changed.
pub fn limit_report(before: u64, now: u64, needed: u64) -> String {
    if now > before {
        format!(
            "file descriptors: soft limit raised from {before} to the hard limit {now}; the service may need {needed}"
        )
    } else {
        format!("file descriptors: limit {now}, the service may need {needed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_connections: usize, pool: usize, concurrency: usize) -> Settings {
        let mut s = Settings::default();
        s.http.max_connections = max_connections;
        s.database.pool_size = pool;
        s.dispatch.concurrency = concurrency;
        s
    }

    #[test]
    fn the_defaults_fit_under_the_usual_1024() {
        let s = Settings::default();
        let (total, _) = needed(&s);
        // 512 + 24 + 1 + 16 × 3 + 10 + 64
        assert_eq!(total, 659);
        assert!(check_budget(&s, 1024).is_ok());
    }

    #[test]
    fn a_cap_that_leaves_no_room_for_the_outbound_side_is_refused_naming_the_keys() {
        let s = settings(1000, 24, 16);
        let err = check_budget(&s, 1024).unwrap_err();
        assert!(err.starts_with("CANTINA__HTTP__MAX_CONNECTIONS: the service may need 1147 file descriptors"), "{err}");
        assert!(err.contains("CANTINA__DATABASE__POOL_SIZE 24") && err.contains("CANTINA__DISPATCH__CONCURRENCY 16"));
        assert!(err.contains("may open only 1024"), "{err}");
        // Exactly at the limit fits.
        assert!(check_budget(&s, 1147).is_ok());
    }

    #[test]
    fn the_report_says_raised_only_when_the_limit_changed() {
        assert_eq!(limit_report(20000, 20000, 659), "file descriptors: limit 20000, the service may need 659");
        assert_eq!(
            limit_report(1024, 524288, 659),
            "file descriptors: soft limit raised from 1024 to the hard limit 524288; the service may need 659"
        );
    }

    #[test]
    fn raising_the_limit_never_lowers_it() {
        let (before, now) = raise_limit().unwrap();
        assert!(now >= before);
    }
}
