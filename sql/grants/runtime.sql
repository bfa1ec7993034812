-- cantina-notify: the runtime role's privileges (least privilege).
--
-- Two roles: the migration role owns the service's tables and trigger functions and runs `cantina-notify migrate`;
-- the runtime role runs `cantina-notify run`. `migrate` applies this file at the end of every run when a runtime role
-- is configured (CANTINA__DATABASE__RUNTIME_ROLE, or `migrate --grant-to ROLE`), so what a new version adds here is
-- granted by the same run that creates it.
--
-- The role's name arrives in the setting cantina_notify.rol_ejecucion (set_config in the same transaction) and is
-- only ever spliced into SQL with %I; tables are spliced as regclass (quoted by PostgreSQL).
--
-- The result is exact, not cumulative: on every table listed below and on every cantina_notify_* table, whatever the
-- migration role granted the runtime role before (table and column privileges) is revoked first, in the same
-- transaction. A privilege dropped from this file is gone after the next `migrate`, and no session sees a half set.
--
-- The triggers (migration 0002) are SECURITY DEFINER functions owned by the migration role: the app's roles and the
-- runtime role need nothing on the outbox for them, and nobody but the triggers can write an event.

DO $grants$
DECLARE
    rol text := nullif(btrim(current_setting('cantina_notify.rol_ejecucion', true)), '');
    -- [table, privilege, columns ('' = the whole table)]. Each line is what some query of the service needs.
    privilegios CONSTANT text[][] := ARRAY[
        -- Cantina tables the rules, the sweeps and the fallback read.
        ['clientes',                        'SELECT', ''],
        ['hijos',                           'SELECT', ''],
        ['tarjetas',                        'SELECT', ''],
        ['cargas_saldo',                    'SELECT', ''],
        ['ventas',                          'SELECT', ''],   -- cuenta_pendiente sweep
        ['autorizacion_saldo_negativo',     'SELECT', ''],   -- recordatorio_deuda sweep
        ['usuario_portal',                  'SELECT', ''],   -- preferences, portal channel
        ['preferencia_notificacion',        'SELECT', ''],
        -- The spending notices (opt-in): what each child bought, for the families that switched them on. Only these
        -- columns: not who sold it, nor the balances before and after (the card's current balance is in tarjetas).
        ['consumos_tarjeta',                'SELECT', 'id_consumo, nro_tarjeta, fecha_consumo, monto_consumido, detalle'],
        -- A low-balance notice that went out stamps the card (the app, the rule and the daily sweep read it).
        ['tarjetas',                        'UPDATE', 'ultima_notificacion_saldo'],
        -- The requests: the service inserts its own, completes the POS's manual rows, records outcomes and
        -- receipts, and the weekly clean-up deletes its own finished rows. Never id_solicitud, fecha_solicitud,
        -- nro_tarjeta, nor the chain links once written.
        ['solicitudes_notificacion',        'SELECT', ''],
        ['solicitudes_notificacion',        'INSERT', 'id_cliente, nro_tarjeta, saldo_alerta, mensaje, destino, estado, '
                                                      'tipo, clave_dedup, destinatario, datos, ultimo_error, '
                                                      'canales_respaldo, id_solicitud_origen, intentos, '
                                                      'proximo_intento, actualizado_en, firma'],
        ['solicitudes_notificacion',        'UPDATE', 'id_cliente, saldo_alerta, mensaje, destino, estado, fecha_envio, '
                                                      'tipo, clave_dedup, destinatario, datos, intentos, '
                                                      'proximo_intento, ultimo_error, proveedor, id_proveedor, '
                                                      'estado_entrega, actualizado_en, espera_recibo_hasta, '
                                                      'respaldo_creado_en, firma'],
        ['solicitudes_notificacion',        'DELETE', ''],
        -- Portal notices (RETURNING the new id as the provider's message id).
        ['notificacion',                    'INSERT', 'id_usuario_portal, tipo, titulo, mensaje, fecha_envio'],
        ['notificacion',                    'SELECT', 'id_notificacion'],
        -- Staff alerts: one open SISTEMA alert per incident, resolved when it is over.
        ['alertas_sistema',                 'SELECT', ''],
        ['alertas_sistema',                 'INSERT', 'tipo, mensaje, estado'],
        ['alertas_sistema',                 'UPDATE', 'estado, fecha_resolucion, observaciones'],
        -- The service's own tables. The outbox: read, marked done, cleaned up; never written (no forged events).
        ['cantina_notify_eventos',          'SELECT', ''],
        ['cantina_notify_eventos',          'UPDATE', 'procesado_en, resultado'],
        ['cantina_notify_eventos',          'DELETE', ''],
        ['cantina_notify_ajustes',          'SELECT', ''],
        ['cantina_notify_ajustes',          'UPDATE', 'umbral_saldo_bajo, despertar, actualizado_en'],
        ['cantina_notify_ejecuciones',      'SELECT', ''],
        ['cantina_notify_ejecuciones',      'INSERT', ''],
        ['cantina_notify_ejecuciones',      'UPDATE', ''],
        ['cantina_notify_ejecuciones',      'DELETE', ''],
        ['cantina_notify_bajas',            'SELECT', ''],
        ['cantina_notify_bajas',            'INSERT', ''],
        ['cantina_notify_bajas',            'UPDATE', ''],
        -- Inbound message ids already applied (migration 0017): recorded with the change, pruned by the clean-up.
        ['cantina_notify_mensajes_entrantes', 'SELECT', ''],
        ['cantina_notify_mensajes_entrantes', 'INSERT', ''],
        ['cantina_notify_mensajes_entrantes', 'DELETE', ''],
        -- Request history: written only by the owner's functions (the triggers of migration 0007, and the two of
        -- migration 0020 the drain and the send-recording statement call, which copy the rows themselves); read by
        -- `requests show`, deleted with its requests by the weekly clean-up. No INSERT: no history of its own.
        ['cantina_notify_historial',        'SELECT', ''],
        ['cantina_notify_historial',        'DELETE', ''],
        -- Operator pauses: every replica reads them each second; `channel pause|resume` (run with the same URL)
        -- adds and removes them and appends to the history.
        ['cantina_notify_canales_pausados', 'SELECT', ''],
        ['cantina_notify_canales_pausados', 'INSERT', ''],
        ['cantina_notify_canales_pausados', 'DELETE', ''],
        ['cantina_notify_pausas_historial', 'SELECT', ''],
        ['cantina_notify_pausas_historial', 'INSERT', 'destino, accion, motivo, por, en'],
        -- Each replica's channel states (migration 0021): it upserts its own rows (the heartbeat), deletes them when
        -- it stops and deletes those of replicas long silent; `channel list` and `stats` read them.
        ['cantina_notify_estado_canales',   'SELECT', ''],
        ['cantina_notify_estado_canales',   'INSERT', 'replica, destino, configurado, proveedor, estado, motivo, desde, proxima_prueba, visto_en'],
        ['cantina_notify_estado_canales',   'UPDATE', 'configurado, proveedor, estado, motivo, desde, proxima_prueba, visto_en'],
        ['cantina_notify_estado_canales',   'DELETE', ''],
        -- The parents' explicit choices (migration 0022): the rules read them; `preferences set` (run with the same
        -- URL, like `channel pause`) writes them.
        ['cantina_notify_preferencias_cliente', 'SELECT', ''],
        ['cantina_notify_preferencias_cliente', 'INSERT', ''],
        ['cantina_notify_preferencias_cliente', 'UPDATE', 'activo, cambiado_en, cambiado_por'],
        ['cantina_notify_preferencias_cliente', 'DELETE', ''],
        -- The family's daily scheduled message (migration 0023): the sweeps lock, insert and raise a day's row, and
        -- record each item they sent; the clean-up deletes old rows.
        ['cantina_notify_mensaje_diario',   'SELECT', ''],
        ['cantina_notify_mensaje_diario',   'INSERT', ''],
        ['cantina_notify_mensaje_diario',   'UPDATE', 'urgencia, actualizado_en'],
        ['cantina_notify_mensaje_diario',   'DELETE', ''],
        ['cantina_notify_avisos_enviados',  'SELECT', ''],
        ['cantina_notify_avisos_enviados',  'INSERT', ''],
        ['cantina_notify_avisos_enviados',  'DELETE', ''],
        -- `run` checks the database is migrated; only `migrate` writes the ledger.
        ['cantina_notify_migraciones',      'SELECT', ''],
        -- The requests pending when migration 0018 ran: signed at the next start, then taken off the list. Only
        -- the migration adds to it.
        ['cantina_notify_sin_firma',        'SELECT', ''],
        ['cantina_notify_sin_firma',        'DELETE', '']
        -- cantina_notify_restricciones_originales, the rest of consumos_tarjeta, every other table: nothing.
    ];
    fila     text[];
    rel      regclass;
    columnas text;
    tablas   regclass[] := '{}';
    rol_oid  oid;
    r        record;
