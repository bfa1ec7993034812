//! The binary as operators run it: migrate, run until SIGTERM (exit 0), healthcheck, check-config.

use std::process::{Command, Stdio};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_cantina-notify");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

#[tokio::test]
async fn migrate_run_healthcheck_and_sigterm() {
    let db = TestDb::empty().await;
    let out = Command::new(BIN)
        .args(["migrate", "--reference-schema"])
        .env("DATABASE_URL", &db.url)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The server's notices (`trigger … does not exist, skipping` from `DROP … IF EXISTS` on a fresh database)
    // are not the operator's business.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("NOTICE") && !stderr.contains("skipping"), "{stderr}");
    let versions: Vec<i32> = cantina_notify::migrate::MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("migrations applied: {versions:?}")), "{stdout}");

    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(BIN)
        .arg("run")
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .env("DATABASE_URL", &db.url)
        .env("CANTINA__HTTP__ADDR", &addr)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    poll_until("healthy", SHORT, || async {
        let ok = Command::new(BIN).args(["healthcheck", "--addr", &addr]).output().ok()?.status.success();
        ok.then_some(())
    })
    .await;
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(status.status.success(), "exit {:?}: {}", status.status, String::from_utf8_lossy(&status.stderr));
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("SIGTERM received") && stderr.contains("stopped"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no colour codes when stderr is not a terminal: {stderr:?}");

    let down = Command::new(BIN).args(["healthcheck", "--addr", &addr, "--timeout-seconds", "1"]).output().unwrap();
    assert!(!down.status.success());
}

#[test]
fn check_config_masks_secrets_and_names_bad_keys() {
    let out = Command::new(BIN)
        .arg("check-config")
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .env("DATABASE_URL", "postgres://app:very-secret-pw@db.example:5432/cantina")
        .env("EMAIL_HOST_PASSWORD", "smtp-secret-pw")
        .env("TWILIO_AUTH_TOKEN", "twilio-secret")
        .env("CANTINA__RULES__SALDO_BAJO__CHANNELS", "email,sms")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for secret in ["very-secret-pw", "smtp-secret-pw", "twilio-secret"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} leaked:\n{stdout}\n{stderr}");
    }
    assert!(stdout.contains("postgres://app:********@db.example:5432/cantina"), "{stdout}");
    assert!(stdout.contains("CANTINA__RULES__SALDO_BAJO__CHANNELS") && stdout.contains("SMS_PROVIDER"), "{stdout}");
    assert!(!out.status.success(), "an invalid configuration exits non-zero");

    // A provider chosen without its credentials is reported by name.
    let missing = Command::new(BIN)
        .arg("check-config")
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .env("DATABASE_URL", "postgres://app@db.example/cantina")
        .env("SMS_PROVIDER", "twilio")
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("TWILIO_AUTH_TOKEN")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&missing.stdout);
    assert!(!missing.status.success());
    assert!(stdout.contains("TWILIO_ACCOUNT_SID") && stdout.contains("TWILIO_AUTH_TOKEN"), "{stdout}");

    let ok = Command::new(BIN)
        .arg("check-config")
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .env("DATABASE_URL", "postgres://app@db.example/cantina")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    let ok_stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok_stdout.contains("signing_key = \"********\"") && !ok_stdout.contains(TEST_SIGNING_KEY), "{ok_stdout}");

    // Without the row-signing key the service would sign nothing: refused, saying how to make one.
    let unsigned = Command::new(BIN)
        .arg("check-config")
        .env("DATABASE_URL", "postgres://app@db.example/cantina")
        .env_remove("CANTINA__DATABASE__SIGNING_KEY")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&unsigned.stdout);
    assert!(!unsigned.status.success());
    assert!(stdout.contains("CANTINA__DATABASE__SIGNING_KEY: required") && stdout.contains("openssl rand"), "{stdout}");
}

