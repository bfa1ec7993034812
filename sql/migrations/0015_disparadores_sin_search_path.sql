-- cantina-notify migration 0015: the balance, blocked-card and POS-request triggers without a search_path switch
-- on every call, as migration 0014 did for the recharge trigger.
--
-- Why: the balance trigger runs on every sale that lowers an active card's balance (the POS's most frequent write),
-- not only on a crossing: its WHEN cannot read the configured threshold, so the body decides. `SET search_path FROM
-- CURRENT` made each of those calls save, set and restore a setting. Measured with pgbench (8 clients, single-row
-- sales into consumos_tarjeta, prepared, two runs of interleaved rounds, 7 rounds in all), as a share of the app's
-- throughput without the service's triggers: 0.72–0.82 (median 0.77) with the switch, 0.78–0.89 (median 0.815)
-- without it. This supersedes migration 0014's note that the other event triggers keep their SET.
--
-- Safe as SECURITY DEFINER without the switch because nothing in the bodies is looked up through the caller's
-- search_path: the service's tables are written with the schema the migrations run in, functions with pg_catalog,
-- and every operator as OPERATOR(pg_catalog.…) (an unqualified `<` would resolve to a caller's look-alike operator
-- placed before pg_catalog). `bigint` is a keyword the grammar turns into pg_catalog.int8; CASE and coalesce are
-- syntax. tests/it/roles.rs fires each trigger from a role whose search_path puts look-alikes of all of these first.

DO $migration$
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_evento_saldo() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    umbral bigint;
BEGIN
    umbral := CASE WHEN NEW.saldo_alerta OPERATOR(pg_catalog.>) 0 THEN NEW.saldo_alerta
                   ELSE coalesce((SELECT a.umbral_saldo_bajo FROM %1$I.cantina_notify_ajustes a), 5000) END;
    -- Only a crossing: from at or above the threshold to below it. A sale while already below adds nothing;
    -- a recharge back above re-arms the card.
    IF NEW.saldo_actual OPERATOR(pg_catalog.<) umbral AND OLD.saldo_actual OPERATOR(pg_catalog.>=) umbral THEN
        INSERT INTO %1$I.cantina_notify_eventos (tipo, nro_tarjeta, saldo_anterior, saldo_nuevo)
        VALUES ('saldo_bajo', NEW.nro_tarjeta, OLD.saldo_actual, NEW.saldo_actual);
        IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(1668183142, 1) THEN
            PERFORM pg_catalog.pg_notify('cantina_notify', '');
        END IF;
    END IF;
    RETURN NULL;
END $$
$f$, current_schema());

    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_evento_bloqueo() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO %1$I.cantina_notify_eventos (tipo, nro_tarjeta) VALUES ('tarjeta_bloqueada', NEW.nro_tarjeta);
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(1668183142, 1) THEN
        PERFORM pg_catalog.pg_notify('cantina_notify', '');
    END IF;
    RETURN NULL;
END $$
$f$, current_schema());

    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.cantina_notify_evento_solicitud() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO %1$I.cantina_notify_eventos (tipo, id_ref, nro_tarjeta)
    VALUES ('solicitud_manual', NEW.id_solicitud, NEW.nro_tarjeta);
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(1668183142, 1) THEN
        PERFORM pg_catalog.pg_notify('cantina_notify', '');
    END IF;
    RETURN NULL;
END $$
$f$, current_schema());
END $migration$;
