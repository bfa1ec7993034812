//! Outbox events as data: what the triggers wrote, decoded. The rules read them; `events` claims and stores them.

use jiff::Timestamp;

/// One row of `cantina_notify_eventos`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub id: i64,
    pub kind: EventKind,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    RecargaConfirmada {
        id_carga: i64,
    },
    SaldoBajo {
        nro_tarjeta: String,
        saldo_anterior: i64,
        saldo_nuevo: i64,
    },
    TarjetaBloqueada {
        nro_tarjeta: String,
    },
    /// A card's `estado` became `Vencida` (migration 0023).
    TarjetaVencida {
        nro_tarjeta: String,
    },
    SolicitudManual {
        id_solicitud: i64,
    },
    /// A row this build cannot interpret; recorded with the reason, never retried forever.
    Invalid {
        reason: String,
    },
}

impl EventKind {
    /// Decodes the columns the triggers write. Anything unexpected becomes `Invalid` with a reason.
    pub fn decode(
        tipo: &str,
        id_ref: Option<i64>,
        nro_tarjeta: Option<String>,
        saldo_anterior: Option<i64>,
        saldo_nuevo: Option<i64>,
    ) -> EventKind {
        let missing = |what: &str| EventKind::Invalid { reason: format!("evento {tipo} sin {what}") };
        match tipo {
            "recarga_confirmada" => {
                id_ref.map_or_else(|| missing("id_ref"), |id_carga| EventKind::RecargaConfirmada { id_carga })
            }
            "saldo_bajo" => match (nro_tarjeta, saldo_anterior, saldo_nuevo) {
                (Some(nro_tarjeta), Some(saldo_anterior), Some(saldo_nuevo)) => {
                    EventKind::SaldoBajo { nro_tarjeta, saldo_anterior, saldo_nuevo }
                }
                _ => missing("tarjeta o saldos"),
            },
            "tarjeta_bloqueada" => nro_tarjeta
                .map_or_else(|| missing("nro_tarjeta"), |nro_tarjeta| EventKind::TarjetaBloqueada { nro_tarjeta }),
            "tarjeta_vencida" => nro_tarjeta
                .map_or_else(|| missing("nro_tarjeta"), |nro_tarjeta| EventKind::TarjetaVencida { nro_tarjeta }),
            "solicitud_manual" => {
                id_ref.map_or_else(|| missing("id_ref"), |id_solicitud| EventKind::SolicitudManual { id_solicitud })
            }
            other => EventKind::Invalid { reason: format!("tipo de evento desconocido: {other}") },
        }
    }

    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            EventKind::RecargaConfirmada { .. } => "recarga_confirmada",
            EventKind::SaldoBajo { .. } => "saldo_bajo",
            EventKind::TarjetaBloqueada { .. } => "tarjeta_bloqueada",
            EventKind::TarjetaVencida { .. } => "tarjeta_vencida",
            EventKind::SolicitudManual { .. } => "solicitud_manual",
            EventKind::Invalid { .. } => "invalido",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn decodes_every_trigger_kind() {
        assert_eq!(
            EventKind::decode("recarga_confirmada", Some(7), None, None, None),
            EventKind::RecargaConfirmada { id_carga: 7 }
        );
        assert_eq!(
            EventKind::decode("saldo_bajo", None, Some("T1".into()), Some(6000), Some(4000)),
            EventKind::SaldoBajo { nro_tarjeta: "T1".into(), saldo_anterior: 6000, saldo_nuevo: 4000 }
        );
        assert_eq!(
            EventKind::decode("tarjeta_bloqueada", None, Some("T1".into()), None, None),
            EventKind::TarjetaBloqueada { nro_tarjeta: "T1".into() }
        );
        assert_eq!(
            EventKind::decode("solicitud_manual", Some(3), None, None, None),
            EventKind::SolicitudManual { id_solicitud: 3 }
        );
    }

    #[test]
    fn malformed_rows_are_invalid_with_a_reason() {
        for (tipo, id, card) in [
            ("recarga_confirmada", None, None),
            ("saldo_bajo", None, Some("T")),
            ("tarjeta_bloqueada", None, None),
            ("solicitud_manual", None, None),
            ("consumo", Some(1), None),
        ] {
            match EventKind::decode(tipo, id, card.map(String::from), None, None) {
                EventKind::Invalid { reason } => assert!(!reason.is_empty()),
                other => panic!("{tipo}: {other:?}"),
            }
        }
    }
}
