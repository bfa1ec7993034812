//! Rendering a request's stored data into what a channel sends: subject, HTML and plain-text bodies, and the
//! short text for SMS, WhatsApp and the `mensaje` column. `<%= %>` escapes HTML, so a name like `<script>`
//! renders as text; plain-text templates use `<%- %>`.

use sailfish::TemplateSimple;

use crate::rules::{MessageData, NivelRecordatorio};

#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
    pub short: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot render the {template} template: {source}")]
pub struct RenderError {
    template: &'static str,
    source: sailfish::RenderError,
}

// One struct per template (sailfish binds a template to one struct); the three of a kind share their fields.
#[derive(TemplateSimple)]
#[template(path = "email/recarga_exitosa.html.stpl")]
struct RecargaHtml<'a> {
    padre: &'a str,
    alumno: &'a str,
    nro_tarjeta: &'a str,
    monto: String,
    saldo: String,
    fecha: &'a str,
    referencia: Option<&'a str>,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/recarga_exitosa.txt.stpl")]
struct RecargaText<'a> {
    padre: &'a str,
    alumno: &'a str,
    nro_tarjeta: &'a str,
    monto: String,
    saldo: String,
    fecha: &'a str,
    referencia: Option<&'a str>,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/recarga_exitosa.stpl")]
struct RecargaShort<'a> {
    alumno: &'a str,
    monto: String,
    saldo: String,
}

#[derive(TemplateSimple)]
#[template(path = "email/saldo_bajo.html.stpl")]
struct SaldoBajoHtml<'a> {
    padre: &'a str,
    alumno: &'a str,
    nro_tarjeta: &'a str,
    saldo: String,
    umbral: String,
    fecha: &'a str,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/saldo_bajo.txt.stpl")]
struct SaldoBajoText<'a> {
    padre: &'a str,
    alumno: &'a str,
    nro_tarjeta: &'a str,
    saldo: String,
    umbral: String,
    fecha: &'a str,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/saldo_bajo.stpl")]
struct SaldoBajoShort<'a> {
    alumno: &'a str,
    saldo: String,
    umbral: String,
}

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_bloqueada.html.stpl")]
struct BloqueoHtml<'a> {
    padre: &'a str,
    alumno: &'a str,
    nro_tarjeta: &'a str,
    fecha: &'a str,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_bloqueada.txt.stpl")]
struct BloqueoText<'a> {
    padre: &'a str,
    alumno: &'a str,
    nro_tarjeta: &'a str,
    fecha: &'a str,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/tarjeta_bloqueada.stpl")]
struct BloqueoShort<'a> {
    alumno: &'a str,
    nro_tarjeta: &'a str,
    fecha: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/cuenta_pendiente.html.stpl")]
struct CuentaHtml<'a> {
    padre: &'a str,
    cliente: &'a str,
    ruc_ci: &'a str,
    monto: String,
    ventas: i64,
    desde: &'a str,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/cuenta_pendiente.txt.stpl")]
struct CuentaText<'a> {
    padre: &'a str,
    cliente: &'a str,
    ruc_ci: &'a str,
    monto: String,
    ventas: i64,
    desde: &'a str,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/cuenta_pendiente.stpl")]
struct CuentaShort<'a> {
    monto: String,
    desde: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/recordatorio_deuda.html.stpl")]
struct DeudaHtml<'a> {
    padre: &'a str,
    alumno: &'a str,
    nro_tarjeta: &'a str,
    monto: String,
    dias: i32,
    fecha: &'a str,
    titulo: &'a str,
    intro: &'a str,
    color: &'a str,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/recordatorio_deuda.txt.stpl")]
struct DeudaText<'a> {
    padre: &'a str,
    alumno: &'a str,
    nro_tarjeta: &'a str,
    monto: String,
    dias: i32,
    fecha: &'a str,
    intro: &'a str,
    portal_url: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/recordatorio_deuda.stpl")]
struct DeudaShort<'a> {
    alumno: &'a str,
    monto: String,
    dias: i32,
}

