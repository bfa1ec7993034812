//! Channels paused because their configuration is broken (credentials rejected, sender unknown): queued requests
//! wait as `Pendiente` instead of failing one by one, staff get one `alertas_sistema` row per incident, and a probe
//! resumes the channel when the provider accepts the credentials again. The alert goes through [`crate::alerts`].

use std::collections::HashMap;
use std::sync::Mutex;

use deadpool_postgres::Pool;

use crate::alerts;
use crate::db::DbError;
use crate::domain::ChannelKind;

#[derive(Default)]
pub struct Pauses {
    paused: Mutex<HashMap<ChannelKind, String>>,
    /// Resumed after a probe but not yet confirmed by a real send: the staff alert stays open until one succeeds,
    /// so a probe that cannot tell (an HTTP gateway has none) does not resolve and re-raise it every interval.
    unconfirmed: Mutex<std::collections::HashSet<ChannelKind>>,
}

impl Pauses {
    /// Every channel starts unconfirmed: the first successful send of each, in each process, resolves an alert left
    /// open by an earlier incident (say, fixed by changing the secret and restarting the pods).
    pub fn new(kinds: impl IntoIterator<Item = ChannelKind>) -> Self {
        Self { paused: Mutex::default(), unconfirmed: Mutex::new(kinds.into_iter().collect()) }
    }

    pub fn paused_kinds(&self) -> Vec<(ChannelKind, String)> {
        self.paused.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, r)| (*k, r.clone())).collect()
    }

    /// Returns true if this call paused the channel (false if it already was).
    pub fn pause(&self, kind: ChannelKind, reason: &str) -> bool {
        let mut p = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        p.insert(kind, reason.to_string()).is_none()
    }

    pub fn resume(&self, kind: ChannelKind) {
        self.paused.lock().unwrap_or_else(|e| e.into_inner()).remove(&kind);
        self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).insert(kind);
    }

    /// A send went through: true if this confirms a resumed channel (time to resolve its alert).
    pub fn confirm(&self, kind: ChannelKind) -> bool {
        self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).remove(&kind)
    }

    pub fn is_paused(&self, kind: ChannelKind) -> bool {
        self.paused.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&kind)
    }
}

fn alert_prefix(kind: ChannelKind) -> String {
    format!("cantina-notify: canal {} pausado", kind.destino())
}

/// One open `SISTEMA` alert per paused channel, whichever replica notices first.
pub async fn raise_alert(pool: &Pool, kind: ChannelKind, provider: &str, reason: &str) -> Result<(), DbError> {
    let prefix = alert_prefix(kind);
    let mensaje = format!(
        "{prefix} ({provider}): {reason}. Revise la configuración del proveedor; los avisos esperan y el canal se reanuda solo cuando la prueba de conexión funcione."
    );
    alerts::raise(pool, &prefix, &mensaje).await?;
    Ok(())
}

/// The incident is over: the open alert is marked resolved, saying how.
pub async fn resolve_alert(pool: &Pool, kind: ChannelKind) -> Result<(), DbError> {
    alerts::resolve(
        pool,
        &alert_prefix(kind),
        "cantina-notify: la prueba del canal funcionó; envíos reanudados automáticamente",
    )
    .await?;
    Ok(())
}
