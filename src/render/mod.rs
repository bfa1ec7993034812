//! Rendering a request's stored data into what a channel sends: subject, HTML and plain-text bodies, and the
//! short text for SMS, WhatsApp and the `mensaje` column. `<%= %>` escapes HTML, so a name like `<script>`
//! renders as text; plain-text templates use `<%- %>`.
//!
//! # Email layout
//!
//! Every email shares one layout (`templates/email/_arriba.html.stpl`, `_importe`, `_detalles`, `_abajo`), included
//! by the template of each kind: nested tables, all CSS inline, a 600 px container that shrinks to the screen
//! (`width="100%"` + `max-width`, a fixed-width ghost table for Outlook), icons as plain Unicode symbols (no images),
//! a "bulletproof" button (a coloured table cell around the link, with the `mso-text-raise` padding for Outlook),
//! a hidden preheader and a footer with the cantina's contact line. The kind decides the colours (`layout::Tema`), the
//! highlighted amount, the rows of its details table and the button; see `docs/email-screenshots/` for how they look.
//!
//! # Short texts and GSM-7
//!
//! The short text (`Rendered::short`) is written in correct Spanish: it is also what staff read in
//! `solicitudes_notificacion.mensaje` and what WhatsApp shows, where accents cost nothing. Its fixed wording uses only
//! characters of the GSM 03.38 basic table, so with names such as "Juan Pérez Ibañez" (é and ñ are GSM-7) a text of
//! ≤ 160 characters is one SMS segment. Names with á, í, ó, ú (not in GSM-7) or a `₲` would make the whole SMS
//! UCS-2 (70 characters a segment: two or three segments for the same text). **Decision:** SMS adapters send
//! [`sms_text`]`(short)`, which transliterates those characters to their GSM-7 base letters ("Benítez" → "Benitez",
//! `₲` → "Gs."), as Paraguayan carriers and most senders do; characters with no sensible GSM-7 form are kept (the
//! text then falls to UCS-2 rather than losing information). [`sms_encoding`] tells which encoding and how many
//! segments a text needs.

mod layout;
mod sms;
mod types;

use sailfish::TemplateSimple;

pub use self::sms::{Encoding, sms_encoding, sms_text};
use crate::rules::MessageData;
use layout::{AMARILLO, AZUL, GRIS, Layout, VERDE, destacada, dia, dia_mes, email, fila};
use types::consumos::{ConsumoHtml, ConsumoShort, ConsumoText, ResumenHtml, ResumenShort, ResumenText, detalle_corto};
use types::cuenta_pendiente::{CuentaHtml, CuentaShort, CuentaText};
use types::mensaje_cantina::{MensajeHtml, MensajeShort, MensajeText, lineas};
use types::recarga_exitosa::{RecargaHtml, RecargaShort, RecargaText};
use types::recordatorio_deuda::{deuda, deuda_short};
use types::saldo_bajo::{saldo_bajo, saldo_bajo_short};
use types::tarjeta_bloqueada::{BloqueoHtml, BloqueoShort, BloqueoText};
use types::tarjeta_vencimiento::{
    PorVencerHtml, PorVencerShort, PorVencerText, VencidaHtml, VencidaShort, VencidaText,
};

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

fn run<T: TemplateSimple>(template: &'static str, t: T) -> Result<String, RenderError> {
    t.render_once().map_err(|source| RenderError { template, source })
}

pub fn render(data: &MessageData, portal_url: &str) -> Result<Rendered, RenderError> {
    let mut rendered = render_notice(data, portal_url)?;
    // A family's daily message: the subject says there is more than its main notice, which a parent reading only
    // the subject would otherwise miss.
    match data.ademas().len() {
        0 => {}
        1 => rendered.subject.push_str(" (y 1 aviso más)"),
        n => rendered.subject.push_str(&format!(" (y {n} avisos más)")),
    }
    Ok(rendered)
}

