//! Virus scanning of uploads with ClamAV's `clamd`, before they can be attached.
//!
//! When `attachments.clamd_addr` is set, every upload's bytes are streamed to clamd (`zINSTREAM`)
//! once they have been received and checked for their kind, and before they are stored: an
//! upload clamd finds a signature in is refused, so no conversation can be sent it. clamd is a
//! separate daemon (TCP or its local socket); it may be down or slow, so a scan has one deadline
//! for the whole exchange, connecting included, and "could not scan" ([`ScanError::Unavailable`])
//! is told apart from "clamd refused to scan it" ([`ScanError::Protocol`], e.g. larger than its
//! `StreamMaxLength`) so the caller can apply `attachments.clamd_unavailable` to the first only.
//!
//! The protocol (clamd(8)): `zINSTREAM\0`, then chunks each as a 4-byte big-endian length and
//! its bytes, then a zero length; clamd answers one NUL-terminated line and closes:
//! `stream: OK`, `stream: <signature> FOUND`, or `<message> ERROR`. Over its size limit clamd
//! answers `INSTREAM size limit exceeded. ERROR` and closes while we are still sending, so the
//! reply is read while the bytes are written, and a write that fails still yields that answer.
//!
//! Hand-written rather than the `clamav-client` crate: version 2.3 has no timeouts, reads replies
//! without a bound, and its only verdict is `contains("OK") && !contains("FOUND")` (no signature
//! name, and an `ERROR` reads as clean or infected by accident).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Bytes per INSTREAM chunk.
const CHUNK: usize = 64 * 1024;

/// Longest reply read; clamd's are one short line.
const MAX_REPLY: usize = 4 * 1024;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanAddr {
    /// `host:port`.
    Tcp(String),
    /// clamd's `LocalSocket`.
    Unix(PathBuf),
}

