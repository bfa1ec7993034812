-- cantina-notify migration 0008: channels paused by an operator (`cantina-notify channel pause sms --reason "…"`).
--
-- A row here closes the channel in every running replica: each process re-reads this small table every second, and
-- its dispatcher stops claiming and sending on the channel. Requests wait as `Pendiente`; deleting the row
-- (`channel resume`) lets them drain. Pauses for a configuration error (rejected credentials) are separate: they live
-- in each process and resume by themselves when the provider accepts the credentials again.
CREATE TABLE IF NOT EXISTS cantina_notify_canales_pausados (
    destino     varchar(20) PRIMARY KEY CHECK (destino IN ('SMS', 'WhatsApp', 'Email', 'Portal')),
    motivo      text        NOT NULL,
    pausado_por text        NOT NULL,
    pausado_en  timestamptz NOT NULL DEFAULT now()
);

-- Every pause and resume, so staff can see who closed a channel, when and why, after it was reopened.
CREATE TABLE IF NOT EXISTS cantina_notify_pausas_historial (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destino varchar(20) NOT NULL CHECK (destino IN ('SMS', 'WhatsApp', 'Email', 'Portal')),
    accion  varchar(20) NOT NULL CHECK (accion IN ('pausa', 'reanudacion')),
    motivo  text,
    por     text        NOT NULL,
    en      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS cantina_notify_pausas_historial_en ON cantina_notify_pausas_historial (en);
