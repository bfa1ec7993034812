//! The final reconciliation: the inserters' ledger and the database's recharges against the requests and against
//! what the provider sink received.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use tokio_postgres::Client;

use crate::FiError;
use crate::sink::KeyLog;

/// How a service process ended.
#[derive(Clone, Debug)]
pub enum End {
    SigKill,
    SigTerm,
    /// Exited without being told to (a failure of the service).
    Crashed,
}

/// Why a key got one more 202 than before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DupCause {
    /// The previous 202 went to a process that was then SIGKILLed before it recorded the outcome.
    SigKill,
    /// The previous 202 went to a process stopped with SIGTERM (must never happen: the stop is graceful).
    SigTerm,
    /// The previous 202 went to a process that exited on its own.
    Crash,
    /// Same process, the previous 202 during the PostgreSQL restart (its outcome could not be written in time).
    PgRestart,
    /// Same process, nothing injected explains it.
    Unexplained,
}

impl DupCause {
    pub fn label(self) -> &'static str {
        match self {
            DupCause::SigKill => "after SIGKILL",
            DupCause::SigTerm => "after SIGTERM",
            DupCause::Crash => "after an unexpected exit",
            DupCause::PgRestart => "around the PostgreSQL restart",
            DupCause::Unexplained => "unexplained",
        }
    }
}

pub struct Request {
    pub key: String,
    pub estado: String,
    pub reason: String,
}

/// What the database holds at the end.
pub struct DbState {
    pub confirmed: HashSet<i64>,
    pub requests: Vec<Request>,
    pub unprocessed_events: i64,
}

pub async fn gather(c: &Client) -> Result<DbState, FiError> {
    let confirmed = c
        .query("SELECT id_carga FROM cargas_saldo WHERE estado = 'CONFIRMADO'", &[])
        .await?
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect();
    let requests = c
        .query(
            "SELECT coalesce(clave_dedup, 'sin clave #' || id_solicitud), estado, coalesce(ultimo_error, '')
             FROM solicitudes_notificacion",
            &[],
        )
        .await?
        .iter()
        .map(|r| Request { key: r.get(0), estado: r.get(1), reason: r.get(2) })
        .collect();
    let unprocessed_events =
        c.query_one("SELECT count(*) FROM cantina_notify_eventos WHERE procesado_en IS NULL", &[]).await?.get(0);
    Ok(DbState { confirmed, requests, unprocessed_events })
}

pub struct Inputs<'a> {
    pub committed: &'a [i64],
    pub commit_unknown: &'a [i64],
    pub sink: &'a HashMap<String, KeyLog>,
    pub ends: &'a HashMap<u32, End>,
    /// From a little before the PostgreSQL restart began to a while after it was back.
    pub pg_window: Option<(Duration, Duration)>,
    /// The channels each recharge must have one request for.
    pub channels: &'a [&'a str],
}

#[derive(Default)]
pub struct Figures {
    pub committed: usize,
    pub commit_unknown: usize,
    pub commit_unknown_in_db: usize,
    pub db_confirmed: usize,
    /// Committed (COMMIT returned) but not in the table: lost by the database itself.
    pub committed_missing: usize,
    pub recharges_checked: usize,
    pub without_request: Vec<i64>,
    pub not_exactly_one: Vec<i64>,
    pub not_final: Vec<String>,
    pub final_without_reason: Vec<String>,
    pub by_state: BTreeMap<String, usize>,
    pub unprocessed_events: i64,
    pub receipts_202: usize,
    pub receipts_503: usize,
    pub receipts_429: usize,
    pub receipts_hung: usize,
    pub keys_accepted: usize,
    pub duplicates: usize,
    pub duplicates_by_cause: BTreeMap<DupCause, usize>,
    pub duplicate_examples: Vec<String>,
    /// `Enviado` without any 202 from the sink: a send recorded that the provider never accepted.
    pub sent_without_receipt: Vec<String>,
    /// A 202 from the sink, but the request is not `Enviado` (nor closed as "may have been sent").
    pub receipt_not_sent: Vec<String>,
    pub unknown_keys: Vec<String>,
}

impl Figures {
    /// Recharges without a request, or whose request never reached a final state, plus committed recharges the
    /// database does not have.
    pub fn lost(&self) -> usize {
        self.without_request.len() + self.committed_missing + self.not_final.len()
    }
}

