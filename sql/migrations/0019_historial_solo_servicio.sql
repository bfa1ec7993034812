-- cantina-notify migration 0019: the history marks count only in the service's own sessions.
--
-- Why: the service's statements mark their transactions (`cantina_notify.historial = 'propio'`: they write their
-- own history rows, migrations 0011 and 0012) and name who acts (`cantina_notify.origen`, `.evento`, `.detalle`,
-- and `application_name` 'cantina-notify…' for 'servicio'). Any session could set them: the app's role could make
-- its changes to a request leave no history, or pass them off as the service's or an operator's.
--
-- `cantina_notify_sesion_propia()` says whether this session is the service's: its login role is the runtime role
-- (`migrate --grant-to`, rewritten by sql/grants/runtime.sql on every run that names one) or, until one is named,
-- the role that ran this migration. Elsewhere the marks are ignored: the triggers record the change, as 'app:
-- <role>'. An inlinable SQL function: in the triggers' WHEN clauses it costs a comparison, not a call.

DO $migration$
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_sesion_propia() RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT session_user OPERATOR(pg_catalog.=) %2$L::pg_catalog.name $$
$f$, current_schema(), current_user);

    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_historial_origen() RETURNS pg_catalog.text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN %1$I.cantina_notify_sesion_propia()
         AND pg_catalog.current_setting('cantina_notify.origen', true) OPERATOR(pg_catalog.<>) ''
            THEN pg_catalog.current_setting('cantina_notify.origen', true)
        WHEN %1$I.cantina_notify_sesion_propia()
         AND pg_catalog.starts_with(pg_catalog.current_setting('application_name'), 'cantina-notify')
            THEN 'servicio'
        ELSE pg_catalog.concat('app: ', session_user,
                 CASE WHEN pg_catalog.current_setting('application_name') OPERATOR(pg_catalog.<>) ''
                      THEN pg_catalog.concat('/', pg_catalog.current_setting('application_name')) END)
    END
$$
$f$, current_schema());

    -- The event and the detail an operator's command names: only from the service's sessions.
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_historial_marca(nombre pg_catalog.text) RETURNS pg_catalog.text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN %1$I.cantina_notify_sesion_propia()
                 AND pg_catalog.current_setting(nombre, true) OPERATOR(pg_catalog.<>) ''
                THEN pg_catalog.current_setting(nombre, true) END
$$
$f$, current_schema());

    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_historial_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    origen  pg_catalog.text := %1$I.cantina_notify_historial_origen();
    evento  pg_catalog.text := %1$I.cantina_notify_historial_marca('cantina_notify.evento');
    detalle pg_catalog.text := %1$I.cantina_notify_historial_marca('cantina_notify.detalle');
BEGIN
    -- cantina_notify_nuevas is the trigger's transition table: the parser finds it before any relation.
    INSERT INTO %1$I.cantina_notify_historial
        (id_solicitud, evento, estado, intentos, proveedor, id_proveedor, estado_entrega, detalle, origen)
    SELECT n.id_solicitud, coalesce(evento, 'creada'), n.estado, n.intentos, n.proveedor, n.id_proveedor,
           n.estado_entrega, coalesce(detalle, n.ultimo_error), origen
    FROM cantina_notify_nuevas n;
    RETURN NULL;
END $$
$f$, current_schema());

    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_historial_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    evento  pg_catalog.text := %1$I.cantina_notify_historial_marca('cantina_notify.evento');
    detalle pg_catalog.text := %1$I.cantina_notify_historial_marca('cantina_notify.detalle');
BEGIN
    INSERT INTO %1$I.cantina_notify_historial
        (id_solicitud, evento, estado, estado_anterior, intentos, proveedor, id_proveedor, estado_entrega, detalle,
         origen)
    VALUES (NEW.id_solicitud,
           coalesce(evento, CASE
               WHEN (NEW.estado IS NULL) OPERATOR(pg_catalog.<>) (OLD.estado IS NULL)
                 OR NEW.estado OPERATOR(pg_catalog.<>) OLD.estado THEN
                   CASE WHEN NEW.estado OPERATOR(pg_catalog.=) 'Enviado' THEN 'enviada'
                        WHEN NEW.estado OPERATOR(pg_catalog.=) 'Error' THEN 'error'
                        WHEN NEW.estado OPERATOR(pg_catalog.=) 'Omitido' THEN 'omitida'
                        ELSE 'pendiente' END
               WHEN (NEW.estado_entrega IS NULL) OPERATOR(pg_catalog.<>) (OLD.estado_entrega IS NULL)
                 OR NEW.estado_entrega OPERATOR(pg_catalog.<>) OLD.estado_entrega THEN 'recibo'
               WHEN (NEW.clave_dedup IS NULL) OPERATOR(pg_catalog.<>) (OLD.clave_dedup IS NULL)
                 OR NEW.clave_dedup OPERATOR(pg_catalog.<>) OLD.clave_dedup THEN 'completada'
               WHEN (NEW.respaldo_creado_en IS NULL) OPERATOR(pg_catalog.<>) (OLD.respaldo_creado_en IS NULL)
                 OR NEW.respaldo_creado_en OPERATOR(pg_catalog.<>) OLD.respaldo_creado_en THEN 'respaldo'
               WHEN NEW.intentos OPERATOR(pg_catalog.<) OLD.intentos THEN 'en_espera'
               WHEN NEW.estado OPERATOR(pg_catalog.=) 'Pendiente' AND NEW.ultimo_error IS NOT NULL THEN 'reintento'
               ELSE 'actualizada' END),
           NEW.estado, OLD.estado, NEW.intentos, NEW.proveedor, NEW.id_proveedor, NEW.estado_entrega,
           coalesce(detalle, NEW.ultimo_error), %1$I.cantina_notify_historial_origen());
    RETURN NULL;
END $$
$f$, current_schema());
END $migration$;

-- The marks that skip the triggers (a statement that writes its own history rows) count only in the service's
-- sessions; in any other the triggers record the change.
DROP TRIGGER IF EXISTS cantina_notify_historial_insert ON solicitudes_notificacion;
CREATE TRIGGER cantina_notify_historial_insert
    AFTER INSERT ON solicitudes_notificacion
    REFERENCING NEW TABLE AS cantina_notify_nuevas
    FOR EACH STATEMENT
    WHEN (current_setting('cantina_notify.historial', true) IS DISTINCT FROM 'propio'
          OR NOT cantina_notify_sesion_propia())
    EXECUTE FUNCTION cantina_notify_historial_insert();

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
       -- A change of what is sent (migration 0018's signature covers it): always recorded.
       OR NEW.datos IS DISTINCT FROM OLD.datos
       OR NEW.tipo IS DISTINCT FROM OLD.tipo
       -- A retry outcome that repeats the previous attempt's error: same attempt number (a claim adds one, a
       -- release or a deferral takes it back), a new due time, an error.
       OR (NEW.estado = 'Pendiente' AND NEW.intentos = OLD.intentos AND NEW.intentos > 0
           AND NEW.ultimo_error IS NOT NULL AND NEW.proximo_intento IS DISTINCT FROM OLD.proximo_intento)
       -- An operator's action is always recorded, even when it changes none of the above.
       OR coalesce(current_setting('cantina_notify.evento', true), '') <> '')
      -- Not twice: a statement of the service's that writes its own history rows (migration 0011).
      AND (current_setting('cantina_notify.historial', true) IS DISTINCT FROM 'propio'
           OR NOT cantina_notify_sesion_propia()))
    EXECUTE FUNCTION cantina_notify_historial_update();
