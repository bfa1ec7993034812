-- cantina-notify migration 0005: per-channel preferences for SMS and WhatsApp next to the portal's email_activo and
-- push_activo. No row, or true, means the channel stays on; a parent with several portal accounts keeps a channel
-- unless every one of them turned it off.
ALTER TABLE preferencia_notificacion
    ADD COLUMN IF NOT EXISTS sms_activo      boolean NOT NULL DEFAULT true,
    ADD COLUMN IF NOT EXISTS whatsapp_activo boolean NOT NULL DEFAULT true;
