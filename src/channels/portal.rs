//! Portal notices: rows in `notificacion` for the parent's active portal accounts.
