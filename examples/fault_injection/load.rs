//! The app's side: confirmed recharges at a steady rate, one row per transaction as the POS commits them, with
//! every id whose COMMIT returned recorded. A transaction that fails is retried (the next one goes out at the next
//! tick); a recharge whose COMMIT failed is not counted as confirmed (whether it was is for the database to say).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

const INSERT: &str = "INSERT INTO cargas_saldo (nro_tarjeta, monto_cargado, estado, referencia)
                      VALUES ($1, $2, 'CONFIRMADO', 'fault-injection') RETURNING id_carga";

#[derive(Default)]
pub struct Ledger {
    committed: Mutex<Vec<i64>>,
    /// COMMIT sent, no answer (the connection broke): the database decides.
    commit_unknown: Mutex<Vec<i64>>,
    pub failed_transactions: AtomicU64,
    pub reconnects: AtomicU64,
}

impl Ledger {
    pub fn committed(&self) -> Vec<i64> {
        self.committed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn committed_count(&self) -> usize {
        self.committed.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn commit_unknown(&self) -> Vec<i64> {
        self.commit_unknown.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One POS-like client: `per_second` single-row transactions on random cards until `stop`.
pub async fn inserter(
    url: String,
    cards: Arc<Vec<String>>,
    per_second: f64,
    seed: u64,
    ledger: Arc<Ledger>,
    stop: CancellationToken,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    // A steady rate: after an outage, no burst to catch up.
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut client: Option<Client> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let c = match &client {
            Some(c) if !c.is_closed() => c,
            _ => match connect(&url).await {
                Some(c) => {
                    ledger.reconnects.fetch_add(1, Ordering::Relaxed);
                    client.insert(c)
                }
                None => {
                    ledger.failed_transactions.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        let card = &cards[rng.usize(..cards.len())];
        let monto = 10_000 + 1_000 * rng.i64(0..20);
        match one_recharge(c, card, monto).await {
            Ok(id) => ledger.committed.lock().unwrap_or_else(|e| e.into_inner()).push(id),
            Err(Failure::BeforeCommit) => {
                ledger.failed_transactions.fetch_add(1, Ordering::Relaxed);
                // A broken connection is replaced; a live one just rolls back.
                if c.is_closed() || c.batch_execute("ROLLBACK").await.is_err() {
                    client = None;
                }
            }
            Err(Failure::AtCommit(id)) => {
                ledger.failed_transactions.fetch_add(1, Ordering::Relaxed);
                ledger.commit_unknown.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                client = None;
            }
        }
    }
}

enum Failure {
    BeforeCommit,
    AtCommit(i64),
}

async fn one_recharge(c: &Client, card: &str, monto: i64) -> Result<i64, Failure> {
    c.batch_execute("BEGIN").await.map_err(|_| Failure::BeforeCommit)?;
    let id: i64 = c.query_one(INSERT, &[&card, &monto]).await.map_err(|_| Failure::BeforeCommit)?.get(0);
    c.batch_execute("COMMIT").await.map_err(|_| Failure::AtCommit(id))?;
    Ok(id)
}

async fn connect(url: &str) -> Option<Client> {
    let connecting = tokio_postgres::connect(url, NoTls);
    let (client, conn) = tokio::time::timeout(Duration::from_secs(2), connecting).await.ok()?.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(client)
}
