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

/// The template data with every address masked: every value under an address-like key (a string, or a number such
/// as `"telefono": 981123456`, at any depth below it), and addresses inside any other string.
pub fn datos(v: &Json) -> Json {
    fn walk(v: &Json, under_address_key: bool) -> Json {
        match v {
            Json::String(s) if under_address_key => Json::String(address(s)),
            Json::Number(n) if under_address_key => Json::String(address(&n.to_string())),
            Json::String(s) => Json::String(text(s)),
            Json::Array(items) => Json::Array(items.iter().map(|i| walk(i, under_address_key)).collect()),
            Json::Object(map) => Json::Object(
                map.iter().map(|(k, v)| (k.clone(), walk(v, under_address_key || address_key(k)))).collect(),
            ),
            // null and booleans say nothing about an address.
            other => other.clone(),
        }
    }
    walk(v, false)
}

/// Free text (a provider's error, an operator's reason) with emails and phone numbers masked: a word with `@`, and
/// a run of digits (with `+`, spaces, parentheses) holding 8 or more digits that does not follow a letter or digit
/// (so card numbers like `T12345678` and provider ids stay readable; dates and amounts have fewer digits per run).
/// A run written with `-` or `.` separators (`0981-123-456`, `+595.981.123.456`) is a phone only when it looks like
/// one (see [`separated_phone`]): dates (`24.11.2026`, `01-12-2026 10:00`) and amounts (`Gs. 50.000`) stay readable.
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
            let dashes_allowed = phone_prefix(&chars[i..]);
            let end = (i + 1..chars.len())
                .find(|&j| {
                    let d = chars[j];
                    !(d.is_ascii_digit() || matches!(d, '(' | ')' | ' ') || (dashes_allowed && matches!(d, '-' | '.')))
                })
                .unwrap_or(chars.len());
            let run: String = chars[i..end].iter().collect();
            // A separator at the end belongs to the sentence ("llamar al 0981-123-456.").
            let body = run.trim_end_matches([' ', '-', '.']);
            let after = i + body.chars().count();
            let followed_by_alnum = after < chars.len() && chars[after].is_alphanumeric();
            let digits = body.chars().filter(char::is_ascii_digit).count();
            let phone_like = if body.contains(['-', '.']) { separated_phone(body) } else { digits >= 8 };
            if phone_like && !followed_by_alnum {
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

/// Whether a run may be a phone written with `-`/`.` separators: it starts like one (`+`, a national `0`, or the
/// country code `595`, maybe in parentheses).
fn phone_prefix(run: &[char]) -> bool {
    let run = run.strip_prefix(&['(']).unwrap_or(run);
    matches!(run.first(), Some('+' | '0')) || run.starts_with(&['5', '9', '5'])
}

/// A run with `-`/`.` separators that is a phone: at least 9 digits (11 when it starts with a bare `595`, so an
/// amount like `595.000.000` stays readable) and a first group of at least 3 digits (`0981`, `+595`, `021`; a date
/// starts with a day or month of 2: `01.12.2026`, `01-12-2026 10:00`).
fn separated_phone(body: &str) -> bool {
    let digits = body.chars().filter(char::is_ascii_digit).count();
    let first_group = body.trim_start_matches(['+', '(']).chars().take_while(char::is_ascii_digit).count();
    let minimum = if body.starts_with(['+', '0', '(']) { 9 } else { 11 };
    digits >= minimum && first_group >= 3
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

    #[test]
    fn phones_written_with_dashes_or_dots_are_masked() {
        for (raw, masked) in [
            ("llamar al 0981-123-456.", "llamar al +595 98* *** 456."),
            ("número +595-981-123456 inválido", "número +595 98* *** 456 inválido"),
            ("número 0981.123.456", "número +595 98* *** 456"),
            ("número +595.981.123.456", "número +595 98* *** 456"),
            ("To: 595-981-123456", "To: +595 98* *** 456"),
            ("fijo (021) 555-123", "fijo ***123"),
            ("fijo 021-555-123", "fijo ***123"),
        ] {
            let got = text(raw);
            assert_eq!(got, masked, "{raw}");
            assert!(!got.contains("123-456") && !got.contains("555"), "{raw} leaked: {got}");
        }
    }

    #[test]
    fn dates_amounts_and_versions_with_dots_or_dashes_stay_readable() {
        let plain = "el 24.11.2026, el 01.12.2026 10:00, el 01-12-2026 10:00, Gs. 595.000.000, Gs. 1.500.000, \
                     Gs. 50.000.000, smtp 5.1.1, 2026-11-24 03:53, 0.5, ref 12-34-56";
        assert_eq!(text(plain), plain);
    }

    #[test]
    fn every_value_under_an_address_key_is_masked_numbers_too() {
        let d = json!({
            "telefono": 981123456,
            "celular": 595981123456_i64,
            "whatsapp": [981123456, "0981-123-456"],
            "contacto_telefono": {"numero": 981123456, "nota": "x"},
            "email": null,
            "monto": 981123456,
        });
        let m = datos(&d);
        assert_eq!(m["telefono"], "+595 98* *** 456");
        assert_eq!(m["celular"], "+595 98* *** 456");
        assert_eq!(m["whatsapp"], json!(["+595 98* *** 456", "+595 98* *** 456"]));
        assert_eq!(m["contacto_telefono"]["numero"], "+595 98* *** 456");
        assert_eq!(m["contacto_telefono"]["nota"], "***");
        assert_eq!(m["email"], Json::Null);
        // Not an address key: an amount is a number like any other.
        assert_eq!(m["monto"], 981123456);
    }
}
