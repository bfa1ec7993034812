//! Webhook signatures, checked in constant time (`hmac`'s `verify_slice`).
//!
//! - Twilio `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, full URL + every POST parameter's name and value
//!   appended, sorted by name)). The URL is the one Twilio was given (scheme, host, path and query as sent).
//! - Meta `X-Hub-Signature-256`: `sha256=` + hex(HMAC-SHA256(app secret, raw body)).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The bytes Twilio signs: the URL, then each parameter's name and value, sorted by name (then by value, so a
/// repeated name is deterministic, as in Twilio's own validators).
fn twilio_payload(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut s = String::with_capacity(url.len() + params.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
    s.push_str(url);
    for (k, v) in sorted {
        s.push_str(k);
        s.push_str(v);
    }
    s
}

fn twilio_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    // HMAC accepts keys of any length; the error case cannot happen.
    let mut mac = match Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(twilio_payload(url, params).as_bytes());
    mac
}

/// The `X-Twilio-Signature` Twilio sends for `url` with these (decoded) POST parameters.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(twilio_mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `header` is the valid `X-Twilio-Signature` for `url` and `params`; constant-time.
pub fn verify_twilio(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    twilio_mac(auth_token, url, params).verify_slice(&given).is_ok()
}

/// The `X-Hub-Signature-256` value Meta sends for `body`: `sha256=<lower-case hex>`.
pub fn meta_signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = meta_mac(app_secret);
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Whether `header` (`sha256=<hex>`) is the valid `X-Hub-Signature-256` for the raw `body`; constant-time.
pub fn verify_meta(app_secret: &str, body: &[u8], header: &str) -> bool {
    let header = header.trim();
    let Some(hex) = header.get(..7).filter(|p| p.eq_ignore_ascii_case("sha256=")).map(|_| &header[7..]) else {
        return false;
    };
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let mut mac = meta_mac(app_secret);
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn meta_mac(app_secret: &str) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

/// Constant-time equality for shared tokens (the Meta verify token): compares HMACs of both under a fixed key,
/// so neither the content nor the length of a mismatch shows in the timing.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let mut mac = meta_mac("cantina-notify token comparison");
    mac.update(expected.as_bytes());
    let expected_tag = mac.finalize().into_bytes();
    let mut mac = meta_mac("cantina-notify token comparison");
    mac.update(given.as_bytes());
    mac.verify_slice(&expected_tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    /// The two vectors from provider-specs/README.md, checked against Twilio's own `RequestValidator`.
    #[test]
    fn twilio_test_vectors() {
        // Deliberately not in sorted order: the signer sorts.
        let p = params(&[
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("From", "+12349013030"),
            ("Digits", "1234"),
            ("Caller", "+12349013030"),
        ]);
        assert_eq!(twilio_signature("12345", URL, &p), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify_twilio("12345", URL, &p, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert_eq!(twilio_signature("12345", URL, &[]), "zYQTYrRWXE7LtzbG4PfP7/bkkGo=");
        assert!(verify_twilio("12345", URL, &[], "zYQTYrRWXE7LtzbG4PfP7/bkkGo="));
    }

    #[test]
    fn twilio_rejects_anything_else() {
        let p = params(&[("CallSid", "CA1234567890ABCDE"), ("Digits", "1234")]);
        let good = twilio_signature("12345", URL, &p);
        assert!(verify_twilio("12345", URL, &p, &good));
        assert!(!verify_twilio("54321", URL, &p, &good), "other token");
        assert!(!verify_twilio("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", &p, &good), "other URL");
        assert!(!verify_twilio("12345", URL, &params(&[("CallSid", "CA1234567890ABCDE"), ("Digits", "1235")]), &good));
        assert!(!verify_twilio("12345", URL, &p[..1], &good), "a parameter dropped");
        assert!(!verify_twilio("12345", URL, &p, ""), "missing");
        assert!(!verify_twilio("12345", URL, &p, "not base64!"), "garbage");
        assert!(!verify_twilio("12345", URL, &p, &good[..good.len() - 4]), "truncated");
    }

    /// GitHub's documented vector for the same `sha256=` HMAC-SHA256 scheme.
    #[test]
    fn meta_signature_vector() {
        let secret = "It's a Secret to Everybody";
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(meta_signature(secret, b"Hello, World!"), expected);
        assert!(verify_meta(secret, b"Hello, World!", expected));
        assert!(verify_meta(secret, b"Hello, World!", &expected.to_uppercase()), "hex case does not matter");
    }

    #[test]
    fn meta_rejects_anything_else() {
        let good = meta_signature("s3cret", b"{}");
        assert!(verify_meta("s3cret", b"{}", &good));
        assert!(!verify_meta("s3cret", b"{} ", &good), "body changed");
        assert!(!verify_meta("other", b"{}", &good), "other secret");
        assert!(!verify_meta("s3cret", b"{}", &good["sha256=".len()..]), "no prefix");
        assert!(!verify_meta("s3cret", b"{}", &good.replace("sha256=", "sha1=")), "other algorithm");
        assert!(!verify_meta("s3cret", b"{}", &good[..good.len() - 1]), "odd length");
        assert!(!verify_meta("s3cret", b"{}", &good[..good.len() - 2]), "truncated");
        assert!(!verify_meta("s3cret", b"{}", "sha256=zz"), "not hex");
        assert!(!verify_meta("s3cret", b"{}", ""), "missing");
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("verify-me", "verify-me"));
        assert!(!token_matches("verify-me", "verify-me "));
        assert!(!token_matches("verify-me", "verify-mf"));
        assert!(!token_matches("verify-me", ""));
    }
}
