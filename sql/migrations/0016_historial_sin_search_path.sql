-- cantina-notify migration 0016: the request-history triggers resolve nothing through the caller's search_path.
--
-- Why: the history triggers of migration 0007 are SECURITY DEFINER with `SET search_path FROM CURRENT` (the
-- migration's `"$user", public`) and wrote to an unqualified `cantina_notify_historial`. PostgreSQL looks up
-- relations and types in the session's temporary schema first unless the path lists it, and any role may create
-- temporary tables: a role that may write `solicitudes_notificacion` (the app's, the runtime role) made a temporary
-- `cantina_notify_historial` with a trigger of its own, touched a request, and its trigger ran with the rights of
-- the role that ran the migrations (superuser, where `postgres` ran them).
--
-- So, as migrations 0014 and 0015 did for the event triggers, every name in these bodies is written with its schema:
-- the service's tables and functions with the schema the migrations run in, built-in functions and types with
-- pg_catalog, and every operator as OPERATOR(pg_catalog.…), including the ones SQL hides: `IS DISTINCT FROM`,
-- `nullif`, `LIKE` and a simple `CASE x WHEN` look up `=`, `~~` or `<>` through the search_path, so they are spelled
-- out. `text` is not a keyword either: a temporary domain named `text` would be picked for an unqualified
-- declaration. No SET clause: the app's writes and the dispatcher's outcomes fire these triggers, and a search_path
-- switch per call costs them (migration 0015's header). tests/it/roles.rs fires every SECURITY DEFINER function
-- of the schema, found in the catalog, against look-alikes of every name its body and the functions it calls name.

DO $migration$
BEGIN
    -- Who is writing (see migration 0007). Invoker and inlinable into its callers; qualified all the same, since
    -- it runs inside the SECURITY DEFINER triggers below and in the service's own statements.
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_historial_origen() RETURNS pg_catalog.text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        CASE WHEN pg_catalog.current_setting('cantina_notify.origen', true) OPERATOR(pg_catalog.<>) ''
             THEN pg_catalog.current_setting('cantina_notify.origen', true) END,
        CASE WHEN pg_catalog.starts_with(pg_catalog.current_setting('application_name'), 'cantina-notify')
             THEN 'servicio'
             ELSE pg_catalog.concat('app: ', session_user,
                      CASE WHEN pg_catalog.current_setting('application_name') OPERATOR(pg_catalog.<>) ''
                           THEN pg_catalog.concat('/', pg_catalog.current_setting('application_name')) END)
        END)
$$
$f$, current_schema());

    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_historial_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    origen  pg_catalog.text := %1$I.cantina_notify_historial_origen();
    evento  pg_catalog.text := pg_catalog.current_setting('cantina_notify.evento', true);
    detalle pg_catalog.text := pg_catalog.current_setting('cantina_notify.detalle', true);
BEGIN
    IF evento OPERATOR(pg_catalog.=) '' THEN evento := NULL; END IF;
    IF detalle OPERATOR(pg_catalog.=) '' THEN detalle := NULL; END IF;
    -- cantina_notify_nuevas is the trigger's transition table: the parser finds it before any relation.
    INSERT INTO %1$I.cantina_notify_historial
        (id_solicitud, evento, estado, intentos, proveedor, id_proveedor, estado_entrega, detalle, origen)
    SELECT n.id_solicitud, coalesce(evento, 'creada'), n.estado, n.intentos, n.proveedor, n.id_proveedor,
           n.estado_entrega, coalesce(detalle, n.ultimo_error), origen
    FROM cantina_notify_nuevas n;
    RETURN NULL;
END $$
$f$, current_schema());

    -- `(a IS NULL) <> (b IS NULL) OR a <> b` is `a IS DISTINCT FROM b` where a CASE tests it: when both are
    -- null it is null, which a WHEN takes as false.
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_historial_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    evento  pg_catalog.text := pg_catalog.current_setting('cantina_notify.evento', true);
    detalle pg_catalog.text := pg_catalog.current_setting('cantina_notify.detalle', true);
BEGIN
    IF evento OPERATOR(pg_catalog.=) '' THEN evento := NULL; END IF;
    IF detalle OPERATOR(pg_catalog.=) '' THEN detalle := NULL; END IF;
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
