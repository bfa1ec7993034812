//! Email over SMTP (lettre): STARTTLS, implicit TLS, AWS SES's SMTP endpoint.
