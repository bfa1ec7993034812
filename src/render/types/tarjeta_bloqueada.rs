//! Tarjeta bloqueada: the templates of a blocked card.

use sailfish::TemplateSimple;

use crate::render::layout::Layout;

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_bloqueada.html.stpl")]
pub(in crate::render) struct BloqueoHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_bloqueada.txt.stpl")]
pub(in crate::render) struct BloqueoText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/tarjeta_bloqueada.stpl")]
pub(in crate::render) struct BloqueoShort<'a> {
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) nro_tarjeta: &'a str,
    pub(in crate::render) fecha: &'a str,
}
