-- cantina-notify migration 0013: two of the staff's indexes keep only the rows their queries read.
--
-- Why: every request the service writes is inserted, then updated when sent, and that update cannot keep the row's
-- index entries (it changes indexed columns), so each index of the table takes two writes per notice unless its
-- predicate leaves the row out. Two indexes took those writes for rows their queries never read:
--
-- * `stats` and the period filters read `coalesce(fecha_solicitud, actualizado_en) >= $1`, and migration 0009
--   indexed that expression over every row. But `fecha_solicitud` defaults to now(): the service's rows, and the
--   POS's unless it writes NULL on purpose, always have it, and the expression is then just `fecha_solicitud`,
--   which its own index (0009) serves. The filters now read `fecha_solicitud >= $1 OR (fecha_solicitud IS NULL
--   AND actualizado_en >= $1)` (the same rows): the first half by 0009's index, the second by
--   `solicitudes_notificacion_sin_fecha`, which holds only the rows without a date.
-- * The failure-rate alert reads finished requests by `actualizado_en` (migration 0006's index); a `Pendiente`
--   row is never among them, so it no longer enters that index.
--
-- Plain DROP/CREATE inside the migration's transaction (CONCURRENTLY is not allowed there): DROP INDEX locks the
-- table against readers and writers until the migration commits, through both builds. At Cantina's scale (some
-- thousands of requests a day, the new indexes built over the few undated or finished rows) that is well under a
-- second; the migrations' lock_timeout (10 s) bounds the wait for the lock, and a migration that cannot get it
-- fails cleanly and is retried by the next run.

DROP INDEX IF EXISTS solicitudes_notificacion_creada;
CREATE INDEX IF NOT EXISTS solicitudes_notificacion_sin_fecha
    ON solicitudes_notificacion (actualizado_en)
    WHERE fecha_solicitud IS NULL;

DROP INDEX IF EXISTS solicitudes_notificacion_actualizado;
CREATE INDEX solicitudes_notificacion_actualizado
    ON solicitudes_notificacion (actualizado_en)
    WHERE clave_dedup IS NOT NULL AND estado IN ('Enviado', 'Error', 'Omitido');