/// A value of the wrong type stops check-config naming its keys, never the value (a password on the port line
/// here), and every problem is listed at once.
#[test]
fn check_config_names_mistyped_keys_without_their_values_and_lists_every_problem() {
    let run = |pairs: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("check-config")
            .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
            .env("DATABASE_URL", "postgres://app@db.example/cantina")
            .current_dir(std::env::temp_dir());
        for (k, v) in pairs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let out = run(&[("EMAIL_PORT", "tu_app_password_16_digitos")]);
    assert!(!out.contains("tu_app_password"), "{out}");
    assert!(out.contains("EMAIL_PORT (CANTINA__EMAIL__PORT): expected an integer from 1 to 65535"), "{out}");
    let out = run(&[("EMAIL_USE_TLS", "Tru3-s3cr3t")]);
    assert!(!out.to_lowercase().contains("tru3-s3cr3t"), "{out}");
    assert!(out.contains("EMAIL_USE_TLS (CANTINA__EMAIL__USE_TLS): expected true or false"), "{out}");
    let out = run(&[("EMAIL_BACKEND", "mailgun"), ("EMAIL_PORT", "99999")]);
    assert!(!out.contains("99999"), "{out}");
    assert!(out.contains("2 configuration problem(s)"), "{out}");
    assert!(out.contains("EMAIL_PORT (CANTINA__EMAIL__PORT): expected an integer from 1 to 65535"), "{out}");
    assert!(out.contains("EMAIL_BACKEND: unknown backend (expected console, file"), "{out}");
    assert!(!out.contains("mailgun"), "{out}");
    // A secret pasted on a name's line is not shown either; a comment after the value is named as the likely cause.
    let out = run(&[
        ("EMAIL_BACKEND", "SG.abcdEFGH-secret"),
        ("SMS_PROVIDER", "tigo-key-12345"),
        ("WHATSAPP_PROVIDER", "console   # para probar"),
    ]);
    // (The effective configuration printed above the problems shows these non-secret fields as set.)
    let problems: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("- ")).collect();
    assert_eq!(problems.len(), 3, "{out}");
    for secret in ["abcdEFGH", "12345", "para probar"] {
        assert!(problems.iter().all(|l| !l.contains(secret)), "{out}");
    }
    assert!(out.contains("SMS_PROVIDER: unknown provider (expected twilio"), "{out}");
    assert!(
        out.contains("WHATSAPP_PROVIDER: unknown provider (expected business_api, twilio, console or file; the value is not shown; it contains '#': in a .env a comment after a value is part of the value, put it on its own line)"),
        "{out}"
    );
}

/// SES configured the django-ses way (the region only in `AWS_SES_REGION_ENDPOINT`): check-config shows the region
/// and the SMTP host really used, and the access key id as AWS shows it; SendGrid shows no SMTP host.
#[test]
fn check_config_shows_the_email_host_the_backend_uses() {
    let run = |pairs: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("check-config")
            .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
            .env("DATABASE_URL", "postgres://app@db.example/cantina")
            .env_remove("AWS_SES_REGION_NAME")
            .current_dir(std::env::temp_dir());
        for (k, v) in pairs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success(), stdout)
    };
    let (ok, out) = run(&[
        ("EMAIL_BACKEND", "django_ses.SESBackend"),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("AWS_SES_REGION_ENDPOINT", "email.sa-east-1.amazonaws.com"),
    ]);
    assert!(ok, "{out}");
    let email = out.split("[email]").nth(1).unwrap().split("\n\n").next().unwrap();
    assert!(email.contains("host = \"email-smtp.sa-east-1.amazonaws.com\"\nport = 587"), "{email}");
    assert!(email.contains("aws_ses_region_name = \"sa-east-1\""), "{email}");
    assert!(email.contains("aws_access_key_id = \"****************MPLE\""), "{email}");
    assert!(!out.contains("AKIAIOSFODNN7") && !out.contains("wJalrXUtnFEMI"), "{out}");

    let (ok, out) =
        run(&[("EMAIL_BACKEND", "sendgrid"), ("SENDGRID_API_KEY", "SG.secret"), ("EMAIL_HOST", "smtp.gmail.com")]);
    assert!(ok, "{out}");
    let email = out.split("[email]").nth(1).unwrap().split("\n\n").next().unwrap();
    assert!(!email.contains("host ="), "{email}");

    let (ok, out) = run(&[
        ("EMAIL_BACKEND", "ses"),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("AWS_SES_REGION_NAME", "us-east-1"),
        ("AWS_SES_REGION_ENDPOINT", "email.sa-east-1.amazonaws.com"),
    ]);
    assert!(!ok);
    assert!(
        out.contains("AWS_SES_REGION_NAME (us-east-1) and AWS_SES_REGION_ENDPOINT (region sa-east-1) disagree"),
        "{out}"
    );
}

#[tokio::test]
async fn send_test_prints_the_providers_answer() {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"))
        .and(body_string_contains("To=%2B595981123456"))
        // Marked as a test: `[PRUEBA] ` before the text a parent would get.
        .and(body_string_contains("Body=%5BPRUEBA%5D+Cantina+Tita"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "SM0123456789abcdef0123456789abcdef"})),
        )
        .expect(1)
        .mount(&twilio)
        .await;
    let uri = twilio.uri();
    let run = move |token: &str| {
        Command::new(BIN)
            .args(["send-test", "--channel", "sms", "--to", "0981 123456", "--type", "saldo_bajo"])
            .env("SMS_PROVIDER", "twilio")
            .env("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
            .env("TWILIO_AUTH_TOKEN", token)
            .env("TWILIO_PHONE_NUMBER", "+15005550006")
            .env("TWILIO_API_URL", &uri)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking(move || run("token-1")).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("SM0123456789abcdef0123456789abcdef"), "{stdout}");
    assert!(stdout.contains("+595 98* *** 456") && !stdout.contains("981123456"), "masked: {stdout}");

    twilio.reset().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"code": 20003, "message": "Authenticate", "status": 401})),
        )
        .mount(&twilio)
        .await;
    let uri = twilio.uri();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["send-test", "--channel", "sms", "--to", "0981123456"])
            .env("SMS_PROVIDER", "twilio")
            .env("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
            .env("TWILIO_AUTH_TOKEN", "wrong-token")
            .env("TWILIO_PHONE_NUMBER", "+15005550006")
            .env("TWILIO_API_URL", uri)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("configuración") && stdout.contains("20003") && !stdout.contains("wrong-token"),
        "{stdout}"
    );
}

