//! The service under test: the real release binary as a child process, configured only by its environment, with
//! its logs in one file per process.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::FiError;

/// How long a started service may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Launcher {
    pub bin: PathBuf,
    pub env: Vec<(String, String)>,
    pub log_dir: PathBuf,
    http: reqwest::Client,
}

pub struct Service {
    child: tokio::process::Child,
    pub incarnation: u32,
    pub pid: u32,
}

impl Launcher {
    pub fn new(bin: PathBuf, env: Vec<(String, String)>, log_dir: PathBuf) -> Result<Launcher, FiError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| FiError::Failed(format!("HTTP client: {e}")))?;
        Ok(Launcher { bin, env, log_dir, http })
    }

    /// Runs a one-shot subcommand (e.g. `migrate`) with the service's environment; fails unless it exits 0.
    pub async fn run_once(&self, args: &[&str]) -> Result<(), FiError> {
        let log_path = self.log_dir.join(format!("{}.log", args.first().copied().unwrap_or("command")));
        let log = File::create(&log_path).map_err(FiError::io(format!("creating {}", log_path.display())))?;
        let status = self.command(log)?.args(args).status().await.map_err(FiError::io(format!(
            "running {} {}",
            self.bin.display(),
            args.join(" ")
        )))?;
        if !status.success() {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(FiError::Failed(format!("`cantina-notify {}` failed ({status}):\n{output}", args.join(" "))));
        }
        Ok(())
    }

    /// Starts `cantina-notify run` and waits until `/readyz` answers 200 (database and LISTEN connection up).
    pub async fn start(&self, incarnation: u32) -> Result<Service, FiError> {
        let http_addr = free_addr()?;
        let log_path = self.log_dir.join(format!("service-{incarnation}.log"));
        let log = File::create(&log_path).map_err(FiError::io(format!("creating {}", log_path.display())))?;
        let mut cmd = self.command(log)?;
        cmd.arg("run").env("CANTINA__HTTP__ADDR", http_addr.to_string());
        let mut child = cmd.spawn().map_err(FiError::io(format!("starting {}", self.bin.display())))?;
        let pid = child.id().ok_or_else(|| FiError::Failed("the service exited at once".into()))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("http://{http_addr}/readyz");
        loop {
            if let Some(status) = child.try_wait().map_err(FiError::io("waiting for the service"))? {
                return Err(FiError::Failed(format!(
                    "service #{incarnation} exited during start-up ({status}); log: {}",
                    log_path.display()
                )));
            }
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(Service { child, incarnation, pid });
            }
            if Instant::now() >= deadline {
                let _ = child.start_kill();
                return Err(FiError::Failed(format!(
                    "service #{incarnation} not ready within {} s; log: {}",
                    READY_TIMEOUT.as_secs(),
                    log_path.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A hermetic command: only the configured environment (no inherited `DATABASE_URL`, no `.env` from the
    /// working directory, which is the log directory), stdout and stderr to `log`, and killed with this process.
    fn command(&self, log: File) -> Result<tokio::process::Command, FiError> {
        let stderr = log.try_clone().map_err(FiError::io("duplicating the log file handle"))?;
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.log_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. The child is spawned from the
        // main thread (the orchestration runs in `block_on`), which lives as long as this process, so the death
        // signal fires only when this process dies: no service outlives a killed run.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }
}

impl Service {
    /// SIGKILL, and reaped: nothing of it runs any more when this returns.
    pub async fn sigkill(mut self) -> Result<ExitStatus, FiError> {
        self.child.start_kill().map_err(FiError::io("SIGKILL"))?;
        self.child.wait().await.map_err(FiError::io("reaping the killed service"))
    }

    /// SIGTERM, then waits up to `limit` for the exit; `None` when it did not exit in time (then it is killed).
    pub async fn sigterm(mut self, limit: Duration) -> Result<(Option<ExitStatus>, Duration), FiError> {
        let started = Instant::now();
        let pid = libc::pid_t::try_from(self.pid).map_err(|_| FiError::Failed("pid out of range".into()))?;
        // SAFETY: plain syscall; the child is unreaped, so its pid cannot have been reused.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(FiError::io("SIGTERM")(std::io::Error::last_os_error()));
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => Ok((Some(status.map_err(FiError::io("waiting for the service"))?), started.elapsed())),
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                Ok((None, started.elapsed()))
            }
        }
    }

    /// The exit status if the process ended on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// A loopback address that was free a moment ago (a fresh one per process: no waiting for the old socket).
fn free_addr() -> Result<SocketAddr, FiError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(FiError::io("finding a free port"))?;
    l.local_addr().map_err(FiError::io("finding a free port"))
}
