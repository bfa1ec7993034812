//! Email over SendGrid's v3 API.
