//! Portal notices: rows in `notificacion` for each active portal account of the parent, so the notice appears in
//! the parents' portal. Needs no provider: it writes to the Cantina database itself.

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::{Channel, OutgoingMessage, SendError, SendReceipt};
use crate::db::DbError;
use crate::domain::ChannelKind;
use crate::rules::Recipient;

pub struct PortalChannel {
    pool: Pool,
}

impl PortalChannel {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

const INSERT: &str = "
    INSERT INTO notificacion (id_usuario_portal, tipo, titulo, mensaje, fecha_envio)
    SELECT u.id_usuario_portal, $2, $3, $4, now()
    FROM usuario_portal u
    WHERE u.id_cliente = $1 AND coalesce(u.activo, true)
    RETURNING id_notificacion::bigint";

fn transient(e: impl Into<DbError>) -> SendError {
    SendError::Transient { reason: format!("portal: {}", e.into()), retry_after: None }
}

#[async_trait]
impl Channel for PortalChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Portal
    }

    fn provider(&self) -> &'static str {
        "portal"
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let Recipient::Portal { id_cliente } = msg.recipient else {
            return Err(SendError::Permanent {
                reason: "el canal portal necesita un cliente como destinatario".into(),
            });
        };
        let conn = self.pool.get().await.map_err(transient)?;
        let titulo: String = msg.subject.chars().take(255).collect();
        let rows = conn
            // The short text: the email's plain part carries email-only lines (footer, "do not reply").
            .query(INSERT, &[&id_cliente, &msg.notification_type.as_str(), &titulo, &msg.short_text])
            .await
            .map_err(transient)?;
        if rows.is_empty() {
            return Err(SendError::Permanent {
                reason: format!("el cliente {id_cliente} no tiene una cuenta activa en el portal"),
            });
        }
        let ids: Vec<String> = rows.iter().map(|r| r.get::<_, i64>(0).to_string()).collect();
        Ok(SendReceipt::with_id(format!("notificacion:{}", ids.join(","))))
    }
}
