//! Tarjeta por vencer and tarjeta vencida: the templates of a card near or past its `fecha_vencimiento`.

use sailfish::TemplateSimple;

use crate::render::layout::Layout;

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_por_vencer.html.stpl")]
pub(in crate::render) struct PorVencerHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) vence: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_por_vencer.txt.stpl")]
pub(in crate::render) struct PorVencerText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) vence: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/tarjeta_por_vencer.stpl")]
pub(in crate::render) struct PorVencerShort<'a> {
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) nro_tarjeta: &'a str,
    pub(in crate::render) vence: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_vencida.html.stpl")]
pub(in crate::render) struct VencidaHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) vencio: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/tarjeta_vencida.txt.stpl")]
pub(in crate::render) struct VencidaText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) vencio: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/tarjeta_vencida.stpl")]
pub(in crate::render) struct VencidaShort<'a> {
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) nro_tarjeta: &'a str,
    pub(in crate::render) vencio: &'a str,
}
