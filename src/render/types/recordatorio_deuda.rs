//! Recordatorio de deuda: the templates of a negative-balance reminder and the wording of its three levels.

use sailfish::TemplateSimple;

use crate::render::layout::{AMARILLO, AZUL, Layout, ROJO_OSCURO, Tema, dia_mes, email, fila};
use crate::render::{RenderError, Rendered, run};
use crate::rules::{Ademas, AvisoDeuda, NivelRecordatorio, enumeracion};

#[derive(TemplateSimple)]
#[template(path = "email/recordatorio_deuda.html.stpl")]
pub(in crate::render) struct DeudaHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) intro: &'a str,
    pub(in crate::render) aviso: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "email/recordatorio_deuda.txt.stpl")]
pub(in crate::render) struct DeudaText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) intro: &'a str,
    pub(in crate::render) aviso: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "sms/recordatorio_deuda.stpl")]
pub(in crate::render) struct DeudaShort<'a> {
    pub(in crate::render) prefijo: &'a str,
    /// "la tarjeta de Luis tiene" / "las tarjetas de Luis y Sofía tienen".
    pub(in crate::render) sujeto: &'a str,
    pub(in crate::render) monto: &'a str,
    pub(in crate::render) desde: &'a str,
    pub(in crate::render) cierre: &'a str,
}

/// The wording and colours of one reminder level: friendly (3 days), urgent (7), critical (15).
pub(in crate::render) struct Nivel {
    pub(in crate::render) titulo: &'static str,
    pub(in crate::render) intro: String,
    pub(in crate::render) aviso: Option<&'static str>,
    pub(in crate::render) tema: Tema,
    /// Short text: after "Cantina Tita" and at the end (GSM-7 characters only).
    pub(in crate::render) prefijo: &'static str,
    pub(in crate::render) cierre: &'static str,
}

/// `nivel`'s wording for the cards of one reminder: "la tarjeta de Luis" or "las tarjetas de Luis y Sofía".
pub(in crate::render) fn nivel(nivel: NivelRecordatorio, alumnos: &str, varias: bool, dias: i32) -> Nivel {
    let (sujeto, quedo, sigue, lleva, regularizar) = if varias {
        (format!("las tarjetas de {alumnos}"), "quedaron", "siguen", "llevan", "regularizarlas")
    } else {
        (format!("la tarjeta de {alumnos}"), "quedó", "sigue", "lleva", "regularizarla")
    };
    match nivel {
        NivelRecordatorio::Amistoso => Nivel {
            titulo: "Recordatorio de saldo pendiente",
            intro: format!(
                "Le recordamos que {sujeto} {quedo} con saldo negativo. Cuando pueda, realice una recarga para {regularizar}."
            ),
            aviso: None,
            tema: AZUL,
            prefijo: "",
            cierre: "Cuando pueda, realice una recarga.",
        },
        NivelRecordatorio::Urgente => Nivel {
            titulo: "Saldo pendiente: recordatorio urgente",
            intro: match varias {
                // The cards went negative on different days: the count is the oldest's (each date is listed).
                true => format!(
                    "{} {sigue} con saldo negativo, la primera desde hace {dias} días. Le pedimos {regularizar} a la brevedad con una recarga.",
                    capitalizada(&sujeto)
                ),
                false => format!(
                    "{} {sigue} con saldo negativo después de {dias} días. Le pedimos {regularizar} a la brevedad con una recarga.",
                    capitalizada(&sujeto)
                ),
            },
            aviso: None,
            tema: AMARILLO,
            prefijo: ", importante",
            cierre: "Por favor, regularice a la brevedad.",
        },
        NivelRecordatorio::Critico => Nivel {
            titulo: "Saldo pendiente: aviso final",
            intro: match varias {
                true => format!(
                    "{} {sigue} con saldo negativo, la primera desde hace {dias} días. Le pedimos {regularizar} hoy mismo con una recarga.",
                    capitalizada(&sujeto)
                ),
                false => format!(
                    "{} {lleva} {dias} días con saldo negativo. Le pedimos {regularizar} hoy mismo con una recarga.",
                    capitalizada(&sujeto)
                ),
            },
            aviso: Some("si el saldo no se regulariza, podrá restringirse el uso de la tarjeta en la cantina."),
            tema: ROJO_OSCURO,
            prefijo: ", aviso final",
            cierre: "Recargue hoy para evitar restricciones.",
        },
    }
}

