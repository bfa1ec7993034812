-- cantina-notify migration 0018: every request the service writes carries its signature (`firma`), and the
-- dispatcher sends a keyed request only when the signature checks (src/signing.rs).
--
-- Why: the dispatcher sent any `Pendiente` row with a `clave_dedup`, to its `destinatario`, with its `datos`. Any
-- role that may write the table (the app's, the runtime role) could insert one that sends any text to any address
-- from the school's own sender. A role cannot be the proof (the service runs as the runtime role; the app's role
-- usually owns the table), so the proof is an HMAC under a key only the service's configuration holds.
--
-- Nullable and without a default: adding it rewrites nothing and the app's inserts do not change. A POS row
-- (no clave_dedup) needs none: the service completes it, deriving the address from the card and the client, and
-- signs it then.
ALTER TABLE solicitudes_notificacion ADD COLUMN IF NOT EXISTS firma text;

-- The requests waiting to be sent when this migration ran, and the links of fallback chains still to be followed
-- (their data goes into the next channel's request), were written by the service before it signed anything.
-- Only the owner (this migration) writes this list, with a fingerprint of what each row held (the fields the
-- signature covers): at its next start the service signs exactly these rows, if they still hold that, and takes
-- them off the list. A row changed in between, or a keyed row written later without a valid signature (an older
-- replica still running during the rollout, or anyone else), is recorded as Error with the reason, never sent.
CREATE TABLE IF NOT EXISTS cantina_notify_sin_firma (
    id_solicitud bigint PRIMARY KEY,
    huella       text NOT NULL
);
INSERT INTO cantina_notify_sin_firma (id_solicitud, huella)
SELECT id_solicitud,
       md5(ROW(clave_dedup, id_cliente, nro_tarjeta, destino, destinatario, tipo, datos)::text)
FROM solicitudes_notificacion
WHERE clave_dedup IS NOT NULL AND firma IS NULL
  AND (estado = 'Pendiente' OR (canales_respaldo IS NOT NULL AND respaldo_creado_en IS NULL))
ON CONFLICT DO NOTHING;