fn render_notice(data: &MessageData, portal_url: &str) -> Result<Rendered, RenderError> {
    let portal_url = portal_url.trim_end_matches('/');
    Ok(match data {
        MessageData::RecargaExitosa { padre, alumno, nro_tarjeta, monto, saldo, fecha, referencia } => {
            let (monto, saldo) = (monto.to_string(), saldo.to_string());
            let mut filas = vec![fila("Alumno", alumno), fila("Tarjeta", nro_tarjeta), fila("Fecha y hora", fecha)];
            if let Some(r) = referencia.as_deref().filter(|r| !r.trim().is_empty()) {
                filas.push(fila("Referencia", r));
            }
            filas.push(destacada("Nuevo saldo", saldo.as_str()));
            let l = Layout {
                titulo: "Recarga exitosa",
                preheader: format!("Se acreditaron {monto} en la tarjeta de {alumno}. Nuevo saldo: {saldo}."),
                tema: VERDE,
                importe: Some(("Monto cargado", monto.clone())),
                detalles_titulo: "Detalles de la transacción",
                filas,
                boton: "Ver Movimientos",
                accion: "Ver los movimientos en el portal",
                boton_url: format!("{portal_url}/movimientos"),
                portal_url,
                ademas: data.ademas(),
            };
            let (html, text) =
                email("recarga_exitosa", RecargaHtml { l: &l, padre, alumno }, RecargaText { l: &l, padre, alumno })?;
            Rendered { subject: format!("Recarga exitosa de {monto} - {alumno}"), html, text, short: short_text(data)? }
        }
        MessageData::SaldoBajo(aviso) => saldo_bajo(aviso, portal_url, short_text(data)?)?,
        MessageData::CuentaPendiente { padre, cliente, ruc_ci, monto, ventas, desde } => {
            let monto = monto.to_string();
            let l = Layout {
                titulo: "Cuenta pendiente",
                preheader: format!("Su cuenta en la cantina tiene {monto} pendiente de pago desde el {desde}."),
                tema: AMARILLO,
                importe: Some(("Monto adeudado", monto.clone())),
                detalles_titulo: "Datos del cliente",
                filas: vec![
                    fila("Cliente", cliente),
                    fila("RUC / CI", ruc_ci),
                    fila("Compras pendientes", ventas.to_string()),
                    fila("Pendiente desde", desde),
                ],
                boton: "Ver mi cuenta",
                accion: "Ver el detalle de la cuenta en el portal",
                boton_url: format!("{portal_url}/cuenta"),
                portal_url,
                ademas: data.ademas(),
            };
            let (html, text) =
                email("cuenta_pendiente", CuentaHtml { l: &l, padre, desde }, CuentaText { l: &l, padre, desde })?;
            Rendered {
                subject: format!("Cuenta pendiente de {monto} en la cantina"),
                html,
                text,
                short: short_text(data)?,
            }
        }
        MessageData::RecordatorioDeuda(aviso) => deuda(aviso, data.ademas(), portal_url, short_text(data)?)?,
        MessageData::TarjetaPorVencer { padre, alumno, nro_tarjeta, vence, dias, ademas } => {
            let l = Layout {
                titulo: "Tarjeta por vencer",
                preheader: format!("La tarjeta {nro_tarjeta} de {alumno} vence el {vence}. Renuévela en la cantina."),
                tema: AMARILLO,
                importe: None,
                detalles_titulo: "Datos de la tarjeta",
                filas: vec![
                    fila("Alumno", alumno),
                    fila("Tarjeta", nro_tarjeta),
                    destacada("Vence el", vence.as_str()),
                    fila("Días restantes", dias.to_string()),
                ],
                boton: "Ir al portal",
                accion: "Portal de padres",
                boton_url: portal_url.to_string(),
                portal_url,
                ademas,
            };
            let (html, text) = email(
                "tarjeta_por_vencer",
                PorVencerHtml { l: &l, padre, alumno, vence },
                PorVencerText { l: &l, padre, alumno, vence },
            )?;
            Rendered { subject: format!("Tarjeta por vencer - {alumno}"), html, text, short: short_text(data)? }
        }
        MessageData::TarjetaVencida { padre, alumno, nro_tarjeta, vencio, ademas } => {
            let l = Layout {
                titulo: "Tarjeta vencida",
                preheader: format!("La tarjeta {nro_tarjeta} de {alumno} venció el {vencio}. Renuévela en la cantina."),
                tema: GRIS,
                importe: None,
                detalles_titulo: "Datos de la tarjeta",
                filas: vec![
                    fila("Alumno", alumno),
                    fila("Tarjeta", nro_tarjeta),
                    destacada("Estado", "Vencida"),
                    fila("Venció el", vencio.as_str()),
                ],
                boton: "Ir al portal",
                accion: "Portal de padres",
                boton_url: portal_url.to_string(),
                portal_url,
                ademas,
            };
            let (html, text) = email(
                "tarjeta_vencida",
                VencidaHtml { l: &l, padre, alumno, vencio },
                VencidaText { l: &l, padre, alumno, vencio },
            )?;
            Rendered { subject: format!("Tarjeta vencida - {alumno}"), html, text, short: short_text(data)? }
        }
        MessageData::TarjetaBloqueada { padre, alumno, nro_tarjeta, fecha } => {
            let l = Layout {
                titulo: "Tarjeta bloqueada",
                preheader: format!("La tarjeta {nro_tarjeta} de {alumno} fue bloqueada el {fecha}."),
                tema: GRIS,
                importe: None,
                detalles_titulo: "Datos de la tarjeta",
                filas: vec![
                    fila("Alumno", alumno),
                    fila("Tarjeta", nro_tarjeta),
                    destacada("Estado", "Bloqueada"),
                    fila("Fecha del bloqueo", fecha),
                ],
                boton: "Ir al portal",
                accion: "Portal de padres",
                boton_url: portal_url.to_string(),
                portal_url,
                ademas: data.ademas(),
            };
            let (html, text) =
                email("tarjeta_bloqueada", BloqueoHtml { l: &l, padre, alumno }, BloqueoText { l: &l, padre, alumno })?;
            Rendered { subject: format!("Tarjeta bloqueada - {alumno}"), html, text, short: short_text(data)? }
        }
        MessageData::MensajeCantina { padre, alumno, mensaje, fecha } => {
            let mensaje = mensaje.trim();
            let mut filas = Vec::new();
            if let Some(a) = alumno {
                filas.push(fila("Alumno", a.as_str()));
            }
            filas.push(fila("Fecha y hora", fecha.as_str()));
            let l = Layout {
                titulo: "Mensaje de la cantina",
                preheader: mensaje.split_whitespace().collect::<Vec<_>>().join(" "),
                tema: AZUL,
                importe: None,
                detalles_titulo: "Detalles",
                filas,
                boton: "Ir al portal",
                accion: "Portal de padres",
                boton_url: portal_url.to_string(),
                portal_url,
                ademas: data.ademas(),
            };
            let lineas = lineas(mensaje);
            let (html, text) = email(
                "mensaje_cantina",
                MensajeHtml { l: &l, padre, lineas: &lineas },
                MensajeText { l: &l, padre, mensaje },
            )?;
            let subject = match alumno {
                Some(a) => format!("Mensaje de la cantina - {a}"),
                None => "Mensaje de la cantina".to_string(),
            };
            Rendered { subject, html, text, short: short_text(data)? }
        }
        MessageData::ConsumoRealizado { padre, alumno, nro_tarjeta, detalle, monto, saldo, fecha } => {
            let (monto, saldo) = (monto.to_string(), saldo.saldo());
            let detalle = detalle.trim();
            let l = Layout {
                titulo: "Consumo realizado",
                preheader: format!("Compra de {alumno}: {} por {monto}. Saldo: {saldo}.", detalle_corto(detalle)),
                tema: AZUL,
                importe: Some(("Monto", monto.clone())),
                detalles_titulo: "Detalles de la compra",
                filas: vec![
                    fila("Alumno", alumno),
                    fila("Tarjeta", nro_tarjeta),
                    fila("Detalle", detalle),
                    fila("Fecha y hora", fecha),
                    destacada("Saldo de la tarjeta", saldo.as_str()),
                ],
                boton: "Ver Movimientos",
                accion: "Ver los movimientos en el portal",
                boton_url: format!("{portal_url}/movimientos"),
                portal_url,
                ademas: &[],
            };
            let (html, text) =
                email("consumo_realizado", ConsumoHtml { l: &l, padre, alumno }, ConsumoText { l: &l, padre, alumno })?;
            Rendered { subject: format!("Consumo de {monto} - {alumno}"), html, text, short: short_text(data)? }
        }
        MessageData::ResumenConsumos(r) => {
            let total = r.total().to_string();
            let mut filas = Vec::new();
            for h in &r.hijos {
                for c in &h.consumos {
                    filas.push(fila(
                        format!("{} · {}", h.alumno, c.hora),
                        format!("{} · {}", c.detalle.trim(), c.monto),
                    ));
                }
                filas.push(destacada(format!("Saldo de {}", h.alumno), h.saldo.saldo()));
            }
            let compras = match r.compras() {
                1 => "1 compra".to_string(),
                n => format!("{n} compras"),
            };
            let l = Layout {
                titulo: "Resumen de consumos",
                preheader: format!("Consumos del {}: {compras}, {total} en total.", r.fecha),
                tema: AZUL,
                importe: Some(("Total del día", total.clone())),
                detalles_titulo: "Consumos del día",
                filas,
                boton: "Ver Movimientos",
                accion: "Ver los movimientos en el portal",
                boton_url: format!("{portal_url}/movimientos"),
                portal_url,
                ademas: &[],
            };
            let (padre, fecha) = (r.padre.as_str(), r.fecha.as_str());
            let (html, text) =
                email("resumen_consumos", ResumenHtml { l: &l, padre, fecha }, ResumenText { l: &l, padre, fecha })?;
            Rendered { subject: format!("Consumos del {fecha} en la cantina"), html, text, short: short_text(data)? }
        }
    })
}

