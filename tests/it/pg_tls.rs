//! TLS to PostgreSQL with libpq's meaning of `sslmode`, against a real server with `ssl=on` and a certificate from
//! a CA made here. The server's certificate names only `localhost`, so connecting by 127.0.0.1 is the wrong host.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use cantina_notify::db;
use cantina_notify::pg_cluster::{ClusterOptions, PgCluster};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

struct TlsServer {
    cluster: PgCluster,
    /// Holds ca.pem (the server's CA), other-ca.pem, client.pem and client.key.
    files: PathBuf,
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    Ca { cert, key }
}

fn signed(ca: &Ca, common_name: &str, names: Vec<String>) -> (String, String) {
    let mut params = CertificateParams::new(names).expect("params");
    params.distinguished_name.push(DnType::CommonName, common_name);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("sign");
    (cert.pem(), key.serialize_pem())
}

/// Roles: `postgres` trusted on any connection; `tls_only` refused without TLS; `cert_user` needs a client
/// certificate signed by the CA; `pw_user` needs its password.
const HBA: &str = "\
local all all trust
hostnossl all tls_only 127.0.0.1/32 reject
hostssl all cert_user 127.0.0.1/32 cert
host all cert_user 127.0.0.1/32 reject
host all pw_user 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
";

/// A cluster with `ssl=on` and this certificate and key; `ssl_ca_file` (for client certificates) is `ca`.
fn tls_cluster(server_cert: String, server_key: String, ca: &Ca) -> PgCluster {
    let options = ClusterOptions {
        settings: vec![
            "ssl=on".into(),
            "ssl_cert_file=server.crt".into(),
            "ssl_key_file=server.key".into(),
            "ssl_ca_file=ca.crt".into(),
            // The sessions' starts (with their application name) and ends are what the clean-close test reads.
            "log_connections=on".into(),
            "log_disconnections=on".into(),
            "log_line_prefix=[%p] ".into(),
        ],
        files: vec![
            ("server.crt".into(), server_cert.into_bytes()),
            ("server.key".into(), server_key.into_bytes()),
            ("ca.crt".into(), ca.cert.pem().into_bytes()),
        ],
        hba: Some(HBA.into()),
    };
    PgCluster::start_with(&options).unwrap_or_else(|e| panic!("cannot start PostgreSQL with TLS: {e}"))
}

/// Writes `files` into `<cluster dir>/client`, owned like the cluster's directory (the postgres user when run as
/// root) so that its removal with the cluster succeeds.
fn client_files(cluster: &PgCluster, files: &[(&str, String)]) -> PathBuf {
    let dir = cluster.dir().join("client");
    std::fs::create_dir_all(&dir).expect("client files directory");
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).expect("write client file");
    }
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(cluster.dir()).expect("cluster dir"));
    for entry in std::fs::read_dir(&dir).expect("client files").map(|e| e.expect("entry").path()).chain([dir.clone()]) {
        std::os::unix::fs::chown(&entry, Some(owner), None).expect("chown client file");
    }
    dir
}

fn server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let ca = ca("cantina test CA");
        let (server_cert, server_key) = signed(&ca, "localhost", vec!["localhost".into()]);
        let cluster = tls_cluster(server_cert, server_key, &ca);

        // Inside the cluster's directory, which goes away with the cluster even though this static is never dropped.
        let (client_cert, client_key) = signed(&ca, "cert_user", vec![]);
        let files = client_files(
            &cluster,
            &[
                ("ca.pem", ca.cert.pem()),
                ("other-ca.pem", self::ca("some other CA").cert.pem()),
                ("client.pem", client_cert),
                ("client.key", client_key),
            ],
        );
        TlsServer { cluster, files }
    })
}

fn file(name: &str) -> String {
    server().files.join(name).display().to_string()
}

/// `postgres://user@host:port/postgres?query`, with `hostaddr=127.0.0.1` when the host is a name.
fn url(user: &str, host: &str, query: &str) -> String {
    let port = server().cluster.port();
    let addr = if host == "localhost" { "hostaddr=127.0.0.1&" } else { "" };
    format!("postgres://{user}@{host}:{port}/postgres?{addr}{query}")
}

fn key_value(user: &str, host: &str, rest: &str) -> String {
    let port = server().cluster.port();
    let addr = if host == "localhost" { "hostaddr=127.0.0.1 " } else { "" };
    format!("host={host} {addr}port={port} user={user} dbname=postgres {rest}")
}