#[tokio::test]
async fn sweep_creates_the_requests_once_and_exits() {
    let db = TestDb::new().await;
    let c = db.client().await;
    seed_family(&c, Some("ana@example.com"), None, 1_000).await;
    let url = db.url.clone();
    let run = move || {
        let out = Command::new(BIN)
            .args(["sweep", "saldo_bajo"])
            .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
            .env("DATABASE_URL", &url)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let run2 = run.clone();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(run).await.unwrap();
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("sweep saldo_bajo: 1 solicitud(es)"), "{stdout}");
    let (ok, stdout, _) = tokio::task::spawn_blocking(run2).await.unwrap();
    assert!(ok && stdout.contains("sweep saldo_bajo: 0 solicitud(es)"), "deduplicated: {stdout}");
    assert_eq!(
        count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE tipo = 'saldo_bajo' AND estado = 'Pendiente'")
            .await,
        1
    );
    let bad = Command::new(BIN).args(["sweep", "todo"]).env("DATABASE_URL", &db.url).output().unwrap();
    assert!(!bad.status.success());
}

/// A `.env` line the reader cannot take (here not UTF-8, in the password line) stops every command with the file and
/// the 1-based line, printed once, and never the line's value.
#[test]
fn a_dotenv_error_names_the_line_once_and_never_its_value() {
    let dir = std::env::temp_dir().join(format!("cn-bin-env-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".env"), b"EMAIL_HOST=smtp.gmail.com\r\nEMAIL_HOST_PASSWORD=abcd efgh \xe1jkl mnop\r\n")
        .unwrap();
    for command in ["check-config", "run", "migrate"] {
        let out = Command::new(BIN)
            .arg(command)
            .env_remove("EMAIL_HOST_PASSWORD")
            .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
            .env("DATABASE_URL", "postgres://app@127.0.0.1:1/cantina")
            .current_dir(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}");
        for part in ["abcd", "efgh", "mnop", "EMAIL_HOST_PASSWORD"] {
            assert!(!stdout.contains(part) && !stderr.contains(part), "{command}: {part} shown:\n{stdout}\n{stderr}");
        }
        assert_eq!(stderr.matches(".env file .env, line 2:").count(), 1, "{command}: {stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// An error after the log is set up (here the database refusing the connection) is printed once, not logged and
/// printed, and without colour codes.
#[test]
fn a_cli_error_is_printed_once() {
    let out = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", format!("postgres://app@127.0.0.1:{}/cantina", free_port()))
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

/// WhatsApp through Meta's Cloud API sends the approved template, whose text cannot change: `send-test` marks the
/// made-up parent's name, the first parameter, as `[PRUEBA] Ana`.
#[tokio::test]
async fn send_test_marks_a_whatsapp_template_in_its_first_parameter() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let meta = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v23.0/123456789012345/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "+595981123456", "wa_id": "595981123456"}],
            "messages": [{"id": "wamid.HBgLNTk1OTgxMTIzNDU2FQIAERgSQ0"}]
        })))
        .expect(1)
        .mount(&meta)
        .await;
    let uri = meta.uri();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["send-test", "--channel", "whatsapp", "--to", "0981 123456"])
            .env("WHATSAPP_PROVIDER", "business_api")
            .env("WHATSAPP_ACCESS_TOKEN", "EAAG-test-token")
            .env("WHATSAPP_PHONE_NUMBER_ID", "123456789012345")
            .env("WHATSAPP_API_URL", uri)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let requests = meta.received_requests().await.unwrap();
    let body: serde_json::Value = requests[0].body_json().unwrap();
    let parameters = &body["template"]["components"][0]["parameters"];
    assert_eq!(parameters[0]["text"], "[PRUEBA] Ana", "{body}");
    assert_eq!(parameters[1]["text"], "Luis Benítez", "the rest is what a parent would get: {body}");
}

/// An operator command on a database the service was never migrated on says so, instead of only naming a table.
#[tokio::test]
async fn an_operator_command_on_an_unmigrated_database_says_to_migrate() {
    let db = TestDb::empty().await;
    let out = Command::new(BIN)
        .args(["channel", "list"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("(42P01); the service's tables are missing: is this the Cantina database, and has `cantina-notify migrate` run on it?"),
        "{stderr}"
    );
}
