//! The opt-out condition, written once: a request row `r` goes to an address that opted out of its channel when an
//! active row of `cantina_notify_bajas b` (not opted back in) has the row's `destino` and its address, as the
//! opt-outs keep it: an email lower case ([`crate::optouts::normalise`] is the Rust twin), a phone as it is.
//!
//! The macros give literals for `concat!`, so each statement stays one literal text (prepared and cached by it).
//! The whitespace between the pieces is an argument so that every statement keeps its exact text: `$nl` before
//! `AND b.destinatario`, `$case` before `THEN` and `ELSE`; [`opted_out!`] adds `$open` after `EXISTS (` and
//! `$where` before `WHERE`.

/// The join predicate: `b.fecha_alta IS NULL AND b.destino = r.destino AND b.destinatario = <r's address>`.
macro_rules! bajas_match {
    ($r:literal) => {
        $crate::requests::optout_sql::bajas_match!($r, " ", " ")
    };
    ($r:literal, $nl:literal, $case:literal) => {
        concat!(
            "b.fecha_alta IS NULL AND b.destino = ",
            $r,
            ".destino",
            $nl,
            "AND b.destinatario = CASE WHEN ",
            $r,
            ".destino = 'Email'",
            $case,
            "THEN lower(",
            $r,
            ".destinatario)",
            $case,
            "ELSE ",
            $r,
            ".destinatario END"
        )
    };
}
pub(crate) use bajas_match;

/// `EXISTS (SELECT 1 FROM cantina_notify_bajas b WHERE <bajas_match>)`: whether the row's address opted out.
macro_rules! opted_out {
    ($r:literal) => {
        $crate::requests::optout_sql::opted_out!($r, "", " ", " ", " ")
    };
    ($r:literal, $open:literal, $where:literal, $nl:literal, $case:literal) => {
        concat!(
            "EXISTS (",
            $open,
            "SELECT 1 FROM cantina_notify_bajas b",
            $where,
            "WHERE ",
            $crate::requests::optout_sql::bajas_match!($r, $nl, $case),
            ")"
        )
    };
}
pub(crate) use opted_out;

#[cfg(test)]
mod tests {
    use crate::domain::ChannelKind;

    /// The four copies this replaces, as each statement spelled it (whitespace included): each one comes out of
    /// the macros exactly, so moving a statement onto them leaves its text as it was.
    #[test]
    fn the_fragments_reproduce_every_statement_s_text() {
        // dispatch::store's CLAIM (the unaliased table).
        assert_eq!(
            opted_out!(
                "solicitudes_notificacion",
                "\n              ",
                "\n              ",
                "\n                ",
                "\n                                          "
            ),
            "EXISTS (
              SELECT 1 FROM cantina_notify_bajas b
              WHERE b.fecha_alta IS NULL AND b.destino = solicitudes_notificacion.destino
                AND b.destinatario = CASE WHEN solicitudes_notificacion.destino = 'Email'
                                          THEN lower(solicitudes_notificacion.destinatario)
                                          ELSE solicitudes_notificacion.destinatario END)"
        );
        // events::drain's INSERT_REQUESTS (alias u).
        assert_eq!(
            opted_out!("u", "\n        ", "\n        ", "\n          ", " "),
            "EXISTS (
        SELECT 1 FROM cantina_notify_bajas b
        WHERE b.fecha_alta IS NULL AND b.destino = u.destino
          AND b.destinatario = CASE WHEN u.destino = 'Email' THEN lower(u.destinatario) ELSE u.destinatario END)"
        );
        // ops::requests's LOCK_FOR_RESEND (alias s).
        assert_eq!(
            opted_out!("s", "", "\n                   ", "\n                     ", " "),
            "EXISTS (SELECT 1 FROM cantina_notify_bajas b
                   WHERE b.fecha_alta IS NULL AND b.destino = s.destino
                     AND b.destinatario = CASE WHEN s.destino = 'Email' THEN lower(s.destinatario) ELSE s.destinatario END)"
        );
        // optouts::omit_opted_out's join (alias s).
        assert_eq!(
            bajas_match!("s", "\n               ", " "),
            "b.fecha_alta IS NULL AND b.destino = s.destino
               AND b.destinatario = CASE WHEN s.destino = 'Email' THEN lower(s.destinatario) ELSE s.destinatario END"
        );
        assert_eq!(
            opted_out!("x"),
            "EXISTS (SELECT 1 FROM cantina_notify_bajas b WHERE b.fecha_alta IS NULL AND b.destino = x.destino \
             AND b.destinatario = CASE WHEN x.destino = 'Email' THEN lower(x.destinatario) ELSE x.destinatario END)"
        );
    }

    /// The `destino` the fragment lower-cases is the email channel's.
    #[test]
    fn the_lower_cased_channel_is_email() {
        assert!(bajas_match!("s").contains(&format!("s.destino = '{}'", ChannelKind::Email.destino())));
    }
}
