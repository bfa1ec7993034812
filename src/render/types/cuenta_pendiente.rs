//! Cuenta pendiente: the templates of an account with unpaid purchases.

use sailfish::TemplateSimple;

use crate::render::layout::Layout;

#[derive(TemplateSimple)]
#[template(path = "email/cuenta_pendiente.html.stpl")]
pub(in crate::render) struct CuentaHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) desde: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/cuenta_pendiente.txt.stpl")]
pub(in crate::render) struct CuentaText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) desde: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/cuenta_pendiente.stpl")]
pub(in crate::render) struct CuentaShort<'a> {
    pub(in crate::render) monto: &'a str,
    pub(in crate::render) desde: &'a str,
}
