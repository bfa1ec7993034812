//! What the cluster needs from the host: the server binaries, the system user to run them as, a private
//! directory, a free port, and the probes of a starting or stopping server.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::fs::{self, DirBuilder};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use super::{ClusterError, LOG_TAIL_BYTES, io_err};

pub(super) struct Binaries {
    pub(super) initdb: PathBuf,
    pub(super) postgres: PathBuf,
}

impl Binaries {
    /// `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` (Debian's layout,
    /// not on PATH), else `pg_config --bindir`, else `initdb` on PATH.
    pub(super) fn find() -> Result<Binaries, ClusterError> {
        if let Some(dir) = std::env::var_os("PG_BIN") {
            let dir = PathBuf::from(dir);
            return Self::in_dir(&dir).ok_or(ClusterError::BadPgBin(dir));
        }
        Self::newest_debian()
            .or_else(Self::from_pg_config)
            .or_else(Self::from_path)
            .ok_or(ClusterError::BinariesNotFound)
    }

    pub(super) fn in_dir(dir: &Path) -> Option<Binaries> {
        let initdb = dir.join("initdb");
        let postgres = dir.join("postgres");
        (initdb.is_file() && postgres.is_file()).then_some(Binaries { initdb, postgres })
    }

    pub(super) fn newest_debian() -> Option<Binaries> {
        let entries = fs::read_dir("/usr/lib/postgresql").ok()?;
        let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry
                    .file_name()
                    .to_str()?
                    .split('.')
                    .map(|part| part.parse().ok())
                    .collect::<Option<Vec<u32>>>()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        versions.sort();
        versions.iter().rev().find_map(|(_, dir)| Self::in_dir(dir))
    }

    pub(super) fn from_pg_config() -> Option<Binaries> {
        let out = Command::new("pg_config").arg("--bindir").stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let dir = String::from_utf8(out.stdout).ok()?;
        Self::in_dir(Path::new(dir.trim()))
    }

    pub(super) fn from_path() -> Option<Binaries> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find_map(|dir| {
            let initdb = dir.join("initdb");
            if !initdb.is_file() {
                return None;
            }
            // PATH often holds symlinks (e.g. /usr/local/bin/initdb); postgres
            // sits next to the real file.
            fs::canonicalize(&initdb).ok().and_then(|real| Self::in_dir(real.parent()?)).or_else(|| Self::in_dir(&dir))
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct UserIds {
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// `None`: run as ourselves. As root, initdb and postgres refuse to run, so
/// use the `postgres` system user that the server packages create.
pub(super) fn server_user() -> Result<Option<UserIds>, ClusterError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    lookup_user(c"postgres")?.map(Some).ok_or(ClusterError::NoPostgresUser)
}

pub(super) fn lookup_user(name: &CStr) -> Result<Option<UserIds>, ClusterError> {
    // getpwnam_r rather than getpwnam: two clusters may start concurrently on
    // different threads, and getpwnam returns a shared static buffer.
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    loop {
        // SAFETY: all-zero is a valid `passwd` (integers and null pointers).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call and
        // `buf.len()` is the real size of `buf`.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1024 * 1024 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(ClusterError::Io {
                context: format!("looking up the {name:?} user"),
                error: io::Error::from_raw_os_error(rc),
            });
        }
        return Ok((!result.is_null()).then_some(UserIds { uid: pwd.pw_uid, gid: pwd.pw_gid }));
    }
}

pub(super) fn run_as_user(cmd: &mut Command, ids: Option<UserIds>) {
    if let Some(ids) = ids {
        // std also drops root's supplementary groups when uid is set.
        cmd.uid(ids.uid).gid(ids.gid);
    }
}

/// A fresh 0700 directory under the system temp dir.
pub(super) fn create_private_dir() -> Result<PathBuf, ClusterError> {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    loop {
        let dir = base.join(format!("cantina-pg-{pid}-{:016x}", fastrand::u64(..)));
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
        }
    }
}

/// A port that was free a moment ago; postgres may lose a race for it, which
/// `start` handles by retrying.
pub(super) fn free_port() -> Result<u16, ClusterError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("binding 127.0.0.1:0 to find a free port"))?;
    let addr = listener.local_addr().map_err(io_err("reading the address of a bound socket"))?;
    Ok(addr.port())
}

pub(super) fn port_was_taken(log: &str) -> bool {
    log.contains("could not bind")
        || log.contains("Address already in use")
        || log.contains("could not create any TCP/IP sockets")
}

/// The status line of `postmaster.pid`, which postgres sets to `ready` once
/// it accepts connections (pg_ctl waits on the same thing).
pub(super) fn postmaster_ready(data: &Path, port: u16) -> bool {
    let Ok(contents) = fs::read_to_string(data.join("postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = contents.lines().collect();
    lines.get(3).map(|l| l.trim()) == Some(port.to_string().as_str()) && lines.get(7).map(|l| l.trim()) == Some("ready")
}

/// The postmaster's pid, the first line of `postmaster.pid`.
pub(super) fn postmaster_pid(data: &Path) -> Option<u32> {
    fs::read_to_string(data.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
}

/// Sends a protocol-3.0 startup packet; an authentication reply (`R`) means
/// the server accepts connections, an error (`E`) means it is still starting.
pub(super) fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let params = b"user\0postgres\0database\0postgres\0\0";
    let Ok(len) = i32::try_from(8 + params.len()) else {
        return false;
    };
    let mut packet = Vec::with_capacity(8 + params.len());
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&196_608_i32.to_be_bytes()); // protocol 3.0
    packet.extend_from_slice(params);
    if stream.write_all(&packet).is_err() {
        return false;
    }
    let mut tag = [0u8; 1];
    let ready = stream.read_exact(&mut tag).is_ok() && tag[0] == b'R';
    if ready {
        // Terminate, so the server does not log an unexpected EOF.
        let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
    }
    ready
}

/// SIGKILL the watchdog's process group (the watchdog, postgres and the
/// lifeline reader; postgres backends exit when their postmaster dies).
pub(super) fn kill_group(watchdog: &Child) {
    let Ok(pgid) = libc::pid_t::try_from(watchdog.id()) else {
        return;
    };
    // SAFETY: plain syscall; the watchdog is unreaped, so its pid (and thus
    // the group id it leads) cannot have been reused.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

pub(super) fn read_all(mut stderr: ChildStderr) -> String {
    let mut buf = Vec::new();
    let _ = stderr.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

pub(super) fn read_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// Database names are identifiers and may contain characters that are not
/// allowed in a URL path segment.
pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
