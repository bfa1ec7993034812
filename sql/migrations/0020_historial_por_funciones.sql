-- cantina-notify migration 0020: the runtime role writes history rows only through these two functions of the
-- owner's, which copy them from the requests themselves.
--
-- Why: the drain and the send-recording statement write their own `creada` and `enviada` rows (migrations 0011,
-- 0012) to spare the triggers' cost on the hot path, and so the runtime role held INSERT on the history table:
-- whoever held its credentials could write any history (an operator's cancellation that never happened, a send
-- to another address). Now it holds no INSERT there. The functions take only which requests (by `clave_dedup` or
-- by id) and read every value from the request row, and only from a row version this very transaction wrote
-- (`xmin` is the caller's transaction id): they record what the caller did, never what it says. In a session
-- that is not the service's, or without the transaction's 'propio' mark (the triggers record it then), they write
-- nothing. Called in the statement after the write (a function cannot see rows its own statement changed),
-- pipelined in the same round trip.

DO $migration$
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_historial_creadas(claves pg_catalog.text[]) RETURNS pg_catalog.int4
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    n pg_catalog.int4;
BEGIN
    IF NOT %1$I.cantina_notify_sesion_propia()
       OR pg_catalog.current_setting('cantina_notify.historial', true) IS NULL
       OR pg_catalog.current_setting('cantina_notify.historial', true) OPERATOR(pg_catalog.<>) 'propio' THEN
        RETURN 0;
    END IF;
    INSERT INTO %1$I.cantina_notify_historial
        (id_solicitud, evento, estado, intentos, proveedor, id_proveedor, estado_entrega, detalle, origen)
    SELECT s.id_solicitud, 'creada', s.estado, s.intentos, s.proveedor, s.id_proveedor, s.estado_entrega,
           coalesce(%1$I.cantina_notify_historial_marca('cantina_notify.detalle'), s.ultimo_error),
           %1$I.cantina_notify_historial_origen()
    FROM %1$I.solicitudes_notificacion s
    WHERE s.clave_dedup OPERATOR(pg_catalog.=) ANY (claves)
      AND s.xmin OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()::pg_catalog.xid;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$
$f$, current_schema());

    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_historial_enviadas(ids pg_catalog.int8[]) RETURNS pg_catalog.int4
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    n pg_catalog.int4;
BEGIN
    IF NOT %1$I.cantina_notify_sesion_propia()
       OR pg_catalog.current_setting('cantina_notify.historial', true) IS NULL
       OR pg_catalog.current_setting('cantina_notify.historial', true) OPERATOR(pg_catalog.<>) 'propio' THEN
        RETURN 0;
    END IF;
    INSERT INTO %1$I.cantina_notify_historial
        (id_solicitud, evento, estado, estado_anterior, intentos, proveedor, id_proveedor, estado_entrega, detalle,
         origen)
    SELECT s.id_solicitud, 'enviada', s.estado, 'Pendiente', s.intentos, s.proveedor, s.id_proveedor,
           s.estado_entrega, s.ultimo_error, %1$I.cantina_notify_historial_origen()
    FROM %1$I.solicitudes_notificacion s
    WHERE s.id_solicitud OPERATOR(pg_catalog.=) ANY (ids) AND s.estado OPERATOR(pg_catalog.=) 'Enviado'
      AND s.xmin OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()::pg_catalog.xid;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$
$f$, current_schema());
END $migration$;
