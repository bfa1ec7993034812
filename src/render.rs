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
//! a hidden preheader and a footer with the cantina's contact line. The kind decides the colours ([`Tema`]), the
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

use std::borrow::Cow;

use sailfish::TemplateSimple;

use crate::rules::{AvisoSaldoBajo, MessageData, NivelRecordatorio, enumeracion};

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

/// Colours and icon of one kind of notice. Every colour pair keeps a WCAG contrast of at least 4.5:1
/// (white on `cabecera`/`boton`, or dark text on the yellow header; `acento` on white and on `tinte`).
#[derive(Debug, Clone, Copy)]
struct Tema {
    /// An HTML entity (trusted, not escaped); `&#65038;` asks for the text, not the emoji, form.
    icono: &'static str,
    icono_color: &'static str,
    cabecera: &'static str,
    texto_cabecera: &'static str,
    /// The highlighted amount and rows.
    acento: &'static str,
    /// Background and border of the amount box and notes.
    tinte: &'static str,
    borde: &'static str,
    boton: &'static str,
}

const VERDE: Tema = Tema {
    icono: "&#10004;&#65038;",
    icono_color: "#1e7e34",
    cabecera: "#1e7e34",
    texto_cabecera: "#ffffff",
    acento: "#1e7e34",
    tinte: "#e9f7ef",
    borde: "#bfe5cc",
    boton: "#1e7e34",
};

const ROJO: Tema = Tema {
    icono: "&#9888;&#65038;",
    icono_color: "#c82333",
    cabecera: "#c82333",
    texto_cabecera: "#ffffff",
    acento: "#c82333",
    tinte: "#fdecee",
    borde: "#f5c2c7",
    boton: "#c82333",
};

const AMARILLO: Tema = Tema {
    icono: "!",
    icono_color: "#b54d00",
    cabecera: "#f5a300",
    texto_cabecera: "#212529",
    acento: "#b54d00",
    tinte: "#fff4e0",
    borde: "#ffd89a",
    boton: "#b54d00",
};

const AZUL: Tema = Tema {
    icono: "i",
    icono_color: "#0b6fa4",
    cabecera: "#0b6fa4",
    texto_cabecera: "#ffffff",
    acento: "#0b6fa4",
    tinte: "#e7f3fa",
    borde: "#b9dcef",
    boton: "#0b6fa4",
};

const ROJO_OSCURO: Tema = Tema {
    icono: "&#9888;&#65038;",
    icono_color: "#b02a37",
    cabecera: "#b02a37",
    texto_cabecera: "#ffffff",
    acento: "#b02a37",
    tinte: "#fdecee",
    borde: "#f5c2c7",
    boton: "#b02a37",
};

const GRIS: Tema = Tema {
    icono: "&#8856;",
    icono_color: "#495057",
    cabecera: "#495057",
    texto_cabecera: "#ffffff",
    acento: "#343a40",
    tinte: "#f1f3f5",
    borde: "#dee2e6",
    boton: "#495057",
};

/// One row of the details table (and of the plain-text list).
struct Fila<'a> {
    etiqueta: Cow<'a, str>,
    valor: Cow<'a, str>,
    destacado: bool,
}

fn fila<'a>(etiqueta: impl Into<Cow<'a, str>>, valor: impl Into<Cow<'a, str>>) -> Fila<'a> {
    Fila { etiqueta: etiqueta.into(), valor: valor.into(), destacado: false }
}

fn destacada<'a>(etiqueta: impl Into<Cow<'a, str>>, valor: impl Into<Cow<'a, str>>) -> Fila<'a> {
    Fila { etiqueta: etiqueta.into(), valor: valor.into(), destacado: true }
}

/// What the shared layout (header, amount, details, button, footer) shows; the templates read it as `l`.
struct Layout<'a> {
    titulo: &'a str,
    /// The hidden line mail apps show after the subject in the inbox.
    preheader: String,
    tema: Tema,
    /// The big highlighted figure: label and value.
    importe: Option<(&'static str, String)>,
    detalles_titulo: &'static str,
    filas: Vec<Fila<'a>>,
    /// The button's label (HTML) and the same action as a sentence (plain text).
    boton: &'static str,
    accion: &'static str,
    boton_url: String,
    portal_url: &'a str,
}

// One struct per template (sailfish binds a template to one struct); the HTML and text of a kind share the layout.
#[derive(TemplateSimple)]
#[template(path = "email/recarga_exitosa.html.stpl")]
struct RecargaHtml<'a> {
    l: &'a Layout<'a>,
    padre: &'a str,
    alumno: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/recarga_exitosa.txt.stpl")]
struct RecargaText<'a> {
    l: &'a Layout<'a>,
    padre: &'a str,
    alumno: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/recarga_exitosa.stpl")]
struct RecargaShort<'a> {
    alumno: &'a str,
    monto: &'a str,
    saldo: &'a str,
}

/// One card: its student and threshold in the opening sentence. Several: the students, each after its
/// separator ("", ", ", " y "), so the HTML can put each name in bold.
#[derive(TemplateSimple)]
#[template(path = "email/saldo_bajo.html.stpl")]
struct SaldoBajoHtml<'a> {
    l: &'a Layout<'a>,
    padre: &'a str,
    alumnos: &'a [(&'static str, &'a str)],
    umbral: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/saldo_bajo.txt.stpl")]
struct SaldoBajoText<'a> {
    l: &'a Layout<'a>,
    padre: &'a str,
    alumnos: &'a [(&'static str, &'a str)],
    umbral: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/saldo_bajo.stpl")]
