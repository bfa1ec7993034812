//! One notice of every kind with realistic data (the Benítez family: Rocío, and her children Tomás and María José),
//! rendered as each channel sends it. `cargo run --example channel_samples` prints the Markdown that the channels
//! page of the documentation carries between its `samples` markers; `tests/doc_samples.rs` fails when the page and
//! the templates drift apart, so the page always shows what a parent receives.

use crate::domain::{ChannelKind, Guaranies, NotificationType};
use crate::rules::{
    Ademas, AvisoDeuda, AvisoSaldoBajo, Consumo, ConsumosHijo, MessageData, NivelRecordatorio, ResumenConsumos,
    TarjetaDeuda, TarjetaSaldoBajo,
};

/// The portal address the samples' links point at.
pub const PORTAL: &str = "https://portal.cantinatita.com.py";

/// Every sample: a heading and the data; at least one per notification type (a unit test checks it).
pub fn all() -> Vec<(&'static str, MessageData)> {
    let rocio = || "Rocío".to_string();
    let tomas = || "Tomás Benítez".to_string();
    vec![
        (
            "recarga_exitosa",
            MessageData::RecargaExitosa {
                padre: rocio(),
                alumno: tomas(),
                nro_tarjeta: "TAR-000731".into(),
                monto: Guaranies(150_000),
                saldo: Guaranies(153_000),
                fecha: "23/11/2026 19:45".into(),
                referencia: Some("Pago en línea Bancard N.º 8841207".into()),
            },
        ),
        (
            "saldo_bajo",
            MessageData::SaldoBajo(AvisoSaldoBajo::una(
                rocio(),
                TarjetaSaldoBajo {
                    alumno: tomas(),
                    nro_tarjeta: "TAR-000731".into(),
                    saldo: Guaranies(3_000),
                    umbral: Guaranies(5_000),
                },
                "24/11/2026 12:10".into(),
            )),
        ),
        (
            "tarjeta_bloqueada",
            MessageData::TarjetaBloqueada {
                padre: rocio(),
                alumno: "María José Benítez".into(),
                nro_tarjeta: "TAR-000732".into(),
                fecha: "25/11/2026 10:05".into(),
            },
        ),
        (
            "cuenta_pendiente",
            MessageData::CuentaPendiente {
                padre: rocio(),
                cliente: "Rocío Benítez".into(),
                ruc_ci: "3.456.789".into(),
                monto: Guaranies(185_000),
                ventas: 4,
                desde: "03/11/2026".into(),
            },
        ),
        (
            // A family's daily message: the debt reminder leads, the card about to expire rides along.
            "recordatorio_deuda",
            MessageData::RecordatorioDeuda(AvisoDeuda {
                padre: rocio(),
                tarjetas: vec![
                    TarjetaDeuda {
                        alumno: "María José Benítez".into(),
                        nro_tarjeta: "TAR-000732".into(),
                        monto: Guaranies(8_000),
                        desde: "24/11/2026".into(),
                    },
                    TarjetaDeuda {
                        alumno: tomas(),
                        nro_tarjeta: "TAR-000731".into(),
                        monto: Guaranies(4_500),
                        desde: "27/11/2026".into(),
                    },
                ],
                dias: 7,
                nivel: NivelRecordatorio::Urgente,
                ademas: vec![Ademas {
                    texto: "La tarjeta TAR-000731 de Tomás Benítez vence el 11/12/2026: renuévela en la cantina antes \
                            de esa fecha."
                        .into(),
                    breve: "tarjeta de Tomás Benítez vence el 11/12".into(),
                }],
            }),
        ),
        (
            "tarjeta_por_vencer",
            MessageData::TarjetaPorVencer {
                padre: rocio(),
                alumno: tomas(),
                nro_tarjeta: "TAR-000731".into(),
                vence: "11/12/2026".into(),
                dias: 10,
                ademas: Vec::new(),
            },
        ),
        (
            "tarjeta_vencida",
            MessageData::TarjetaVencida {
                padre: rocio(),
                alumno: tomas(),
                nro_tarjeta: "TAR-000731".into(),
                vencio: "11/12/2026".into(),
                ademas: Vec::new(),
            },
        ),
        (
            "mensaje_cantina",
            MessageData::MensajeCantina {
                padre: rocio(),
                alumno: Some(tomas()),
                mensaje: "Hola, Tomás olvidó su almuerzo en la cantina.\nPuede retirarlo hasta las 14:00.".into(),
                fecha: "25/11/2026 11:20".into(),
            },
        ),
        (
            "consumo_realizado",
            MessageData::ConsumoRealizado {
                padre: rocio(),
                alumno: tomas(),
                nro_tarjeta: "TAR-000731".into(),
                detalle: "Empanada de carne y jugo de naranja".into(),
                monto: Guaranies(12_000),
                saldo: Guaranies(41_000),
                fecha: "26/11/2026 10:15".into(),
            },
        ),
        (
            "resumen_consumos",
            MessageData::ResumenConsumos(ResumenConsumos {
                padre: rocio(),
                fecha: "26/11/2026".into(),
                hijos: vec![
                    ConsumosHijo {
                        alumno: tomas(),
                        nro_tarjeta: "TAR-000731".into(),
                        consumos: vec![
                            Consumo {
                                hora: "10:15".into(),
                                detalle: "Empanada de carne y jugo de naranja".into(),
                                monto: Guaranies(12_000),
                            },
                            Consumo {
                                hora: "12:40".into(),
                                detalle: "Almuerzo del día".into(),
                                monto: Guaranies(25_000),
                            },
                        ],
                        saldo: Guaranies(16_000),
                    },
                    ConsumosHijo {
                        alumno: "María José Benítez".into(),
                        nro_tarjeta: "TAR-000732".into(),
                        consumos: vec![Consumo {
                            hora: "09:50".into(),
                            detalle: "Chipa y cocido".into(),
                            monto: Guaranies(6_000),
                        }],
                        saldo: Guaranies(-8_000),
                    },
                ],
            }),
        ),
    ]
}

