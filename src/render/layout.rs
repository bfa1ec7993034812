//! The layout every email shares (`templates/email/_*.stpl`): the colours of each kind, the details rows,
//! and the helpers that render an email's HTML and text parts.

use std::borrow::Cow;

use sailfish::TemplateSimple;

use crate::render::{RenderError, run};

/// Colours and icon of one kind of notice. Every colour pair keeps a WCAG contrast of at least 4.5:1
/// (white on `cabecera`/`boton`, or dark text on the yellow header; `acento` on white and on `tinte`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Tema {
    /// An HTML entity (trusted, not escaped); `&#65038;` asks for the text, not the emoji, form.
    pub(super) icono: &'static str,
    pub(super) icono_color: &'static str,
    pub(super) cabecera: &'static str,
    pub(super) texto_cabecera: &'static str,
    /// The highlighted amount and rows.
    pub(super) acento: &'static str,
    /// Background and border of the amount box and notes.
    pub(super) tinte: &'static str,
    pub(super) borde: &'static str,
    pub(super) boton: &'static str,
}

pub(super) const VERDE: Tema = Tema {
    icono: "&#10004;&#65038;",
    icono_color: "#1e7e34",
    cabecera: "#1e7e34",
    texto_cabecera: "#ffffff",
    acento: "#1e7e34",
    tinte: "#e9f7ef",
    borde: "#bfe5cc",
    boton: "#1e7e34",
};

pub(super) const ROJO: Tema = Tema {
    icono: "&#9888;&#65038;",
    icono_color: "#c82333",
    cabecera: "#c82333",
    texto_cabecera: "#ffffff",
    acento: "#c82333",
    tinte: "#fdecee",
    borde: "#f5c2c7",
    boton: "#c82333",
};

pub(super) const AMARILLO: Tema = Tema {
    icono: "!",
    icono_color: "#b54d00",
    cabecera: "#f5a300",
    texto_cabecera: "#212529",
    acento: "#b54d00",
    tinte: "#fff4e0",
    borde: "#ffd89a",
    boton: "#b54d00",
};

pub(super) const AZUL: Tema = Tema {
    icono: "i",
    icono_color: "#0b6fa4",
    cabecera: "#0b6fa4",
    texto_cabecera: "#ffffff",
    acento: "#0b6fa4",
    tinte: "#e7f3fa",
    borde: "#b9dcef",
    boton: "#0b6fa4",
};

pub(super) const ROJO_OSCURO: Tema = Tema {
    icono: "&#9888;&#65038;",
    icono_color: "#b02a37",
    cabecera: "#b02a37",
    texto_cabecera: "#ffffff",
    acento: "#b02a37",
    tinte: "#fdecee",
    borde: "#f5c2c7",
    boton: "#b02a37",
};

pub(super) const GRIS: Tema = Tema {
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
pub(super) struct Fila<'a> {
    pub(super) etiqueta: Cow<'a, str>,
    pub(super) valor: Cow<'a, str>,
    pub(super) destacado: bool,
}

pub(super) fn fila<'a>(etiqueta: impl Into<Cow<'a, str>>, valor: impl Into<Cow<'a, str>>) -> Fila<'a> {
    Fila { etiqueta: etiqueta.into(), valor: valor.into(), destacado: false }
}

pub(super) fn destacada<'a>(etiqueta: impl Into<Cow<'a, str>>, valor: impl Into<Cow<'a, str>>) -> Fila<'a> {
    Fila { etiqueta: etiqueta.into(), valor: valor.into(), destacado: true }
}

/// What the shared layout (header, amount, details, button, footer) shows; the templates read it as `l`.
pub(super) struct Layout<'a> {
    pub(super) titulo: &'a str,
    /// The hidden line mail apps show after the subject in the inbox.
    pub(super) preheader: String,
    pub(super) tema: Tema,
    /// The big highlighted figure: label and value.
    pub(super) importe: Option<(&'static str, String)>,
    pub(super) detalles_titulo: &'static str,
    pub(super) filas: Vec<Fila<'a>>,
    /// The button's label (HTML) and the same action as a sentence (plain text).
    pub(super) boton: &'static str,
    pub(super) accion: &'static str,
    pub(super) boton_url: String,
    pub(super) portal_url: &'a str,
    /// The other items of a family's daily message ("Además: …" before the button); empty for any other notice.
    pub(super) ademas: &'a [crate::rules::Ademas],
}

/// The date part of `23/11/2026 19:45`.
pub(super) fn dia(fecha: &str) -> &str {
    fecha.split_whitespace().next().unwrap_or(fecha)
}

/// `23/11` from `23/11/2026 19:45`: enough for a reminder about the last two weeks, and short for an SMS.
pub(super) fn dia_mes(fecha: &str) -> &str {
    let d = dia(fecha);
    let b = d.as_bytes();
    if b.len() == 10 && b[2] == b'/' && b[5] == b'/' { &d[..5] } else { d }
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

pub(super) fn email<H: TemplateSimple, T: TemplateSimple>(
    name: &'static str,
    html: H,
    text: T,
) -> Result<(String, String), RenderError> {
    Ok((run(name, html)?, tidy(&run(name, text)?)))
}

/// The separators that put a list of names together in Spanish: "", ", ", …, " y ".
pub(super) fn separados<'a>(items: impl ExactSizeIterator<Item = &'a str>) -> Vec<(&'static str, &'a str)> {
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
