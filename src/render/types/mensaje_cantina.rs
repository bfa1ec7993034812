//! Mensaje de la cantina: the staff's own text (the POS "Notificar" button), inside the shared header and footer.

use sailfish::TemplateSimple;

use crate::render::layout::Layout;

/// The staff's text split into its lines (`\n` or `\r\n`), trailing spaces dropped: the HTML template escapes each
/// line and joins them with `<br>`, so the staff's line breaks survive and nothing they typed is read as markup.
pub(in crate::render) fn lineas(mensaje: &str) -> Vec<&str> {
    mensaje.trim().lines().map(str::trim_end).collect()
}

#[derive(TemplateSimple)]
#[template(path = "email/mensaje_cantina.html.stpl")]
pub(in crate::render) struct MensajeHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) lineas: &'a [&'a str],
}

#[derive(TemplateSimple)]
#[template(path = "email/mensaje_cantina.txt.stpl")]
pub(in crate::render) struct MensajeText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) mensaje: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/mensaje_cantina.stpl")]
pub(in crate::render) struct MensajeShort<'a> {
    pub(in crate::render) mensaje: &'a str,
}
