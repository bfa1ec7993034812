//! TLS to PostgreSQL with libpq's meaning of `sslmode`, `sslrootcert`, `sslcert`, `sslkey` and `sslsni`
//! (libpq documentation, "SSL Support", table "SSL Mode Descriptions"):
//!
//! | sslmode       | encryption                 | server certificate                                   |
//! |---------------|----------------------------|------------------------------------------------------|
//! | `disable`     | no                         | —                                                    |
//! | `allow`       | only if plain is refused   | not verified                                         |
//! | `prefer` (default) | if the server offers it | not verified                                       |
//! | `require`     | yes                        | not verified, unless a root certificate is present: then as `verify-ca` |
//! | `verify-ca`   | yes                        | chain verified against the root certificate(s)        |
//! | `verify-full` | yes                        | chain and host name verified                          |
//!
//! Root certificates: `sslrootcert=<PEM file>`, `sslrootcert=system` (the operating system's trust store, as libpq
//! loads OpenSSL's; Mozilla's bundled roots if the system has none; it requires `verify-full` and is its default),
//! or else `~/.postgresql/root.crt` if it exists. `verify-ca`/`verify-full` without any of them is an error, as in
//! libpq. The client certificate is `sslcert`/`sslkey`, by default `~/.postgresql/postgresql.crt`/`.key`.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::conninfo::{SslMode, TlsParams};
use super::peer_cert::PeerCert;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslmode: expected disable, allow, prefer, require, verify-ca or verify-full (got '{0}')")]
    SslMode(String),
    #[error("sslsni: expected 0 or 1 (got '{0}')")]
    SslSni(String),
    #[error(
        "sslrootcert=system needs sslmode=verify-full (got sslmode={0}): checking the chain against public roots without the host name proves nothing, so libpq refuses it too"
    )]
    SystemNeedsVerifyFull(SslMode),
    #[error(
        "sslmode={mode} needs a root certificate to verify the server with: set sslrootcert to the CA file (PEM) of your PostgreSQL provider, or sslrootcert=system for the system's trusted roots ({default} does not exist)"
    )]
    NoRootCert { mode: SslMode, default: String },
    #[error("cannot read {param} {}: {source}", path.display())]
    Read { param: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{param} {}: no PEM {what} in the file", path.display())]
    Empty { param: &'static str, path: PathBuf, what: &'static str },
    #[error("{param} {}: not a valid PEM file: {detail}", path.display())]
    Pem { param: &'static str, path: PathBuf, detail: String },
    #[error("sslrootcert {}: no usable CA certificate: {detail}", path.display())]
    Roots { path: PathBuf, detail: String },
    #[error("sslcert/sslkey: the key does not fit the certificate or is not supported: {0}")]
    ClientCert(rustls::Error),
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    None,
    /// The chain up to a trusted root, not the host name (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    ChainAndName,
}

/// The TLS side of a connection string, resolved.
#[derive(Clone)]
pub struct Tls {
    pub mode: SslMode,
    pub verification: Verification,
    pub connector: MakeRustlsConnect,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("mode", &self.mode).field("verification", &self.verification).finish()
    }
}

enum Roots {
    File { path: PathBuf, default: bool },
    System,
}

impl Roots {
    fn describe(&self) -> String {
        match self {
            Roots::File { path, default: false } => format!("sslrootcert={}", path.display()),
            Roots::File { path, default: true } => format!("the default root certificate {}", path.display()),
            Roots::System => "the system's trusted roots (sslrootcert=system)".to_string(),
        }
    }
}

