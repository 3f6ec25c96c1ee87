//! A real `clamd` for a test: its own temporary directory, config, sockets and a one-signature
//! database that finds the EICAR test string anywhere in a file (ClamAV's public databases cannot
//! be downloaded here, and are slow and large to load). With this database clamd is up
//! in well under a second.
//!
//! `Clamd::start()` is `None` when no clamd binary is installed (`apt-get install
//! clamav-daemon`): the caller skips the test, or fails it under `CI=true`.

// Not every test uses every helper.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name given to the EICAR signature in the test database. clamd reports signatures from
/// unsigned databases with `.UNOFFICIAL` appended: `Eicar-Test-Signature.UNOFFICIAL`.
pub const EICAR_SIGNATURE: &str = "Eicar-Test-Signature";

/// How long clamd may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The 68-byte EICAR anti-virus test string, put together from two halves so that no file in
/// the repository is itself the EICAR file (which scanners on developers' machines would flag).
pub fn eicar() -> Vec<u8> {
    let mut s = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD".to_vec();
    s.extend_from_slice(b"-ANTIVIRUS-TEST-FILE!$H+H*");
    s
}

/// A small PDF (as the upload sniffer sees it: it starts with `%PDF-`) carrying the EICAR string
/// in a stream object.
pub fn pdf_with_eicar() -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Length 68 >>\nstream\n".to_vec();
    pdf.extend_from_slice(&eicar());
    pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
    pdf
}

pub struct Clamd {
    /// `127.0.0.1:port` of its TCPSocket.
    pub addr: String,
    /// Its LocalSocket.
    pub socket: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Clamd {
    /// A clamd with its default limits (StreamMaxLength 100M in ClamAV 1.4).
    pub fn start() -> Option<Clamd> {
        Clamd::start_with("")
    }

    /// Like `start`, with more clamd.conf lines, e.g. `"StreamMaxLength 1M\n"`. Panics with
    /// clamd's output when it is installed but does not come up.
    pub fn start_with(extra_conf: &str) -> Option<Clamd> {
        let bin = clamd_binary()?;
        let mut failures = String::new();
        // The free port is found by binding and releasing it: another process may take it in
        // between, so a clamd that exits at once is tried again on a new port.
        for attempt in 1..=3 {
            match try_start(&bin, extra_conf) {
                Ok(c) => return Some(c),
                Err(why) => failures.push_str(&format!("--- attempt {attempt}:\n{why}\n")),
            }
        }
        panic!("clamd ({}) did not come up:\n{failures}", bin.display());
    }

    /// A clamd for a test that needs one: `None` (and a loud notice) when clamd is not installed,
    /// so the test skips; under `CI=true` (where `.ci/run` installs it) a missing clamd fails.
    pub fn required() -> Option<Clamd> {
        Clamd::required_with("")
    }

    /// `required`, with more clamd.conf lines (as `start_with`).
    pub fn required_with(extra_conf: &str) -> Option<Clamd> {
        let clamd = Clamd::start_with(extra_conf);
        if clamd.is_none() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "CI=true and clamd is not installed (apt-get install clamav-daemon)"
            );
            eprintln!("SKIPPED: clamd is not installed (apt-get install clamav-daemon)");
        }
        clamd
    }

    /// Kills clamd (idempotent): scans then fail with "connection refused".
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// clamd's log so far (LogFile and its own stdout/stderr).
    pub fn log(&self) -> String {
        output(self._dir.path())
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `/usr/sbin/clamd` (Debian's clamav-daemon), else `clamd` on PATH.
fn clamd_binary() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/sbin/clamd");
    if fixed.is_file() {
        return Some(fixed);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("clamd"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn output(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!(
        "clamd.log:\n{}\nstdout/stderr:\n{}",
        read("clamd.log"),
        read("clamd.out")
    )
}

fn try_start(bin: &Path, extra_conf: &str) -> Result<Clamd, String> {
    let dir = tempfile::Builder::new()
        .prefix("clamd")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let d = dir.path();
    let port = free_port();
    let socket = d.join("clamd.ctl");
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;

    // `Name:TargetType:Offset:HexSignature`: target 0 (any file), offset * (anywhere).
    let hex: String = eicar().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(d.join("test.ndb"), format!("{EICAR_SIGNATURE}:0:*:{hex}\n"))
        .map_err(|e| format!("test.ndb: {e}"))?;

    // No `User`: clamd stays root (the container's user) instead of switching to `clamav`.
    let conf = format!(
        "Foreground yes\n\
         TCPSocket {port}\n\
         TCPAddr 127.0.0.1\n\
         LocalSocket {socket}\n\
         DatabaseDirectory {db}\n\
         TemporaryDirectory {tmp}\n\
         LogFile {log}\n\
         LogTime yes\n\
         {extra_conf}",
        socket = socket.display(),
        db = d.display(),
        tmp = tmp.display(),
        log = d.join("clamd.log").display(),
    );
    let conf_path = d.join("clamd.conf");
    std::fs::write(&conf_path, conf).map_err(|e| format!("clamd.conf: {e}"))?;

    let out = std::fs::File::create(d.join("clamd.out")).map_err(|e| format!("clamd.out: {e}"))?;
    let err = out.try_clone().map_err(|e| format!("clamd.out: {e}"))?;
    let mut child = Command::new(bin)
        .arg(format!("--config-file={}", conf_path.display()))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", bin.display()))?;

    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "clamd exited ({status}) before answering\n{}",
                output(d)
            ));
        }
        if ping(addr) {
            return Ok(Clamd {
                addr: addr.to_string(),
                socket,
                child,
                _dir: dir,
            });
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no PONG within {START_TIMEOUT:?}\n{}", output(d)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `zPING\0` → `PONG\0`.
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let mut reply = Vec::new();
    s.write_all(b"zPING\0").is_ok()
        && s.take(16).read_to_end(&mut reply).is_ok()
        && reply.starts_with(b"PONG")
}