/// Connects and says whether the session uses TLS, as the server sees it.
async fn ssl_in_use(conninfo: &str) -> Result<bool, String> {
    let client = db::connect(conninfo, "pgtls-test").await.map_err(|e| e.to_string())?;
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

async fn connects_with_tls(conninfo: &str) {
    assert_eq!(ssl_in_use(conninfo).await, Ok(true), "{conninfo}");
}

async fn refused(conninfo: &str) -> String {
    match ssl_in_use(conninfo).await {
        Ok(ssl) => panic!("{conninfo} connected (ssl: {ssl})"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn prefer_and_no_sslmode_use_tls_without_verifying() {
    connects_with_tls(&url("postgres", "127.0.0.1", "sslmode=prefer")).await;
    connects_with_tls(&url("postgres", "127.0.0.1", "")).await;
    connects_with_tls(&key_value("postgres", "127.0.0.1", "")).await;
    // The pool goes the same way.
    let pool = db::pool(&url("postgres", "127.0.0.1", ""), 2, Duration::from_secs(5)).expect("pool");
    let c = pool.get().await.expect("pooled connection");
    let ssl: bool = c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(ssl);
}

#[tokio::test]
async fn require_uses_tls_without_verifying() {
    connects_with_tls(&url("postgres", "127.0.0.1", "sslmode=require")).await;
    connects_with_tls(&key_value("postgres", "127.0.0.1", "sslmode=require")).await;
}

#[tokio::test]
async fn require_with_a_root_certificate_verifies_like_verify_ca() {
    connects_with_tls(&url("postgres", "127.0.0.1", &format!("sslmode=require&sslrootcert={}", file("ca.pem")))).await;
    let e =
        refused(&url("postgres", "127.0.0.1", &format!("sslmode=require&sslrootcert={}", file("other-ca.pem")))).await;
    assert!(e.contains("the PostgreSQL server's certificate is not valid (sslmode=require)"), "{e}");
}

#[tokio::test]
async fn verify_full_with_the_ca_connects() {
    connects_with_tls(&url("postgres", "localhost", &format!("sslmode=verify-full&sslrootcert={}", file("ca.pem"))))
        .await;
    connects_with_tls(&key_value(
        "postgres",
        "localhost",
        &format!("sslmode=verify-full sslrootcert='{}'", file("ca.pem")),
    ))
    .await;
}

#[tokio::test]
async fn verify_ca_accepts_the_chain_whatever_the_host_name() {
    connects_with_tls(&url("postgres", "127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", file("ca.pem"))))
        .await;
    connects_with_tls(&key_value(
        "postgres",
        "127.0.0.1",
        &format!("sslmode=verify-ca sslrootcert={}", file("ca.pem")),
    ))
    .await;
}

#[tokio::test]
async fn verify_full_with_another_ca_is_refused_naming_the_certificate() {
    for conninfo in [
        url("postgres", "localhost", &format!("sslmode=verify-full&sslrootcert={}", file("other-ca.pem"))),
        key_value("postgres", "localhost", &format!("sslmode=verify-full sslrootcert={}", file("other-ca.pem"))),
    ] {
        let e = refused(&conninfo).await;
        assert!(
            e.contains(&format!(
                "the PostgreSQL server's certificate is not valid (sslmode=verify-full): it is not signed by a CA in sslrootcert={}",
                file("other-ca.pem")
            )),
            "{e}"
        );
        assert!(e.starts_with("cannot connect to PostgreSQL: the PostgreSQL server's certificate"), "{e}");
        assert!(!e.contains("OtherError"), "{e}");
    }
    // A pooled connection says the same.
    let other_ca = url("postgres", "localhost", &format!("sslmode=verify-full&sslrootcert={}", file("other-ca.pem")));
    let pool = db::pool(&other_ca, 1, Duration::from_secs(5)).expect("pool");
    let e = db::DbError::from(pool.get().await.map(|_| ()).expect_err("another CA")).to_string();
    assert!(
        e.starts_with("cannot get a database connection: ")
            && e.contains("the PostgreSQL server's certificate is not valid (sslmode=verify-full): it is not signed by a CA in sslrootcert="),
        "{e}"
    );
}

#[tokio::test]
async fn verify_full_with_a_wrong_host_name_is_refused_naming_the_certificate() {
    for conninfo in [
        url("postgres", "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", file("ca.pem"))),
        key_value("postgres", "127.0.0.1", &format!("sslmode=verify-full sslrootcert={}", file("ca.pem"))),
    ] {
        let e = refused(&conninfo).await;
        assert!(
            e.contains(
                "the PostgreSQL server's certificate is not valid (sslmode=verify-full): it does not match the host name 127.0.0.1"
            ),
            "{e}"
        );
    }
}

#[tokio::test]
async fn disable_connects_without_tls() {
    assert_eq!(ssl_in_use(&url("postgres", "127.0.0.1", "sslmode=disable")).await, Ok(false));
    assert_eq!(ssl_in_use(&key_value("postgres", "127.0.0.1", "sslmode=disable")).await, Ok(false));
}

#[tokio::test]
async fn allow_tries_plain_then_tls() {
    assert_eq!(ssl_in_use(&url("postgres", "127.0.0.1", "sslmode=allow")).await, Ok(false));
    // tls_only is refused without TLS (pg_hba.conf), so allow goes on to TLS.
    let admin = db::connect(&url("postgres", "127.0.0.1", ""), "pgtls-test").await.expect("connect");
    admin
        .batch_execute("DO $$ BEGIN CREATE ROLE tls_only LOGIN; EXCEPTION WHEN duplicate_object THEN END $$")
        .await
        .unwrap();
    assert_eq!(ssl_in_use(&url("tls_only", "127.0.0.1", "sslmode=allow")).await, Ok(true));
}

#[tokio::test]
async fn client_certificate_authenticates() {
    let admin = db::connect(&url("postgres", "127.0.0.1", ""), "pgtls-test").await.expect("connect");
    admin
        .batch_execute("DO $$ BEGIN CREATE ROLE cert_user LOGIN; EXCEPTION WHEN duplicate_object THEN END $$")
        .await
        .unwrap();
    let e = refused(&url("cert_user", "127.0.0.1", "sslmode=require")).await;
    assert!(e.contains("connection requires a valid client certificate"), "{e}");
    let with_cert = format!(
        "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        file("ca.pem"),
        file("client.pem"),
        file("client.key")
    );
    connects_with_tls(&url("cert_user", "localhost", &with_cert)).await;
    connects_with_tls(&key_value(
        "cert_user",
        "localhost",
        &format!("sslmode=require sslcert={} sslkey={}", file("client.pem"), file("client.key")),
    ))
    .await;
}

#[tokio::test]
async fn require_against_a_server_without_tls_fails() {
    // The harness's own server has ssl=off.
    let plain = crate::helpers::url_for("postgres");
    assert_eq!(ssl_in_use(&format!("{plain}?sslmode=prefer")).await, Ok(false));
    let e = refused(&format!("{plain}?sslmode=require")).await;
    assert!(
        e.contains("cannot connect to PostgreSQL (sslmode=require)") && e.contains("server does not support TLS"),
        "{e}"
    );
}

#[tokio::test]
async fn the_listener_session_goes_the_same_way() {
    // The LISTEN session is opened by db::Target, which the listener uses with its keepalives.
    let mut target = db::Target::parse(
        &key_value("postgres", "localhost", &format!("sslmode=verify-full sslrootcert={}", file("other-ca.pem"))),
        "pgtls-test",
        Duration::from_secs(5),
    )
    .expect("parse");
    target.config_mut().keepalives(true);
    let e = target.connect().await.map(|_| ()).expect_err("another CA").to_string();
    assert!(e.contains("server's certificate is not valid (sslmode=verify-full)"), "{e}");
}

#[test]
fn sslrootcert_system_parses_and_demands_verify_full() {
    let t = db::Target::parse("postgres://u@db.example.com/x?sslrootcert=system", "t", Duration::from_secs(1))
        .expect("system roots");
    assert_eq!(t.sslmode(), db::SslMode::VerifyFull);
    assert_eq!(t.unverified_warning(), None);
    let e = db::Target::parse("host=db.example.com sslrootcert=system sslmode=require", "t", Duration::from_secs(1))
        .expect_err("system with require");
    assert!(e.to_string().contains("sslrootcert=system needs sslmode=verify-full"), "{e}");
}

/// A Debian-like cluster: its certificate made as `openssl req -new -x509 -nodes -subj "/CN=localhost"` makes it,
/// self-signed, CA:TRUE, the name only in the CN. `server.crt` in the files is that certificate.
fn snakeoil() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        let cluster = tls_cluster(cert.pem(), key.serialize_pem(), &ca("unused CA"));
        let files = client_files(&cluster, &[("server.crt", cert.pem())]);
        TlsServer { cluster, files }
    })
}

