-- cantina-notify migration 0022: the parents' explicit choices, per type and channel, kept by the service.
--
-- Why a table of its own: `preferencia_notificacion` belongs to the portal, has a row only for parents with a portal
-- account, and its default-true columns cannot tell a parent who switched a notice on from a row created with the
-- defaults. Opt-in notices (the spending ones: `consumo_realizado`, `resumen_consumos`) need that difference. The
-- rules read this table first, then `preferencia_notificacion`, then the configured defaults; an opt-in type counts as
-- on only with a row here saying so.
--
-- No foreign key to `clientes`: one would add a check to the app's own deletes and updates of clients. A row of a
-- client that no longer exists matches nothing.
CREATE TABLE IF NOT EXISTS cantina_notify_preferencias_cliente (
    id_cliente   integer     NOT NULL,
    tipo         varchar(30) NOT NULL,
    canal        varchar(20) NOT NULL CHECK (canal IN ('SMS', 'WhatsApp', 'Email', 'Portal')),
    activo       boolean     NOT NULL,
    cambiado_en  timestamptz NOT NULL DEFAULT now(),
    -- Who changed it: an employee's or operator's name, `cli`, or the parent (a later preference page).
    cambiado_por text        NOT NULL CHECK (btrim(cambiado_por) <> ''),
    PRIMARY KEY (id_cliente, tipo, canal)
);

-- The opt-in sweeps read the clients that switched a type on, by type.
CREATE INDEX IF NOT EXISTS cantina_notify_preferencias_cliente_tipo_idx
    ON cantina_notify_preferencias_cliente (tipo, id_cliente) WHERE activo;
