//! The templates of each kind of notice: one struct per sailfish template (HTML, text, short text) and the
//! helpers only that kind uses. The shared layout is in `render::layout`.

pub(in crate::render) mod consumos;
pub(in crate::render) mod cuenta_pendiente;
pub(in crate::render) mod mensaje_cantina;
pub(in crate::render) mod recarga_exitosa;
pub(in crate::render) mod recordatorio_deuda;
pub(in crate::render) mod saldo_bajo;
pub(in crate::render) mod tarjeta_bloqueada;
pub(in crate::render) mod tarjeta_vencimiento;
