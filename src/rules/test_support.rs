//! Test fixtures shared by the rules' and the renderer's tests.

use super::TarjetaSaldoBajo;
use crate::domain::Guaranies;

/// One low card: its student, number, balance and threshold.
pub fn tarjeta(alumno: &str, nro: &str, saldo: i64, umbral: i64) -> TarjetaSaldoBajo {
    TarjetaSaldoBajo {
        alumno: alumno.into(),
        nro_tarjeta: nro.into(),
        saldo: Guaranies(saldo),
        umbral: Guaranies(umbral),
    }
}
