//! Issue 15, item 2: slow or surplus HTTP clients against the real binary. Header and body timeouts close
//! dribbling connections; the connection cap refuses the surplus so the service keeps descriptors for its database
//! and its providers; unauthenticated webhook calls are counted, not each logged at WARN.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_cantina-notify");

/// The binary running `run` against a test database, its log in a file.
struct Service {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
    dir: PathBuf,
}

impl Service {
    /// `nofile`: the descriptor limit (soft and hard) the service runs under, as `ulimit -n` sets it.
    async fn start(db: &TestDb, nofile: Option<u32>, env: &[(&str, &str)]) -> Service {
        let dir = std::env::temp_dir().join(format!("cn-slow-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("service.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" run"), BIN]);
                c
            }
            None => {
                let mut c = Command::new(BIN);
                c.arg("run");
                c
            }
        };
        cmd.env("DATABASE_URL", &db.url)
            .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
            .env("CANTINA__HTTP__ADDR", &addr)
            .env("CANTINA__DATABASE__POOL_SIZE", "8")
            .env("CANTINA__DISPATCH__CONCURRENCY", "4")
            .env("CANTINA__DISPATCH__POLL_INTERVAL_MS", "50")
            .env("CANTINA__SCHEDULER__ENABLED", "false")
            .env("EMAIL_BACKEND", "file")
            .env("EMAIL_FILE_PATH", dir.join("email"))
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")));
        let child = cmd.spawn().expect("spawn the service");
        let service = Service { child: Some(child), addr, log, dir };
        poll_until("the service answers /healthz", SHORT, || async {
            (cantina_notify::http::get_url(&service.addr, "/healthz", Duration::from_secs(1)).await.ok()?.0 == 200)
                .then_some(())
        })
        .await;
        service
    }

    async fn get(&self, path: &str) -> (u16, String) {
        cantina_notify::http::get_url(&self.addr, path, Duration::from_secs(5)).await.expect("http get")
    }

    /// The sample line of `/metrics` that starts with `series`, if any.
    async fn metric(&self, series: &str) -> Option<String> {
        self.get("/metrics").await.1.lines().find(|l| l.starts_with(series)).map(str::to_string)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; the service must exit 0.
    async fn stop(mut self) {
        let Some(child) = self.child.take() else { return };
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
        assert!(status.status.success(), "exit {:?}:\n{}", status.status, self.log());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How one attacking connection ended: when the server closed it (None: still open at the deadline) and what it
/// was answered.
struct Outcome {
    closed_after: Option<Duration>,
    answer: String,
}

/// `n` connections that each send `first`, then one byte of `drip` (if any) every 250 ms, until the server closes
/// them or `until` passes.
struct Attack {
    closed: Arc<AtomicUsize>,
    tasks: JoinSet<Outcome>,
}

impl Attack {
    async fn start(addr: &str, n: usize, first: &[u8], drip: Option<u8>, until: Duration) -> Attack {
        let closed = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let deadline = tokio::time::Instant::now() + until;
        for _ in 0..n {
            // Connected before the task starts, so that every connection is counted against the cap at once.
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let started = Instant::now();
            let (first, closed) = (first.to_vec(), closed.clone());
            tasks.spawn(async move {
                let mut answer = Vec::new();
                let mut buf = [0u8; 1024];
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                let ended = |answer: &[u8]| {
                    closed.fetch_add(1, Ordering::SeqCst);
                    Outcome { closed_after: Some(started.elapsed()), answer: String::from_utf8_lossy(answer).into() }
                };
                if stream.write_all(&first).await.is_err() {
                    return ended(&answer);
                }
                loop {
                    tokio::select! {
                        r = stream.read(&mut buf) => match r {
                            Ok(0) | Err(_) => return ended(&answer),
                            Ok(n) => answer.extend_from_slice(&buf[..n]),
                        },
                        _ = tick.tick() => {
                            if let Some(b) = drip && stream.write_all(&[b]).await.is_err() {
                                return ended(&answer);
                            }
                        }
                        () = tokio::time::sleep_until(deadline) => {
                            return Outcome { closed_after: None, answer: String::from_utf8_lossy(&answer).into() };
                        }
                    }
                }
            });
        }
        Attack { closed, tasks }
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    async fn outcomes(self) -> Vec<Outcome> {
        self.tasks.join_all().await
    }
}

#[tokio::test]
async fn a_client_dribbling_its_headers_is_disconnected_after_the_header_timeout() {
    let db = TestDb::new().await;
    let svc = Service::start(&db, None, &[("CANTINA__HTTP__HEADER_TIMEOUT_SECONDS", "1")]).await;
    let attack = Attack::start(&svc.addr, 50, b"GET /healthz HTTP/1.1\r\nX-Slow: ", Some(b'a'), SHORT).await;
    let outcomes = attack.outcomes().await;
    let open = outcomes.iter().filter(|o| o.closed_after.is_none()).count();
    assert_eq!(open, 0, "{open} of 50 dribbling connections still open after {SHORT:?}");
    let slowest = outcomes.iter().filter_map(|o| o.closed_after).max().unwrap_or_default();
    let fastest = outcomes.iter().filter_map(|o| o.closed_after).min().unwrap_or_default();
    assert!(fastest >= Duration::from_millis(900), "closed by the timeout, not at once: {fastest:?}");
    assert!(slowest < Duration::from_secs(3), "1 s header timeout, closed after {slowest:?}");
    assert!(outcomes.iter().all(|o| !o.answer.starts_with("HTTP/1.1 200")), "no request was served");
    assert_eq!(
        svc.metric("cantina_notify_http_connections_dropped_total{reason=\"header_timeout\"}").await.as_deref(),
        Some("cantina_notify_http_connections_dropped_total{reason=\"header_timeout\"} 50")
    );
    // An idle connection (no byte at all) is closed too.
    let idle = Attack::start(&svc.addr, 1, b"", None, SHORT).await.outcomes().await;
    assert!(idle[0].closed_after.is_some_and(|d| d < Duration::from_secs(3)), "idle: {:?}", idle[0].closed_after);
    assert_eq!(svc.get("/healthz").await.0, 200);
    // A dribbling client cannot hold up a graceful stop beyond the header timeout.
    let held = Attack::start(&svc.addr, 5, b"GET /healthz HTTP/1.1\r\nX-Slow: ", Some(b'a'), SHORT).await;
    let stopping = Instant::now();
    svc.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(3), "stopped after {:?}", stopping.elapsed());
    assert!(held.outcomes().await.iter().all(|o| o.closed_after.is_some()));
}

#[tokio::test]
async fn a_client_dribbling_its_body_gets_408_after_the_body_timeout() {
    let db = TestDb::new().await;
    let svc = Service::start(&db, None, &[("CANTINA__HTTP__BODY_TIMEOUT_SECONDS", "1")]).await;
    let head = format!(
        "POST /webhooks/twilio/status HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nMessageSid=",
        svc.addr
    );
    let outcomes = Attack::start(&svc.addr, 50, head.as_bytes(), Some(b'S'), SHORT).await.outcomes().await;
    let open = outcomes.iter().filter(|o| o.closed_after.is_none()).count();
    assert_eq!(open, 0, "{open} of 50 dribbling bodies still open after {SHORT:?}");
    let slowest = outcomes.iter().filter_map(|o| o.closed_after).max().unwrap_or_default();
    let fastest = outcomes.iter().filter_map(|o| o.closed_after).min().unwrap_or_default();
    assert!(fastest >= Duration::from_millis(900), "closed by the timeout, not at once: {fastest:?}");
    assert!(slowest < Duration::from_secs(3), "1 s body timeout, closed after {slowest:?}");
    for o in &outcomes {
        assert!(o.answer.starts_with("HTTP/1.1 408"), "{}", o.answer);
    }
    assert_eq!(
        svc.metric("cantina_notify_http_connections_dropped_total{reason=\"body_timeout\"}").await.as_deref(),
        Some("cantina_notify_http_connections_dropped_total{reason=\"body_timeout\"} 50")
    );
    svc.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_and_sends_keep_their_descriptors() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 50_000).await;
    // 128 descriptors: the cap (20) and the service's own needs fit (115), 200 connections would not.
    let env = [("CANTINA__HTTP__MAX_CONNECTIONS", "20"), ("CANTINA__HTTP__HEADER_TIMEOUT_SECONDS", "4")];
    let svc = Service::start(&db, Some(128), &env).await;
    poll_until("ready", SHORT, || async { (svc.get("/readyz").await.0 == 200).then_some(()) }).await;
    let attack = Attack::start(&svc.addr, 200, b"", None, SHORT).await;
    let started = Instant::now();
    poll_until("the 180 connections over the cap are refused", Duration::from_secs(3), || async {
        (attack.closed() >= 180).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(3), "refused at once, not by the 4 s timeout");
    // The probes' connections may not have handed back their slots yet: a few more refused, never fewer.
    let refused = attack.closed();
    assert!((180..=185).contains(&refused), "{refused} refused, so {} held (cap 20)", 200 - refused);

    // The cap is full: a notice is still sent (database connections, the file backend's write) and recorded.
    recharge(&c, &fam.nro_tarjeta, 10_000).await;
    wait_count(&c, "SELECT count(*) FROM solicitudes_notificacion WHERE estado = 'Enviado'", 1, SHORT).await;
    assert_eq!(attack.closed(), refused, "the connections within the cap were still held while the notice was sent");
    let log = svc.log();
    assert!(!log.contains("Too many open files"), "{log}");

    // The held ones are closed by the header timeout; fresh connections are served again.
    let outcomes = attack.outcomes().await;
    assert!(outcomes.iter().all(|o| o.closed_after.is_some()), "every connection closed");
    let answered_503 = outcomes.iter().filter(|o| o.answer.starts_with("HTTP/1.1 503")).count();
    assert_eq!(answered_503, refused, "each refused connection was told 503");
    assert_eq!(svc.get("/healthz").await.0, 200);
    assert_eq!(svc.get("/readyz").await.0, 200);
    assert_eq!(
        svc.metric("cantina_notify_http_connections_dropped_total{reason=\"over_cap\"}").await,
        Some(format!("cantina_notify_http_connections_dropped_total{{reason=\"over_cap\"}} {refused}"))
    );
    svc.stop().await;

    // A cap that does not fit under the descriptor limit is refused at start, naming the key.
    let out = Command::new("sh")
        .args(["-c", "ulimit -n 100 && exec \"$0\" run", BIN])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("CANTINA__DATABASE__SIGNING_KEY", TEST_SIGNING_KEY)
        .env("CANTINA__HTTP__MAX_CONNECTIONS", "20")
        .env("CANTINA__DATABASE__POOL_SIZE", "8")
        .env("CANTINA__DISPATCH__CONCURRENCY", "4")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("CANTINA__HTTP__MAX_CONNECTIONS: the service may need 115 file descriptors"), "{all}");
}

#[tokio::test]
async fn bad_signatures_are_counted_not_each_logged_at_warn() {
    let db = TestDb::new().await;
    let env = [("TWILIO_AUTH_TOKEN", "tok-123"), ("CANTINA__WEBHOOKS__PUBLIC_URL", "https://notify.example.com")];
    let svc = Service::start(&db, None, &env).await;
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let r = http
            .post(format!("http://{}/webhooks/twilio/status", svc.addr))
            .header("X-Twilio-Signature", "AAAA")
            .form(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 401);
    }
    assert_eq!(
        svc.metric("cantina_notify_webhook_rejected_total{provider=\"twilio\"}").await.as_deref(),
        Some("cantina_notify_webhook_rejected_total{provider=\"twilio\"} 5")
    );
    let log = svc.log();
    let warnings = log.lines().filter(|l| l.contains("WARN") && l.contains("webhook rejected")).count();
    assert_eq!(warnings, 1, "one WARN for five rejections:\n{log}");
    svc.stop().await;
}
