-- cantina-notify migration 0003: delivery receipts find their request by the provider's message id.
CREATE INDEX IF NOT EXISTS solicitudes_notificacion_id_proveedor
    ON solicitudes_notificacion (proveedor, id_proveedor)
    WHERE id_proveedor IS NOT NULL;