BEGIN
    IF rol IS NULL THEN
        RAISE EXCEPTION 'no runtime role given (cantina_notify.rol_ejecucion is empty)';
    END IF;
    SELECT oid INTO rol_oid FROM pg_roles WHERE rolname = rol;
    IF rol_oid IS NULL THEN
        RAISE EXCEPTION 'role % does not exist', quote_ident(rol)
            USING HINT = format('create it first: CREATE ROLE %I LOGIN PASSWORD ''…''', rol);
    END IF;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = rol) THEN
        RAISE EXCEPTION 'role % is a superuser: a runtime role must be an ordinary role', quote_ident(rol);
    END IF;
    IF rol IN (current_user, session_user) THEN
        RAISE EXCEPTION 'role % is the role running migrate: the runtime role must be a separate role', quote_ident(rol);
    END IF;

    -- Every table the file names, plus the service's own tables (so one dropped from the list loses its grants).
    FOREACH fila SLICE 1 IN ARRAY privilegios LOOP
        rel := to_regclass(quote_ident(fila[1]));
        IF rel IS NULL THEN
            RAISE EXCEPTION 'table % not found (search_path: %)', fila[1], current_setting('search_path');
        END IF;
        IF NOT rel = ANY (tablas) THEN
            tablas := tablas || rel;
        END IF;
    END LOOP;
    FOR r IN
        SELECT c.oid::regclass AS tabla FROM pg_class c
        WHERE c.relname LIKE 'cantina\_notify\_%' AND c.relkind IN ('r', 'p') AND pg_table_is_visible(c.oid)
    LOOP
        IF NOT r.tabla = ANY (tablas) THEN
            tablas := tablas || r.tabla;
        END IF;
    END LOOP;

    -- A member of a table's owner has the owner's rights whatever is granted here.
    FOR r IN
        SELECT c.oid::regclass AS tabla, c.relowner FROM pg_class c WHERE c.oid = ANY (tablas::oid[])
    LOOP
        IF pg_has_role(rol_oid, r.relowner, 'MEMBER') THEN
            RAISE EXCEPTION 'role % is (a member of) %, the owner of %: the runtime role must not own the tables',
                quote_ident(rol), quote_ident(pg_get_userbyid(r.relowner)), r.tabla;
        END IF;
    END LOOP;

    -- Start from nothing on these tables: table privileges, column privileges, and the sequences behind them.
    FOR r IN
        SELECT c.oid::regclass AS tabla,
               (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols
        FROM pg_class c WHERE c.oid = ANY (tablas::oid[])
    LOOP
        EXECUTE format('REVOKE ALL ON TABLE %s FROM %I', r.tabla, rol);
        EXECUTE format('REVOKE ALL (%s) ON TABLE %s FROM %I', r.cols, r.tabla, rol);
    END LOOP;
    FOR r IN
        SELECT d.objid::regclass AS seq FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.refobjid = ANY (tablas::oid[]) AND d.deptype IN ('a', 'i')
    LOOP
        EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %I', r.seq, rol);
    END LOOP;

    -- Reach the database and the tables' schemas; create nothing in them. Granted only when missing (PUBLIC usually
    -- has CONNECT and USAGE on public), so a migration role that does not own the database or schema is not stopped.
    IF NOT has_database_privilege(rol_oid, current_database(), 'CONNECT') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), rol);
    END IF;
    FOR r IN
        SELECT n.oid, n.oid::regnamespace AS esquema, n.nspacl FROM pg_namespace n
        WHERE n.oid IN (SELECT c.relnamespace FROM pg_class c WHERE c.oid = ANY (tablas::oid[]))
    LOOP
        IF NOT has_schema_privilege(rol_oid, r.oid, 'USAGE') THEN
            EXECUTE format('GRANT USAGE ON SCHEMA %s TO %I', r.esquema, rol);
        END IF;
        IF EXISTS (SELECT 1 FROM aclexplode(r.nspacl) x WHERE x.grantee = rol_oid AND x.privilege_type = 'CREATE') THEN
            EXECUTE format('REVOKE CREATE ON SCHEMA %s FROM %I', r.esquema, rol);
        END IF;
        IF has_schema_privilege(rol_oid, r.oid, 'CREATE') THEN
            RAISE WARNING 'role % may still create objects in schema % (through PUBLIC or another role)',
                quote_ident(rol), r.esquema
                USING HINT = format('before PostgreSQL 15 everyone may create in public: REVOKE CREATE ON SCHEMA %s FROM PUBLIC',
                                    r.esquema);
        END IF;
    END LOOP;

    FOREACH fila SLICE 1 IN ARRAY privilegios LOOP
        rel := to_regclass(quote_ident(fila[1]));
        IF fila[2] NOT IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE') THEN
            RAISE EXCEPTION 'unexpected privilege % in the grants list', fila[2];
        END IF;
        IF fila[3] = '' THEN
            EXECUTE format('GRANT %s ON TABLE %s TO %I', fila[2], rel, rol);
        ELSE
            SELECT string_agg(quote_ident(btrim(c)), ', ') INTO columnas FROM unnest(string_to_array(fila[3], ',')) c;
            EXECUTE format('GRANT %s (%s) ON TABLE %s TO %I', fila[2], columnas, rel, rol);
        END IF;
        -- A serial column's default calls nextval(), which needs USAGE on its sequence; identity columns do not.
        IF fila[2] = 'INSERT' THEN
            FOR r IN
                SELECT pg_get_serial_sequence(rel::text, a.attname) AS seq FROM pg_attribute a
                WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity = ''
                  AND pg_get_serial_sequence(rel::text, a.attname) IS NOT NULL
            LOOP
                EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', r.seq, rol);
            END LOOP;
        END IF;
    END LOOP;

    -- The owner's functions it calls: exactly these (every other SECURITY DEFINER function is fired by triggers,
    -- which need no EXECUTE; migrate revokes PUBLIC's).
    FOR r IN
        SELECT p.oid::regprocedure AS f FROM pg_proc p
        WHERE p.prosecdef AND p.proname LIKE 'cantina\_notify\_%'
          AND p.pronamespace = (SELECT c.relnamespace FROM pg_class c WHERE c.oid = 'solicitudes_notificacion'::regclass)
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I', r.f, rol);
    END LOOP;
    -- The drain's and the send-recording statement's own history rows (migration 0020).
    EXECUTE format('GRANT EXECUTE ON FUNCTION cantina_notify_historial_creadas(text[]), '
                   'cantina_notify_historial_enviadas(int8[]) TO %I', rol);

    -- The history marks count only in this role's sessions (migration 0019).
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION %I.cantina_notify_sesion_propia() RETURNS boolean LANGUAGE sql STABLE '
        'AS $$ SELECT session_user OPERATOR(pg_catalog.=) %L::pg_catalog.name $$',
        (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = 'solicitudes_notificacion'::regclass),
        rol);
END
$grants$;
