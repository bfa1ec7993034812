//! Recordatorio de deuda: the templates of a negative-balance reminder and the wording of its three levels.

use sailfish::TemplateSimple;

use crate::render::layout::{AMARILLO, AZUL, Layout, ROJO_OSCURO, Tema};
use crate::rules::NivelRecordatorio;

#[derive(TemplateSimple)]
#[template(path = "email/recordatorio_deuda.html.stpl")]
pub(in crate::render) struct DeudaHtml<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) intro: &'a str,
    pub(in crate::render) aviso: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "email/recordatorio_deuda.txt.stpl")]
pub(in crate::render) struct DeudaText<'a> {
    pub(in crate::render) l: &'a Layout<'a>,
    pub(in crate::render) padre: &'a str,
    pub(in crate::render) intro: &'a str,
    pub(in crate::render) aviso: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "sms/recordatorio_deuda.stpl")]
pub(in crate::render) struct DeudaShort<'a> {
    pub(in crate::render) prefijo: &'a str,
    pub(in crate::render) alumno: &'a str,
    pub(in crate::render) monto: &'a str,
    pub(in crate::render) desde: &'a str,
    pub(in crate::render) cierre: &'a str,
}

/// The wording and colours of one reminder level: friendly (3 days), urgent (7), critical (15).
pub(in crate::render) struct Nivel {
    pub(in crate::render) titulo: &'static str,
    pub(in crate::render) intro: String,
    pub(in crate::render) aviso: Option<&'static str>,
    pub(in crate::render) tema: Tema,
    /// Short text: after "Cantina Tita" and at the end (GSM-7 characters only).
    pub(in crate::render) prefijo: &'static str,
    pub(in crate::render) cierre: &'static str,
}

pub(in crate::render) fn nivel(nivel: NivelRecordatorio, alumno: &str, dias: i32) -> Nivel {
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
