//! libpq's TLS parameters (`sslmode` with all six values, `sslrootcert`, `sslcert`, `sslkey`, `sslsni`), which
//! tokio-postgres' parser refuses or reads differently: they are taken out of a connection string, in URL or
//! key=value form, and the rest is left byte for byte for tokio-postgres to parse.

use std::fmt;

/// libpq's `sslmode`, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS parameters as written (values decoded); what they mean is decided in [`super::tls`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub sslsni: Option<String>,
}

impl TlsParams {
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        match key {
            "sslmode" => Some(&mut self.sslmode),
            "sslrootcert" => Some(&mut self.sslrootcert),
            "sslcert" => Some(&mut self.sslcert),
            "sslkey" => Some(&mut self.sslkey),
            "sslsni" => Some(&mut self.sslsni),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnInfoError {
    #[error("unterminated quoted value in the connection string")]
    Unterminated,
    #[error("invalid percent-encoding in the connection URL parameter `{0}`")]
    BadEncoding(String),
}

/// Splits `conninfo` into what tokio-postgres parses and the TLS parameters. The last occurrence of a parameter
/// wins, as in libpq.
pub fn split(conninfo: &str) -> Result<(String, TlsParams), ConnInfoError> {
    if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        split_url(conninfo)
    } else {
        split_key_value(conninfo)
    }
}

fn split_url(url: &str) -> Result<(String, TlsParams), ConnInfoError> {
    let mut params = TlsParams::default();
    let Some((head, query)) = url.split_once('?') else {
        return Ok((url.to_string(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(raw_key).ok_or_else(|| ConnInfoError::BadEncoding(raw_key.to_string()))?;
        match params.slot(&key) {
            Some(slot) => {
                // Only TLS values are decoded here; the rest (passwords included) stays as written.
                let value = percent_decode(raw_value).ok_or_else(|| ConnInfoError::BadEncoding(key.clone()))?;
                *slot = Some(value);
            }
            None => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { head.to_string() } else { format!("{head}?{}", kept.join("&")) };
    Ok((rest, params))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// libpq's key=value syntax (as tokio-postgres reads it): `key = value`, values bare (backslash escapes the next
/// character) or single-quoted (backslash escapes `'` and `\`). The pairs that are not TLS parameters are kept as
/// their original text.
fn split_key_value(s: &str) -> Result<(String, TlsParams), ConnInfoError> {
    let mut params = TlsParams::default();
    let mut kept: Vec<&str> = Vec::new();
    let mut it = s.char_indices().peekable();
    loop {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else { break };
        let mut key_end = s.len();
        while let Some(&(i, c)) = it.peek() {
            if c.is_whitespace() || c == '=' {
                key_end = i;
                break;
            }
            it.next();
        }
        let key = &s[start..key_end];
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        // A missing `=` or value is left for tokio-postgres to report, with everything after it.
        if it.next_if(|&(_, c)| c == '=').is_none() {
            kept.push(&s[start..]);
            break;
        }
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let mut end = s.len();
        if it.next_if(|&(_, c)| c == '\'').is_some() {
            let mut closed = false;
            while let Some((i, c)) = it.next() {
                match c {
                    '\'' => {
                        end = i + 1;
                        closed = true;
                        break;
                    }
                    '\\' => {
                        if let Some((_, next)) = it.next() {
                            value.push(next);
                        }
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(ConnInfoError::Unterminated);
            }
        } else {
            while let Some(&(i, c)) = it.peek() {
                if c.is_whitespace() {
                    end = i;
                    break;
                }
                it.next();
                if c == '\\' {
                    if let Some((_, next)) = it.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        match params.slot(key) {
            Some(slot) => *slot = Some(value),
            None => kept.push(&s[start..end]),
        }
    }
    Ok((kept.join(" "), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: &str, root: &str) -> TlsParams {
        TlsParams { sslmode: Some(mode.into()), sslrootcert: Some(root.into()), ..TlsParams::default() }
    }

    #[test]
    fn url_tls_parameters_are_taken_out_and_the_rest_kept_as_written() {
        let (rest, p) = split(
            "postgres://app:s%40cr%26t@db.example.com:5432/cantina?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem&password=a%3Db",
        )
        .unwrap();
        assert_eq!(rest, "postgres://app:s%40cr%26t@db.example.com:5432/cantina?application_name=x&password=a%3Db");
        assert_eq!(p, params("verify-full", "/etc/ca dir/ca.pem"));
        let cfg: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(cfg.get_password(), Some(&b"a=b"[..]));
    }

    #[test]
    fn url_with_only_tls_parameters_loses_its_query() {
        let (rest, p) =
            split("postgresql://db/x?sslmode=require&sslcert=/c.pem&sslkey=/k.pem&sslmode=verify-ca").unwrap();
        assert_eq!(rest, "postgresql://db/x");
        assert_eq!(p.sslmode.as_deref(), Some("verify-ca"), "the last occurrence wins");
        assert_eq!(p.sslcert.as_deref(), Some("/c.pem"));
        assert_eq!(p.sslkey.as_deref(), Some("/k.pem"));
        assert_eq!(split("postgres://db/x").unwrap(), ("postgres://db/x".to_string(), TlsParams::default()));
    }

    #[test]
    fn key_value_tls_parameters_are_taken_out_with_their_quoting() {
        let (rest, p) = split(
            "host=db.example.com  sslmode = verify-full password='it\\'s \\\\ x' sslrootcert='/etc/my ca/ca.pem' dbname=cantina sslsni=0",
        )
        .unwrap();
        assert_eq!(rest, "host=db.example.com password='it\\'s \\\\ x' dbname=cantina");
        let cfg: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(cfg.get_password(), Some(&b"it's \\ x"[..]));
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/etc/my ca/ca.pem"));
        assert_eq!(p.sslsni.as_deref(), Some("0"));
    }

    #[test]
    fn key_value_rest_parses_as_before() {
        let (rest, p) = split("host=h user=u password='a b\\'c' sslrootcert=system sslmode=verify-full").unwrap();
        assert_eq!(p, params("verify-full", "system"));
        let cfg: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(cfg.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(cfg.get_user(), Some("u"));
        let (rest, p) = split("host=/var/run/postgresql sslkey=/k\\ x.pem").unwrap();
        assert_eq!(rest, "host=/var/run/postgresql");
        assert_eq!(p.sslkey.as_deref(), Some("/k x.pem"));
    }

    #[test]
    fn malformed_strings_are_reported_without_their_values() {
        assert_eq!(split("host=h sslrootcert='/x").unwrap_err(), ConnInfoError::Unterminated);
        assert_eq!(
            split("postgres://h/x?sslrootcert=%zz").unwrap_err(),
            ConnInfoError::BadEncoding("sslrootcert".into())
        );
        // Without `=`, the text goes to tokio-postgres, which reports it.
        let (rest, _) = split("host=h sslmode").unwrap();
        assert_eq!(rest, "host=h sslmode");
        assert!(rest.parse::<tokio_postgres::Config>().is_err());
    }
}
