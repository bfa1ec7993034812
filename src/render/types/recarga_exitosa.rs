//! Recarga exitosa: the templates of a credited top-up.

use sailfish::TemplateSimple;

use crate::render::layout::Layout;

#[derive(TemplateSimple)]
#[template(path = "email/recarga_exitosa.html.stpl")]
pub(in crate::render) struct RecargaHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/recarga_exitosa.txt.stpl")]
pub(in crate::render) struct RecargaText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/recarga_exitosa.stpl")]
pub(in crate::render) struct RecargaShort<'a> {
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) monto: &'a str,
    pub(in crate::render) saldo: &'a str,
}