struct SaldoBajoShort<'a> {
    alumno: &'a str,
    saldo: &'a str,
}

/// Several cards: `lista` is "Luis Benítez (Gs. 3.000) y Ana Benítez (Gs. 1.500)", or the names alone.
#[derive(TemplateSimple)]
#[template(path = "sms/saldo_bajo_varias.stpl")]
struct SaldoBajoVariasShort<'a> {
    lista: &'a str,
}

/// Several cards whose names do not fit one SMS.
#[derive(TemplateSimple)]
#[template(path = "sms/saldo_bajo_resumen.stpl")]
struct SaldoBajoResumenShort {
    tarjetas: usize,
}

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_bloqueada.html.stpl")]
struct BloqueoHtml<'a> {
    l: &'a Layout<'a>,
    padre: &'a str,
    alumno: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_bloqueada.txt.stpl")]
struct BloqueoText<'a> {
    l: &'a Layout<'a>,
    padre: &'a str,
    alumno: &'a str,
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
    l: &'a Layout<'a>,
    padre: &'a str,
    desde: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/cuenta_pendiente.txt.stpl")]
struct CuentaText<'a> {
    l: &'a Layout<'a>,
    padre: &'a str,
    desde: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/cuenta_pendiente.stpl")]
struct CuentaShort<'a> {
    monto: &'a str,
    desde: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/recordatorio_deuda.html.stpl")]
struct DeudaHtml<'a> {
    l: &'a Layout<'a>,
    padre: &'a str,
    intro: &'a str,
    aviso: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "email/recordatorio_deuda.txt.stpl")]
struct DeudaText<'a> {
    l: &'a Layout<'a>,
    padre: &'a str,
    intro: &'a str,
    aviso: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "sms/recordatorio_deuda.stpl")]
struct DeudaShort<'a> {
    prefijo: &'a str,
    alumno: &'a str,
    monto: &'a str,
    desde: &'a str,
    cierre: &'a str,
}

/// The wording and colours of one reminder level: friendly (3 days), urgent (7), critical (15).
struct Nivel {
    titulo: &'static str,
    intro: String,
    aviso: Option<&'static str>,
    tema: Tema,
    /// Short text: after "Cantina Tita" and at the end (GSM-7 characters only).
    prefijo: &'static str,
    cierre: &'static str,
}

fn nivel(nivel: NivelRecordatorio, alumno: &str, dias: i32) -> Nivel {
    match nivel {
        NivelRecordatorio::Amistoso => Nivel {
            titulo: "Recordatorio de saldo pendiente",
            intro: format!(
                "Le recordamos que la tarjeta de {alumno} quedó con saldo negativo. Cuando pueda, realice una recarga para regularizarla."
            ),
            aviso: None,
            tema: AZUL,
            prefijo: "",
            cierre: "Cuando pueda, realice una recarga.",
        },
        NivelRecordatorio::Urgente => Nivel {
            titulo: "Saldo pendiente: recordatorio urgente",
            intro: format!(
                "La tarjeta de {alumno} sigue con saldo negativo después de {dias} días. Le pedimos regularizarla a la brevedad con una recarga."
            ),
            aviso: None,
            tema: AMARILLO,
            prefijo: ", URGENTE",
            cierre: "Por favor, regularice a la brevedad.",
        },
        NivelRecordatorio::Critico => Nivel {
            titulo: "Saldo pendiente: aviso final",
            intro: format!(
                "La tarjeta de {alumno} lleva {dias} días con saldo negativo. Le pedimos regularizarla hoy mismo con una recarga."
            ),
            aviso: Some("si el saldo no se regulariza, podrá restringirse el uso de la tarjeta en la cantina."),
            tema: ROJO_OSCURO,
            prefijo: ", AVISO FINAL",
            cierre: "Recargue hoy para evitar restricciones.",
        },
    }
}

/// The date part of `23/11/2026 19:45`.
fn dia(fecha: &str) -> &str {
    fecha.split_whitespace().next().unwrap_or(fecha)
}

/// `23/11` from `23/11/2026 19:45`: enough for a reminder about the last two weeks, and short for an SMS.
fn dia_mes(fecha: &str) -> &str {
    let d = dia(fecha);
    let b = d.as_bytes();
    if b.len() == 10 && b[2] == b'/' && b[5] == b'/' { &d[..5] } else { d }
}

fn run<T: TemplateSimple>(template: &'static str, t: T) -> Result<String, RenderError> {
    t.render_once().map_err(|source| RenderError { template, source })
}

/// Plain text as it should travel: no trailing spaces, at most one blank line in a row, one final newline
/// (the templates' `<% %>` lines leave blank lines behind).
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() && blank > 0 {
            out.push('\n');
        }
        blank = 0;
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn email<H: TemplateSimple, T: TemplateSimple>(
    name: &'static str,
    html: H,
    text: T,
) -> Result<(String, String), RenderError> {
    Ok((run(name, html)?, tidy(&run(name, text)?)))
}

/// The separators that put a list of names together in Spanish: "", ", ", …, " y ".
fn separados<'a>(items: impl ExactSizeIterator<Item = &'a str>) -> Vec<(&'static str, &'a str)> {
    let n = items.len();
    items
        .enumerate()
        .map(|(i, item)| {
            (
                if i == 0 {
                    ""
                } else if i + 1 == n {
                    " y "
                } else {
                    ", "
                },
                item,
            )
        })
        .collect()
}