/// Title, opening line and colour of each reminder level: friendly, urgent, critical.
fn nivel_texts(nivel: NivelRecordatorio, alumno: &str) -> (&'static str, String, &'static str) {
    match nivel {
        NivelRecordatorio::Amistoso => (
            "Recordatorio de saldo pendiente",
            format!(
                "Le recordamos que la tarjeta de {alumno} quedó con saldo negativo. Cuando pueda, realice una recarga para regularizarla."
            ),
            "#17a2b8",
        ),
        NivelRecordatorio::Urgente => (
            "Saldo pendiente: recordatorio urgente",
            format!("La tarjeta de {alumno} sigue con saldo negativo. Le pedimos regularizarla a la brevedad."),
            "#fd7e14",
        ),
        NivelRecordatorio::Critico => (
            "Saldo pendiente: aviso final",
            format!(
                "La tarjeta de {alumno} lleva más de dos semanas con saldo negativo. Si no se regulariza, podrá restringirse el uso de la tarjeta."
            ),
            "#dc3545",
        ),
    }
}

fn run<T: TemplateSimple>(template: &'static str, t: T) -> Result<String, RenderError> {
    t.render_once().map_err(|source| RenderError { template, source })
}

pub fn render(data: &MessageData, portal_url: &str) -> Result<Rendered, RenderError> {
    let portal_url = portal_url.trim_end_matches('/');
    Ok(match data {
        MessageData::RecargaExitosa { padre, alumno, nro_tarjeta, monto, saldo, fecha, referencia } => {
            let referencia = referencia.as_deref();
            let (monto, saldo) = (monto.to_string(), saldo.to_string());
            Rendered {
                subject: format!("Recarga exitosa de {monto} - {alumno}"),
                html: run(
                    "recarga_exitosa.html",
                    RecargaHtml {
                        padre,
                        alumno,
                        nro_tarjeta,
                        monto: monto.clone(),
                        saldo: saldo.clone(),
                        fecha,
                        referencia,
                        portal_url,
                    },
                )?,
                text: run(
                    "recarga_exitosa.txt",
                    RecargaText {
                        padre,
                        alumno,
                        nro_tarjeta,
                        monto: monto.clone(),
                        saldo: saldo.clone(),
                        fecha,
                        referencia,
                        portal_url,
                    },
                )?,
                short: run("recarga_exitosa.sms", RecargaShort { alumno, monto, saldo })?,
            }
        }
        MessageData::SaldoBajo { padre, alumno, nro_tarjeta, saldo, umbral, fecha } => {
            let (saldo, umbral) = (saldo.to_string(), umbral.to_string());
            Rendered {
                subject: format!("Saldo bajo en la tarjeta de {alumno}"),
                html: run(
                    "saldo_bajo.html",
                    SaldoBajoHtml {
                        padre,
                        alumno,
                        nro_tarjeta,
                        saldo: saldo.clone(),
                        umbral: umbral.clone(),
                        fecha,
                        portal_url,
                    },
                )?,
                text: run(
                    "saldo_bajo.txt",
                    SaldoBajoText {
                        padre,
                        alumno,
                        nro_tarjeta,
                        saldo: saldo.clone(),
                        umbral: umbral.clone(),
                        fecha,
                        portal_url,
                    },
                )?,
                short: run("saldo_bajo.sms", SaldoBajoShort { alumno, saldo, umbral })?,
            }
        }
        MessageData::CuentaPendiente { padre, cliente, ruc_ci, monto, ventas, desde } => {
            let monto = monto.to_string();
            let ventas = *ventas;
            Rendered {
                subject: format!("Cuenta pendiente de {monto} en la cantina"),
                html: run(
                    "cuenta_pendiente.html",
                    CuentaHtml { padre, cliente, ruc_ci, monto: monto.clone(), ventas, desde, portal_url },
                )?,
                text: run(
                    "cuenta_pendiente.txt",
                    CuentaText { padre, cliente, ruc_ci, monto: monto.clone(), ventas, desde, portal_url },
                )?,
                short: run("cuenta_pendiente.sms", CuentaShort { monto, desde })?,
            }
        }
        MessageData::RecordatorioDeuda { padre, alumno, nro_tarjeta, monto, dias, nivel, fecha } => {
            let monto = monto.to_string();
            let dias = *dias;
            let (titulo, intro, color) = nivel_texts(*nivel, alumno);
            Rendered {
                subject: format!("{titulo} - {alumno}"),
                html: run(
                    "recordatorio_deuda.html",
                    DeudaHtml {
                        padre,
                        alumno,
                        nro_tarjeta,
                        monto: monto.clone(),
                        dias,
                        fecha,
                        titulo,
                        intro: &intro,
                        color,
                        portal_url,
                    },
                )?,
                text: run(
                    "recordatorio_deuda.txt",
                    DeudaText {
                        padre,
                        alumno,
                        nro_tarjeta,
                        monto: monto.clone(),
                        dias,
                        fecha,
                        intro: &intro,
                        portal_url,
                    },
                )?,
                short: run("recordatorio_deuda.sms", DeudaShort { alumno, monto, dias })?,
            }
        }
        MessageData::TarjetaBloqueada { padre, alumno, nro_tarjeta, fecha } => Rendered {
            subject: format!("Tarjeta bloqueada - {alumno}"),
            html: run("tarjeta_bloqueada.html", BloqueoHtml { padre, alumno, nro_tarjeta, fecha, portal_url })?,
            text: run("tarjeta_bloqueada.txt", BloqueoText { padre, alumno, nro_tarjeta, fecha, portal_url })?,
            short: run("tarjeta_bloqueada.sms", BloqueoShort { alumno, nro_tarjeta, fecha })?,
        },
    })
}

