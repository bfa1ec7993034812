//! The life cycle of a request (`solicitudes_notificacion.estado`): the four states of migration 0001's CHECK.
//!
//! SQL names a state as a literal (`estado = 'Pendiente'`), never as a parameter: the partial indexes (migrations
//! 0001 and 0013) are chosen only when the plan sees the literal, and a prepared statement's generic plan does not
//! see a `$n`. [`estado_sql!`] gives that literal, spelled once in `domain::request_state`, for `concat!` to build the statement text.

pub use crate::domain::RequestState;

/// A state as an SQL literal (`'Pendiente'`), for `concat!`.
macro_rules! estado_sql {
    ($state:ident) => {
        concat!("'", $crate::domain::request_state::estado_name!($state), "'")
    };
}
pub(crate) use estado_sql;

#[cfg(test)]
mod tests {
    use super::*;

    /// The states of `CHECK (estado IN ('…', …))` in migration 0001, in order.
    fn check_list(migration: &str) -> Vec<String> {
        let start = migration.find("CHECK (estado IN (").expect("migration 0001 has the estado CHECK")
            + "CHECK (estado IN (".len();
        let end = start + migration[start..].find(')').expect("the CHECK list ends");
        migration[start..end].split(',').map(|s| s.trim().trim_matches('\'').to_string()).collect()
    }

    #[test]
    fn the_enum_is_the_check_constraint_of_migration_0001() {
        let migration = include_str!("../../sql/migrations/0001_tablas_servicio.sql");
        let names: Vec<&str> = RequestState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(check_list(migration), names);
        for s in RequestState::ALL {
            assert_eq!(s.sql(), format!("'{}'", s.as_str()));
            assert_eq!(RequestState::parse(s.as_str()), Some(s));
            assert_eq!(RequestState::parse_any_case(&format!(" {} ", s.as_str().to_uppercase())), Some(s));
        }
        assert_eq!(RequestState::parse("pendiente"), None);
        assert_eq!(RequestState::parse_any_case("Fallido"), None);
    }

    #[test]
    fn the_macro_gives_literals_for_concat() {
        assert_eq!(concat!("estado = ", estado_sql!(Pendiente)), "estado = 'Pendiente'");
        assert_eq!(
            concat!("(", estado_sql!(Enviado), ", ", estado_sql!(Error), ", ", estado_sql!(Omitido), ")"),
            "('Enviado', 'Error', 'Omitido')"
        );
    }
}
