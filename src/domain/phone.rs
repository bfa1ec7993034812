use std::fmt;

use phonenumber::country::Id;

/// A mobile number in E.164 (`+595981123456`). `clientes.telefono` is free-form local text (`0981 123-456`,
/// `(021) 555 123`, blank); SMS and WhatsApp need a mobile, so landlines and junk are rejected with a reason.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MobilePhone(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidPhone {
    #[error("sin número de teléfono registrado")]
    Missing,
    #[error("número de teléfono mal formado ({0})")]
    Malformed(String),
    #[error("no es un número de celular ({0}); SMS y WhatsApp necesitan un celular")]
    NotMobile(String),
}

impl MobilePhone {
    /// Parses with Paraguay as the default region.
    pub fn parse(raw: Option<&str>) -> Result<Self, InvalidPhone> {
        let s = raw.map(str::trim).unwrap_or_default();
        if s.is_empty() {
            return Err(InvalidPhone::Missing);
        }
        let masked = mask_digits(s);
        let number = phonenumber::parse(Some(Id::PY), s).map_err(|_| InvalidPhone::Malformed(masked.clone()))?;
        if !number.is_valid() {
            return Err(InvalidPhone::Malformed(masked));
        }
        match number.number_type(&phonenumber::metadata::DATABASE) {
            phonenumber::Type::Mobile | phonenumber::Type::FixedLineOrMobile => {}
            _ => return Err(InvalidPhone::NotMobile(masked)),
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        Ok(Self(e164))
    }

    /// E.164 as providers expect it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+595 98* *** 456`.
    pub fn masked(&self) -> String {
        mask_e164(&self.0)
    }
}

pub(crate) fn mask_e164(e164: &str) -> String {
    let digits: Vec<char> = e164.chars().filter(char::is_ascii_digit).collect();
    if let Some(rest) = e164.strip_prefix("+595")
        && rest.len() == 9
    {
        let r: Vec<char> = rest.chars().collect();
        return format!("+595 {}{}* *** {}{}{}", r[0], r[1], r[6], r[7], r[8]);
    }
    mask_digits(&digits.iter().collect::<String>())
}

/// Keeps the last three digits only: enough to tell numbers apart in a log.
pub(crate) fn mask_digits(s: &str) -> String {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() <= 3 {
        return "***".to_string();
    }
    let tail: String = digits[digits.len() - 3..].iter().collect();
    format!("***{tail}")
}

impl fmt::Debug for MobilePhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MobilePhone({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_mobile_forms_become_e164() {
        for raw in ["0981123456", "0981 123 456", "0981-123-456", "+595981123456", "595981123456", "(0981) 123456"] {
            let p = MobilePhone::parse(Some(raw)).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(p.as_str(), "+595981123456", "{raw}");
        }
        assert_eq!(MobilePhone::parse(Some("0971 654321")).unwrap().as_str(), "+595971654321");
    }

    #[test]
    fn masks_like_the_logs_show_it() {
        let p = MobilePhone::parse(Some("0981123456")).unwrap();
        assert_eq!(p.masked(), "+595 98* *** 456");
        assert_eq!(format!("{p:?}"), "MobilePhone(+595 98* *** 456)");
    }

    #[test]
    fn missing_blank_malformed_and_landline_are_rejected_with_reasons() {
        assert_eq!(MobilePhone::parse(None), Err(InvalidPhone::Missing));
        assert_eq!(MobilePhone::parse(Some(" ")), Err(InvalidPhone::Missing));
        assert!(matches!(MobilePhone::parse(Some("abc")), Err(InvalidPhone::Malformed(_))));
        assert!(matches!(MobilePhone::parse(Some("12")), Err(InvalidPhone::Malformed(_))));
        // Asunción landline.
        assert!(matches!(MobilePhone::parse(Some("021 555 123")), Err(InvalidPhone::NotMobile(_))));
    }

    #[test]
    fn reasons_do_not_reveal_the_number() {
        let err = MobilePhone::parse(Some("021 555 123")).unwrap_err().to_string();
        assert!(!err.contains("555"), "{err}");
        assert!(err.contains("***123"), "{err}");
    }
}
