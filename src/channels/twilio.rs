//! SMS and WhatsApp through Twilio's Messages API.
