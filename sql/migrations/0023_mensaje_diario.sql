-- cantina-notify migration 0023: the family's daily scheduled message, and the trigger of an expired card.
--
-- The scheduled notices (debt reminder, card expiry, low-balance reminder) reach a family at most once a local day:
-- cantina_notify_mensaje_diario holds, per client and local date, the urgency of what was sent that day (0: the row
-- exists and nothing went yet; 1: low balance; 2: card expiry; 3: debt). A sweep locks the row before it decides
-- (the lock serialises replicas and re-runs), sends everything due when nothing went that day, or only what is more
-- urgent than what went. cantina_notify_avisos_enviados is the ledger of the items sent, one row per item key
-- (`recordatorio_deuda:<cliente>:<id_autorizacion>:<nivel>`, `tarjeta_por_vencer:<nro>:<fecha>`, …): an item goes out
-- once even when it rode inside another type's message (whose request carries only the main item's key).
CREATE TABLE IF NOT EXISTS cantina_notify_mensaje_diario (
    id_cliente     integer NOT NULL,
    fecha          date NOT NULL,
    urgencia       smallint NOT NULL CHECK (urgencia BETWEEN 0 AND 3),
    actualizado_en timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id_cliente, fecha)
);

CREATE TABLE IF NOT EXISTS cantina_notify_avisos_enviados (
    clave       varchar(150) PRIMARY KEY,
    id_cliente  integer NOT NULL,
    tipo        varchar(30) NOT NULL,
    nro_tarjeta varchar(20),
    -- The local date of the message that carried it (a low-balance crossing's date anchors its reminders).
    fecha       date NOT NULL,
    creado_en   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cantina_notify_avisos_enviados_tarjeta
    ON cantina_notify_avisos_enviados (nro_tarjeta, tipo) WHERE nro_tarjeta IS NOT NULL;

-- `tarjeta_vencida`: an event when a card's estado becomes 'Vencida', like the blocked-card trigger. The function is
-- SECURITY DEFINER without a search_path switch, everything qualified (see migration 0015 for why that is safe and
-- cheaper); tests/it/roles.rs fires it from a role whose search_path puts look-alikes first.
DO $migration$
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_evento_vencida() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO %1$I.cantina_notify_eventos (tipo, nro_tarjeta) VALUES ('tarjeta_vencida', NEW.nro_tarjeta);
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(1668183142, 1) THEN
        PERFORM pg_catalog.pg_notify('cantina_notify', '');
    END IF;
    RETURN NULL;
END $$
$f$, current_schema());
END $migration$;

DROP TRIGGER IF EXISTS cantina_notify_vencida ON tarjetas;
CREATE TRIGGER cantina_notify_vencida
    AFTER UPDATE OF estado ON tarjetas FOR EACH ROW
    WHEN (NEW.estado = 'Vencida' AND OLD.estado IS DISTINCT FROM 'Vencida')
    EXECUTE FUNCTION cantina_notify_evento_vencida();
