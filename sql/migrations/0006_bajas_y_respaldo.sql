-- cantina-notify migration 0006: opt-outs per address, and the columns that link a fallback chain.

-- An address that asked for no more messages on a channel (replied STOP to an SMS, BAJA on WhatsApp, reported an
-- email as spam or unsubscribed through SendGrid). While `fecha_alta` is NULL the opt-out holds: requests to that
-- address on that channel are recorded `Omitido`. Opting back in (START, ALTA) sets `fecha_alta`; the row stays as
-- the history staff can read.
CREATE TABLE IF NOT EXISTS cantina_notify_bajas (
    destino      varchar(20)  NOT NULL CHECK (destino IN ('SMS', 'WhatsApp', 'Email')),
    -- As stored in solicitudes_notificacion.destinatario: E.164 for phones, the address for email (lower case).
    destinatario varchar(255) NOT NULL,
    motivo       text         NOT NULL,
    proveedor    varchar(30),
    fecha_baja   timestamptz  NOT NULL DEFAULT now(),
    fecha_alta   timestamptz,
    PRIMARY KEY (destino, destinatario)
);

-- A type with a fallback list (`whatsapp,sms,email`) gets one request at a time. Each request of the chain keeps
-- the channels still to try (`canales_respaldo`, comma list, NULL on the last), the first request of the chain
-- (`id_solicitud_origen`, NULL on the first itself), until when a delivery receipt is awaited before moving on
-- (`espera_recibo_hasta`), and when the next request was created (`respaldo_creado_en`, so it happens once).
ALTER TABLE solicitudes_notificacion
    ADD COLUMN IF NOT EXISTS canales_respaldo    varchar(100),
    ADD COLUMN IF NOT EXISTS id_solicitud_origen bigint,
    ADD COLUMN IF NOT EXISTS espera_recibo_hasta timestamptz,
    ADD COLUMN IF NOT EXISTS respaldo_creado_en  timestamptz;

-- The fallback pass looks only at chain links not yet followed; a sent link that awaits no receipt (or whose
-- receipt arrived) leaves the index.
CREATE INDEX IF NOT EXISTS solicitudes_notificacion_respaldo
    ON solicitudes_notificacion (id_solicitud)
    WHERE canales_respaldo IS NOT NULL AND respaldo_creado_en IS NULL
      AND (estado <> 'Enviado' OR espera_recibo_hasta IS NOT NULL);

-- The failure-rate alert looks at the requests finished in the last hour, and the weekly clean-up at old ones:
-- both by actualizado_en, only over the service's own rows.
CREATE INDEX IF NOT EXISTS solicitudes_notificacion_actualizado
    ON solicitudes_notificacion (actualizado_en)
    WHERE clave_dedup IS NOT NULL;

-- sms_activo / whatsapp_activo (migration 0005) become "NULL = the configured default"
-- (CANTINA__PREFERENCES__SMS / __WHATSAPP): the portal's inserts, which do not know these columns, then leave the
-- choice to the configuration instead of forcing true. Rows written before this keep the value they have.
ALTER TABLE preferencia_notificacion
    ALTER COLUMN sms_activo DROP NOT NULL,
    ALTER COLUMN sms_activo DROP DEFAULT,
    ALTER COLUMN whatsapp_activo DROP NOT NULL,
    ALTER COLUMN whatsapp_activo DROP DEFAULT;
