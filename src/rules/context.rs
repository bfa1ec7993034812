use std::collections::HashMap;

use jiff::Timestamp;

/// The rows an event batch refers to, loaded in bulk before the rules run.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub cards: HashMap<String, Card>,
    pub recharges: HashMap<i64, Recharge>,
    pub manual: HashMap<i64, ManualRow>,
    /// Clients named directly by manual requests.
    pub parents: HashMap<i32, Parent>,
    /// (client, type, channel) the parent turned off in the portal (every one of their portal accounts).
    pub turned_off: super::TurnedOff,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub nro_tarjeta: String,
    pub saldo_actual: i64,
    /// The card's own threshold; 0 means "use the default".
    pub saldo_alerta: i64,
    pub estado: String,
    pub notificar_saldo_bajo: bool,
    pub ultima_notificacion_saldo: Option<Timestamp>,
    pub fecha_vencimiento: Option<jiff::civil::Date>,
    pub student: Option<Student>,
    pub parent: Option<Parent>,
}

impl Card {
    pub fn threshold(&self, default: i64) -> i64 {
        if self.saldo_alerta > 0 { self.saldo_alerta } else { default }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Student {
    pub id_hijo: i32,
    pub nombre: String,
    pub apellido: String,
}

impl Student {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.nombre.trim(), self.apellido.trim())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parent {
    pub id_cliente: i32,
    pub nombres: String,
    pub apellidos: String,
    pub email: Option<String>,
    pub telefono: Option<String>,
    pub activo: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recharge {
    pub id_carga: i64,
    pub nro_tarjeta: String,
    pub monto: i64,
    pub estado: String,
    pub fecha: Timestamp,
    pub referencia: Option<String>,
}

/// A row the POS inserted into `solicitudes_notificacion` by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualRow {
    pub id_solicitud: i64,
    pub id_cliente: Option<i32>,
    pub nro_tarjeta: Option<String>,
    pub destino: Option<String>,
    pub estado: String,
    pub clave_dedup: Option<String>,
    /// The staff's own text, when they wrote one (the row is then a `mensaje_cantina`).
    pub mensaje: Option<String>,
    /// The type the row names, when the POS fills it.
    pub tipo: Option<String>,
}
