-- cantina-notify migration 0012: the service records its new requests' history rows itself, in the statement that
-- inserts them, as migration 0011 did for its sends.
--
-- Why: the statement-level insert trigger of migration 0007 (a PL/pgSQL call, SECURITY DEFINER, its own
-- search_path) cost each drain transaction about 50 µs, on the path from the app's commit to the provider; the
-- statement that inserts the requests now also writes their `creada` rows (a data-modifying WITH), and only when
-- its transaction is marked `cantina_notify.historial = 'propio'`, the same mark the trigger below skips. So
-- exactly one of the two writes them: a transaction that is not marked (the app, the POS, the operator's tools, an
-- older build) is recorded by the trigger, unchanged.

DROP TRIGGER IF EXISTS cantina_notify_historial_insert ON solicitudes_notificacion;
CREATE TRIGGER cantina_notify_historial_insert
    AFTER INSERT ON solicitudes_notificacion
    REFERENCING NEW TABLE AS cantina_notify_nuevas
    FOR EACH STATEMENT
    WHEN (current_setting('cantina_notify.historial', true) IS DISTINCT FROM 'propio')
    EXECUTE FUNCTION cantina_notify_historial_insert();
