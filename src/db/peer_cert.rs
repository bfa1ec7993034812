//! What libpq (through OpenSSL) accepts in a server certificate and webpki does not, read from the certificate:
//! its validity period when it is trusted as itself (a pinned self-signed certificate), and the host name in the
//! subject's common name (CN) when it has no subjectAltName of the host's kind (libpq's `fe-secure-openssl.c`:
//! `openssl -req -x509 -subj "/CN=host"` makes such a certificate).

use std::net::IpAddr;

use rustls::CertificateError;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, SubjectAltName};

const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

pub(super) struct PeerCert(Certificate);

impl PeerCert {
    pub fn parse(der: &CertificateDer<'_>) -> Option<PeerCert> {
        Certificate::from_der(der.as_ref()).ok().map(PeerCert)
    }

    /// Issued by itself (issuer and subject the same name), as a snakeoil certificate is.
    pub fn self_signed(&self) -> bool {
        self.0.tbs_certificate.issuer == self.0.tbs_certificate.subject
    }

    /// A CA certificate (basicConstraints CA:TRUE), which `openssl req -x509` makes by default.
    pub fn is_ca(&self) -> bool {
        matches!(self.0.tbs_certificate.get::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca)
    }

    pub fn check_validity(&self, now: UnixTime) -> Result<(), CertificateError> {
        let validity = &self.0.tbs_certificate.validity;
        let now = now.as_secs();
        if now < validity.not_before.to_unix_duration().as_secs() {
            Err(CertificateError::NotValidYet)
        } else if now > validity.not_after.to_unix_duration().as_secs() {
            Err(CertificateError::Expired)
        } else {
            Ok(())
        }
    }

    /// libpq's fallback: with no subjectAltName of the host's kind (dNSName for a name, iPAddress for an address),
    /// the first common name of the subject is compared with the host, ignoring case; `*.` matches one label.
    pub fn common_name_matches(&self, host: &ServerName<'_>) -> bool {
        let sans: Vec<GeneralName> = match self.0.tbs_certificate.get::<SubjectAltName>() {
            Ok(Some((_, SubjectAltName(names)))) => names,
            Ok(None) => Vec::new(),
            Err(_) => return false,
        };
        let has_san_of_kind = sans.iter().any(|n| match host {
            ServerName::IpAddress(_) => matches!(n, GeneralName::IpAddress(_)),
            _ => matches!(n, GeneralName::DnsName(_)),
        });
        if has_san_of_kind {
            return false;
        }
        let Some(cn) = self.common_name() else { return false };
        match host {
            ServerName::DnsName(name) => name_matches(&cn, name.as_ref()),
            ServerName::IpAddress(ip) => cn.parse::<IpAddr>().is_ok_and(|cn| cn == IpAddr::from(*ip)),
            _ => false,
        }
    }

    fn common_name(&self) -> Option<String> {
        let attribute =
            self.0.tbs_certificate.subject.0.iter().flat_map(|rdn| rdn.0.iter()).find(|a| a.oid == COMMON_NAME)?;
        // UTF8String, PrintableString and IA5String are all UTF-8 bytes; a NUL would let a CN hide a suffix.
        String::from_utf8(attribute.value.value().to_vec()).ok().filter(|cn| !cn.contains('\0'))
    }
}

fn name_matches(pattern: &str, host: &str) -> bool {
    if pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix('*').filter(|s| s.starts_with('.') && s.len() > 1) else {
        return false;
    };
    host.len() > suffix.len()
        && host.is_char_boundary(host.len() - suffix.len())
        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        && !host[..host.len() - suffix.len()].contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, KeyPair, SanType};

    fn cert(cn: &str, sans: Vec<SanType>, ca: bool) -> PeerCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        if ca {
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let der = params.self_signed(&KeyPair::generate().unwrap()).unwrap().der().clone();
        PeerCert::parse(&der).unwrap()
    }

    fn host(h: &str) -> ServerName<'static> {
        ServerName::try_from(h.to_string()).unwrap()
    }

    #[test]
    fn the_common_name_counts_only_without_a_subject_alt_name_of_the_hosts_kind() {
        let cn_only = cert("db.example.com", vec![], true);
        assert!(cn_only.self_signed() && cn_only.is_ca());
        assert!(cn_only.common_name_matches(&host("db.example.com")));
        assert!(cn_only.common_name_matches(&host("DB.Example.com")));
        assert!(!cn_only.common_name_matches(&host("other.example.com")));
        assert!(!cn_only.common_name_matches(&host("10.0.0.1")));

        let with_dns = cert("db.example.com", vec![SanType::DnsName("other.example.com".try_into().unwrap())], false);
        assert!(!with_dns.is_ca());
        assert!(!with_dns.common_name_matches(&host("db.example.com")), "a dNSName SAN overrides the CN");

        // An address host looks at iPAddress SANs only: a certificate with dNSName SANs and CN=the address matches.
        let ip_cn = cert("10.0.0.1", vec![SanType::DnsName("db.example.com".try_into().unwrap())], false);
        assert!(ip_cn.common_name_matches(&host("10.0.0.1")));
        let ip_san = cert("10.0.0.1", vec![SanType::IpAddress("10.0.0.2".parse().unwrap())], false);
        assert!(!ip_san.common_name_matches(&host("10.0.0.1")));
    }

    #[test]
    fn a_wildcard_common_name_matches_one_label() {
        assert!(name_matches("*.example.com", "db.example.com"));
        assert!(name_matches("*.Example.com", "db.example.COM"));
        assert!(!name_matches("*.example.com", "a.db.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", ".example.com"));
        assert!(!name_matches("*", "example"));
        assert!(!name_matches("db*.example.com", "db1.example.com"));
    }

    #[test]
    fn the_validity_period_is_checked() {
        let c = cert("x", vec![], true);
        let now = UnixTime::now();
        assert_eq!(c.check_validity(now), Ok(()));
        assert_eq!(
            c.check_validity(UnixTime::since_unix_epoch(std::time::Duration::from_secs(0))),
            Err(CertificateError::NotValidYet)
        );
        assert_eq!(
            c.check_validity(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                now.as_secs() + 4_000 * 365 * 86_400
            ))),
            Err(CertificateError::Expired)
        );
    }
}
