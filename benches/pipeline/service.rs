//! The real release binary as a child process, and what /proc says about processes (memory, CPU time).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

const BIN: &str = env!("CARGO_BIN_EXE_cantina-notify");

/// A running `cantina-notify run`. Dropping it (also while unwinding from a panic) SIGKILLs it; the child also gets
/// SIGKILL if the benchmark process dies without unwinding (`PR_SET_PDEATHSIG`; it is spawned from the main thread,
/// which lives as long as the process).
pub struct Service {
    child: Child,
    http: String,
}

impl Service {
    pub fn spawn(database_url: &str, sendgrid_url: &str) -> Result<Service> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("free port for the service's HTTP")?
            .port();
        let http = format!("127.0.0.1:{port}");
        let mut command = Command::new(BIN);
        command
            .arg("run")
            .env("DATABASE_URL", database_url)
            .env("CANTINA__DATABASE__SIGNING_KEY", "benchmark-signing-key-0123456789abcdef0123")
            .env("EMAIL_BACKEND", "sendgrid")
            .env("SENDGRID_API_KEY", "x")
            .env("SENDGRID_API_URL", sendgrid_url)
            .env("CANTINA__LIMITS__EMAIL__PER_SECOND", "0")
            .env("CANTINA__SCHEDULER__ENABLED", "false")
            .env("CANTINA__HTTP__ADDR", &http)
            .env("RUST_LOG", std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".to_string()))
            // Not the repository: a developer's `.env` there must not configure the benchmark.
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Tuned for throughput, as the peers were: more sends in flight and bigger claims than the defaults
        // (16, 200), which suit real providers' rate limits. The environment may override either.
        for (key, value) in [("CANTINA__DISPATCH__CONCURRENCY", "64"), ("CANTINA__DISPATCH__BATCH_SIZE", "500")] {
            if std::env::var_os(key).is_none() {
                command.env(key, value);
            }
        }
        // SAFETY: prctl is async-signal-safe and touches only this (forked) process.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("starting {BIN}"))?;
        Ok(Service { child, http })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Until `/readyz` answers 200 (database reachable, listener connected).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok((200, _)) = cantina_notify::http::get_url(&self.http, "/readyz", Duration::from_secs(1)).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the service at {} was not ready within {timeout:?}", self.http);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// An error if the process has exited (a crash would otherwise look like a slow drain).
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait().context("waiting for the service")? {
            None => Ok(()),
            Some(status) => Err(anyhow!("the service (pid {}) exited: {status}", self.child.id())),
        }
    }

    pub fn memory(&self) -> Result<Memory> {
        Memory::of(self.child.id())
    }

    /// SIGTERM, then wait for the graceful exit (SIGKILL after 30 s).
    pub async fn stop(mut self) -> Result<ExitStatus> {
        // SAFETY: kill(2) on our own child, which has not been reaped (we still hold it).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for the service")? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("the service (pid {}) did not stop within 30 s of SIGTERM", self.child.id());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident memory from /proc/<pid>/status, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kib: u64,
    /// The peak resident size over the process's life (VmHWM).
    pub hwm_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
        };
        Ok(Memory { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
    }
}

/// CPU time (user + system) of a process, in clock ticks; `None` once it is gone.
fn cpu_ticks(pid: u32) -> Option<(u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces: state is field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime, ppid))
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU seconds used so far by: the given service processes, the PostgreSQL cluster (postmaster and its children,
/// found by the data directory on the postmaster's command line), this benchmark process (sink, inserters,
/// pollers), and the whole machine (all cores, from /proc/stat).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSnapshot {
    pub service: f64,
    pub postgres: f64,
    pub bench: f64,
    pub machine: f64,
}

impl CpuSnapshot {
    pub fn take(services: &[u32], cluster_dir: &Path) -> CpuSnapshot {
        let hz = ticks_per_second();
        let service = services.iter().filter_map(|&pid| cpu_ticks(pid)).map(|(t, _)| t).sum::<u64>() as f64 / hz;
        let bench = cpu_ticks(std::process::id()).map_or(0, |(t, _)| t) as f64 / hz;
        CpuSnapshot { service, postgres: postgres_ticks(cluster_dir) as f64 / hz, bench, machine: machine_busy() / hz }
    }

    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &CpuSnapshot) -> CpuSnapshot {
        CpuSnapshot {
            service: self.service - earlier.service,
            postgres: self.postgres - earlier.postgres,
            bench: self.bench - earlier.bench,
            machine: self.machine - earlier.machine,
        }
    }

    /// CPU seconds of everything but the service, PostgreSQL and this process.
    pub fn others(&self) -> f64 {
        (self.machine - self.service - self.postgres - self.bench).max(0.0)
    }

    /// One line: where the CPU time of an interval went.
    pub fn describe(&self, wall: Duration) -> String {
        let wall = wall.as_secs_f64().max(1e-9);
        let others = self.others();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        format!(
            "CPU over {wall:.2} s wall ({:.2} core-s available): service {:.2} s, PostgreSQL {:.2} s, \
             bench (sink + driver) {:.2} s, other processes {:.2} s; machine busy {:.0} %",
            wall * cores,
            self.service,
            self.postgres,
            self.bench,
            others,
            100.0 * self.machine / (wall * cores),
        )
    }
}

/// Busy ticks of all CPUs (everything but idle and iowait) from the first line of /proc/stat.
fn machine_busy() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0.0 };
    let Some(line) = stat.lines().next() else { return 0.0 };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = v.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4 && *i < 8).map(|(_, x)| x).sum();
    busy as f64
}

fn postgres_ticks(cluster_dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let data_dir = cluster_dir.join("data");
    let needle = data_dir.as_os_str().as_encoded_bytes();
    let mut procs: Vec<(u32, u64, u32)> = Vec::new();
    let mut postmaster = None;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Some((ticks, ppid)) = cpu_ticks(pid) else { continue };
        if postmaster.is_none()
            && let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && cmdline.windows(needle.len()).any(|w| w == needle)
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
        {
            postmaster = Some(pid);
        }
        procs.push((pid, ticks, ppid));
    }
    let Some(master) = postmaster else { return 0 };
    procs.iter().filter(|(pid, _, ppid)| *pid == master || *ppid == master).map(|(_, t, _)| t).sum()
}
