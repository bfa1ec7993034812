use std::fmt;

/// An email address that passed a conservative syntax check. The Cantina `clientes.email` column is free text
/// (null, blank, "sin correo", typos), so every address is parsed before it reaches a channel.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidEmail {
    #[error("sin correo electrónico registrado")]
    Missing,
    #[error("correo electrónico mal formado ({0})")]
    Malformed(String),
}

impl EmailAddress {
    pub fn parse(raw: Option<&str>) -> Result<Self, InvalidEmail> {
        let s = raw.map(str::trim).unwrap_or_default();
        if s.is_empty() {
            return Err(InvalidEmail::Missing);
        }
        let masked = mask_email(s);
        let bad = || InvalidEmail::Malformed(masked.clone());
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let well_formed = s.len() <= 254
            && !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && local.chars().all(|c| {
                c.is_ascii_graphic() && !matches!(c, '<' | '>' | '(' | ')' | ',' | ';' | ':' | '"' | '[' | ']' | '\\')
            });
        if well_formed { Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase()))) } else { Err(bad()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `j***@gmail.com`: enough for staff to recognise it, not enough to harvest it from logs.
    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

pub(crate) fn mask_email(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

// Debug masks too, so an address never leaks through `{:?}` in a log line.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_the_domain() {
        let e = EmailAddress::parse(Some("  Juan.Perez+cantina@Gmail.COM ")).unwrap();
        assert_eq!(e.as_str(), "Juan.Perez+cantina@gmail.com");
        assert_eq!(e.masked(), "J***@gmail.com");
    }

    #[test]
    fn missing_and_blank_are_missing() {
        assert_eq!(EmailAddress::parse(None), Err(InvalidEmail::Missing));
        assert_eq!(EmailAddress::parse(Some("   ")), Err(InvalidEmail::Missing));
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "sin correo",
            "juan@",
            "@gmail.com",
            "juan@gmail",
            "juan@@gmail.com",
            "juan@gmail..com",
            "juan@.gmail.com",
            "juan@gmail.com.",
            "ju an@gmail.com",
            "<script>@x.com",
            "juan@gm ail.com",
        ] {
            assert!(
                matches!(EmailAddress::parse(Some(bad)), Err(InvalidEmail::Malformed(_))),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn debug_does_not_reveal_the_address() {
        let e = EmailAddress::parse(Some("juana@example.com")).unwrap();
        assert_eq!(format!("{e:?}"), "EmailAddress(j***@example.com)");
    }

    #[test]
    fn malformed_reason_is_masked() {
        let err = EmailAddress::parse(Some("juana@example")).unwrap_err();
        assert_eq!(err.to_string(), "correo electrónico mal formado (j***@example)");
    }
}
