-- cantina-notify migration 0010: the triggers decide whether to NOTIFY from an advisory lock instead of reading
-- `cantina_notify_ajustes.despertar`.
--
-- Why: the flag cost every confirmed recharge a table read (the benchmark's app overhead went from 0.83 to 0.75 of
-- the app's throughput for that read alone), and while the service was stopped nobody cleared it, so every commit
-- NOTIFYed and NOTIFY serialises commits (0.49).
--
-- How: a listener that is idle and waiting holds the session-level advisory lock (1668183142, 1) exclusively, on its
-- LISTEN connection. Each trigger takes the same lock shared for its transaction with the non-blocking
-- `pg_try_advisory_xact_lock_shared`: it succeeds when no listener is waiting (service stopped, or a listener busy
-- draining, which finds the event anyway), and then no NOTIFY; it fails only while a listener waits (or is about to:
-- a queued request counts), and then the trigger NOTIFYs. A listener takes the lock before it looks at the outbox
-- for the last time, and taking it waits for every transaction that already holds it shared, so an event is either
-- committed before that look or NOTIFYs: no wake-up is lost between the two. A listener that dies releases the lock
-- with its session. Only one listener at a time holds it (replicas elect one with the key (1668183142, 2)); all
-- listeners receive the NOTIFY.
--
-- The shared lock costs the app one lock-table entry per transaction that writes an event, held until its commit;
-- nothing waits on it except a listener going idle. `despertar` stays in the settings table for older builds.

CREATE OR REPLACE FUNCTION cantina_notify_evento_recarga() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO cantina_notify_eventos (tipo, id_ref, nro_tarjeta)
    VALUES ('recarga_confirmada', NEW.id_carga, NEW.nro_tarjeta);
    IF NOT pg_try_advisory_xact_lock_shared(1668183142, 1) THEN
        PERFORM pg_notify('cantina_notify', '');
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cantina_notify_evento_saldo() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    umbral bigint;
BEGIN
    umbral := CASE WHEN NEW.saldo_alerta > 0 THEN NEW.saldo_alerta
                   ELSE coalesce((SELECT umbral_saldo_bajo FROM cantina_notify_ajustes), 5000) END;
    -- Only a crossing: from at or above the threshold to below it. A sale while already below adds nothing;
    -- a recharge back above re-arms the card.
    IF NEW.saldo_actual < umbral AND OLD.saldo_actual >= umbral THEN
        INSERT INTO cantina_notify_eventos (tipo, nro_tarjeta, saldo_anterior, saldo_nuevo)
        VALUES ('saldo_bajo', NEW.nro_tarjeta, OLD.saldo_actual, NEW.saldo_actual);
        IF NOT pg_try_advisory_xact_lock_shared(1668183142, 1) THEN
            PERFORM pg_notify('cantina_notify', '');
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cantina_notify_evento_bloqueo() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO cantina_notify_eventos (tipo, nro_tarjeta) VALUES ('tarjeta_bloqueada', NEW.nro_tarjeta);
    IF NOT pg_try_advisory_xact_lock_shared(1668183142, 1) THEN
        PERFORM pg_notify('cantina_notify', '');
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cantina_notify_evento_solicitud() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO cantina_notify_eventos (tipo, id_ref, nro_tarjeta)
    VALUES ('solicitud_manual', NEW.id_solicitud, NEW.nro_tarjeta);
    IF NOT pg_try_advisory_xact_lock_shared(1668183142, 1) THEN
        PERFORM pg_notify('cantina_notify', '');
    END IF;
    RETURN NULL;
END $$;