pub(super) fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// Resolves the parameters into a connector; reads the certificate files. `home` is where `.postgresql/` is looked
/// for (the user's home directory, as in libpq).
pub fn resolve(params: &TlsParams, home_dir: Option<&Path>) -> Result<Tls, TlsError> {
    let default_dir = home_dir.map(|h| h.join(".postgresql"));
    let roots = match params.sslrootcert.as_deref() {
        Some("system") => Some(Roots::System),
        Some(path) if !path.is_empty() => Some(Roots::File { path: PathBuf::from(path), default: false }),
        _ => default_dir
            .as_ref()
            .map(|d| d.join("root.crt"))
            .filter(|p| p.exists())
            .map(|path| Roots::File { path, default: true }),
    };
    let mode = match params.sslmode.as_deref() {
        Some(m) => SslMode::parse(m).ok_or_else(|| TlsError::SslMode(m.to_string()))?,
        None if matches!(roots, Some(Roots::System)) => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if matches!(roots, Some(Roots::System)) && mode != SslMode::VerifyFull {
        return Err(TlsError::SystemNeedsVerifyFull(mode));
    }
    let verification = match mode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer => Verification::None,
        SslMode::Require if roots.is_some() => Verification::Chain,
        SslMode::Require => Verification::None,
        SslMode::VerifyCa => Verification::Chain,
        SslMode::VerifyFull => Verification::ChainAndName,
    };
    let sni = match params.sslsni.as_deref() {
        None | Some("1") => true,
        Some("0") => false,
        Some(other) => return Err(TlsError::SslSni(other.to_string())),
    };

    super::install_crypto_provider();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let webpki = match (verification, &roots) {
        (Verification::None, _) => None,
        (_, None) => {
            let default = default_dir
                .map_or_else(|| "~/.postgresql/root.crt".to_string(), |d| d.join("root.crt").display().to_string());
            return Err(TlsError::NoRootCert { mode, default });
        }
        (_, Some(r)) => {
            let (store, pinned) = root_store(r)?;
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| TlsError::Roots { path: PathBuf::from(r.describe()), detail: e.to_string() })?;
            Some((verifier, pinned))
        }
    };
    let (webpki, pinned) = webpki.map_or((None, Vec::new()), |(v, p)| (Some(v), p));
    let verifier = ServerVerifier {
        mode,
        verification,
        webpki,
        pinned,
        roots: roots.as_ref().map(Roots::describe).unwrap_or_default(),
        provider: provider.clone(),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::ClientCert)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client_cert(params, default_dir.as_deref())? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(TlsError::ClientCert)?,
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = sni;
    Ok(Tls { mode, verification, connector: MakeRustlsConnect::new(config) })
}

fn read(param: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { param, path: path.to_path_buf(), source })
}

fn certificates(param: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(param, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| TlsError::Pem {
        param,
        path: path.to_path_buf(),
        detail: pem_problem(&e),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Empty { param, path: path.to_path_buf(), what: "certificate" });
    }
    Ok(certs)
}

/// The trusted roots, and the certificates of an sslrootcert file, which a server may present as its own.
fn root_store(roots: &Roots) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), TlsError> {
    let mut store = RootCertStore::empty();
    let mut pinned = Vec::new();
    match roots {
        Roots::File { path, .. } => {
            pinned = certificates("sslrootcert", path)?;
            let (_, ignored) = store.add_parsable_certificates(pinned.iter().cloned());
            if store.is_empty() {
                return Err(TlsError::Roots {
                    path: path.clone(),
                    detail: format!("{ignored} certificate(s) could not be used as roots"),
                });
            }
        }
        Roots::System => {
            store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if store.is_empty() {
                // A container image without a CA bundle: Mozilla's roots, which is what a system store holds.
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    Ok((store, pinned))
}

/// What is wrong with a PEM file, in words (the parser's own text shows bytes and debug output, and never the
/// file's contents here: a key file's lines are secret).
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { .. } => "a -----BEGIN line has no matching -----END line".into(),
        Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed".into(),
        Error::Base64Decode(_) => "the text between -----BEGIN and -----END is not valid base64".into(),
        Error::Io(e) => e.to_string(),
        Error::SectionTooLarge => "a section is larger than 256 MB".into(),
        _ => "not PEM".into(),
    }
}

type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_cert(params: &TlsParams, default_dir: Option<&Path>) -> Result<Option<ClientCert>, TlsError> {
    let cert = match params.sslcert.as_deref() {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => match default_dir.map(|d| d.join("postgresql.crt")).filter(|p| p.exists()) {
            Some(path) => path,
            None => return Ok(None),
        },
    };
    let key = match params.sslkey.as_deref() {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => default_dir.map_or_else(|| PathBuf::from("~/.postgresql/postgresql.key"), |d| d.join("postgresql.key")),
    };
    let chain = certificates("sslcert", &cert)?;
    let pem = read("sslkey", &key)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Empty { param: "sslkey", path: key.clone(), what: "private key" }
        }
        e => TlsError::Pem { param: "sslkey", path: key.clone(), detail: pem_problem(&e) },
    })?;
    Ok(Some((chain, key)))
}

