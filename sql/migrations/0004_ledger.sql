-- Run ledger for the scheduled sweeps: one row per (schedule, scheduled instant). Replicas claim a firing with
-- INSERT ... ON CONFLICT DO NOTHING RETURNING, so exactly one of them runs it. Idempotent (IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS cantina_notify_ejecuciones (
    programa       text        NOT NULL,
    programada_en  timestamptz NOT NULL,
    estado         text        NOT NULL,
    replica        text,
    iniciada_en    timestamptz,
    terminada_en   timestamptz,
    solicitudes    integer,
    detalle        text,
    CONSTRAINT cantina_notify_ejecuciones_pkey PRIMARY KEY (programa, programada_en),
    CONSTRAINT cantina_notify_ejecuciones_estado_check
        CHECK (estado IN ('en_curso', 'completada', 'omitida', 'fallida'))
);
