//! A throwaway PostgreSQL cluster built from the locally installed server
//! binaries.
//!
//! A development tool (the `demo` subcommand, the tests and the benchmark), not part of the service: nothing in
//! the production path starts a cluster.
//!
//! The `demo` subcommand and the integration-test harness need a real
//! PostgreSQL server (LISTEN/NOTIFY cannot be faked), but the machines they
//! run on have the server binaries, no running server and no Docker. [`PgCluster::start`] runs `initdb` into a fresh private temp
//! directory and starts `postgres` on a free loopback port, tuned for speed
//! rather than durability. Callers create fresh databases in it.
//!
//! # Lifetime guarantee
//!
//! The server never outlives the process that started it, even when that
//! process is SIGKILLed or exits without running destructors (test binaries
//! never drop statics). `postgres` is not our child: it runs under a small
//! `/bin/sh` watchdog whose stdin is a pipe, and only this process holds the
//! write end (the [`std::process::ChildStdin`] kept inside [`PgCluster`]). The kernel closes
//! that end when this process dies, however it dies; the watchdog's `read`
//! then returns, it sends SIGINT (fast shutdown) to `postgres`, waits for it,
//! and deletes the directory. [`PgCluster::stop`] does the same thing on
//! purpose by closing the pipe. `PR_SET_PDEATHSIG` is deliberately not used:
//! it fires when the spawning *thread* exits, and test threads exit early.
//!
//! The only unguarded window is the half second `initdb` runs: if the process
//! is killed right then, the temp directory (but no server) is left behind.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

mod host;

use host::{
    Binaries, UserIds, accepts_connections, create_private_dir, free_port, kill_group, percent_encode, port_was_taken,
    postmaster_pid, postmaster_ready, read_all, read_tail, run_as_user, server_user,
};

/// How long the server may take to accept connections, and to shut down.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Readiness/exit polling interval: short, since a fresh cluster is up in well
/// under a second and tests start many processes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The free port we pick can be grabbed by someone else before postgres binds
/// it; each retry costs one more `initdb` (~0.5 s), which is rare enough.
const START_ATTEMPTS: u32 = 5;
/// How much of the server log to put into an error.
const LOG_TAIL_BYTES: usize = 16 * 1024;

/// The watchdog. Arguments: `$1` postgres binary, `$2` data directory,
/// `$3` cluster directory (deleted on exit), `$4` server log, then the
/// postgres options. Its stdin is the lifeline pipe.
///
/// Unlike a plain `postgres & read; kill` script, it waits for *postgres*
/// and lets a background subshell wait for the lifeline, so the watchdog
/// also exits when postgres dies on its own (e.g. port already taken); that
/// is how `start` notices a failed server. In that case it copies the log
/// tail to its stderr before deleting the directory.
///
/// SIGUSR1 asks for a restart ([`PgCluster::restart_fast`]): postgres gets
/// SIGINT (fast shutdown) and is started again on the same data directory.
/// Since the pid then changes, the lifeline reader signals the watchdog
/// (`$$`), whose trap stops whichever postgres is current. A signal caught
/// between starting postgres and recording its pid is re-applied right after.
const WATCHDOG_SCRIPT: &str = r#"
pg=$1 data=$2 dir=$3 log=$4
shift 4
exec 3<&0 </dev/null
( read -r line <&3; kill -TERM $$ ) >/dev/null 2>&1 &
reader=$!
exec 3<&-
pid= stopping=0
trap 'stopping=1; [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null' HUP INT TERM
trap 'restart=1; [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null' USR1
while :; do
    restart=0
    "$pg" -D "$data" "$@" >>"$log" 2>&1 &
    pid=$!
    if [ "$stopping" = 1 ] || [ "$restart" = 1 ]; then kill -INT "$pid" 2>/dev/null; fi
    while :; do
        wait "$pid"
        status=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    [ "$stopping" = 0 ] && [ "$restart" = 1 ] || break
done
kill "$reader" 2>/dev/null
if [ "$status" -ne 0 ]; then
    tail -c 16384 "$log" >&2
fi
rm -rf "$dir"
exit "$status"
"#;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries not found (looked in PG_BIN, /usr/lib/postgresql/*/bin, PATH); install postgresql or set DATABASE_URL"
    )]
    BinariesNotFound,

    #[error("PG_BIN is set to {0}, but that directory does not contain both `initdb` and `postgres`")]
    BadPgBin(PathBuf),

    #[error(
        "running as root, but there is no `postgres` system user to run the server as (initdb and postgres refuse to run as root); create one or set DATABASE_URL"
    )]
    NoPostgresUser,

    #[error("{context}: {error}")]
    Io { context: String, error: io::Error },

    #[error("`{command}` failed ({status}):\n{output}")]
    Initdb { command: String, status: String, output: String },

    #[error("PostgreSQL server on port {port} exited during startup ({status}); server log:\n{log}")]
    ServerExited { port: u16, status: String, log: String },

    #[error(
        "PostgreSQL server on port {port} did not accept connections within {} s; server log:\n{log}",
        START_TIMEOUT.as_secs()
    )]
    StartTimeout { port: u16, log: String },

    #[error("PostgreSQL server could not bind a free port in {attempts} attempts; last server log:\n{log}")]
    NoFreePort { attempts: u32, log: String },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let context = context.into();
    move |error| ClusterError::Io { context, error }
}

