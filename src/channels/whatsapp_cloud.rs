//! WhatsApp through Meta's Cloud API (approved template messages).