/// A cluster whose certificate is signed by a CA and names the host only in its CN (no subjectAltName).
fn cn_only() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let ca = ca("cantina CN-only CA");
        let (cert, key) = signed(&ca, "localhost", vec![]);
        let cluster = tls_cluster(cert, key, &ca);
        let files = client_files(&cluster, &[("ca.pem", ca.cert.pem())]);
        TlsServer { cluster, files }
    })
}

fn url_to(server: &TlsServer, host: &str, query: &str) -> String {
    let addr = if host == "localhost" { "hostaddr=127.0.0.1&" } else { "" };
    format!("postgres://postgres@{host}:{}/postgres?{addr}{query}", server.cluster.port())
}

#[tokio::test]
async fn a_self_signed_server_certificate_given_as_sslrootcert_is_trusted_as_libpq_does() {
    let s = tokio::task::spawn_blocking(snakeoil).await.expect("snakeoil cluster");
    let pinned = s.files.join("server.crt").display().to_string();
    connects_with_tls(&url_to(s, "127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={pinned}"))).await;
    connects_with_tls(&url_to(s, "localhost", &format!("sslmode=verify-full&sslrootcert={pinned}"))).await;
    connects_with_tls(&url_to(s, "127.0.0.1", &format!("sslmode=require&sslrootcert={pinned}"))).await;
    // The CN names localhost, not 127.0.0.1.
    let e = refused(&url_to(s, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={pinned}"))).await;
    assert!(
        e.contains("the PostgreSQL server's certificate is not valid (sslmode=verify-full): it does not match the host name 127.0.0.1"),
        "{e}"
    );
    // Another certificate pinned: refused in words, not as CaUsedAsEndEntity.
    for roots in [file("ca.pem"), "system".to_string()] {
        let e = refused(&url_to(s, "localhost", &format!("sslmode=verify-full&sslrootcert={roots}"))).await;
        assert!(e.contains("(sslmode=verify-full): it is self-signed, not signed by a trusted CA in"), "{e}");
        assert!(!e.contains("CaUsedAsEndEntity") && !e.contains("Other("), "{e}");
    }
}

#[tokio::test]
async fn a_certificate_with_the_host_only_in_its_common_name_passes_verify_full() {
    let s = tokio::task::spawn_blocking(cn_only).await.expect("CN-only cluster");
    let ca = s.files.join("ca.pem").display().to_string();
    connects_with_tls(&url_to(s, "localhost", &format!("sslmode=verify-full&sslrootcert={ca}"))).await;
    let e = refused(&url_to(s, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}"))).await;
    assert!(e.contains("it does not match the host name 127.0.0.1"), "{e}");
}

const BIN: &str = env!("CARGO_BIN_EXE_cantina-notify");

/// The binary's stderr for `args` with this `DATABASE_URL`, and whether it succeeded. HOME is an empty directory,
/// so that no `~/.postgresql/root.crt` of the machine's counts.
fn cli(args: &[&str], database_url: &str) -> (bool, String) {
    let (ok, stderr, _) = cli_in_home(args, database_url);
    (ok, stderr)
}

fn cli_in_home(args: &[&str], database_url: &str) -> (bool, String, String) {
    let home = std::env::temp_dir().join(format!("cn-tls-home-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&home).expect("home");
    let out = std::process::Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("HOME", &home)
        .env("CANTINA__DATABASE__SIGNING_KEY", crate::helpers::TEST_SIGNING_KEY)
        .current_dir(&home)
        .output()
        .expect("run the binary");
    std::fs::remove_dir_all(&home).expect("remove home");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), home.display().to_string())
}

/// Each error's information once, in words: the line the operator sees is exactly `expected` (`{HOME}` standing for
/// the home directory the binary ran with).
fn fails_saying(args: &[&str], database_url: &str, expected: &str) {
    let (ok, stderr, home) = cli_in_home(args, database_url);
    assert!(!ok, "{args:?} succeeded: {stderr}");
    assert_eq!(stderr, format!("error: {}\n", expected.replace("{HOME}", &home)), "{args:?} {database_url}");
}

/// Printed once, without debug text or tokio-postgres' bare `db error`, whatever the wording around it.
fn said_once(text: &str, core: &str) {
    assert_eq!(text.matches(core).count(), 1, "{core}\nin: {text}");
    for noise in ["Other(", "OtherError", "db error", "InvalidCharacter", "Error occurred while"] {
        assert!(!text.contains(noise), "{noise} in: {text}");
    }
}

async fn pw_user() {
    let admin = db::connect(&url("postgres", "127.0.0.1", ""), "pgtls-test").await.expect("connect");
    admin
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE pw_user LOGIN PASSWORD 'right'; EXCEPTION WHEN duplicate_object THEN END $$",
        )
        .await
        .expect("pw_user");
}

#[tokio::test]
async fn connection_errors_are_printed_once_in_words() {
    pw_user().await;
    let (ca, other_ca) = (file("ca.pem"), file("other-ca.pem"));
    let not_pem = server().files.join("not-pem.crt");
    std::fs::write(&not_pem, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n")
        .expect("write");
    let not_pem = not_pem.display().to_string();
    let tls = "invalid TLS settings in the database URL: ";
    let cases = [
        (
            url("postgres", "localhost", &format!("sslmode=verify-full&sslrootcert={other_ca}")),
            format!(
                "cannot connect to PostgreSQL: the PostgreSQL server's certificate is not valid (sslmode=verify-full): it is not signed by a CA in sslrootcert={other_ca}"
            ),
            "it is not signed by a CA",
        ),
        (
            url("postgres", "localhost", "sslmode=verify-full"),
            format!(
                "{tls}sslmode=verify-full needs a root certificate to verify the server with: set sslrootcert to the CA file (PEM) of your PostgreSQL provider, or sslrootcert=system for the system's trusted roots ({{HOME}}/.postgresql/root.crt does not exist)"
            ),
            "root.crt does not exist",
        ),
        (
            url("postgres", "localhost", "sslmode=verifyfull"),
            format!("{tls}sslmode: expected disable, allow, prefer, require, verify-ca or verify-full (got 'verifyfull')"),
            "(got 'verifyfull')",
        ),
        (
            url("postgres", "localhost", "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            format!("{tls}cannot read sslrootcert /nonexistent/ca.pem: No such file or directory (os error 2)"),
            "No such file or directory",
        ),
        (
            url("postgres", "localhost", &format!("sslmode=verify-full&sslrootcert={not_pem}")),
            format!(
                "{tls}sslrootcert {not_pem}: not a valid PEM file: the text between -----BEGIN and -----END is not valid base64"
            ),
            "not a valid PEM file",
        ),
        (
            url("postgres", "localhost", "sslmode=verify-ca&sslrootcert=system"),
            format!(
                "{tls}sslrootcert=system needs sslmode=verify-full (got sslmode=verify-ca): checking the chain against public roots without the host name proves nothing, so libpq refuses it too"
            ),
            "needs sslmode=verify-full",
        ),
        (
            url("pw_user:wrong", "localhost", &format!("sslmode=verify-full&sslrootcert={ca}")),
            "cannot connect to PostgreSQL (sslmode=verify-full): FATAL: password authentication failed for user \"pw_user\" (28P01)".to_string(),
            "password authentication failed",
        ),
    ];
    for (database_url, expected, core) in cases {
        for args in [&["migrate"][..], &["channel", "list"], &["stats"]] {
            fails_saying(args, &database_url, &expected);
        }
        // Through the pool, worded by its own layer.
        let (ok, stderr, _) = cli_in_home(&["sweep", "saldo_bajo"], &database_url);
        assert!(!ok, "{stderr}");
        said_once(&stderr, core);
    }
}

/// `run` logs a connection failure with the same words, once (the trial saw `Error occurred while creating a new
/// object: db error: db error: FATAL: …`).
#[tokio::test]
async fn run_logs_a_connection_failure_once_in_words() {
    use std::io::BufRead;
    pw_user().await;
    let database_url =
        url("pw_user:wrong", "localhost", &format!("sslmode=verify-full&sslrootcert={}", file("ca.pem")));
    let mut child = std::process::Command::new(BIN)
        .arg("run")
        .env("DATABASE_URL", &database_url)
        .env("CANTINA__DATABASE__SIGNING_KEY", crate::helpers::TEST_SIGNING_KEY)
        .env("CANTINA__HTTP__ADDR", "127.0.0.1:0")
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + crate::helpers::SHORT;
    let mut seen = Vec::new();
    let line = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("password authentication failed") => break line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no password failure logged; stderr so far:\n{}", seen.join("\n")),
        }
    };
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    said_once(&line, "password authentication failed");
}

/// A fresh database in the TLS cluster with the service's tables, migrated through the binary over TLS (sslmode
/// require, by 127.0.0.1: no warning). Returns its URL without the query.
async fn migrated_database(application_name: &str) -> String {
    let admin = db::connect(&url("postgres", "127.0.0.1", ""), "pgtls-test").await.expect("connect");
    let name = format!("cli_{}", fastrand::u32(..));
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
    let base = format!("postgres://postgres@127.0.0.1:{}/{name}", server().cluster.port());
    let (ok, stderr) =
        cli(&["migrate", "--reference-schema"], &format!("{base}?sslmode=require&application_name={application_name}"));
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("does not verify"), "127.0.0.1 is this machine: {stderr}");
    base
}