/// One card: the notice as it always was. Several (the daily sweep, one notice per parent): the students in the
/// opening sentence, and one row per card with its balance in the details.
fn saldo_bajo(aviso: &AvisoSaldoBajo, portal_url: &str, short: String) -> Result<Rendered, RenderError> {
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
                fila("Aviso por debajo de", umbral.clone()),
                fila("Fecha", fecha),
            ],
            boton,
            accion,
            boton_url,
            portal_url,
        };
        (l, umbral, format!("Saldo bajo en la tarjeta de {alumno}: {saldo}"))
    } else {
        let nombres = enumeracion(tarjetas.iter().map(|t| t.alumno.as_str()));
        // One threshold row when the cards share it; otherwise each balance says its own.
        let comun = tarjetas.iter().all(|t| t.umbral == tarjetas[0].umbral);
        let mut filas: Vec<Fila<'_>> = tarjetas
            .iter()
            .map(|t| {
                let valor =
                    if comun { t.saldo.to_string() } else { format!("{} (aviso por debajo de {})", t.saldo, t.umbral) };
                destacada(format!("{} (tarjeta {})", t.alumno, t.nro_tarjeta), valor)
            })
            .collect();
        if comun {
            filas.push(fila("Aviso por debajo de", tarjetas[0].umbral.to_string()));
        }
        filas.push(fila("Fecha", fecha));
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
        };
        (l, String::new(), format!("Saldo bajo en las tarjetas de {nombres}"))
    };
    let (html, text) = email(
        "saldo_bajo",
        SaldoBajoHtml { l: &l, padre, alumnos: &alumnos, umbral: &umbral },
        SaldoBajoText { l: &l, padre, alumnos: &alumnos, umbral: &umbral },
    )?;
    Ok(Rendered { subject, html, text, short })
}

/// One card: today's wording. Several: the students with their balances when that fits one SMS segment once
/// transliterated, else the students alone, else how many cards (the details are in the email and the portal).
fn saldo_bajo_short(aviso: &AvisoSaldoBajo) -> Result<String, RenderError> {
    let tarjetas = aviso.tarjetas();
    if let [t] = tarjetas {
        return run("saldo_bajo.sms", SaldoBajoShort { alumno: &t.alumno, saldo: &t.saldo.to_string() });
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

pub fn render(data: &MessageData, portal_url: &str) -> Result<Rendered, RenderError> {
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
        MessageData::RecordatorioDeuda { padre, alumno, nro_tarjeta, monto, dias, nivel: n, fecha } => {
            let monto = monto.to_string();
            let n = nivel(*n, alumno, *dias);
            let l = Layout {
                titulo: n.titulo,
                preheader: format!("La tarjeta de {alumno} tiene un saldo negativo de {monto}."),
                tema: n.tema,
                importe: Some(("Monto adeudado", monto.clone())),
                detalles_titulo: "Detalles",
                filas: vec![
                    fila("Alumno", alumno),
                    fila("Tarjeta", nro_tarjeta),
                    fila("Saldo negativo desde", fecha),
                    fila("Días transcurridos", dias.to_string()),
                ],
                boton: "Realizar Recarga",
                accion: "Realizar una recarga en el portal",
                boton_url: format!("{portal_url}/recargas"),
                portal_url,
            };
            let (intro, aviso) = (n.intro.as_str(), n.aviso);
            let (html, text) = email(
                "recordatorio_deuda",
                DeudaHtml { l: &l, padre, intro, aviso },
                DeudaText { l: &l, padre, intro, aviso },
            )?;
            Rendered { subject: format!("{} - {alumno}", n.titulo), html, text, short: short_text(data)? }
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
            };
            let (html, text) =
                email("tarjeta_bloqueada", BloqueoHtml { l: &l, padre, alumno }, BloqueoText { l: &l, padre, alumno })?;
            Rendered { subject: format!("Tarjeta bloqueada - {alumno}"), html, text, short: short_text(data)? }
        }
    })
}

/// The short text (SMS, WhatsApp fallback, portal, `mensaje`) of a notice.
fn short_text(data: &MessageData) -> Result<String, RenderError> {
    match data {
        MessageData::RecargaExitosa { alumno, monto, saldo, .. } => {
            run("recarga_exitosa.sms", RecargaShort { alumno, monto: &monto.to_string(), saldo: &saldo.to_string() })
        }
        MessageData::SaldoBajo(aviso) => saldo_bajo_short(aviso),
        MessageData::CuentaPendiente { monto, desde, .. } => {
            run("cuenta_pendiente.sms", CuentaShort { monto: &monto.to_string(), desde: dia(desde) })
        }
        MessageData::RecordatorioDeuda { alumno, monto, dias, nivel: n, fecha, .. } => {
            let n = nivel(*n, alumno, *dias);
            let short = DeudaShort {
                prefijo: n.prefijo,
                alumno,
                monto: &monto.to_string(),
                desde: dia_mes(fecha),
                cierre: n.cierre,
            };
            run("recordatorio_deuda.sms", short)
        }
        MessageData::TarjetaBloqueada { alumno, nro_tarjeta, fecha, .. } => {
            run("tarjeta_bloqueada.sms", BloqueoShort { alumno, nro_tarjeta, fecha })
        }
    }
}

pub fn summary(data: &MessageData) -> String {
    // Only the short template: this runs for every request the rules create.
    let short = short_text(data).unwrap_or_else(|e| format!("{}: {e}", data.notification_type()));
    short.chars().take(255).collect()
}