fn capitalizada(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The email of a debt reminder: the total as the amount, then each card with its debt and the date it went
/// negative (one card keeps the details of a single-card reminder).
pub(in crate::render) fn deuda(
    aviso: &AvisoDeuda,
    ademas: &[Ademas],
    portal_url: &str,
    short: String,
) -> Result<Rendered, RenderError> {
    let AvisoDeuda { padre, tarjetas, dias, nivel: n, .. } = aviso;
    let alumnos = enumeracion(tarjetas.iter().map(|t| t.alumno.as_str()));
    let varias = tarjetas.len() > 1;
    let n = nivel(*n, &alumnos, varias, *dias);
    let monto = aviso.total().to_string();
    let mut filas = Vec::new();
    if let [t] = tarjetas.as_slice() {
        filas.push(fila("Alumno", t.alumno.as_str()));
        filas.push(fila("Tarjeta", t.nro_tarjeta.as_str()));
        filas.push(fila("Saldo negativo desde", t.desde.as_str()));
    } else {
        for t in tarjetas {
            filas.push(fila(
                format!("{} (tarjeta {})", t.alumno, t.nro_tarjeta),
                format!("{}, desde el {}", t.monto, t.desde),
            ));
        }
    }
    filas.push(fila("Días con saldo negativo", dias.to_string()));
    let l = Layout {
        titulo: n.titulo,
        preheader: format!("{} saldo negativo de {monto}.", capitalizada(&sujeto_tiene(&alumnos, varias))),
        tema: n.tema,
        importe: Some((if varias { "Monto adeudado en total" } else { "Monto adeudado" }, monto.clone())),
        detalles_titulo: "Detalles",
        filas,
        boton: "Realizar Recarga",
        accion: "Realizar una recarga en el portal",
        boton_url: format!("{portal_url}/recargas"),
        portal_url,
        ademas,
    };
    let (intro, aviso_final) = (n.intro.as_str(), n.aviso);
    let (html, text) = email(
        "recordatorio_deuda",
        DeudaHtml { l: &l, padre, intro, aviso: aviso_final },
        DeudaText { l: &l, padre, intro, aviso: aviso_final },
    )?;
    Ok(Rendered { subject: format!("{} - {alumnos}", n.titulo), html, text, short })
}

/// "la tarjeta de Luis tiene" / "las tarjetas de Luis y Sofía tienen".
fn sujeto_tiene(alumnos: &str, varias: bool) -> String {
    if varias { format!("las tarjetas de {alumnos} tienen") } else { format!("la tarjeta de {alumnos} tiene") }
}

/// The short text: the total and the oldest date (the cards come oldest first); several cards are counted, not
/// named, to stay within one SMS segment.
pub(in crate::render) fn deuda_short(aviso: &AvisoDeuda) -> Result<String, RenderError> {
    let alumnos = enumeracion(aviso.tarjetas.iter().map(|t| t.alumno.as_str()));
    let varias = aviso.tarjetas.len() > 1;
    let n = nivel(aviso.nivel, &alumnos, varias, aviso.dias);
    let total = aviso.total().to_string();
    let (sujeto, monto) = if varias {
        (format!("{} tarjetas de sus hijos tienen", aviso.tarjetas.len()), format!("{total} en total"))
    } else {
        (sujeto_tiene(&alumnos, false), total)
    };
    let desde = aviso.tarjetas.first().map_or("", |t| dia_mes(&t.desde));
    run(
        "recordatorio_deuda.sms",
        DeudaShort { prefijo: n.prefijo, sujeto: &sujeto, monto: &monto, desde, cierre: n.cierre },
    )
}
