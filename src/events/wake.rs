//! Whether the triggers NOTIFY (migration 0010): a listener that waits for events holds the advisory lock
//! `(KEY, WAITING)` exclusively on its LISTEN connection; each trigger tries to take it shared for its transaction
//! and NOTIFYs only when it cannot. So commits NOTIFY only while a listener waits: not while the service is stopped,
//! not while a listener drains (it finds the events anyway), and NOTIFY's commit lock never serialises a busy app.
//!
//! Taking the lock waits for the transactions that already hold it shared, so every event is either committed before
//! the listener's next look at the outbox or finds the lock taken and NOTIFYs. Replicas elect the one listener that
//! may hold it with `(KEY, ELECTION)`: a second one waiting for `WAITING` would only sit out its lock timeout. All
//! listeners receive the NOTIFY. A listener that dies releases both with its session.

use tokio_postgres::Client;

use crate::db::DbError;

/// The first half of both keys ("cntf"). The two-integer form is a key space of its own: no clash with the
/// single-bigint keys of migrations and alerts.
pub const KEY: i32 = 0x636e_7466;
/// Held exclusively by the listener that is waiting; the triggers test it shared.
pub const WAITING: i32 = 1;
/// Held by the replica whose listener may take [`WAITING`].
pub const ELECTION: i32 = 2;

/// How long taking [`WAITING`] may wait for app transactions holding it shared (they hold it from their event's
/// insert to their commit, normally microseconds). Set on the LISTEN session, which runs nothing else that locks.
pub const LOCK_TIMEOUT: &str = "1s";

/// The state of one LISTEN session's locks; a new session starts with none.
#[derive(Debug, Default)]
pub struct WakeLock {
    elected: bool,
    waiting: bool,
}

impl WakeLock {
    /// Whether this listener currently makes the triggers NOTIFY.
    pub fn armed(&self) -> bool {
        self.waiting
    }

    /// Elected but not holding the waiting lock: worth trying to arm again.
    pub fn retry_due(&self) -> bool {
        self.elected && !self.waiting
    }

    /// From now on every event's transaction NOTIFYs (if this replica is the elected one). Returns whether it is
    /// armed. Call it before the last look at the outbox, never after.
    pub async fn arm(&mut self, client: &Client) -> Result<bool, DbError> {
        if self.waiting {
            return Ok(true);
        }
        if !self.elected {
            self.elected = client.query_one("SELECT pg_try_advisory_lock($1, $2)", &[&KEY, &ELECTION]).await?.get(0);
            if !self.elected {
                return Ok(false);
            }
        }
        match client.execute("SELECT pg_advisory_lock($1, $2)", &[&KEY, &WAITING]).await {
            Ok(_) => {
                self.waiting = true;
                Ok(true)
            }
            // An app transaction has held it shared for longer than the timeout (a long transaction that wrote a
            // recharge): stay unarmed; while this request waited, the triggers NOTIFYed, and the caller tries again
            // at its next idle moment or safety tick.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                tracing::debug!("wake-up lock busy; trying again later");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The triggers stop NOTIFYing (this listener is about to drain a busy flow).
    pub async fn disarm(&mut self, client: &Client) -> Result<(), DbError> {
        if self.waiting {
            // Unarmed even if this fails: a failure means the session, and the lock with it, is gone.
            self.waiting = false;
            client.execute("SELECT pg_advisory_unlock($1, $2)", &[&KEY, &WAITING]).await?;
        }
        Ok(())
    }
}
