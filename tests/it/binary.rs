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
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied: [1, 2]"));

    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(BIN)
        .arg("run")
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

    let down = Command::new(BIN).args(["healthcheck", "--addr", &addr, "--timeout-seconds", "1"]).output().unwrap();
    assert!(!down.status.success());
}

#[test]
fn check_config_masks_secrets_and_names_bad_keys() {
    let out = Command::new(BIN)
        .arg("check-config")
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

    let ok = Command::new(BIN)
        .arg("check-config")
        .env("DATABASE_URL", "postgres://app@db.example/cantina")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
}