/// `migrate` and the operator commands warn, once, when they reach another machine without verifying it; not when
/// the server is this machine. The other machine here is a documentation address (TEST-NET-3) that does not answer:
/// the warning comes before the connection is tried, and this machine reaches no other PostgreSQL.
#[tokio::test]
async fn every_command_that_connects_warns_of_an_unverified_remote_server_once() {
    let local = migrated_database("pgtls-warn").await;
    for args in [&["channel", "list"][..], &["stats"], &["requests", "list"]] {
        let (ok, stderr) = cli(args, &format!("{local}?sslmode=require"));
        assert!(ok, "{args:?}: {stderr}");
        assert!(!stderr.contains("does not verify"), "{args:?}: {stderr}");
    }
    let remote = "postgres://postgres@203.0.113.1:5432/cantina?sslmode=require&connect_timeout=1";
    let warning =
        "the connection to PostgreSQL at 203.0.113.1 does not verify the server's certificate (sslmode=require)";
    for args in [
        &["migrate"][..],
        &["channel", "list"],
        &["stats"],
        &["requests", "list"],
        &["sweep", "saldo_bajo"],
        &["send-test", "--channel", "portal", "--to", "1"],
    ] {
        let (ok, stderr) = cli(args, remote);
        assert!(!ok, "{args:?} reached 203.0.113.1: {stderr}");
        assert_eq!(stderr.matches(warning).count(), 1, "{args:?}: {stderr}");
    }
}