pub fn reconcile(db: &DbState, inp: &Inputs<'_>) -> Figures {
    let mut f = Figures {
        committed: inp.committed.len(),
        commit_unknown: inp.commit_unknown.len(),
        commit_unknown_in_db: inp.commit_unknown.iter().filter(|id| db.confirmed.contains(id)).count(),
        db_confirmed: db.confirmed.len(),
        committed_missing: inp.committed.iter().filter(|id| !db.confirmed.contains(id)).count(),
        unprocessed_events: db.unprocessed_events,
        ..Figures::default()
    };
    // Every recharge the app saw committed, and every one the database holds (a COMMIT whose answer was lost may
    // have happened).
    let mut ids: HashSet<i64> = db.confirmed.clone();
    ids.extend(inp.committed.iter().copied());
    f.recharges_checked = ids.len();

    let mut per_recharge: HashMap<(i64, &str), Vec<&Request>> = HashMap::new();
    for r in &db.requests {
        *f.by_state.entry(r.estado.clone()).or_default() += 1;
        match r.estado.as_str() {
            "Enviado" => {}
            "Error" | "Omitido" if !r.reason.trim().is_empty() => {}
            "Error" | "Omitido" => f.final_without_reason.push(r.key.clone()),
            _ => f.not_final.push(r.key.clone()),
        }
        let mut parts = r.key.split(':');
        match (parts.next(), parts.next().and_then(|id| id.parse::<i64>().ok()), parts.next(), parts.next()) {
            (Some("recarga_exitosa"), Some(id), Some(channel), None) => {
                per_recharge.entry((id, channel)).or_default().push(r)
            }
            _ => f.unknown_keys.push(r.key.clone()),
        }
    }
    let mut sorted: Vec<i64> = ids.into_iter().collect();
    sorted.sort_unstable();
    for id in sorted {
        for channel in inp.channels {
            match per_recharge.get(&(id, *channel)).map(Vec::len).unwrap_or(0) {
                0 => f.without_request.push(id),
                1 => {}
                _ => f.not_exactly_one.push(id),
            }
        }
    }

    let states: HashMap<&str, &Request> = db.requests.iter().map(|r| (r.key.as_str(), r)).collect();
    for (key, log) in inp.sink {
        f.receipts_202 += log.accepted.len();
        f.receipts_503 += log.refused_503 as usize;
        f.receipts_429 += log.refused_429 as usize;
        f.receipts_hung += log.hung as usize;
        if !log.accepted.is_empty() {
            f.keys_accepted += 1;
            // A request closed as "no outcome recorded after N attempts; it may have been sent" is honest about a 202.
            let sent = states.get(key.as_str()).is_some_and(|r| {
                r.estado == "Enviado" || (r.estado == "Error" && r.reason.contains("pudo haberse realizado"))
            });
            if !sent {
                f.receipt_not_sent.push(key.clone());
            }
        }
        for pair in log.accepted.windows(2) {
            let (first, again) = (pair[0], pair[1]);
            let cause = if first.incarnation != again.incarnation {
                match inp.ends.get(&first.incarnation) {
                    Some(End::SigKill) => DupCause::SigKill,
                    Some(End::SigTerm) => DupCause::SigTerm,
                    Some(End::Crashed) => DupCause::Crash,
                    None => DupCause::Unexplained,
                }
            } else if inp.pg_window.is_some_and(|(from, to)| first.at >= from && first.at <= to) {
                DupCause::PgRestart
            } else {
                DupCause::Unexplained
            };
            f.duplicates += 1;
            *f.duplicates_by_cause.entry(cause).or_default() += 1;
            if f.duplicate_examples.len() < 10 {
                f.duplicate_examples.push(format!(
                    "{key}: 202 at {:.1} s (process #{}) and again at {:.1} s (process #{}): {}",
                    first.at.as_secs_f64(),
                    first.incarnation,
                    again.at.as_secs_f64(),
                    again.incarnation,
                    cause.label()
                ));
            }
        }
    }
    for r in &db.requests {
        if r.estado == "Enviado" && inp.sink.get(&r.key).is_none_or(|l| l.accepted.is_empty()) {
            f.sent_without_receipt.push(r.key.clone());
        }
    }
    f
}
