//! Renders every kind of notice (and the three reminder levels) with realistic data to
//! `target/email-samples/<name>.html` and `<name>.txt`, and prints each subject and short text with its SMS encoding.
//! Open the HTML files in a browser, or screenshot them as `docs/email-screenshots/README.md` shows.
//!
//! `cargo run --example render_samples -j 1 [-- OUTPUT_DIR]`

use std::path::PathBuf;

use cantina_notify::domain::Guaranies;
use cantina_notify::render::{render, sms_encoding, sms_text};
use cantina_notify::rules::{
    Ademas, AvisoDeuda, AvisoSaldoBajo, Consumo, ConsumosHijo, MessageData, NivelRecordatorio, ResumenConsumos,
    TarjetaDeuda, TarjetaSaldoBajo,
};

const PORTAL: &str = "https://portal.cantinatita.com.py";

fn reminder(alumno: &str, monto: i64, dias: i32, desde: &str) -> MessageData {
    MessageData::RecordatorioDeuda(AvisoDeuda {
        padre: "Rocío Benítez".into(),
        tarjetas: vec![TarjetaDeuda {
            alumno: alumno.into(),
            nro_tarjeta: "TAR-000731".into(),
            monto: Guaranies(monto),
            desde: desde.into(),
        }],
        dias,
        nivel: NivelRecordatorio::for_days(dias),
        ademas: Vec::new(),
    })
}

/// A family's daily message: two cards in debt, with an expiring card and a low card carried along.
fn family_message() -> MessageData {
    MessageData::RecordatorioDeuda(AvisoDeuda {
        padre: "Rocío Benítez".into(),
        tarjetas: vec![
            TarjetaDeuda {
                alumno: "Tomás Benítez".into(),
                nro_tarjeta: "TAR-000731".into(),
                monto: Guaranies(9_000),
                desde: "20/11/2026".into(),
            },
            TarjetaDeuda {
                alumno: "María José Benítez".into(),
                nro_tarjeta: "TAR-000732".into(),
                monto: Guaranies(3_000),
                desde: "21/11/2026".into(),
            },
        ],
        dias: 3,
        nivel: NivelRecordatorio::Amistoso,
        ademas: vec![
            Ademas {
                texto: "La tarjeta TAR-000733 de Lucas Benítez vence el 03/12/2026: renuévela en la cantina antes de esa fecha.".into(),
                breve: "tarjeta de Lucas Benítez vence el 03/12".into(),
            },
            Ademas {
                texto: "Saldo bajo: Ana Benítez tiene Gs. 3.000. Recargue en el portal de padres o en la cantina.".into(),
                breve: "saldo bajo de Ana Benítez".into(),
            },
        ],
    })
}

