-- cantina-notify migration 0011: the service records its sends' history rows itself, in the same statement.
--
-- Why: the history trigger of migration 0007 is a row-level PL/pgSQL call (SECURITY DEFINER, its own search_path,
-- the origin looked up per row) and cost the statement that records sends about as much as the update itself
-- (0.1 ms of 0.2 per row in EXPLAIN ANALYZE); the dispatcher records every send, so the backlog drain paid it per
-- notice. The send-recording statement now inserts the same history rows set-based (a data-modifying WITH) and
-- marks its transaction with `SET LOCAL cantina_notify.historial = 'propio'`; the trigger skips rows changed by a
-- transaction so marked. Every other writer (the app, the POS, the operator's tools, retries, errors, receipts) is
-- still recorded by the trigger, unchanged.

DROP TRIGGER IF EXISTS cantina_notify_historial_update ON solicitudes_notificacion;
CREATE TRIGGER cantina_notify_historial_update
    AFTER UPDATE ON solicitudes_notificacion FOR EACH ROW
    WHEN ((NEW.estado IS DISTINCT FROM OLD.estado
       OR NEW.estado_entrega IS DISTINCT FROM OLD.estado_entrega
       OR NEW.ultimo_error IS DISTINCT FROM OLD.ultimo_error
       OR NEW.proveedor IS DISTINCT FROM OLD.proveedor
       OR NEW.id_proveedor IS DISTINCT FROM OLD.id_proveedor
       OR NEW.destino IS DISTINCT FROM OLD.destino
       OR NEW.destinatario IS DISTINCT FROM OLD.destinatario
       OR NEW.clave_dedup IS DISTINCT FROM OLD.clave_dedup
       OR NEW.respaldo_creado_en IS DISTINCT FROM OLD.respaldo_creado_en
       -- A retry outcome that repeats the previous attempt's error: same attempt number (a claim adds one, a
       -- release or a deferral takes it back), a new due time, an error.
       OR (NEW.estado = 'Pendiente' AND NEW.intentos = OLD.intentos AND NEW.intentos > 0
           AND NEW.ultimo_error IS NOT NULL AND NEW.proximo_intento IS DISTINCT FROM OLD.proximo_intento)
       -- An operator's action is always recorded, even when it changes none of the above.
       OR coalesce(current_setting('cantina_notify.evento', true), '') <> '')
      -- Not twice: a statement that writes its own history rows (see above).
      AND current_setting('cantina_notify.historial', true) IS DISTINCT FROM 'propio')
    EXECUTE FUNCTION cantina_notify_historial_update();
