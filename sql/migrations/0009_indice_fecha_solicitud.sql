-- cantina-notify migration 0009: the staff tools filter requests by creation time, which had no index (every
-- `stats`, `requests list` and daily summary read the whole table).
--
-- Plain CREATE INDEX (not CONCURRENTLY): migrations run inside a transaction, where CONCURRENTLY is not allowed,
-- under `lock_timeout = 10s`. The build blocks writes to the table while it runs, which at Cantina's scale (some
-- thousands of rows a day) is well under a second; a lock it cannot get within 10 s fails the migration cleanly.

-- The daily summary: `fecha_solicitud >= $1 AND fecha_solicitud < $2`.
CREATE INDEX IF NOT EXISTS solicitudes_notificacion_fecha_solicitud
    ON solicitudes_notificacion (fecha_solicitud);

-- `stats` and `requests list --since`: `coalesce(fecha_solicitud, actualizado_en) >= $1`. fecha_solicitud is a
-- nullable column of the POS's table, so they keep falling back to actualizado_en; the expression needs its own
-- index (the planner uses an index only for the exact expression).
CREATE INDEX IF NOT EXISTS solicitudes_notificacion_creada
    ON solicitudes_notificacion ((coalesce(fecha_solicitud, actualizado_en)));