/// The short text, cut to the 255 characters of `solicitudes_notificacion.mensaje`.
pub fn summary(data: &MessageData) -> String {
    let short = render(data, "").map(|r| r.short).unwrap_or_else(|e| format!("{}: {e}", data.notification_type()));
    short.chars().take(255).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Guaranies;

    fn recarga(alumno: &str) -> MessageData {
        MessageData::RecargaExitosa {
            padre: "Ana".into(),
            alumno: alumno.into(),
            nro_tarjeta: "0001".into(),
            monto: Guaranies(50_000),
            saldo: Guaranies(62_500),
            fecha: "23/11/2026 19:45".into(),
            referencia: Some("caja 2".into()),
        }
    }

    #[test]
    fn recarga_has_amounts_in_guaranies_and_a_portal_button() {
        let r = render(&recarga("Luis Pérez"), "https://portal.example/").unwrap();
        assert_eq!(r.subject, "Recarga exitosa de Gs. 50.000 - Luis Pérez");
        assert!(r.html.contains("Gs. 50.000") && r.html.contains("Gs. 62.500"));
        assert!(r.html.contains("href=\"https://portal.example/movimientos\""));
        assert!(r.html.contains("Ver Movimientos"));
        assert!(r.text.contains("Saldo actual: Gs. 62.500"));
        assert!(r.text.contains("Referencia: caja 2"));
        assert_eq!(
            r.short,
            "Cantina Tita: recarga de Gs. 50.000 confirmada para Luis Pérez. Saldo actual: Gs. 62.500."
        );
    }

    #[test]
    fn names_from_the_database_are_escaped_in_html_only() {
        let r = render(&recarga("<script>alert(1)</script>"), "https://p").unwrap();
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;"));
        assert!(r.text.contains("<script>alert(1)</script>"));
    }

    #[test]
    fn saldo_bajo_and_bloqueo_render() {
        let d = MessageData::SaldoBajo {
            padre: "Ana".into(),
            alumno: "Luis".into(),
            nro_tarjeta: "0001".into(),
            saldo: Guaranies(3_000),
            umbral: Guaranies(5_000),
            fecha: "f".into(),
        };
        let r = render(&d, "https://p").unwrap();
        assert!(r.html.contains("Realizar Recarga") && r.html.contains("Gs. 3.000"));
        assert!(r.short.chars().count() <= 160, "{}", r.short);
        let d = MessageData::TarjetaBloqueada {
            padre: "Ana".into(),
            alumno: "Luis".into(),
            nro_tarjeta: "0001".into(),
            fecha: "f".into(),
        };
        let r = render(&d, "https://p").unwrap();
        assert!(r.subject.contains("bloqueada"));
        assert!(r.text.contains("0001"));
    }

    #[test]
    fn summary_fits_the_mensaje_column() {
        let long = "x".repeat(400);
        assert!(summary(&recarga(&long)).chars().count() <= 255);
    }
}
