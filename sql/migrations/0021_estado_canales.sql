-- cantina-notify migration 0021: each running replica's view of its channels, so that `channel list`, `stats` and
-- the dashboard show one state per channel for the whole service rather than what one process remembers.
--
-- Every replica upserts its four rows (one per destino) when a channel's state changes and at least every few
-- seconds (`visto_en` is the heartbeat), and deletes them when it stops. A replica whose rows are not refreshed
-- for the stale window (src/channel_state.rs) is no longer counted, and its rows are deleted by the live ones.
-- An operator's pause is not recorded here: it lives in cantina_notify_canales_pausados (migration 0008) and the
-- views merge the two.
CREATE TABLE IF NOT EXISTS cantina_notify_estado_canales (
    replica        text        NOT NULL,
    destino        varchar(20) NOT NULL CHECK (destino IN ('SMS', 'WhatsApp', 'Email', 'Portal')),
    -- A provider is configured for the channel in this replica.
    configurado    boolean     NOT NULL,
    proveedor      text,
    estado         varchar(20) NOT NULL CHECK (estado IN ('no_configurado', 'activo', 'pausado_proveedor')),
    -- The provider's error that paused the channel (cleaned; masked where it is shown).
    motivo         text,
    -- Since when the channel is in this state in this replica (the pause's start; the start-up otherwise).
    desde          timestamptz NOT NULL,
    proxima_prueba timestamptz,
    visto_en       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, destino),
    CHECK ((estado = 'pausado_proveedor') = (motivo IS NOT NULL)),
    CHECK (configurado = (estado <> 'no_configurado'))
);