/// How an SMS text travels: in the 7-bit GSM 03.38 alphabet, or as UCS-2 (UTF-16) when any character is outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// The GSM 03.38 basic character set (one septet each), in table order, without the escape code 0x1B.
/// Note: é, è, ù, ì, ò, à, É, ñ, Ñ, ä, ö, ü, Ä, Ö, Ü, Ç, ¿, ¡ are in it; á, í, ó, ú, Á, Í, Ó, Ú, ç are not.
const GSM7_BASIC: &str = concat!(
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmno",
    "pqrstuvwxyzäöñüà",
);

/// The GSM 03.38 extension table: each costs two septets (escape + code).
const GSM7_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// Septets a character takes in GSM-7, or `None` when it is not representable.
fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Parts of a message whose characters cost `costs` units: one part up to `single` units; beyond that, parts of
/// `part` units (the rest is the concatenation header), never splitting a character (an escape pair, a surrogate pair).
fn segments(costs: impl Iterator<Item = usize> + Clone, single: usize, part: usize) -> usize {
    if costs.clone().sum::<usize>() <= single {
        return 1;
    }
    let (mut parts, mut used) = (1, 0);
    for c in costs {
        if used + c > part {
            parts += 1;
            used = 0;
        }
        used += c;
    }
    parts
}

/// Whether `text` can be sent as GSM-7 (basic table, extension characters counting two septets) or needs UCS-2
/// (`₲`, emoji, á/í/ó/ú, …), and how many SMS segments it takes: 160 septets or 70 UTF-16 units in one segment,
/// 153 or 67 per segment when concatenated.
pub fn sms_encoding(text: &str) -> (Encoding, usize) {
    if text.chars().all(|c| gsm7_septets(c).is_some()) {
        (Encoding::Gsm7, segments(text.chars().map(|c| gsm7_septets(c).unwrap_or(1)), 160, 153))
    } else {
        (Encoding::Ucs2, segments(text.chars().map(char::len_utf16), 70, 67))
    }
}

