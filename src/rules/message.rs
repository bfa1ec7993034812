use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::domain::{Guaranies, NotificationType};

/// Everything a template needs, captured when the request is created and stored in `solicitudes_notificacion.datos`,
/// so a retry next hour renders the same notice without reading the database again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "plantilla", rename_all = "snake_case")]
pub enum MessageData {
    RecargaExitosa {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        monto: Guaranies,
        saldo: Guaranies,
        fecha: String,
        referencia: Option<String>,
    },
    SaldoBajo {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        saldo: Guaranies,
        umbral: Guaranies,
        fecha: String,
    },
    TarjetaBloqueada {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        fecha: String,
    },
    /// Account debt (`ventas` pending payment) with a sale older than 7 days.
    CuentaPendiente {
        padre: String,
        /// Client name (or `razon_social`) and document, as on the account.
        cliente: String,
        ruc_ci: String,
        monto: Guaranies,
        ventas: i64,
        /// Date of the oldest unpaid sale.
        desde: String,
    },
    /// A card allowed below zero and not regularised: 3, 7 and 15 days after the authorisation.
    RecordatorioDeuda {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        /// What is owed (the card's negative balance, as a positive amount).
        monto: Guaranies,
        dias: i32,
        nivel: NivelRecordatorio,
        fecha: String,
    },
}

/// How insistent a debt reminder is: friendly at 3 days, urgent at 7, critical at 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NivelRecordatorio {
    Amistoso,
    Urgente,
    Critico,
}

impl NivelRecordatorio {
    pub fn for_days(dias: i32) -> NivelRecordatorio {
        match dias {
            ..=6 => NivelRecordatorio::Amistoso,
            7..=14 => NivelRecordatorio::Urgente,
            _ => NivelRecordatorio::Critico,
        }
    }
}

impl MessageData {
    pub fn notification_type(&self) -> NotificationType {
        match self {
            MessageData::RecargaExitosa { .. } => NotificationType::RecargaExitosa,
            MessageData::SaldoBajo { .. } => NotificationType::SaldoBajo,
            MessageData::TarjetaBloqueada { .. } => NotificationType::TarjetaBloqueada,
            MessageData::CuentaPendiente { .. } => NotificationType::CuentaPendiente,
            MessageData::RecordatorioDeuda { .. } => NotificationType::RecordatorioDeuda,
        }
    }

    /// Realistic sample data for `send-test` and template previews.
    pub fn sample(t: NotificationType) -> MessageData {
        let (padre, alumno, nro_tarjeta) = ("Ana".to_string(), "Luis Benítez".to_string(), "0001234".to_string());
        let fecha = local_datetime(Timestamp::now());
        match t {
            NotificationType::RecargaExitosa => MessageData::RecargaExitosa {
                padre,
                alumno,
                nro_tarjeta,
                monto: Guaranies(50_000),
                saldo: Guaranies(62_500),
                fecha,
                referencia: Some("Prueba".into()),
            },
            NotificationType::SaldoBajo => MessageData::SaldoBajo {
                padre,
                alumno,
                nro_tarjeta,
                saldo: Guaranies(3_500),
                umbral: Guaranies(5_000),
                fecha,
            },
            NotificationType::TarjetaBloqueada => MessageData::TarjetaBloqueada { padre, alumno, nro_tarjeta, fecha },
            NotificationType::CuentaPendiente => MessageData::CuentaPendiente {
                padre,
                cliente: "Ana Benítez".into(),
                ruc_ci: "1234567".into(),
                monto: Guaranies(185_000),
                ventas: 4,
                desde: "03/11/2026".into(),
            },
            NotificationType::RecordatorioDeuda => MessageData::RecordatorioDeuda {
                padre,
                alumno,
                nro_tarjeta,
                monto: Guaranies(12_000),
                dias: 7,
                nivel: NivelRecordatorio::Urgente,
                fecha,
            },
        }
    }

    /// The body parameters of the approved WhatsApp template, in this documented order ({{1}}, {{2}}, …):
    /// - `recarga_exitosa`: padre, alumno, monto, saldo, fecha
    /// - `saldo_bajo`: padre, alumno, saldo, umbral
    /// - `tarjeta_bloqueada`: padre, alumno, nro_tarjeta, fecha
    /// - `cuenta_pendiente`: padre, monto, desde
    /// - `recordatorio_deuda`: padre, alumno, monto, dias
    pub fn template_parameters(&self) -> Vec<String> {
        match self {
            MessageData::RecargaExitosa { padre, alumno, monto, saldo, fecha, .. } => {
                vec![padre.clone(), alumno.clone(), monto.to_string(), saldo.to_string(), fecha.clone()]
            }
            MessageData::SaldoBajo { padre, alumno, saldo, umbral, .. } => {
                vec![padre.clone(), alumno.clone(), saldo.to_string(), umbral.to_string()]
            }
            MessageData::TarjetaBloqueada { padre, alumno, nro_tarjeta, fecha } => {
                vec![padre.clone(), alumno.clone(), nro_tarjeta.clone(), fecha.clone()]
            }
            MessageData::CuentaPendiente { padre, monto, desde, .. } => {
                vec![padre.clone(), monto.to_string(), desde.clone()]
            }
            MessageData::RecordatorioDeuda { padre, alumno, monto, dias, .. } => {
                vec![padre.clone(), alumno.clone(), monto.to_string(), dias.to_string()]
            }
        }
    }
}

fn asuncion() -> TimeZone {
    // The bundled tz database, not the container's: Asunción's rules changed in 2024.
    TimeZone::get("America/Asuncion").unwrap_or(TimeZone::UTC)
}

pub fn local_date(ts: Timestamp) -> Date {
    ts.to_zoned(asuncion()).date()
}

/// `23/11/2026 19:45`, as parents in Paraguay write dates.
pub fn local_datetime(ts: Timestamp) -> String {
    ts.to_zoned(asuncion()).strftime("%d/%m/%Y %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_in_asuncion_which_is_utc_minus_3_all_year() {
        // 02:30 UTC on 24 Nov is still 23 Nov in Asunción.
        let ts: Timestamp = "2026-11-24T02:30:00Z".parse().unwrap();
        assert_eq!(local_date(ts).to_string(), "2026-11-23");
        assert_eq!(local_datetime(ts), "23/11/2026 23:30");
        // July: no more DST since October 2024; still UTC-3.
        let ts: Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
        assert_eq!(local_datetime(ts), "01/07/2026 09:00");
    }

    #[test]
    fn data_round_trips_through_json() {
        let d = MessageData::SaldoBajo {
            padre: "Ana".into(),
            alumno: "Luis Pérez".into(),
            nro_tarjeta: "T1".into(),
            saldo: Guaranies(3000),
            umbral: Guaranies(5000),
            fecha: "01/07/2026 09:00".into(),
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["plantilla"], "saldo_bajo");
        assert_eq!(v["saldo"], 3000);
        let back: MessageData = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.notification_type(), NotificationType::SaldoBajo);
    }
}
