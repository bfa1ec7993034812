-- cantina-notify migration 0001: the service's own tables and the columns it adds to solicitudes_notificacion.
-- Additive only: nothing here rewrites or drops Cantina data.

-- One row of settings the triggers read: the default low-balance threshold (kept current by the service from
-- CANTINA__RULES__SALDO_BAJO__UMBRAL) and whether a listener wants a NOTIFY (false while it is busy draining,
-- so a burst of app commits does not serialise on NOTIFY's commit lock).
CREATE TABLE IF NOT EXISTS cantina_notify_ajustes (
    id                boolean PRIMARY KEY DEFAULT true CHECK (id),
    umbral_saldo_bajo bigint NOT NULL DEFAULT 5000 CHECK (umbral_saldo_bajo > 0),
    despertar         boolean NOT NULL DEFAULT true,
    actualizado_en    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO cantina_notify_ajustes (id) VALUES (true) ON CONFLICT (id) DO NOTHING;

-- The outbox: one lean row per change that may need a notice, written by the triggers in the app's own
-- transaction. The rules read the current rows themselves; a balance change carries its two balances.
CREATE TABLE IF NOT EXISTS cantina_notify_eventos (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tipo           varchar(30) NOT NULL,
    id_ref         bigint,
    nro_tarjeta    varchar(20),
    saldo_anterior bigint,
    saldo_nuevo    bigint,
    creado_en      timestamptz NOT NULL DEFAULT now(),
    procesado_en   timestamptz,
    -- Why an event produced no request (card without a student, not below the threshold any more, ...).
    resultado      text
);
CREATE INDEX IF NOT EXISTS cantina_notify_eventos_pendientes
    ON cantina_notify_eventos (id) WHERE procesado_en IS NULL;

-- No grants to the app's roles: the triggers write events as the owner of these tables (SECURITY DEFINER,
-- migration 0002), so no other role can forge an event.

-- The app's CHECK constraints this migration replaces, verbatim, so a rollback can restore them exactly.
CREATE TABLE IF NOT EXISTS cantina_notify_restricciones_originales (
    tabla      text NOT NULL,
    nombre     text NOT NULL,
    definicion text NOT NULL,
    guardada_en timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tabla, nombre)
);

ALTER TABLE solicitudes_notificacion
    ADD COLUMN IF NOT EXISTS tipo            varchar(30),
    ADD COLUMN IF NOT EXISTS clave_dedup     varchar(200),
    ADD COLUMN IF NOT EXISTS destinatario    varchar(255),
    ADD COLUMN IF NOT EXISTS datos           jsonb,
    ADD COLUMN IF NOT EXISTS intentos        integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS proximo_intento timestamptz,
    ADD COLUMN IF NOT EXISTS ultimo_error    text,
    ADD COLUMN IF NOT EXISTS proveedor       varchar(30),
    ADD COLUMN IF NOT EXISTS id_proveedor    varchar(255),
    ADD COLUMN IF NOT EXISTS estado_entrega  varchar(20),
    ADD COLUMN IF NOT EXISTS actualizado_en  timestamptz;

-- One request per notice, whoever creates it and however often: the rules insert with ON CONFLICT DO NOTHING.
-- Rows the POS inserts by hand have no key until the service completes them (NULLs do not collide).
CREATE UNIQUE INDEX IF NOT EXISTS solicitudes_notificacion_clave_dedup
    ON solicitudes_notificacion (clave_dedup);
-- The dispatcher's queue: only the service's own pending rows.
CREATE INDEX IF NOT EXISTS solicitudes_notificacion_cola
    ON solicitudes_notificacion (proximo_intento)
    WHERE estado = 'Pendiente' AND clave_dedup IS NOT NULL;

-- Widen the app's enumerations: estado gains 'Omitido' (deliberately not sent, with the reason) and destino
-- gains 'Portal'. The existing CHECKs may have any name, so find them by what they check.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conname, pg_get_constraintdef(oid) AS def
        FROM pg_constraint
        WHERE conrelid = 'solicitudes_notificacion'::regclass AND contype = 'c'
    LOOP
        IF (c.def ~ '\mestado\M' AND c.def !~ 'Omitido') OR (c.def ~ '\mdestino\M' AND c.def !~ 'Portal') THEN
            INSERT INTO cantina_notify_restricciones_originales (tabla, nombre, definicion)
            VALUES ('solicitudes_notificacion', c.conname, c.def) ON CONFLICT DO NOTHING;
            EXECUTE format('ALTER TABLE solicitudes_notificacion DROP CONSTRAINT %I', c.conname);
        END IF;
    END LOOP;
END $$;

ALTER TABLE solicitudes_notificacion
    ADD CONSTRAINT cantina_notify_estado_check
        CHECK (estado IN ('Pendiente', 'Enviado', 'Error', 'Omitido')) NOT VALID,
    ADD CONSTRAINT cantina_notify_destino_check
        CHECK (destino IS NULL OR destino IN ('SMS', 'WhatsApp', 'Email', 'Portal')) NOT VALID;
-- Existing rows satisfied the narrower checks, so validation cannot fail. (Inside this migration's transaction it
-- runs under the ALTER's lock; `migrate` sets a lock_timeout so a long dashboard query makes it fail and retry
-- instead of queueing the POS behind it.)
ALTER TABLE solicitudes_notificacion VALIDATE CONSTRAINT cantina_notify_estado_check;
ALTER TABLE solicitudes_notificacion VALIDATE CONSTRAINT cantina_notify_destino_check;