/// A running throwaway cluster. Dropping it stops the server and deletes its
/// directory; see the module docs for what happens if it is never dropped.
#[derive(Debug)]
pub struct PgCluster {
    port: u16,
    /// Private directory holding `data/`, `server.log` and the unix socket.
    dir: PathBuf,
    /// The watchdog; its stdin is the lifeline pipe.
    watchdog: Option<Child>,
}

impl PgCluster {
    /// initdb into a fresh temp directory and start a server listening on
    /// 127.0.0.1 on a free port (and a unix socket in the temp dir).
    ///
    /// Blocks for about a second; from async code call it through
    /// `tokio::task::spawn_blocking`.
    pub fn start() -> Result<PgCluster, ClusterError> {
        Self::start_with(&ClusterOptions::default())
    }

    /// [`start`](Self::start) with extra server settings and files (e.g. a TLS certificate and key).
    pub fn start_with(options: &ClusterOptions) -> Result<PgCluster, ClusterError> {
        let bins = Binaries::find()?;
        let run_as = server_user()?;
        let mut last_log = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match Self::start_once(&bins, run_as, options, free_port) {
                Err(ClusterError::ServerExited { port, log, .. }) if port_was_taken(&log) => {
                    tracing::debug!(port, attempt, "port taken before postgres bound it; retrying");
                    last_log = log;
                }
                result => return result,
            }
        }
        Err(ClusterError::NoFreePort { attempts: START_ATTEMPTS, log: last_log })
    }

    /// libpq URL for a database in this cluster, e.g.
    /// `postgres://postgres@127.0.0.1:PORT/DBNAME`.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, percent_encode(dbname))
    }

    /// The cluster's temporary directory (data, socket, log); removed by `stop`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Restarts the server as `pg_ctl restart -m fast` would: every session is
    /// ended, the data is kept, and the same port accepts connections again.
    /// Returns once it does. For fault-injection runs.
    ///
    /// Blocks; from async code call it through `tokio::task::spawn_blocking`.
    pub fn restart_fast(&mut self) -> Result<(), ClusterError> {
        let data = self.dir.join("data");
        let port = self.port;
        let before = postmaster_pid(&data);
        let Some(watchdog) = self.watchdog.as_mut() else {
            return Err(ClusterError::Io {
                context: "restarting PostgreSQL".to_owned(),
                error: io::Error::new(io::ErrorKind::NotConnected, "the cluster is stopped"),
            });
        };
        let pid = libc::pid_t::try_from(watchdog.id()).map_err(|_| ClusterError::Io {
            context: "restarting PostgreSQL".to_owned(),
            error: io::Error::new(io::ErrorKind::InvalidData, "watchdog pid out of range"),
        })?;
        // SAFETY: plain syscall; the watchdog is unreaped, so its pid cannot have been reused. The watchdog traps
        // SIGUSR1 as a restart request (see WATCHDOG_SCRIPT).
        if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
            return Err(io_err("signalling the PostgreSQL watchdog")(io::Error::last_os_error()));
        }
        let deadline = Instant::now() + STOP_TIMEOUT + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = watchdog.try_wait() {
                let log = watchdog.stderr.take().map(read_all).unwrap_or_default();
                self.watchdog = None;
                return Err(ClusterError::ServerExited { port, status: status.to_string(), log });
            }
            let now = postmaster_pid(&data);
            if now.is_some() && now != before && postmaster_ready(&data, port) && accepts_connections(port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::StartTimeout { port, log: read_tail(&self.dir.join("server.log")) });
            }
            sleep(POLL_INTERVAL);
        }
    }

    /// Fast shutdown and removal of the data directory. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            // Closing the lifeline is the shutdown request (see module docs).
            drop(watchdog.stdin.take());
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match watchdog.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => sleep(POLL_INTERVAL),
                    outcome => {
                        tracing::warn!(port = self.port, ?outcome, "PostgreSQL did not shut down in time; killing it");
                        kill_group(&watchdog);
                        let _ = watchdog.wait();
                        break;
                    }
                }
            }
        }
        // The watchdog normally deletes the directory itself; this covers the
        // cases where it could not (killed, or never started).
        if !self.dir.as_os_str().is_empty() {
            match fs::remove_dir_all(&self.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(dir = %self.dir.display(), error = %e,
                    "could not remove PostgreSQL temp directory"),
            }
        }
    }

    /// `pick_port` runs after initdb, to keep the window in which someone
    /// else can take the port short.
    fn start_once(
        bins: &Binaries,
        run_as: Option<UserIds>,
        options: &ClusterOptions,
        pick_port: impl FnOnce() -> Result<u16, ClusterError>,
    ) -> Result<PgCluster, ClusterError> {
        // From here on, any early return drops `cluster`, which cleans up.
        let mut cluster = PgCluster { port: 0, dir: create_private_dir()?, watchdog: None };
        let dir = cluster.dir.clone();
        if let Some(ids) = run_as {
            std::os::unix::fs::chown(&dir, Some(ids.uid), Some(ids.gid))
                .map_err(io_err(format!("chown {} to the postgres user", dir.display())))?;
        }
        let data = dir.join("data");
        let log = dir.join("server.log");

        let mut initdb = Command::new(&bins.initdb);
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
                // Durability of a throwaway cluster is irrelevant; saves seconds.
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .current_dir(&dir);
        run_as_user(&mut initdb, run_as);
        let initdb_desc = format!("{} -D {}", bins.initdb.display(), data.display());
        let out = initdb.output().map_err(io_err(format!("running `{initdb_desc}`")))?;
        if !out.status.success() {
            let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
            if output.trim().is_empty() {
                output = String::from_utf8_lossy(&out.stdout).into_owned();
            }
            return Err(ClusterError::Initdb { command: initdb_desc, status: out.status.to_string(), output });
        }

        options.install(&data, run_as)?;

        cluster.port = pick_port()?;
        let port = cluster.port;
        let mut server = Command::new("/bin/sh");
        server
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("pg_cluster-watchdog")
            .arg(&bins.postgres)
            .arg(&data)
            .arg(&dir)
            .arg(&log);
        for setting in [
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={port}"),
            format!("unix_socket_directories={}", dir.display()),
            // Speed over durability: the cluster is deleted afterwards anyway.
            "fsync=off".to_owned(),
            "full_page_writes=off".to_owned(),
            "synchronous_commit=off".to_owned(),
            // Tests run many pools in parallel against one cluster.
            "max_connections=400".to_owned(),
            "shared_buffers=128MB".to_owned(),
            // stderr already goes to server.log (see the watchdog script).
            "logging_collector=off".to_owned(),
        ]
        .into_iter()
        .chain(options.settings.iter().cloned())
        {
            server.arg("-c").arg(setting);
        }
        server
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .current_dir(&dir)
            // Own process group: a Ctrl-C on the terminal must not stop the
            // server under a `demo` that is still shutting down gracefully.
            .process_group(0);
        // The watchdog, not only postgres, runs as the postgres user: postgres
        // inherits the ids without an `su` in between (so `$!` is really
        // postgres), and the watchdog may delete the directory that user owns.
        run_as_user(&mut server, run_as);
        let watchdog =
            cluster.watchdog.insert(server.spawn().map_err(io_err(format!("starting {}", bins.postgres.display())))?);

        wait_until_ready(watchdog, port, &data, &log)?;
        tracing::debug!(port, dir = %dir.display(), "throwaway PostgreSQL cluster ready");
        Ok(cluster)
    }
}

