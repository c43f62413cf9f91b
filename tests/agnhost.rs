//! The built-in agnhost as a real process (`lab agnhost netexec …` on
//! loopback, no root needed): `/exit` answers before the process exits, and
//! many open connections do not cost a thread each.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lab");

/// A netexec child on a free loopback port, killed when dropped.
struct Netexec {
    child: Child,
    port: u16,
    _stdout: BufReader<ChildStdout>,
}

impl Netexec {
    fn start() -> Netexec {
        // Bind-and-release finds a free port; netexec binds 0.0.0.0:port.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(BIN)
            .args([
                "agnhost",
                "netexec",
                &format!("--http-port={port}"),
                "--udp-port=-1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn lab agnhost netexec");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // netexec prints this line once its listener is bound.
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), format!("Started HTTP server on port {port}"));
        Netexec {
            child,
            port,
            _stdout: stdout,
        }
    }

    fn connect(&self) -> (TcpStream, BufReader<TcpStream>) {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (s.try_clone().unwrap(), BufReader::new(s))
    }

    fn threads(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Wait (bounded) for the child to exit; its exit code.
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Netexec {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One response from a keep-alive connection: status, headers (lower-case
/// names), body.
fn read_response(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, String) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 "), "{line:?}");
    let status = line[9..12].parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, headers, String::from_utf8(body).unwrap())
}

#[test]
fn exit_answers_then_exits_with_the_code() {
    let mut n = Netexec::start();
    let (mut w, mut r) = n.connect();
    // A keep-alive request first, then /exit on the same connection.
    write!(w, "GET /echo?msg=still%20here HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r).2, "still here");
    write!(w, "GET /exit?code=3 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, headers, body) = read_response(&mut r);
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(
        headers.contains(&("connection".into(), "close".into())),
        "{headers:?}"
    );
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0, "closed after /exit");
    assert_eq!(n.wait_exit(Duration::from_secs(10)), Some(3));
}

#[test]
fn exit_with_a_bad_code_is_refused_and_keeps_serving() {
    let mut n = Netexec::start();
    let (mut w, mut r) = n.connect();
    write!(w, "GET /exit?code=300 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, _, body) = read_response(&mut r);
    assert_eq!((status, body.as_str()), (400, "bad exit code \"300\""));
    write!(w, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r).2, "ok");
    assert_eq!(n.wait_exit(Duration::ZERO), None);
}

#[test]
fn fifty_connections_without_fifty_threads() {
    let n = Netexec::start();
    // Warm up: the server's runtime exists once it has answered once.
    let (mut w, mut r) = n.connect();
    write!(w, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r).2, "ok");
    let before = n.threads();
    let mut conns: Vec<_> = (0..50).map(|_| n.connect()).collect();
    // Two rounds: every connection answers while all 50 stay open.
    for round in 0..2 {
        for (w, _) in &mut conns {
            write!(w, "GET /echo?msg=r{round} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        }
        for (_, r) in &mut conns {
            assert_eq!(read_response(r).2, format!("r{round}"));
        }
    }
    let during = n.threads();
    assert!(
        during <= before + 2,
        "{during} threads with 50 open connections, {before} with one"
    );
}
