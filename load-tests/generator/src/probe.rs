//! Reading CPU time and memory of a process from /proc, for the server and for ourselves: a
//! figure where the generator was the limit must say so.

use std::time::Instant;

/// Clock ticks per second of /proc/*/stat times (USER_HZ, 100 on Linux).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces; fields after the closing parenthesis are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU use of a process between two points, in cores.
pub struct CpuMeter {
    pid: Option<u32>,
    start: Instant,
    cpu: Option<f64>,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> Self {
        CpuMeter {
            pid,
            start: Instant::now(),
            cpu: cpu_seconds(pid),
        }
    }

    pub fn cores(&self) -> Option<f64> {
        let now = cpu_seconds(self.pid)?;
        Some((now - self.cpu?) / self.start.elapsed().as_secs_f64())
    }
}

/// Raises the soft limit of open files to the hard limit (sockets are files).
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