/// Checks as much of the server's certificate as the mode asks for, and words a failure so that an operator sees
/// it is the server's certificate, and under which sslmode.
#[derive(Debug)]
struct ServerVerifier {
    mode: SslMode,
    verification: Verification,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// The certificates of the sslrootcert file. A server certificate byte for byte one of them is trusted as
    /// itself, as libpq does: that is how PostgreSQL documents verifying a self-signed server
    /// (`sslrootcert=server.crt`), and webpki refuses such a certificate (a CA certificate as end entity).
    pinned: Vec<CertificateDer<'static>>,
    roots: String,
    provider: Arc<CryptoProvider>,
}

impl ServerVerifier {
    fn check(
        &self,
        webpki: &WebPkiServerVerifier,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if !self.pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now).map(|_| ());
        }
        let cert =
            PeerCert::parse(end_entity).ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        cert.check_validity(now).map_err(rustls::Error::InvalidCertificate)?;
        match self.verification {
            Verification::ChainAndName => {
                rustls::client::verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)
            }
            _ => Ok(()),
        }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        let name_error = |e: &CertificateError| {
            matches!(e, CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })
        };
        match self.check(webpki, end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            // The name is checked only after the chain, so for verify-ca this is a good chain.
            Err(rustls::Error::InvalidCertificate(reason))
                if name_error(&reason) && self.verification == Verification::Chain =>
            {
                Ok(ServerCertVerified::assertion())
            }
            // libpq also accepts the subject's CN when there is no subjectAltName of the host's kind.
            Err(rustls::Error::InvalidCertificate(reason))
                if name_error(&reason)
                    && PeerCert::parse(end_entity).is_some_and(|c| c.common_name_matches(server_name)) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(rustls::Error::InvalidCertificate(reason)) => {
                let cert = PeerCert::parse(end_entity);
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    ServerCertificateError {
                        mode: self.mode,
                        host: server_name.to_str().into_owned(),
                        roots: self.roots.clone(),
                        self_signed: cert.as_ref().is_some_and(PeerCert::self_signed),
                        ca: cert.as_ref().is_some_and(PeerCert::is_ca),
                        reason,
                    },
                )))))
            }
            Err(other) => Err(other),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Debug shows the message: rustls prints `CertificateError::Other` with `{:?}`.
struct ServerCertificateError {
    mode: SslMode,
    host: String,
    roots: String,
    self_signed: bool,
    ca: bool,
    reason: CertificateError,
}

impl fmt::Display for ServerCertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { mode, host, roots, self_signed, ca, reason } = self;
        write!(f, "the PostgreSQL server's certificate is not valid (sslmode={mode}): ")?;
        match reason {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                write!(
                    f,
                    "it does not match the host name {host} (neither its subjectAltName nor, without one, its CN)"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                write!(f, "it has expired ({reason})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                write!(f, "it is not valid yet ({reason})")
            }
            _ if *self_signed => write!(
                f,
                "it is self-signed, not signed by a trusted CA in {roots}; to trust this server, give its own certificate file (the server's ssl_cert_file) as sslrootcert"
            ),
            CertificateError::UnknownIssuer => write!(f, "it is not signed by a CA in {roots}"),
            _ if *ca => write!(f, "it is a CA certificate, not a server certificate, and it is not itself in {roots}"),
            CertificateError::Other(OtherError(inner)) => write!(f, "{inner}"),
            other => write!(f, "{other}"),
        }
    }
}

impl fmt::Debug for ServerCertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ServerCertificateError {}

/// The message of a server-certificate failure found in `cause` (an I/O error carrying the rustls error), without
/// the rustls wrapping around it (rustls prints a custom certificate error with `{:?}`).
pub(super) fn server_certificate_message(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    let io = cause.downcast_ref::<std::io::Error>()?;
    match io.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<ServerCertificateError>().map(ToString::to_string)
        }
        _ => None,
    }
}