/// The server's log lines (`[pid] message`) of the sessions opened with `application_name`, once each of them has
/// ended: the pids come from `connection authorized: … application_name=…`, and each has its `disconnection:` line.
async fn sessions_log(application_name: &str) -> Vec<String> {
    let log = server().cluster.dir().join("server.log");
    crate::helpers::poll_until("the sessions' disconnection lines", crate::helpers::SHORT, || async {
        let text = std::fs::read_to_string(&log).ok()?;
        let pid = |line: &str| line.strip_prefix('[').and_then(|rest| rest.split_once(']')).map(|(p, _)| p.to_string());
        let pids: Vec<String> = text
            .lines()
            .filter(|l| l.contains(&format!("application_name={application_name} ")))
            .filter_map(pid)
            .collect();
        let lines: Vec<String> =
            text.lines().filter(|l| pid(l).is_some_and(|p| pids.contains(&p))).map(str::to_string).collect();
        let ended =
            pids.iter().all(|p| lines.iter().any(|l| pid(l).as_ref() == Some(p) && l.contains("disconnection:")));
        (!pids.is_empty() && ended).then_some(lines)
    })
    .await
}

/// A one-off command closes its TLS sessions as a client should (Terminate, then TLS close_notify), so the server
/// logs no `could not receive data from client: Connection reset by peer` for each command run.
#[tokio::test]
async fn one_off_commands_close_their_sessions_cleanly() {
    let app = format!("pgtls-close-{}", fastrand::u32(..));
    let base = migrated_database(&format!("{app}-migrate")).await;
    for (suffix, args) in
        [("channel", vec!["channel", "list"]), ("stats", vec!["stats"]), ("sweep", vec!["sweep", "saldo_bajo"])]
    {
        let (ok, stderr) = cli(&args, &format!("{base}?sslmode=require&application_name={app}-{suffix}"));
        assert!(ok, "{args:?}: {stderr}");
    }
    for suffix in ["migrate", "channel", "stats", "sweep"] {
        let lines = sessions_log(&format!("{app}-{suffix}")).await;
        for noise in ["could not receive data", "unexpected EOF", "SSL error", "Connection reset"] {
            assert!(!lines.iter().any(|l| l.contains(noise)), "{suffix}: {noise}:\n{}", lines.join("\n"));
        }
    }
}
