//! Masking what the operator commands print: the request's address, addresses inside its template data, and
//! addresses a provider quoted in an error. Valid addresses use the domain types' own masks; invalid ones (the
//! very rows staff inspect) are masked too, never shown as they are.

use serde_json::Value as Json;

use crate::domain::{EmailAddress, MobilePhone};

/// A stored `destinatario`: `a***@example.com`, `+595 98* *** 456`, `cliente:42` (a portal client id is no address).
pub fn address(s: &str) -> String {
    if s.starts_with("cliente:") {
        return s.to_string();
    }
    if let Ok(e) = EmailAddress::parse(Some(s)) {
        return e.masked();
    }
    if let Ok(p) = MobilePhone::parse(Some(s)) {
        return p.masked();
    }
    invalid(s)
}

/// Something that is not a valid address: its email domain or its last three digits at most.
fn invalid(s: &str) -> String {
    if let Some((_, domain)) = s.rsplit_once('@') {
        let domain: String = domain.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')).collect();
        return format!("***@{domain}");
    }
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 6 {
        format!("***{}", digits[digits.len() - 3..].iter().collect::<String>())
    } else {
        "***".into()
    }
}

/// Keys of template data that hold an address whatever their value looks like.
fn address_key(key: &str) -> bool {
    let k = key.to_lowercase();
    ["email", "correo", "telefono", "teléfono", "celular", "movil", "móvil", "phone", "whatsapp", "destinatario"]
        .iter()
        .any(|a| k.contains(a))
}

/// The template data with every address masked: values under address-like keys, and addresses inside any string.
pub fn datos(v: &Json) -> Json {
    fn walk(v: &Json, key: Option<&str>) -> Json {
        match v {
            Json::String(s) if key.is_some_and(address_key) => Json::String(address(s)),
            Json::String(s) => Json::String(text(s)),
            Json::Array(items) => Json::Array(items.iter().map(|i| walk(i, key)).collect()),
            Json::Object(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), walk(v, Some(k)))).collect()),
            other => other.clone(),
        }
    }
    walk(v, None)
}

/// Free text (a provider's error, an operator's reason) with emails and phone numbers masked: a word with `@`, and
/// a run of digits (with `+`, spaces, parentheses) holding 8 or more digits that does not follow a letter or digit
/// (so card numbers like `T12345678` and provider ids stay readable; dates and amounts have fewer digits per run).
pub fn text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_alnum = i > 0 && chars[i - 1].is_alphanumeric();
        // A word containing '@'.
        if is_word(c) && (i == 0 || !is_word(chars[i - 1])) {
            let end = (i..chars.len()).find(|&j| !is_word(chars[j])).unwrap_or(chars.len());
            let word: String = chars[i..end].iter().collect();
            if word.contains('@') {
                let trimmed = word.trim_end_matches('.');
                out.push_str(&address(trimmed));
                out.push_str(&word[trimmed.len()..]);
                i = end;
                continue;
            }
        }
        // A phone-like run of digits.
        if (c.is_ascii_digit() || c == '+' || c == '(') && !prev_alnum {
            // '+' only leads: "21.123456+00:00" is a time, not a number.
            let end = (i + 1..chars.len())
                .find(|&j| !(chars[j].is_ascii_digit() || matches!(chars[j], '(' | ')' | ' ')))
                .unwrap_or(chars.len());
            let run: String = chars[i..end].iter().collect();
            let body = run.trim_end();
            let after = i + body.chars().count();
            let followed_by_alnum = after < chars.len() && chars[after].is_alphanumeric();
            let digits = body.chars().filter(char::is_ascii_digit).count();
            if digits >= 8 && !followed_by_alnum {
                out.push_str(&address(body));
                i = after;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn addresses_use_the_domain_masks() {
        assert_eq!(address("maria.gomez@example.com"), "m***@example.com");
        assert_eq!(address("+595981123456"), "+595 98* *** 456");
        assert_eq!(address("0981 123 456"), "+595 98* *** 456");
        assert_eq!(address("cliente:42"), "cliente:42");
    }

    #[test]
    fn invalid_addresses_are_masked_too() {
        for (raw, masked) in [
            ("maria@@example.com", "***@example.com"),
            ("maria@", "***@"),
            ("021 555 123", "***123"),
            ("+1 (555) 010-9999", "***999"),
            ("12345", "***"),
            ("<b>maria</b>", "***"),
        ] {
            let got = address(raw);
            assert_eq!(got, masked, "{raw}");
            assert!(!got.contains("maria") && !got.contains("555"), "{raw} leaked: {got}");
        }
    }

    #[test]
    fn template_data_is_masked_by_key_and_by_content() {
        let d = json!({
            "nombre": "Ana Benítez",
            "email_contacto": "ana@example.com",
            "telefono": "0981123456",
            "nota": "responder a ana.b@example.com o al +595 981 123 456",
            "monto": 50000,
            "tarjetas": [{"nro_tarjeta": "T123456789", "celular": "bad"}]
        });
        let m = datos(&d);
        assert_eq!(m["nombre"], "Ana Benítez");
        assert_eq!(m["email_contacto"], "a***@example.com");
        assert_eq!(m["telefono"], "+595 98* *** 456");
        assert_eq!(m["nota"], "responder a a***@example.com o al +595 98* *** 456");
        assert_eq!(m["monto"], 50000);
        assert_eq!(m["tarjetas"][0]["nro_tarjeta"], "T123456789");
        assert_eq!(m["tarjetas"][0]["celular"], "***");
    }

    #[test]
    fn free_text_keeps_what_is_not_an_address() {
        assert_eq!(
            text("Twilio 21211: The 'To' number +595981123456 is not valid."),
            "Twilio 21211: The 'To' number +595 98* *** 456 is not valid."
        );
        assert_eq!(
            text("550 5.1.1 <juan.perez@example.com>: user unknown"),
            "550 5.1.1 <j***@example.com>: user unknown"
        );
        let plain = "tarjeta T1234567890, Gs. 50.000 el 28/11/2026 14:00, id SM0123456789abcdef, 2026-11-28, \
                     2026-11-24T03:53:21.123456+00:00";
        assert_eq!(text(plain), plain);
    }
}