impl ScanAddr {
    /// `unix:/run/clamav/clamd.ctl` or an absolute path → the local socket; `host:port` → TCP.
    pub fn parse(s: &str) -> Result<ScanAddr, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "attachments.clamd_addr must be \"host:port\", \"unix:/path/to/clamd.ctl\" or an \
                 absolute socket path, not {s:?}"
            )
        };
        if let Some(path) = s.strip_prefix("unix:") {
            return if path.is_empty() {
                Err(bad())
            } else {
                Ok(ScanAddr::Unix(path.into()))
            };
        }
        if s.starts_with('/') {
            return Ok(ScanAddr::Unix(s.into()));
        }
        match s.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && !host.contains('/')
                    && port.parse::<u16>().is_ok_and(|p| p != 0) =>
            {
                Ok(ScanAddr::Tcp(s.to_string()))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for ScanAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanAddr::Tcp(a) => f.write_str(a),
            ScanAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The signature name as clamd reports it (signatures from unsigned databases carry
    /// `.UNOFFICIAL`, e.g. `Eicar-Test-Signature.UNOFFICIAL`).
    Infected(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// clamd could not be reached, did not answer in time, or dropped the connection unanswered.
    #[error("virus scanner unavailable: {0}")]
    Unavailable(String),
    /// clamd answered with an error (e.g. over its size limit) or something unreadable.
    #[error("virus scanner refused the file: {0}")]
    Protocol(String),
}

pub struct Scanner {
    addr: ScanAddr,
    timeout: Duration,
}

impl Scanner {
    pub fn new(addr: ScanAddr, timeout: Duration) -> Scanner {
        Scanner { addr, timeout }
    }

    pub fn addr(&self) -> &ScanAddr {
        &self.addr
    }

    /// Streams `bytes` to clamd as `zINSTREAM` and reads its verdict, all within the timeout.
    pub async fn scan(&self, bytes: &[u8]) -> Result<Verdict, ScanError> {
        let exchange = async {
            let unavailable = |e: std::io::Error| {
                ScanError::Unavailable(format!("connecting to {}: {e}", self.addr))
            };
            match &self.addr {
                ScanAddr::Tcp(a) => {
                    let s = TcpStream::connect(a.as_str()).await.map_err(unavailable)?;
                    // The last small write (the zero length) must not wait for a delayed ACK.
                    let _ = s.set_nodelay(true);
                    exchange(s, bytes).await
                }
                ScanAddr::Unix(p) => {
                    exchange(UnixStream::connect(p).await.map_err(unavailable)?, bytes).await
                }
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ScanError::Unavailable(format!(
                "no answer from {} within {} ms",
                self.addr,
                self.timeout.as_millis()
            ))),
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite>(
    stream: S,
    bytes: &[u8],
) -> Result<Verdict, ScanError> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let write = async move {
        wr.write_all(b"zINSTREAM\0").await?;
        for chunk in bytes.chunks(CHUNK) {
            // A chunk is at most CHUNK bytes, so its length fits in u32.
            wr.write_all(&(chunk.len() as u32).to_be_bytes()).await?;
            wr.write_all(chunk).await?;
        }
        wr.write_all(&[0; 4]).await?;
        wr.flush().await
    };
    let read = read_reply(&mut rd);
    tokio::pin!(write, read);
    // clamd may answer (and close) before all bytes are sent: take its reply as soon as it comes.
    let (reply, write_err) = tokio::select! {
        reply = &mut read => (reply, None),
        w = &mut write => (read.await, w.err()),
    };
    match reply {
        Ok(r) if !r.is_empty() => parse_reply(&r),
        Ok(_) => Err(ScanError::Unavailable(match write_err {
            Some(e) => format!("clamd closed the connection while it was sent the file: {e}"),
            None => "clamd closed the connection without answering".into(),
        })),
        Err(e) => Err(ScanError::Unavailable(format!(
            "reading clamd's answer: {e}"
        ))),
    }
}

/// Reads up to the first NUL or EOF, at most MAX_REPLY bytes. A reset after some bytes arrived
/// keeps those bytes (clamd may close abruptly right after answering).
async fn read_reply<R: AsyncRead + Unpin>(rd: &mut R) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 512];
    loop {
        let n = match rd.read(&mut chunk).await {
            Ok(n) => n,
            Err(_) if !buf.is_empty() => return Ok(buf),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(buf);
        }
        let got = &chunk[..n];
        if let Some(i) = got.iter().position(|&b| b == 0) {
            buf.extend_from_slice(&got[..i]);
            return Ok(buf);
        }
        buf.extend_from_slice(got);
        if buf.len() > MAX_REPLY {
            buf.truncate(MAX_REPLY);
            return Ok(buf);
        }
    }
}

/// `stream: OK` → clean; `stream: <name> FOUND` → infected; anything else (`... ERROR`,
/// `UNKNOWN COMMAND`, garbage) → a protocol error carrying clamd's text.
pub fn parse_reply(reply: &[u8]) -> Result<Verdict, ScanError> {
    let text = String::from_utf8_lossy(reply);
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let shown = || text.chars().take(200).collect::<String>();
    if text.ends_with("ERROR") {
        return Err(ScanError::Protocol(shown()));
    }
    let Some(body) = text.strip_prefix("stream: ") else {
        return Err(ScanError::Protocol(format!(
            "unexpected answer {:?}",
            shown()
        )));
    };
    if body == "OK" {
        return Ok(Verdict::Clean);
    }
    match body.strip_suffix(" FOUND").map(str::trim) {
        Some(name) if !name.is_empty() => Ok(Verdict::Infected(name.to_string())),
        _ => Err(ScanError::Protocol(format!(
            "unexpected answer {:?}",
            shown()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply(b"stream: OK\0").unwrap(), Verdict::Clean);
        assert_eq!(parse_reply(b"stream: OK\n").unwrap(), Verdict::Clean);
        assert_eq!(
            parse_reply(b"stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0").unwrap(),
            Verdict::Infected("Eicar-Test-Signature.UNOFFICIAL".into())
        );
        assert_eq!(
            parse_reply(b"stream: Win.Test.EICAR_HDB-1(44d88612fea8a8f36de82e1278abb02f:68) FOUND")
                .unwrap(),
            Verdict::Infected("Win.Test.EICAR_HDB-1(44d88612fea8a8f36de82e1278abb02f:68)".into())
        );
        // A name that happens to contain OK is still infected.
        assert_eq!(
            parse_reply(b"stream: Doc.OK.Macro FOUND").unwrap(),
            Verdict::Infected("Doc.OK.Macro".into())
        );
        for bad in [
            &b"INSTREAM size limit exceeded. ERROR\0"[..],
            b"stream: Can't allocate memory ERROR",
            b"UNKNOWN COMMAND",
            b"COMMAND READ TIMED OUT",
            b"stream: FOUND",
            b"stream:  FOUND",
            b"stream: OKAY",
            b"",
            b"\xff\xfe\0\0",
            b"PONG",
        ] {
            assert!(
                matches!(parse_reply(bad), Err(ScanError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let Err(ScanError::Protocol(m)) = parse_reply(b"INSTREAM size limit exceeded. ERROR\0")
        else {
            panic!()
        };
        assert_eq!(m, "INSTREAM size limit exceeded. ERROR");
    }

    #[test]
    fn addrs_parse() {
        assert_eq!(
            ScanAddr::parse("unix:/run/clamav/clamd.ctl"),
            Ok(ScanAddr::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            ScanAddr::parse("/tmp/c.sock"),
            Ok(ScanAddr::Unix("/tmp/c.sock".into()))
        );
        assert_eq!(
            ScanAddr::parse("127.0.0.1:3310"),
            Ok(ScanAddr::Tcp("127.0.0.1:3310".into()))
        );
        assert_eq!(
            ScanAddr::parse("clamav:3310"),
            Ok(ScanAddr::Tcp("clamav:3310".into()))
        );
        assert_eq!(
            ScanAddr::parse("[::1]:3310"),
            Ok(ScanAddr::Tcp("[::1]:3310".into()))
        );
        for bad in [
            "",
            "unix:",
            "clamav",
            "clamav:",
            ":3310",
            "h:0",
            "h:99999",
            "tcp://h:3310",
            "c.sock",
        ] {
            let e = ScanAddr::parse(bad).unwrap_err();
            assert!(e.contains("attachments.clamd_addr"), "{bad}: {e}");
        }
        assert_eq!(ScanAddr::Unix("/a".into()).to_string(), "unix:/a");
    }

    /// A fake clamd that answers with `reply` and closes, without reading everything sent.
    async fn fake(reply: &'static [u8], read_first: usize) -> ScanAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0; read_first];
            let _ = s.read_exact(&mut buf).await;
            let _ = s.write_all(reply).await;
        });
        ScanAddr::Tcp(addr)
    }

    #[tokio::test]
    async fn early_reply_while_sending_is_kept() {
        let addr = fake(b"INSTREAM size limit exceeded. ERROR\0", 1000).await;
        let r = Scanner::new(addr, Duration::from_secs(5))
            .scan(&vec![7u8; 8 << 20])
            .await;
        assert!(
            matches!(&r, Err(ScanError::Protocol(m)) if m.contains("size limit")),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn silent_close_and_silence_are_unavailable() {
        let addr = fake(b"", 10).await;
        let r = Scanner::new(addr, Duration::from_secs(5))
            .scan(b"hello")
            .await;
        assert!(matches!(r, Err(ScanError::Unavailable(_))), "{r:?}");

        // Accepts but never answers: the timeout covers the whole exchange.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = ScanAddr::Tcp(l.local_addr().unwrap().to_string());
        let t = std::time::Instant::now();
        let r = Scanner::new(addr, Duration::from_millis(300))
            .scan(&vec![0u8; 16 << 20])
            .await;
        assert!(
            matches!(&r, Err(ScanError::Unavailable(m)) if m.contains("within")),
            "{r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        drop(l);
    }

    #[tokio::test]
    async fn endless_reply_is_bounded() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = ScanAddr::Tcp(l.local_addr().unwrap().to_string());
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let junk = vec![b'x'; 64 * 1024];
            for _ in 0..100 {
                if s.write_all(&junk).await.is_err() {
                    break;
                }
            }
        });
        let r = Scanner::new(addr, Duration::from_secs(5))
            .scan(b"hello")
            .await;
        assert!(
            matches!(&r, Err(ScanError::Protocol(m)) if m.len() < 300),
            "{r:?}"
        );
    }
}
