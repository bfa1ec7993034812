//! The templates of each kind of notice: one struct per sailfish template (HTML, text, short text) and the
//! helpers only that kind uses. The shared layout is in `render::layout`.

pub(in crate::render) mod bloqueo;
pub(in crate::render) mod cuenta;
pub(in crate::render) mod deuda;
pub(in crate::render) mod recarga;
pub(in crate::render) mod saldo_bajo;