/// The Markdown of every sample on every channel ([`as_sent`]).
pub fn markdown() -> Result<String, crate::render::RenderError> {
    let mut out = String::new();
    for (name, data) in all() {
        out.push_str(&format!("#### `{name}` ({})\n\n", data.notification_type().label()));
        for channel in ChannelKind::ALL {
            let body = as_sent(channel, &data)?;
            out.push_str(&format!("{}:\n\n```text\n{body}\n```\n\n", channel.destino()));
        }
    }
    Ok(out)
}

/// The notice as `channel` sends it: the email's subject and plain text, the SMS as the providers send it
/// (transliterated, with its encoding and segments), the WhatsApp template's name and parameters as the Meta adapter
/// sends them, the portal notice's title and text.
pub fn as_sent(channel: ChannelKind, data: &MessageData) -> Result<String, crate::render::RenderError> {
    let r = crate::render::render(data, PORTAL)?;
    Ok(match channel {
        ChannelKind::Email => format!("Asunto: {}\n\n{}", r.subject, r.text.trim_end()),
        ChannelKind::Sms => {
            let sms = crate::render::sms_text(&r.short);
            let (encoding, parts) = crate::render::sms_encoding(&sms);
            format!("{sms}\n\n({} caracteres, {encoding:?}, {parts} segmento(s))", sms.chars().count())
        }
        ChannelKind::WhatsApp => whatsapp(data.notification_type(), data),
        ChannelKind::Portal => format!("Título: {}\n\n{}", r.subject, r.short),
    })
}

fn whatsapp(tipo: NotificationType, data: &MessageData) -> String {
    let mut s = format!("plantilla {tipo} (es)");
    for (i, p) in super::whatsapp_cloud::body_parameters(data).iter().enumerate() {
        s.push_str(&format!("\n{{{{{}}}}} {p}", i + 1));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_sample() {
        let covered: Vec<NotificationType> = all().iter().map(|(_, d)| d.notification_type()).collect();
        for t in NotificationType::ALL {
            assert!(covered.contains(&t), "no sample of {t} in channels::samples::all()");
        }
    }

    #[test]
    fn every_sample_renders_on_every_channel() {
        let md = markdown().expect("every sample renders");
        for (name, _) in all() {
            assert!(md.contains(&format!("#### `{name}`")), "{name} missing");
        }
        assert_eq!(md.matches("```text").count(), all().len() * ChannelKind::ALL.len());
    }
}