/// What a cluster needs beyond the defaults.
#[derive(Debug, Default, Clone)]
pub struct ClusterOptions {
    /// Extra `name=value` server settings; relative paths in them are relative to the data directory.
    pub settings: Vec<String>,
    /// Files written into the data directory before the server starts, readable only by the server's user (as
    /// PostgreSQL requires of a private key): (file name, contents).
    pub files: Vec<(String, Vec<u8>)>,
    /// Replaces `pg_hba.conf` (initdb's trusts every local connection).
    pub hba: Option<String>,
}

impl ClusterOptions {
    fn install(&self, data: &Path, run_as: Option<UserIds>) -> Result<(), ClusterError> {
        let hba = self.hba.as_ref().map(|h| ("pg_hba.conf".to_owned(), h.as_bytes().to_vec()));
        for (name, contents) in self.files.iter().cloned().chain(hba) {
            let path = data.join(&name);
            fs::write(&path, contents).map_err(io_err(format!("writing {}", path.display())))?;
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(io_err(format!("chmod 0600 {}", path.display())))?;
            if let Some(ids) = run_as {
                std::os::unix::fs::chown(&path, Some(ids.uid), Some(ids.gid))
                    .map_err(io_err(format!("chown {} to the postgres user", path.display())))?;
            }
        }
        Ok(())
    }
}

/// Polls until the server accepts connections, it exits, or `START_TIMEOUT`
/// passes.
fn wait_until_ready(watchdog: &mut Child, port: u16, data: &Path, log: &Path) -> Result<(), ClusterError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match watchdog.try_wait() {
            Ok(Some(status)) => {
                // The watchdog has already deleted the directory, but it
                // copied the log tail to its stderr first.
                let log = watchdog.stderr.take().map(read_all).unwrap_or_default();
                return Err(ClusterError::ServerExited { port, status: status.to_string(), log });
            }
            Ok(None) => {}
            Err(error) => {
                return Err(ClusterError::Io { context: "waiting for the PostgreSQL watchdog".to_owned(), error });
            }
        }
        // postmaster.pid proves that *our* postmaster owns the port (a
        // stranger that grabbed it could also answer the probe); the
        // probe proves TCP connections are really accepted.
        if postmaster_ready(data, port) && accepts_connections(port) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::StartTimeout { port, log: read_tail(log) });
        }
        sleep(POLL_INTERVAL);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop()
    }
}

#[cfg(test)]
mod tests;