/// The short text (SMS, WhatsApp fallback, portal, `mensaje`) of a notice; a family's daily message adds its
/// other items briefly ("También: …"; GSM-7 wording).
fn short_text(data: &MessageData) -> Result<String, RenderError> {
    let main = main_short_text(data)?;
    let ademas = data.ademas();
    if ademas.is_empty() {
        return Ok(main);
    }
    Ok(format!("{main} También: {}.", ademas.iter().map(|a| a.breve.as_str()).collect::<Vec<_>>().join("; ")))
}

fn main_short_text(data: &MessageData) -> Result<String, RenderError> {
    match data {
        MessageData::RecargaExitosa { alumno, monto, saldo, .. } => {
            run("recarga_exitosa.sms", RecargaShort { alumno, monto: &monto.to_string(), saldo: &saldo.to_string() })
        }
        MessageData::SaldoBajo(aviso) => saldo_bajo_short(aviso),
        MessageData::CuentaPendiente { monto, desde, .. } => {
            run("cuenta_pendiente.sms", CuentaShort { monto: &monto.to_string(), desde: dia(desde) })
        }
        MessageData::RecordatorioDeuda(aviso) => deuda_short(aviso),
        MessageData::TarjetaPorVencer { alumno, nro_tarjeta, vence, .. } => {
            run("tarjeta_por_vencer.sms", PorVencerShort { alumno, nro_tarjeta, vence })
        }
        MessageData::TarjetaVencida { alumno, nro_tarjeta, vencio, .. } => {
            run("tarjeta_vencida.sms", VencidaShort { alumno, nro_tarjeta, vencio })
        }
        MessageData::TarjetaBloqueada { alumno, nro_tarjeta, fecha, .. } => {
            run("tarjeta_bloqueada.sms", BloqueoShort { alumno, nro_tarjeta, fecha })
        }
        // The staff's text as they wrote it: at most 255 characters (the `mensaje` column), so at most 2 GSM-7
        // segments once `sms_text` transliterates it (4 if it keeps an emoji and travels as UCS-2).
        MessageData::MensajeCantina { mensaje, .. } => {
            run("mensaje_cantina.sms", MensajeShort { mensaje: mensaje.trim() })
        }
        MessageData::ConsumoRealizado { alumno, detalle, monto, saldo, fecha, .. } => run(
            "consumo_realizado.sms",
            ConsumoShort {
                alumno,
                detalle: &detalle_corto(detalle),
                monto: &monto.to_string(),
                cuando: &format!("{} {}", dia_mes(fecha), fecha.split_whitespace().nth(1).unwrap_or_default()),
                saldo: &saldo.to_string(),
            },
        ),
        MessageData::ResumenConsumos(r) => {
            let hijos: Vec<String> = r
                .hijos
                .iter()
                .map(|h| {
                    let compras = match h.consumos.len() {
                        1 => "1 compra".to_string(),
                        n => format!("{n} compras"),
                    };
                    format!("{} {} ({compras}, saldo: {})", h.alumno, h.total(), h.saldo.saldo())
                })
                .collect();
            run("resumen_consumos.sms", ResumenShort { dia: dia_mes(&r.fecha), hijos: &hijos })
        }
    }
}

pub fn summary(data: &MessageData) -> String {
    // Only the short template: this runs for every request the rules create.
    let short = short_text(data).unwrap_or_else(|e| format!("{}: {e}", data.notification_type()));
    short.chars().take(255).collect()
}

#[cfg(test)]
mod tests;
