//! Consumo realizado and Resumen de consumos: what a family's children bought (opt-in notices).

use sailfish::TemplateSimple;

use crate::render::layout::Layout;

/// At most this many characters of a purchase's `detalle` in a short text (the column holds up to 200).
pub(in crate::render) const DETALLE_CORTO: usize = 40;

/// The `detalle` on one line, cut at [`DETALLE_CORTO`] characters with "…" for the short texts.
pub(in crate::render) fn detalle_corto(detalle: &str) -> String {
    let one_line = detalle.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.chars().count() > DETALLE_CORTO {
        true => format!("{}…", one_line.chars().take(DETALLE_CORTO - 1).collect::<String>().trim_end()),
        false => one_line,
    }
}

#[derive(TemplateSimple)]
#[template(path = "email/consumo_realizado.html.stpl")]
pub(in crate::render) struct ConsumoHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/consumo_realizado.txt.stpl")]
pub(in crate::render) struct ConsumoText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) alumno: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/consumo_realizado.stpl")]
pub(in crate::render) struct ConsumoShort<'a> {
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) detalle: &'a str,
    pub(in crate::render) monto: &'a str,
    pub(in crate::render) cuando: &'a str,
    pub(in crate::render) saldo: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/resumen_consumos.html.stpl")]
pub(in crate::render) struct ResumenHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) fecha: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "email/resumen_consumos.txt.stpl")]
pub(in crate::render) struct ResumenText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) fecha: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "sms/resumen_consumos.stpl")]
pub(in crate::render) struct ResumenShort<'a> {
    pub(in crate::render) dia: &'a str,
    /// "Luis Benítez Gs. 33.000 (2 compras, saldo Gs. 40.000)", one per child.
    pub(in crate::render) hijos: &'a [String],
}