fn samples() -> Vec<(&'static str, MessageData)> {
    vec![
        (
            "recarga_exitosa",
            MessageData::RecargaExitosa {
                padre: "Begoña Ñamandú de Giménez".into(),
                alumno: "María José Giménez Benítez".into(),
                nro_tarjeta: "TAR-000412".into(),
                monto: Guaranies(150_000),
                saldo: Guaranies(162_500),
                fecha: "23/11/2026 19:45".into(),
                referencia: Some("Pago en línea Bancard N.º 8841207".into()),
            },
        ),
        (
            "recarga_exitosa_largo",
            MessageData::RecargaExitosa {
                padre: "Carlos Alberto Fernández Villagra de la Santísima Trinidad".into(),
                alumno: "María de los Ángeles Florencia Fernández Villagra de Ñamandú Benítez".into(),
                nro_tarjeta: "TAR-2026-000000000918".into(),
                monto: Guaranies(12_500_000),
                saldo: Guaranies(12_734_500),
                fecha: "02/12/2026 07:58".into(),
                referencia: Some("TX-9F8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C3D2E1F0A9B8C".into()),
            },
        ),
        (
            "saldo_bajo",
            MessageData::SaldoBajo(AvisoSaldoBajo::una(
                "Ana <b>Gómez</b>".into(),
                TarjetaSaldoBajo {
                    alumno: "<script>alert('hola')</script> Ñandutí".into(),
                    nro_tarjeta: "TAR-000588".into(),
                    saldo: Guaranies(3_500),
                    umbral: Guaranies(5_000),
                },
                "24/11/2026 12:10".into(),
            )),
        ),
        (
            // The daily sweep: one notice per parent listing all of their low cards.
            "saldo_bajo_varias",
            MessageData::SaldoBajo(
                AvisoSaldoBajo::varias(
                    "Rocío".into(),
                    vec![
                        TarjetaSaldoBajo {
                            alumno: "Tomás Benítez".into(),
                            nro_tarjeta: "TAR-000731".into(),
                            saldo: Guaranies(3_000),
                            umbral: Guaranies(5_000),
                        },
                        TarjetaSaldoBajo {
                            alumno: "María José Benítez".into(),
                            nro_tarjeta: "TAR-000732".into(),
                            saldo: Guaranies(1_500),
                            umbral: Guaranies(5_000),
                        },
                    ],
                    "24/11/2026 18:00".into(),
                )
                .expect("two cards"),
            ),
        ),
        (
            "cuenta_pendiente",
            MessageData::CuentaPendiente {
                padre: "Sebastián Núñez".into(),
                cliente: "Sebastián Núñez Acuña".into(),
                ruc_ci: "4.567.890-1".into(),
                monto: Guaranies(285_000),
                ventas: 6,
                desde: "02/11/2026".into(),
            },
        ),
        ("recordatorio_deuda_amistoso", reminder("Tomás Benítez", 12_500, 3, "20/11/2026")),
        ("recordatorio_deuda_urgente", reminder("Tomás Benítez", 12_500, 7, "16/11/2026")),
        ("recordatorio_deuda_critico", reminder("Tomás Benítez", 27_000, 15, "08/11/2026")),
        ("mensaje_del_dia_familia", family_message()),
        (
            "tarjeta_por_vencer",
            MessageData::TarjetaPorVencer {
                padre: "Lucía Ortiz".into(),
                alumno: "Joaquín Ortiz Peña".into(),
                nro_tarjeta: "TAR-000127".into(),
                vence: "20/12/2026".into(),
                dias: 15,
                ademas: Vec::new(),
            },
        ),
        (
            "tarjeta_vencida",
            MessageData::TarjetaVencida {
                padre: "Lucía Ortiz".into(),
                alumno: "Joaquín Ortiz Peña".into(),
                nro_tarjeta: "TAR-000127".into(),
                vencio: "20/12/2026".into(),
                ademas: Vec::new(),
            },
        ),
        (
            "tarjeta_bloqueada",
            MessageData::TarjetaBloqueada {
                padre: "Lucía Ortiz".into(),
                alumno: "Joaquín Ortiz Peña".into(),
                nro_tarjeta: "TAR-000127".into(),
                fecha: "25/11/2026 08:05".into(),
            },
        ),
        (
            // The POS "Notificar" button with the staff's own text.
            "mensaje_cantina",
            MessageData::MensajeCantina {
                padre: "Rocío".into(),
                alumno: Some("Tomás Benítez".into()),
                mensaje: "Hola, Tomás olvidó su almuerzo en la cantina.\nPuede retirarlo hasta las 14:00.".into(),
                fecha: "25/11/2026 11:20".into(),
            },
        ),
        (
            // One purchase, for a family that switched the per-purchase notice on.
            "consumo_realizado",
            MessageData::ConsumoRealizado {
                padre: "Rocío".into(),
                alumno: "Tomás Benítez".into(),
                nro_tarjeta: "TAR-000731".into(),
                detalle: "Almuerzo: milanesa con ensalada".into(),
                monto: Guaranies(25_000),
                saldo: Guaranies(43_000),
                fecha: "25/11/2026 12:15".into(),
            },
        ),
        (
            // The day's purchases of two children, for a family that switched the daily summary on.
            "resumen_consumos",
            MessageData::ResumenConsumos(ResumenConsumos {
                padre: "Rocío".into(),
                fecha: "25/11/2026".into(),
                hijos: vec![
                    ConsumosHijo {
                        alumno: "Tomás Benítez".into(),
                        nro_tarjeta: "TAR-000731".into(),
                        consumos: vec![
                            Consumo {
                                hora: "09:40".into(),
                                detalle: "Empanada de carne".into(),
                                monto: Guaranies(8_000),
                            },
                            Consumo {
                                hora: "12:15".into(),
                                detalle: "Almuerzo: milanesa con ensalada".into(),
                                monto: Guaranies(25_000),
                            },
                        ],
                        saldo: Guaranies(43_000),
                    },
                    ConsumosHijo {
                        alumno: "Valentina Benítez".into(),
                        nro_tarjeta: "TAR-000732".into(),
                        consumos: vec![Consumo {
                            hora: "10:05".into(),
                            detalle: "Jugo de naranja".into(),
                            monto: Guaranies(6_000),
                        }],
                        saldo: Guaranies(12_000),
                    },
                ],
            }),
        ),
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("email-samples"),
    };
    std::fs::create_dir_all(&dir)?;
    for (name, data) in samples() {
        let r = render(&data, PORTAL)?;
        std::fs::write(dir.join(format!("{name}.html")), &r.html)?;
        std::fs::write(dir.join(format!("{name}.txt")), &r.text)?;
        let sms = sms_text(&r.short);
        let (enc, parts) = sms_encoding(&r.short);
        let (sms_enc, sms_parts) = sms_encoding(&sms);
        println!("{name}");
        println!("  asunto: {}", r.subject);
        println!("  corto:  {} ({} caracteres, {enc:?}, {parts} segmento(s))", r.short, r.short.chars().count());
        println!("  SMS:    {sms} ({} caracteres, {sms_enc:?}, {sms_parts} segmento(s))", sms.chars().count());
    }
    println!("{}", dir.display());
    Ok(())
}
