-- cantina-notify migration 0017: opt-outs and opt-ins follow the order the parent sent them in, and each inbound
-- message counts once.
--
-- Why: a signed ALTA sent before a BAJA, replayed or delivered late, signed the parent back in, since the last
-- message to arrive won and a repeated message id was applied again.
--
-- `cambiado_en` is when the change that set the row's current state was made: the provider's timestamp of the
-- message (Meta's `timestamp`, SendGrid's event `timestamp`), or when it reached the database when the provider
-- gives none (Twilio's incoming-message webhook, a send refused with 21610). A change is applied only if it is
-- newer than `cambiado_en`, or as new and an opt-out (an opt-out wins a tie); one INSERT … ON CONFLICT DO UPDATE
-- decides, so replicas receiving webhooks at the same time cannot race. Existing rows take the time of their last
-- change.
--
-- The meaning of a row for the dispatcher is unchanged: `fecha_alta IS NULL` is an active opt-out. An opt-in for
-- an address that never opted out now keeps a row too (`fecha_alta` set, no `motivo` nor `fecha_baja`), so that
-- an older opt-out arriving after it is refused; an active opt-out always has its `motivo` and `fecha_baja`
-- (staff read them in the `Omitido` reason).
ALTER TABLE cantina_notify_bajas ADD COLUMN IF NOT EXISTS cambiado_en timestamptz;
UPDATE cantina_notify_bajas SET cambiado_en = coalesce(fecha_alta, fecha_baja) WHERE cambiado_en IS NULL;
ALTER TABLE cantina_notify_bajas
    ALTER COLUMN cambiado_en SET NOT NULL,
    ALTER COLUMN motivo DROP NOT NULL,
    ALTER COLUMN fecha_baja DROP NOT NULL,
    ADD CONSTRAINT cantina_notify_bajas_baja_con_motivo
        CHECK (fecha_alta IS NOT NULL OR (motivo IS NOT NULL AND fecha_baja IS NOT NULL));

-- The inbound messages (and SendGrid events) already applied, by the provider's id, so a repeat changes nothing.
-- Written in the same statement as the change it carries: a change that fails leaves no id, and the provider's
-- retry is applied. The weekly clean-up deletes ids older than the requests' retention (`recibido_en`).
CREATE TABLE IF NOT EXISTS cantina_notify_mensajes_entrantes (
    proveedor   varchar(30) NOT NULL,
    id_mensaje  text        NOT NULL,
    recibido_en timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (proveedor, id_mensaje)
);
CREATE INDEX IF NOT EXISTS cantina_notify_mensajes_entrantes_recibido
    ON cantina_notify_mensajes_entrantes (recibido_en);