/// The short text as an SMS should carry it: characters outside GSM-7 that have a plain equivalent are
/// transliterated (á → a, Í → I, õ → o, ₲ → Gs., typographic quotes and dashes → ASCII) so a Spanish or Guaraní
/// name does not turn the whole message into UCS-2. é, ñ, ü and the other GSM-7 letters are kept as they are;
/// characters with no equivalent (emoji, other scripts) are kept too.
pub fn sms_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if gsm7_septets(c).is_some() {
            out.push(c);
            continue;
        }
        let plain: &str = match c {
            'á' | 'â' | 'ã' | 'ā' | 'ă' | 'ą' => "a",
            'Á' | 'À' | 'Â' | 'Ã' | 'Ā' | 'Ă' | 'Ą' => "A",
            'ê' | 'ë' | 'ẽ' | 'ē' | 'ę' | 'ě' => "e",
            'È' | 'Ê' | 'Ë' | 'Ẽ' | 'Ē' | 'Ę' | 'Ě' => "E",
            'í' | 'î' | 'ï' | 'ĩ' | 'ī' => "i",
            'Í' | 'Ì' | 'Î' | 'Ï' | 'Ĩ' | 'Ī' => "I",
            'ó' | 'ô' | 'õ' | 'ō' | 'ő' => "o",
            'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ō' | 'Ő' => "O",
            'ú' | 'û' | 'ũ' | 'ū' | 'ű' | 'ů' => "u",
            'Ú' | 'Ù' | 'Û' | 'Ũ' | 'Ū' | 'Ű' | 'Ů' => "U",
            'ý' | 'ÿ' | 'ỹ' => "y",
            'Ý' | 'Ỹ' => "Y",
            'ç' | 'ć' | 'č' => "c",
            'Ć' | 'Č' => "C",
            'ń' | 'ň' => "n",
            'Ń' | 'Ň' => "N",
            'š' | 'ś' => "s",
            'Š' | 'Ś' => "S",
            'ž' | 'ź' | 'ż' => "z",
            'Ž' | 'Ź' | 'Ż' => "Z",
            'ł' => "l",
            'Ł' => "L",
            'œ' => "oe",
            'Œ' => "OE",
            '₲' => "Gs.",
            'º' | '°' => "o",
            'ª' => "a",
            '\u{A0}' | '\u{2007}' | '\u{202F}' | '\u{2009}' | '\t' => " ",
            '‘' | '’' | '‚' | '′' | 'ʼ' | '´' | '`' => "'",
            '“' | '”' | '„' | '«' | '»' | '″' => "\"",
            '‐' | '‑' | '‒' | '–' | '—' | '−' => "-",
            '…' => "...",
            '·' | '•' => "-",
            // Combining marks (a Guaraní g̃ typed as g + U+0303, or decomposed accents) and zero-width characters.
            '\u{300}'..='\u{36F}' | '\u{200B}'..='\u{200D}' | '\u{FEFF}' => "",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(plain);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Guaranies;
    use crate::rules::TarjetaSaldoBajo;

    const PORTAL: &str = "https://portal.example/";

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

    fn tarjeta(alumno: &str, nro: &str, saldo: i64, umbral: i64) -> TarjetaSaldoBajo {
        TarjetaSaldoBajo {
            alumno: alumno.into(),
            nro_tarjeta: nro.into(),
            saldo: Guaranies(saldo),
            umbral: Guaranies(umbral),
        }
    }

    fn saldo_bajo(alumno: &str) -> MessageData {
        MessageData::SaldoBajo(AvisoSaldoBajo::una(
            "Ana".into(),
            tarjeta(alumno, "0001", 3_000, 5_000),
            "23/11/2026 12:10".into(),
        ))
    }

    /// The daily sweep's notice: one per parent, all of their low cards.
    fn saldo_bajo_varias(tarjetas: Vec<TarjetaSaldoBajo>) -> MessageData {
        MessageData::SaldoBajo(AvisoSaldoBajo::varias("Ana".into(), tarjetas, "23/11/2026 18:00".into()).unwrap())
    }

    fn dos(alumno: &str) -> MessageData {
        saldo_bajo_varias(vec![tarjeta(alumno, "1001", 3_000, 5_000), tarjeta("Inés Pérez", "1002", 1_500, 5_000)])
    }

    fn bloqueo(alumno: &str) -> MessageData {
        MessageData::TarjetaBloqueada {
            padre: "Ana".into(),
            alumno: alumno.into(),
            nro_tarjeta: "0001".into(),
            fecha: "23/11/2026 08:05".into(),
        }
    }

    fn cuenta(cliente: &str) -> MessageData {
        MessageData::CuentaPendiente {
            padre: "Ana".into(),
            cliente: cliente.into(),
            ruc_ci: "4567890-1".into(),
            monto: Guaranies(185_000),
            ventas: 4,
            desde: "09/11/2026".into(),
        }
    }

    fn deuda(alumno: &str, dias: i32) -> MessageData {
        MessageData::RecordatorioDeuda {
            padre: "Ana".into(),
            alumno: alumno.into(),
            nro_tarjeta: "0001".into(),
            monto: Guaranies(12_500),
            dias,
            nivel: NivelRecordatorio::for_days(dias),
            fecha: "20/11/2026 10:30".into(),
        }
    }

    fn all(alumno: &str) -> Vec<MessageData> {
        vec![
            recarga(alumno),
            saldo_bajo(alumno),
            dos(alumno),
            bloqueo(alumno),
            cuenta(alumno),
            deuda(alumno, 3),
            deuda(alumno, 7),
            deuda(alumno, 15),
        ]
    }

    #[test]
    fn recarga_has_amounts_in_guaranies_and_a_portal_button() {
        let r = render(&recarga("Luis Pérez"), PORTAL).unwrap();
        assert_eq!(r.subject, "Recarga exitosa de Gs. 50.000 - Luis Pérez");
        assert!(r.html.contains("Gs. 50.000") && r.html.contains("Gs. 62.500"));
        assert!(r.html.contains("href=\"https://portal.example/movimientos\""));
        assert!(r.html.contains("Ver Movimientos"));
        assert!(r.html.contains("Detalles de la transacción") && r.html.contains("caja 2"));
        assert!(r.text.contains("Monto cargado: Gs. 50.000\n"), "{}", r.text);
        assert!(r.text.contains("- Nuevo saldo: Gs. 62.500\n"));
        assert!(r.text.contains("- Referencia: caja 2\n"));
        assert!(r.text.contains("\nhttps://portal.example/movimientos\n"), "the link on its own line: {}", r.text);
        assert_eq!(
            r.short,
            "Cantina Tita: recarga de Gs. 50.000 confirmada para Luis Pérez. Saldo actual: Gs. 62.500."
        );
    }

    #[test]
    fn every_kind_renders_with_its_amount_button_and_layout() {
        let cases: [(MessageData, &str, &str, &str, &str); 7] = [
            (recarga("Luis"), "Gs. 50.000", "Ver Movimientos", "/movimientos", "#1e7e34"),
            (saldo_bajo("Luis"), "Gs. 3.000", "Realizar Recarga", "/recargas", "#c82333"),
            (bloqueo("Luis"), "Bloqueada", "Ir al portal", "", "#495057"),
            (cuenta("Ana Gómez"), "Gs. 185.000", "Ver mi cuenta", "/cuenta", "#f5a300"),
            (deuda("Luis", 3), "Gs. 12.500", "Realizar Recarga", "/recargas", "#0b6fa4"),
            (deuda("Luis", 7), "Gs. 12.500", "Realizar Recarga", "/recargas", "#f5a300"),
            (deuda("Luis", 15), "Gs. 12.500", "Realizar Recarga", "/recargas", "#b02a37"),
        ];
        for (data, amount, button, href, colour) in cases {
            let kind = data.notification_type();
            let r = render(&data, PORTAL).unwrap();
            let h = &r.html;
            assert!(h.starts_with("<!DOCTYPE html>") && h.trim_end().ends_with("</html>"), "{kind}");
            assert!(h.contains(amount), "{kind}: amount {amount}");
            assert!(h.contains(&format!(">{button}</span>")), "{kind}: button {button}");
            assert!(h.contains(&format!("href=\"https://portal.example{href}\"")), "{kind}: link {href}");
            assert!(h.contains(&format!("bgcolor=\"{colour}\"")), "{kind}: header colour {colour}");
            // Robust layout: fluid 600 px container, ghost table for Outlook, preheader, footer, no images or scripts.
            assert!(h.contains("max-width:600px") && h.contains("<!--[if mso]>"), "{kind}");
            assert!(h.contains("mso-hide:all"), "{kind}: preheader");
            assert!(h.contains("Consultas: administración de la cantina"), "{kind}: footer");
            assert!(h.contains("href=\"https://portal.example/preferencias\""), "{kind}");
            assert!(!h.contains("<img") && !h.contains("<script") && !h.contains("url("), "{kind}");
            // Plain text: the amount, the portal link on its own line, the footer; no HTML left over.
            assert!(r.text.contains(amount), "{kind}: {}", r.text);
            assert!(r.text.lines().any(|l| l.starts_with("https://portal.example")), "{kind}: {}", r.text);
            assert!(r.text.contains("Cantina Tita · Consultas"), "{kind}");
            assert!(!r.text.contains('<') && !r.text.contains("&nbsp;"), "{kind}: {}", r.text);
            assert!(!r.text.contains("\n\n\n") && r.text.ends_with(".example/preferencias\n"), "{kind}: {:?}", r.text);
            assert!(!r.subject.is_empty() && !r.short.is_empty(), "{kind}");
        }
    }

    #[test]
    fn font_sizes_are_readable() {
        for data in all("Luis") {
            let r = render(&data, PORTAL).unwrap();
            for size in r.html.split("font-size:").skip(1) {
                let px: u32 = size.split("px").next().unwrap().parse().unwrap();
                assert!(px >= 14 || px == 1, "{}: font-size {px}px", data.notification_type());
            }
        }
    }

    #[test]
    fn names_from_the_database_are_escaped_in_html_only() {
        for data in all("<script>alert(1)</script>") {
            let r = render(&data, "https://p").unwrap();
            let kind = data.notification_type();
            assert!(!r.html.contains("<script>"), "{kind}: {}", r.html);
            assert!(!r.html.contains("alert(1)</"), "{kind}");
            assert!(r.html.contains("&lt;script&gt;"), "{kind}");
            assert!(r.text.contains("<script>alert(1)</script>"), "{kind}: {}", r.text);
        }
        // Quotes cannot break out of an attribute either.
        let r = render(&recarga("x"), "https://p\" onmouseover=\"x").unwrap();
        assert!(!r.html.contains("\" onmouseover"));
    }

    #[test]
    fn recarga_without_reference_has_no_empty_row() {
        let mut d = recarga("Luis");
        if let MessageData::RecargaExitosa { referencia, .. } = &mut d {
            *referencia = None;
        }
        let r = render(&d, PORTAL).unwrap();
        assert!(!r.html.contains("Referencia") && !r.text.contains("Referencia"));
    }

    #[test]
    fn text_parts_carry_the_key_data() {
        let r = render(&saldo_bajo("Luis Benítez"), PORTAL).unwrap();
        assert_eq!(r.subject, "Saldo bajo en la tarjeta de Luis Benítez: Gs. 3.000");
        for needle in ["Hola Ana,", "Saldo actual: Gs. 3.000", "- Tarjeta: 0001", "- Aviso por debajo de: Gs. 5.000"] {
            assert!(r.text.contains(needle), "{needle}: {}", r.text);
        }
        assert!(r.text.contains("Realizar una recarga en el portal:\nhttps://portal.example/recargas\n"));

        let r = render(&cuenta("Comercial Ñandutí S.A."), PORTAL).unwrap();
        for needle in [
            "Monto adeudado: Gs. 185.000",
            "- Cliente: Comercial Ñandutí S.A.",
            "- RUC / CI: 4567890-1",
            "- Compras pendientes: 4",
            "Formas de pago",
            "podría suspenderse",
        ] {
            assert!(r.text.contains(needle), "{needle}: {}", r.text);
            assert!(r.html.contains(needle.trim_start_matches("- ").split(':').next().unwrap()), "{needle}");
        }
        assert!(r.html.contains("podría suspenderse"));

        let r = render(&bloqueo("Luis"), PORTAL).unwrap();
        assert_eq!(r.subject, "Tarjeta bloqueada - Luis");
        assert!(r.text.contains("- Fecha del bloqueo: 23/11/2026 08:05") && r.text.contains("- Estado: Bloqueada"));
        assert!(r.text.contains("Portal de padres:\nhttps://portal.example\n"), "{}", r.text);
    }

    #[test]
    fn reminder_levels_differ_in_tone_and_colour() {
        let [a, u, c] = [3, 7, 15].map(|d| render(&deuda("Luis", d), PORTAL).unwrap());
        assert_eq!(a.subject, "Recordatorio de saldo pendiente - Luis");
        assert_eq!(u.subject, "Saldo pendiente: recordatorio urgente - Luis");
        assert_eq!(c.subject, "Saldo pendiente: aviso final - Luis");
        assert!(a.text.contains("Le recordamos") && !a.text.contains("Importante"));
        assert!(u.text.contains("después de 7 días"));
        assert!(c.text.contains("lleva 15 días") && c.text.contains("Importante: si el saldo no se regulariza"));
        assert!(c.html.contains("podrá restringirse"));
        for r in [&a, &u, &c] {
            assert!(r.text.contains("Monto adeudado: Gs. 12.500") && r.text.contains("- Días transcurridos: "));
        }
        assert_eq!(
            a.short,
            "Cantina Tita: la tarjeta de Luis tiene saldo negativo de Gs. 12.500 desde el 20/11. Cuando pueda, realice una recarga."
        );
        assert!(u.short.starts_with("Cantina Tita, URGENTE: la tarjeta de Luis "), "{}", u.short);
        assert!(c.short.starts_with("Cantina Tita, AVISO FINAL: la tarjeta de Luis "), "{}", c.short);
        assert_eq!(dia_mes("05/01/2027 10:00"), "05/01");
        assert_eq!(dia_mes("2027-01-05"), "2027-01-05", "another format is kept whole");
    }

    #[test]
    fn short_texts_fit_one_gsm7_segment_for_typical_names() {
        // é and ñ are GSM-7: such names keep the short text GSM-7 as rendered.
        for data in all("Juan Pérez Ibañez") {
            let r = render(&data, PORTAL).unwrap();
            assert!(r.short.chars().count() <= 160, "{}: {}", data.notification_type(), r.short);
            assert_eq!(sms_encoding(&r.short), (Encoding::Gsm7, 1), "{}: {}", data.notification_type(), r.short);
        }
        // A long name with á/í/ó/ú: UCS-2 as rendered, one GSM-7 segment once transliterated for SMS.
        for data in all("María José Giménez Benítez") {
            let r = render(&data, PORTAL).unwrap();
            let named = r.short.contains("María José Giménez Benítez"); // the account notice names no one
            assert_eq!(sms_encoding(&r.short).0 == Encoding::Ucs2, named, "{}", r.short);
            let sms = sms_text(&r.short);
            assert!(!sms.contains('í') && !sms.contains('á'), "{sms}");
            assert_eq!(sms_encoding(&sms), (Encoding::Gsm7, 1), "{}: {sms}", data.notification_type());
        }
    }

    #[test]
    fn summary_fits_the_mensaje_column() {
        let long = "x".repeat(400);
        assert!(summary(&recarga(&long)).chars().count() <= 255);
        assert_eq!(
            summary(&recarga("Luis")),
            "Cantina Tita: recarga de Gs. 50.000 confirmada para Luis. Saldo actual: Gs. 62.500."
        );
    }

    #[test]
    fn gsm7_detection_follows_the_03_38_tables() {
        assert_eq!(sms_encoding(""), (Encoding::Gsm7, 1));
        assert_eq!(sms_encoding("Hola Begoña, ¿todo bien? Pérez, Müller, Ñandú"), (Encoding::Ucs2, 1));
        for gsm in ["é", "É", "ñ", "Ñ", "ü", "Ü", "è", "ù", "ì", "ò", "à", "Ç", "¿", "¡", "@", "£", "$", "_", "§", "Δ"]
        {
            assert_eq!(sms_encoding(gsm).0, Encoding::Gsm7, "{gsm} is in the basic table");
        }
        for ucs in ["á", "í", "ó", "ú", "Á", "Í", "Ó", "Ú", "ç", "₲", "😀", "`", "ã", "’"] {
            assert_eq!(sms_encoding(ucs).0, Encoding::Ucs2, "{ucs} is not GSM-7");
        }
        // Extension characters are GSM-7 but take two septets.
        assert_eq!(sms_encoding(&"€".repeat(80)), (Encoding::Gsm7, 1));
        assert_eq!(sms_encoding(&"€".repeat(81)), (Encoding::Gsm7, 2));
        assert_eq!(sms_encoding(&format!("{}€", "a".repeat(159))), (Encoding::Gsm7, 2));
        assert_eq!(sms_encoding("[{}]~|^\\"), (Encoding::Gsm7, 1));
    }

    #[test]
    fn segments_are_153_septets_or_67_units_when_concatenated() {
        assert_eq!(sms_encoding(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(sms_encoding(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(sms_encoding(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(sms_encoding(&"a".repeat(307)), (Encoding::Gsm7, 3));
        // An escape pair is never split: 152 septets + € does not fit the first part's 153.
        assert_eq!(sms_encoding(&format!("{}€{}", "a".repeat(152), "a".repeat(10))), (Encoding::Gsm7, 2));
        assert_eq!(sms_encoding(&format!("{}€{}", "a".repeat(152), "a".repeat(152))), (Encoding::Gsm7, 3));

        assert_eq!(sms_encoding(&"á".repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(sms_encoding(&"á".repeat(71)), (Encoding::Ucs2, 2));
        assert_eq!(sms_encoding(&"á".repeat(134)), (Encoding::Ucs2, 2));
        assert_eq!(sms_encoding(&"á".repeat(135)), (Encoding::Ucs2, 3));
        // An emoji is two UTF-16 units and is not split across parts.
        assert_eq!(sms_encoding(&format!("{}😀", "a".repeat(68))), (Encoding::Ucs2, 1));
        assert_eq!(sms_encoding(&format!("{}😀", "a".repeat(69))), (Encoding::Ucs2, 2));
        assert_eq!(sms_encoding(&format!("{}😀{}", "a".repeat(66), "a".repeat(5))), (Encoding::Ucs2, 2));
        // A 100-character Spanish text: one GSM-7 segment, two as UCS-2 because of one "á".
        let text = format!("{}á", "a".repeat(99));
        assert_eq!(sms_encoding(&text), (Encoding::Ucs2, 2));
        assert_eq!(sms_encoding(&sms_text(&text)), (Encoding::Gsm7, 1));
    }

    #[test]
    fn sms_text_transliterates_what_gsm7_lacks_and_keeps_what_it_has() {
        assert_eq!(sms_text("María Ángeles Núñez Ibáñez, Óscar Ríos"), "Maria Angeles Nuñez Ibañez, Oscar Rios");
        assert_eq!(sms_text("Pérez Müller ÑANDÚ ¿sí?"), "Pérez Müller ÑANDU ¿si?");
        assert_eq!(sms_text("₲ 50.000 – “pago”…"), "Gs. 50.000 - \"pago\"...");
        assert_eq!(sms_text("Ka\u{2019}a g\u{303}uasu, Avañe\u{2019}ẽ"), "Ka'a guasu, Avañe'e");
        assert_eq!(sms_text("Luis 😀"), "Luis 😀", "no equivalent: kept");
        for data in all("José María Ñúñez") {
            let sms = sms_text(&render(&data, PORTAL).unwrap().short);
            assert_eq!(sms_encoding(&sms).0, Encoding::Gsm7, "{sms}");
        }
    }

    #[test]
    fn saldo_bajo_with_one_card_keeps_its_wording() {
        let r = render(&saldo_bajo("Luis Benítez"), PORTAL).unwrap();
        assert!(r.text.contains("El saldo de la tarjeta de Luis Benítez bajó de Gs. 5.000."), "{}", r.text);
        assert!(
            r.html.contains(
                "El saldo de la tarjeta de <strong>Luis Benítez</strong> bajó de <strong>Gs. 5.000</strong>."
            )
        );
        assert!(r.text.contains("Saldo actual: Gs. 3.000\n") && r.text.contains("Datos del alumno\n"), "{}", r.text);
        assert_eq!(
            r.short,
            "Cantina Tita: saldo bajo en la tarjeta de Luis Benítez: Gs. 3.000. Recargue en el portal de padres o en la cantina."
        );
    }

    #[test]
    fn saldo_bajo_with_several_cards_lists_each_with_its_balance() {
        let r = render(&dos("Ana Pérez"), PORTAL).unwrap();
        assert_eq!(r.subject, "Saldo bajo en las tarjetas de Ana Pérez y Inés Pérez");
        for needle in [
            "Hola Ana,",
            "El saldo de las tarjetas de Ana Pérez y Inés Pérez está por debajo del monto de aviso.",
            "Tarjetas con saldo bajo\n",
            "- Ana Pérez (tarjeta 1001): Gs. 3.000\n",
            "- Inés Pérez (tarjeta 1002): Gs. 1.500\n",
            "- Aviso por debajo de: Gs. 5.000\n",
            "- Fecha: 23/11/2026 18:00\n",
        ] {
            assert!(r.text.contains(needle), "{needle}: {}", r.text);
        }
        // No single highlighted figure, no "Saldo actual" of one card.
        assert!(!r.text.contains("Saldo actual") && !r.html.contains("class=\"ct-monto\""), "{}", r.text);
        assert!(r.html.contains("de <strong>Ana Pérez</strong> y <strong>Inés Pérez</strong> está"), "{}", r.html);
        assert!(r.html.contains("Ana Pérez (tarjeta 1001)") && r.html.contains("Gs. 1.500"));
        assert!(r.html.contains("Las tarjetas de Ana Pérez y Inés Pérez tienen saldo bajo."), "preheader");
        assert_eq!(
            r.short,
            "Cantina Tita: saldo bajo en las tarjetas de Ana Pérez (Gs. 3.000) y Inés Pérez (Gs. 1.500). Recargue en el portal de padres o en la cantina."
        );
    }

    #[test]
    fn saldo_bajo_cards_with_their_own_thresholds_say_each() {
        let r = render(
            &saldo_bajo_varias(vec![
                tarjeta("Luis", "1", 3_000, 5_000),
                tarjeta("Sofía", "2", 8_000, 10_000),
                tarjeta("Tomás", "3", 0, 5_000),
            ]),
            PORTAL,
        )
        .unwrap();
        assert_eq!(r.subject, "Saldo bajo en las tarjetas de Luis, Sofía y Tomás");
        assert!(r.text.contains("- Sofía (tarjeta 2): Gs. 8.000 (aviso por debajo de Gs. 10.000)\n"), "{}", r.text);
        assert!(r.text.contains("- Tomás (tarjeta 3): Gs. 0 (aviso por debajo de Gs. 5.000)\n"), "{}", r.text);
        assert!(!r.text.contains("- Aviso por debajo de:"), "{}", r.text);
        assert!(r.text.contains("tarjetas de Luis, Sofía y Tomás está"), "{}", r.text);
    }

    #[test]
    fn saldo_bajo_short_text_for_several_cards_stays_one_sms_segment() {
        let nombres = ["María José Giménez Benítez", "Juan Pablo Giménez Benítez", "Ana Sofía Giménez Benítez"];
        // Two names with their balances fit.
        let short_names = saldo_bajo_varias(vec![
            tarjeta("María José Giménez", "1", 3_000, 5_000),
            tarjeta("Juan Giménez", "2", 0, 5_000),
        ]);
        assert_eq!(
            render(&short_names, PORTAL).unwrap().short,
            "Cantina Tita: saldo bajo en las tarjetas de María José Giménez (Gs. 3.000) y Juan Giménez (Gs. 0). Recargue en el portal de padres o en la cantina."
        );
        // Two long names: the balances go (they are in the email and the portal), the names stay.
        let two = saldo_bajo_varias(nombres[..2].iter().map(|n| tarjeta(n, "1", 3_000, 5_000)).collect());
        assert_eq!(
            render(&two, PORTAL).unwrap().short,
            "Cantina Tita: saldo bajo en las tarjetas de María José Giménez Benítez y Juan Pablo Giménez Benítez. Recargue en el portal de padres o en la cantina."
        );
        // Too long even for the names: how many, and where to look.
        let three = saldo_bajo_varias(nombres.iter().map(|n| tarjeta(n, "1", 3_000, 5_000)).collect());
        let five = saldo_bajo_varias((0..5).map(|i| tarjeta(nombres[i % 3], "1", 3_000, 5_000)).collect());
        assert_eq!(
            render(&three, PORTAL).unwrap().short,
            "Cantina Tita: saldo bajo en 3 tarjetas de sus hijos. Vea el detalle y recargue en el portal de padres o en la cantina."
        );
        assert_eq!(
            render(&five, PORTAL).unwrap().short,
            "Cantina Tita: saldo bajo en 5 tarjetas de sus hijos. Vea el detalle y recargue en el portal de padres o en la cantina."
        );
        for data in [short_names, two, three, five] {
            let sms = sms_text(&render(&data, PORTAL).unwrap().short);
            assert_eq!(sms_encoding(&sms), (Encoding::Gsm7, 1), "{sms}");
        }
    }
}
