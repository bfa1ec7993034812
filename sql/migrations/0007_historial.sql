-- cantina-notify migration 0007: the history of every request (attempts, outcomes, delivery receipts, operator
-- actions), written by triggers so every writer is recorded without touching its code: the dispatcher, the drain,
-- the webhooks, the fallback pass, the opt-out pass, the POS and `cantina-notify requests resend|cancel`.
--
-- One row per change staff care about (estado, estado_entrega, ultimo_error, proveedor, id_proveedor, the address,
-- the service taking over a POS row, a fallback being followed, and a retry even when it repeats the previous
-- error). A dispatcher's claim, which only bumps intentos and proximo_intento, writes nothing; the outcome row that
-- follows carries the claim's attempt number in `intentos`.
--
-- The insert trigger is statement-level with a transition table: the drain inserts in batches, and one
-- INSERT ... SELECT per statement costs the batch far less than one trigger call per row. No foreign key to the request: it would add
-- a check to every insert and lock the app's deletes; the weekly clean-up deletes the history with the requests.

CREATE TABLE IF NOT EXISTS cantina_notify_historial (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id_solicitud    bigint      NOT NULL,
    registrado_en   timestamptz NOT NULL DEFAULT now(),
    -- creada, enviada, error, omitida, pendiente (back to Pendiente), reintento, en_espera (quiet hours), recibo,
    -- completada (the service took over a POS row), respaldo (the next channel of a fallback chain was created),
    -- actualizada (anything else tracked), and the operator's reenviada / cancelada.
    evento          varchar(20) NOT NULL,
    estado          varchar(20),
    estado_anterior varchar(20),
    intentos        integer,
    proveedor       varchar(30),
    id_proveedor    varchar(255),
    estado_entrega  varchar(20),
    -- The provider's answer or error (ultimo_error at that moment), or the operator's reason.
    detalle         text,
    -- Who: 'servicio' (the service's connections), 'operador: <user>' (resend/cancel), 'app: <role>[/<application>]'.
    origen          text        NOT NULL
);
CREATE INDEX IF NOT EXISTS cantina_notify_historial_solicitud
    ON cantina_notify_historial (id_solicitud, registrado_en);

-- Who is writing. A command sets cantina_notify.origen (and .evento, .detalle) with set_config(..., true) in its own
-- transaction; otherwise the service's connections are named cantina-notify* (application_name), and anything
-- else is the app. No SET clause: it names only pg_catalog functions, and without one it can be inlined into the
-- callers instead of costing a function call (and a search_path switch) per history row.
CREATE OR REPLACE FUNCTION cantina_notify_historial_origen() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        nullif(current_setting('cantina_notify.origen', true), ''),
        CASE WHEN current_setting('application_name') LIKE 'cantina-notify%' THEN 'servicio'
             ELSE 'app: ' || session_user || coalesce('/' || nullif(current_setting('application_name'), ''), '') END)
$$;

CREATE OR REPLACE FUNCTION cantina_notify_historial_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    origen  text := cantina_notify_historial_origen();
    evento  text := nullif(current_setting('cantina_notify.evento', true), '');
    detalle text := nullif(current_setting('cantina_notify.detalle', true), '');
BEGIN
    INSERT INTO cantina_notify_historial
        (id_solicitud, evento, estado, intentos, proveedor, id_proveedor, estado_entrega, detalle, origen)
    SELECT n.id_solicitud, coalesce(evento, 'creada'), n.estado, n.intentos, n.proveedor, n.id_proveedor,
           n.estado_entrega, coalesce(detalle, n.ultimo_error), origen
    FROM cantina_notify_nuevas n;
    RETURN NULL;
END $$;

-- Row-level with a WHEN clause, unlike the insert trigger: most updates are the dispatcher's claims, which change
-- nothing tracked, and a WHEN that is false costs them no function call and no capture of the changed rows (the
-- statement-level version halved the claims' throughput).
CREATE OR REPLACE FUNCTION cantina_notify_historial_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    evento  text := nullif(current_setting('cantina_notify.evento', true), '');
    detalle text := nullif(current_setting('cantina_notify.detalle', true), '');
BEGIN
    INSERT INTO cantina_notify_historial
        (id_solicitud, evento, estado, estado_anterior, intentos, proveedor, id_proveedor, estado_entrega, detalle,
         origen)
    VALUES (NEW.id_solicitud,
           coalesce(evento, CASE
               WHEN NEW.estado IS DISTINCT FROM OLD.estado THEN
                   CASE NEW.estado WHEN 'Enviado' THEN 'enviada' WHEN 'Error' THEN 'error'
                                   WHEN 'Omitido' THEN 'omitida' ELSE 'pendiente' END
               WHEN NEW.estado_entrega IS DISTINCT FROM OLD.estado_entrega THEN 'recibo'
               WHEN NEW.clave_dedup IS DISTINCT FROM OLD.clave_dedup THEN 'completada'
               WHEN NEW.respaldo_creado_en IS DISTINCT FROM OLD.respaldo_creado_en THEN 'respaldo'
               WHEN NEW.intentos < OLD.intentos THEN 'en_espera'
               WHEN NEW.estado = 'Pendiente' AND NEW.ultimo_error IS NOT NULL THEN 'reintento'
               ELSE 'actualizada' END),
           NEW.estado, OLD.estado, NEW.intentos, NEW.proveedor, NEW.id_proveedor, NEW.estado_entrega,
           coalesce(detalle, NEW.ultimo_error), cantina_notify_historial_origen());
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS cantina_notify_historial_insert ON solicitudes_notificacion;
CREATE TRIGGER cantina_notify_historial_insert
    AFTER INSERT ON solicitudes_notificacion
    REFERENCING NEW TABLE AS cantina_notify_nuevas
    FOR EACH STATEMENT EXECUTE FUNCTION cantina_notify_historial_insert();

DROP TRIGGER IF EXISTS cantina_notify_historial_update ON solicitudes_notificacion;
CREATE TRIGGER cantina_notify_historial_update
    AFTER UPDATE ON solicitudes_notificacion FOR EACH ROW
    WHEN (NEW.estado IS DISTINCT FROM OLD.estado
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
    EXECUTE FUNCTION cantina_notify_historial_update();
