use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configuration secret: never printed by `Debug`, `Display` or `check-config`.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(SecretString::from(s.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
}

/// A libpq URL; it may carry a password, so printing shows everything but the password.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(Secret);

impl DatabaseUrl {
    pub fn new(s: impl Into<String>) -> Self {
        Self(Secret::new(s))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    pub fn masked(&self) -> String {
        mask_url_password(self.expose())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:********@host/db`; also masks `password=` in query strings
/// and key=value connection strings.
pub fn mask_url_password(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..].find(['/', '?']).map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, "********");
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let start = i + "password=".len();
        let end = out[start..].find(['&', ' ']).map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "********");
    }
    out
}

/// An access key id as AWS shows it: `****************MPLE` (all but the last 4 characters masked). Not a secret by
/// itself, but half of a credential, so printed configuration does not carry it whole.
pub(super) fn serialize_key_id<S: Serializer>(id: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        None => s.serialize_none(),
        Some(id) => {
            let chars: Vec<char> = id.trim().chars().collect();
            let keep = if chars.len() > 8 { 4 } else { 0 };
            let masked: String = std::iter::repeat_n('*', chars.len() - keep)
                .chain(chars[chars.len() - keep..].iter().copied())
                .collect();
            s.serialize_some(&masked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(********)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"********\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(
            mask_url_password("postgres://app:s3cr%40t@db.local:5432/cantina?sslmode=require"),
            "postgres://app:********@db.local:5432/cantina?sslmode=require"
        );
        assert_eq!(mask_url_password("postgres://app@db/cantina"), "postgres://app@db/cantina");
        assert_eq!(
            mask_url_password("host=db user=app password=abc dbname=x"),
            "host=db user=app password=******** dbname=x"
        );
        assert_eq!(
            mask_url_password("postgres://db/x?user=a&password=b&sslmode=require"),
            "postgres://db/x?user=a&password=********&sslmode=require"
        );
    }
}