/// Whether a host is this machine: `localhost`, 127.0.0.0/8, ::1, or a unix-socket directory.
pub fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// The start-up warning for a connection that reaches another machine without verifying the server's certificate
/// (`sslmode` below `verify-ca`, and no root certificate making `require` verify). `None` when all is well.
pub fn unverified_warning(config: &tokio_postgres::Config, tls: &Tls) -> Option<String> {
    if tls.verification != Verification::None {
        return None;
    }
    // libpq connects to hostaddr when it is given; host then only names the server for TLS.
    let remote: Vec<String> = if config.get_hostaddrs().is_empty() {
        config
            .get_hosts()
            .iter()
            .filter(|h| !is_loopback(h))
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect()
    } else {
        config.get_hostaddrs().iter().filter(|ip| !ip.is_loopback()).map(IpAddr::to_string).collect()
    };
    if remote.is_empty() {
        return None;
    }
    let what = match tls.mode {
        SslMode::Disable => "is not encrypted",
        _ => "does not verify the server's certificate",
    };
    Some(format!(
        "the connection to PostgreSQL at {} {what} (sslmode={}), so a machine on the network path can pose as the database and read the password and the data; use sslmode=verify-full with sslrootcert=<your provider's CA file> or sslrootcert=system",
        remote.join(", "),
        tls.mode
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> TlsParams {
        let mut p = TlsParams::default();
        for (k, v) in pairs {
            let v = Some((*v).to_string());
            match *k {
                "sslmode" => p.sslmode = v,
                "sslrootcert" => p.sslrootcert = v,
                "sslcert" => p.sslcert = v,
                "sslkey" => p.sslkey = v,
                "sslsni" => p.sslsni = v,
                other => panic!("{other}"),
            }
        }
        p
    }

    /// A home directory, with `~/.postgresql/root.crt` when `root_crt`.
    fn home(root_crt: bool) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cantina-tls-home-{}-{:x}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(dir.join(".postgresql")).unwrap();
        if root_crt {
            let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let cert = ca.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
            std::fs::write(dir.join(".postgresql/root.crt"), cert.pem()).unwrap();
        }
        dir
    }

    fn resolved(pairs: &[(&str, &str)], root_crt: bool) -> Result<(SslMode, Verification), String> {
        let home = home(root_crt);
        let r = resolve(&params(pairs), Some(&home)).map(|t| (t.mode, t.verification)).map_err(|e| e.to_string());
        std::fs::remove_dir_all(home).unwrap();
        r
    }

    #[test]
    fn modes_mean_what_libpq_says() {
        use Verification::*;
        assert_eq!(resolved(&[], false), Ok((SslMode::Prefer, None)));
        assert_eq!(resolved(&[("sslmode", "disable")], false), Ok((SslMode::Disable, None)));
        assert_eq!(resolved(&[("sslmode", "allow")], false), Ok((SslMode::Allow, None)));
        assert_eq!(resolved(&[("sslmode", "require")], false), Ok((SslMode::Require, None)));
        // A root certificate makes require verify the chain, as verify-ca; prefer stays unverified.
        assert_eq!(resolved(&[("sslmode", "require")], true), Ok((SslMode::Require, Chain)));
        assert_eq!(resolved(&[("sslmode", "prefer")], true), Ok((SslMode::Prefer, None)));
        assert_eq!(resolved(&[("sslmode", "verify-ca")], true), Ok((SslMode::VerifyCa, Chain)));
        assert_eq!(resolved(&[("sslmode", "verify-full")], true), Ok((SslMode::VerifyFull, ChainAndName)));
        assert_eq!(resolved(&[("sslrootcert", "system")], false), Ok((SslMode::VerifyFull, ChainAndName)));
        assert_eq!(
            resolved(&[("sslrootcert", "system"), ("sslmode", "verify-full")], false),
            Ok((SslMode::VerifyFull, ChainAndName))
        );
    }

    #[test]
    fn what_libpq_refuses_is_refused() {
        let e = resolved(&[("sslmode", "verify-full")], false).unwrap_err();
        assert!(e.starts_with("sslmode=verify-full needs a root certificate"), "{e}");
        assert!(e.contains(".postgresql/root.crt does not exist"), "{e}");
        let e = resolved(&[("sslmode", "verify-ca")], false).unwrap_err();
        assert!(e.starts_with("sslmode=verify-ca needs a root certificate"), "{e}");
        let e = resolved(&[("sslmode", "require"), ("sslrootcert", "system")], false).unwrap_err();
        assert!(e.starts_with("sslrootcert=system needs sslmode=verify-full (got sslmode=require)"), "{e}");
        let e = resolved(&[("sslmode", "verify_full")], false).unwrap_err();
        assert_eq!(
            e,
            "sslmode: expected disable, allow, prefer, require, verify-ca or verify-full (got 'verify_full')"
        );
        let e = resolved(&[("sslsni", "yes")], false).unwrap_err();
        assert_eq!(e, "sslsni: expected 0 or 1 (got 'yes')");
        let e = resolved(&[("sslmode", "verify-full"), ("sslrootcert", "/nonexistent/ca.pem")], false).unwrap_err();
        assert!(e.starts_with("cannot read sslrootcert /nonexistent/ca.pem"), "{e}");
        let e = resolved(&[("sslcert", "/nonexistent/c.pem"), ("sslkey", "/nonexistent/k.pem")], false).unwrap_err();
        assert!(e.starts_with("cannot read sslcert /nonexistent/c.pem"), "{e}");
    }

    /// The verifier verify-full builds for `sslrootcert=<the file holding cert_pem>`.
    fn verifier_pinning(cert_pem: &str) -> ServerVerifier {
        let home = home(false);
        let path = home.join("server.crt");
        std::fs::write(&path, cert_pem).unwrap();
        let roots = Roots::File { path, default: false };
        let (store, pinned) = root_store(&roots).unwrap();
        std::fs::remove_dir_all(home).unwrap();
        super::super::install_crypto_provider();
        let provider = rustls::crypto::CryptoProvider::get_default().unwrap().clone();
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone()).build().unwrap();
        ServerVerifier {
            mode: SslMode::VerifyFull,
            verification: Verification::ChainAndName,
            webpki: Some(webpki),
            pinned,
            roots: roots.describe(),
            provider,
        }
    }

    #[test]
    fn a_pinned_certificate_is_still_checked_for_its_validity_and_name() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "db.example.com");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let v = verifier_pinning(&cert.pem());
        let name = ServerName::try_from("db.example.com").unwrap();
        // Mid-year, whatever the leap days.
        let at = |y: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(((y - 1970) * 365 + 180) * 86_400));
        assert!(v.verify_server_cert(cert.der(), &[], &name, &[], at(2020)).is_ok());
        let e = v.verify_server_cert(cert.der(), &[], &name, &[], at(2022)).unwrap_err().to_string();
        assert!(e.contains("(sslmode=verify-full): it has expired"), "{e}");
        let other = ServerName::try_from("other.example.com").unwrap();
        let e = v.verify_server_cert(cert.der(), &[], &other, &[], at(2020)).unwrap_err().to_string();
        assert!(e.contains("it does not match the host name other.example.com"), "{e}");
    }

    fn warning(conninfo: &str) -> Option<String> {
        let (rest, p) = super::super::conninfo::split(conninfo).unwrap();
        let config: tokio_postgres::Config = rest.parse().unwrap();
        let home = home(false);
        let tls = resolve(&p, Some(&home));
        std::fs::remove_dir_all(home).unwrap();
        unverified_warning(&config, &tls.unwrap())
    }

    #[test]
    fn warns_when_another_machine_is_reached_unverified() {
        for local in [
            "host=localhost",
            "host=LOCALHOST sslmode=require",
            "host=127.0.0.1",
            "host=127.1.2.3 sslmode=disable",
            "host=::1",
            "postgres://u@[::1]:5432/db?sslmode=require",
            "host=/var/run/postgresql",
            "host=db.example.com hostaddr=127.0.0.1",
            "host=db.example.com sslmode=verify-full sslrootcert=system",
        ] {
            assert_eq!(warning(local), None, "{local}");
        }
        let w = warning("postgres://u:secret@db.example.com:5432/cantina?sslmode=require").unwrap();
        assert!(w.starts_with("the connection to PostgreSQL at db.example.com does not verify the server's certificate (sslmode=require)"), "{w}");
        assert!(!w.contains("secret"));
        let w = warning("host=localhost,10.0.0.5").unwrap();
        assert!(
            w.starts_with(
                "the connection to PostgreSQL at 10.0.0.5 does not verify the server's certificate (sslmode=prefer)"
            ),
            "{w}"
        );
        let w = warning("host=db.example.com sslmode=disable").unwrap();
        assert!(w.contains("db.example.com is not encrypted (sslmode=disable)"), "{w}");
        assert!(warning("host=localhost hostaddr=192.168.1.10").is_some());
    }
}
