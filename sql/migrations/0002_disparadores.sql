-- cantina-notify migration 0002: triggers that write outbox events in the app's own transaction.
-- Each fires only when its WHEN clause says the change can matter, so ordinary sales and recharges pay
-- for at most a settings read. NOTIFY is only a wake-up (no payload) and only when a listener asked for it.
-- Rows that existed before this migration fire nothing: triggers see only later changes.
-- The functions run as their owner (SECURITY DEFINER) with the search_path of this migration, so the app's roles
-- need no rights on the service's tables and cannot write events except through these triggers.

CREATE OR REPLACE FUNCTION cantina_notify_evento_recarga() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO cantina_notify_eventos (tipo, id_ref, nro_tarjeta)
    VALUES ('recarga_confirmada', NEW.id_carga, NEW.nro_tarjeta);
    IF (SELECT despertar FROM cantina_notify_ajustes) THEN
        PERFORM pg_notify('cantina_notify', '');
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cantina_notify_evento_saldo() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    ajustes cantina_notify_ajustes%ROWTYPE;
    umbral  bigint;
BEGIN
    SELECT * INTO ajustes FROM cantina_notify_ajustes;
    umbral := CASE WHEN NEW.saldo_alerta > 0 THEN NEW.saldo_alerta
                   ELSE coalesce(ajustes.umbral_saldo_bajo, 5000) END;
    -- Only a crossing: from at or above the threshold to below it. A sale while already below adds nothing;
    -- a recharge back above re-arms the card.
    IF NEW.saldo_actual < umbral AND OLD.saldo_actual >= umbral THEN
        INSERT INTO cantina_notify_eventos (tipo, nro_tarjeta, saldo_anterior, saldo_nuevo)
        VALUES ('saldo_bajo', NEW.nro_tarjeta, OLD.saldo_actual, NEW.saldo_actual);
        IF ajustes.despertar THEN
            PERFORM pg_notify('cantina_notify', '');
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cantina_notify_evento_bloqueo() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO cantina_notify_eventos (tipo, nro_tarjeta) VALUES ('tarjeta_bloqueada', NEW.nro_tarjeta);
    IF (SELECT despertar FROM cantina_notify_ajustes) THEN
        PERFORM pg_notify('cantina_notify', '');
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cantina_notify_evento_solicitud() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO cantina_notify_eventos (tipo, id_ref, nro_tarjeta)
    VALUES ('solicitud_manual', NEW.id_solicitud, NEW.nro_tarjeta);
    IF (SELECT despertar FROM cantina_notify_ajustes) THEN
        PERFORM pg_notify('cantina_notify', '');
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS cantina_notify_recarga_insert ON cargas_saldo;
CREATE TRIGGER cantina_notify_recarga_insert
    AFTER INSERT ON cargas_saldo FOR EACH ROW
    WHEN (NEW.estado = 'CONFIRMADO')
    EXECUTE FUNCTION cantina_notify_evento_recarga();

DROP TRIGGER IF EXISTS cantina_notify_recarga_update ON cargas_saldo;
CREATE TRIGGER cantina_notify_recarga_update
    AFTER UPDATE OF estado ON cargas_saldo FOR EACH ROW
    WHEN (NEW.estado = 'CONFIRMADO' AND OLD.estado IS DISTINCT FROM 'CONFIRMADO')
    EXECUTE FUNCTION cantina_notify_evento_recarga();

DROP TRIGGER IF EXISTS cantina_notify_saldo ON tarjetas;
CREATE TRIGGER cantina_notify_saldo
    AFTER UPDATE OF saldo_actual ON tarjetas FOR EACH ROW
    WHEN (NEW.saldo_actual < OLD.saldo_actual AND NEW.estado = 'Activa' AND NEW.notificar_saldo_bajo)
    EXECUTE FUNCTION cantina_notify_evento_saldo();

DROP TRIGGER IF EXISTS cantina_notify_bloqueo ON tarjetas;
CREATE TRIGGER cantina_notify_bloqueo
    AFTER UPDATE OF estado ON tarjetas FOR EACH ROW
    WHEN (NEW.estado = 'Bloqueada' AND OLD.estado IS DISTINCT FROM 'Bloqueada')
    EXECUTE FUNCTION cantina_notify_evento_bloqueo();

-- The POS "Notificar" button: a Pendiente row without a dedup key. Rows the service inserts always carry one.
DROP TRIGGER IF EXISTS cantina_notify_solicitud_manual ON solicitudes_notificacion;
CREATE TRIGGER cantina_notify_solicitud_manual
    AFTER INSERT ON solicitudes_notificacion FOR EACH ROW
    WHEN (NEW.estado = 'Pendiente' AND NEW.clave_dedup IS NULL)
    EXECUTE FUNCTION cantina_notify_evento_solicitud();
