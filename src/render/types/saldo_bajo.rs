//! Saldo bajo: one card or several (the daily sweep, one notice per parent); the short text picks the wording
//! that fits one SMS segment.

use sailfish::TemplateSimple;

use crate::render::layout::{Fila, Layout, ROJO, destacada, email, fila, separados};
use crate::render::sms::{Encoding, sms_encoding, sms_text};
use crate::render::{RenderError, Rendered, run};
use crate::rules::{AvisoSaldoBajo, enumeracion};

/// One card: its student and threshold in the opening sentence. Several: the students, each after its
/// separator ("", ", ", " y "), so the HTML can put each name in bold.
#[derive(TemplateSimple)]
#[template(path = "email/saldo_bajo.html.stpl")]
pub(in crate::render) struct SaldoBajoHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumnos: &'a [(&'static str, &'a str)],
    pub(in crate::render) umbral: &'a str,
    /// A reminder: since when the card is low.
    pub(in crate::render) desde: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "email/saldo_bajo.txt.stpl")]
pub(in crate::render) struct SaldoBajoText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumnos: &'a [(&'static str, &'a str)],
    pub(in crate::render) umbral: &'a str,
    /// A reminder: since when the card is low.
    pub(in crate::render) desde: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "sms/saldo_bajo.stpl")]
pub(in crate::render) struct SaldoBajoShort<'a> {
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) saldo: &'a str,
    /// A reminder: since when (`01/12`).
    pub(in crate::render) desde: Option<&'a str>,
}

/// Several cards: `lista` is "Luis Benítez (Gs. 3.000) y Ana Benítez (Gs. 1.500)", or the names alone.
#[derive(TemplateSimple)]
#[template(path = "sms/saldo_bajo_varias.stpl")]
pub(in crate::render) struct SaldoBajoVariasShort<'a> {
    pub(in crate::render) lista: &'a str,
}

/// Several cards whose names do not fit one SMS.
#[derive(TemplateSimple)]
#[template(path = "sms/saldo_bajo_resumen.stpl")]
pub(in crate::render) struct SaldoBajoResumenShort {
    pub(in crate::render) tarjetas: usize,
}

/// One card: the notice as it always was. Several (the daily sweep, one notice per parent): the students in the
/// opening sentence, and one row per card with its balance in the details.
pub(in crate::render) fn saldo_bajo(
    aviso: &AvisoSaldoBajo,
    portal_url: &str,
    short: String,
) -> Result<Rendered, RenderError> {
    let (padre, fecha) = (aviso.padre.as_str(), aviso.fecha.as_str());
    let tarjetas = aviso.tarjetas();
    let alumnos = separados(tarjetas.iter().map(|t| t.alumno.as_str()));
    let boton_url = format!("{portal_url}/recargas");
    let (boton, accion) = ("Realizar Recarga", "Realizar una recarga en el portal");
    let (l, umbral, subject) = if let [t] = tarjetas {
        let (alumno, nro_tarjeta) = (t.alumno.as_str(), t.nro_tarjeta.as_str());
        let (saldo, umbral) = (t.saldo.to_string(), t.umbral.to_string());
        let l = Layout {
            titulo: "Saldo bajo",
            preheader: format!("La tarjeta de {alumno} tiene {saldo}. Realice una recarga para seguir usándola."),
            tema: ROJO,
            importe: Some(("Saldo actual", saldo.clone())),
            detalles_titulo: "Datos del alumno",
            filas: vec![
                fila("Alumno", alumno),
                fila("Tarjeta", nro_tarjeta),
                destacada("Saldo actual", saldo.clone()),
                fila("Monto de aviso", umbral.clone()),
                fila(
                    if aviso.desde.is_some() { "Saldo bajo desde" } else { "Fecha" },
                    aviso.desde.as_deref().unwrap_or(fecha),
                ),
            ],
            boton,
            accion,
            boton_url,
            portal_url,
            ademas: &aviso.ademas,
        };
        let recordatorio = if aviso.desde.is_some() { "Recordatorio: saldo bajo" } else { "Saldo bajo" };
        (l, umbral, format!("{recordatorio} en la tarjeta de {alumno}: {saldo}"))
    } else {
        let nombres = enumeracion(tarjetas.iter().map(|t| t.alumno.as_str()));
        // One threshold row when the cards share it; otherwise each balance says its own.
        let comun = tarjetas.iter().all(|t| t.umbral == tarjetas[0].umbral);
        let mut filas: Vec<Fila<'_>> = tarjetas
            .iter()
            .map(|t| {
                let valor =
                    if comun { t.saldo.to_string() } else { format!("{} (monto de aviso {})", t.saldo, t.umbral) };
                destacada(format!("{} (tarjeta {})", t.alumno, t.nro_tarjeta), valor)
            })
            .collect();
        if comun {
            filas.push(fila("Monto de aviso", tarjetas[0].umbral.to_string()));
        }
        match &aviso.desde {
            Some(desde) => filas.push(fila("Saldo bajo desde", desde.as_str())),
            None => filas.push(fila("Fecha", fecha)),
        }
        let l = Layout {
            titulo: "Saldo bajo",
            preheader: format!(
                "Las tarjetas de {nombres} tienen saldo bajo. Realice una recarga para seguir usándolas."
            ),
            tema: ROJO,
            // No single figure to highlight: each card's balance is highlighted in its row.
            importe: None,
            detalles_titulo: "Tarjetas con saldo bajo",
            filas,
            boton,
            accion,
            boton_url,
            portal_url,
            ademas: &aviso.ademas,
        };
        let recordatorio = if aviso.desde.is_some() { "Recordatorio: saldo bajo" } else { "Saldo bajo" };
        (l, String::new(), format!("{recordatorio} en las tarjetas de {nombres}"))
    };
    let (html, text) = email(
        "saldo_bajo",
        SaldoBajoHtml { l: &l, padre, alumnos: &alumnos, umbral: &umbral, desde: aviso.desde.as_deref() },
        SaldoBajoText { l: &l, padre, alumnos: &alumnos, umbral: &umbral, desde: aviso.desde.as_deref() },
    )?;
    Ok(Rendered { subject, html, text, short })
}

/// One card: today's wording. Several: the students with their balances when that fits one SMS segment once
/// transliterated, else the students alone, else how many cards (the details are in the email and the portal).
pub(in crate::render) fn saldo_bajo_short(aviso: &AvisoSaldoBajo) -> Result<String, RenderError> {
    let tarjetas = aviso.tarjetas();
    if let [t] = tarjetas {
        let desde = aviso.desde.as_deref().map(crate::render::layout::dia_mes);
        return run("saldo_bajo.sms", SaldoBajoShort { alumno: &t.alumno, saldo: &t.saldo.to_string(), desde });
    }
    let one_segment = |text: &str| sms_encoding(&sms_text(text)) == (Encoding::Gsm7, 1);
    let con_saldos = enumeracion(tarjetas.iter().map(|t| format!("{} ({})", t.alumno, t.saldo)));
    let nombres = enumeracion(tarjetas.iter().map(|t| t.alumno.as_str()));
    for lista in [con_saldos, nombres] {
        let text = run("saldo_bajo.sms", SaldoBajoVariasShort { lista: &lista })?;
        if one_segment(&text) {
            return Ok(text);
        }
    }
    run("saldo_bajo.sms", SaldoBajoResumenShort { tarjetas: tarjetas.len() })
}
