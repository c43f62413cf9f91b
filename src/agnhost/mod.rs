//! The built-in `registry.k8s.io/e2e-test-images/agnhost` image: the
//! subcommands e2e manifests use most, with the real tool's flags, endpoints,
//! outputs and exit codes. Entry: `lab agnhost <subcommand> [flags…]` (also
//! `/agnhost …` in a container's command or `lab exec`).

mod flags;
mod http;
mod netexec;

use flags::{Flag, Flags, parse_duration};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

pub const SUBCOMMANDS: &str = "netexec, serve-hostname, connect, pause";

/// `args`: the words after `agnhost`.
pub fn main(args: &[String]) -> i32 {
    let Some((sub, rest)) = args.split_first() else {
        eprintln!("Usage: agnhost <subcommand> [flags]\nsubcommands built into lab: {SUBCOMMANDS}");
        return 1;
    };
    match sub.as_str() {
        "netexec" => netexec::main(rest),
        "serve-hostname" => serve_hostname(rest),
        "connect" => connect(rest),
        "pause" => pause(),
        "-h" | "--help" | "help" => {
            println!("agnhost (built into lab): {SUBCOMMANDS}");
            0
        }
        other => {
            eprintln!(
                "agnhost: subcommand {other} is not built into lab (supported: {SUBCOMMANDS})"
            );
            1
        }
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Block SIGTERM and SIGINT on this thread (and the threads it starts), so
/// that [`wait_for_termination`] can take them synchronously.
pub(crate) fn block_termination_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    set
}

pub(crate) fn wait_for_termination(set: &nix::sys::signal::SigSet) {
    let _ = set.wait();
}

fn pause() -> i32 {
    let set = block_termination_signals();
    println!("Paused");
    let _ = std::io::stdout().flush();
    wait_for_termination(&set);
    println!("Shutting down after receiving signal");
    0
}

fn serve_hostname(args: &[String]) -> i32 {
    let spec = [
        Flag::bool("http", true),
        Flag::bool("udp", false),
        Flag::bool("tcp", false),
        Flag::int("port", 9376),
        Flag::bool("close", false),
    ];
    let f = match Flags::parse(&spec, args) {
        Ok(f) => f,
        Err(e) => return flags::usage_error("serve-hostname", &spec, &e),
    };
    let port = f.int("port");
    let host = hostname();
    let set = block_termination_signals();
    if f.bool("tcp") {
        let l = match TcpListener::bind(("0.0.0.0", port as u16)) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("Error from Listen: {e}");
                return 1;
            }
        };
        let h = host.clone();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let _ = c.write_all(h.as_bytes());
            }
        });
    }
    if f.bool("udp") {
        let s = match UdpSocket::bind(("0.0.0.0", port as u16)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("Error from ListenPacket: {e}");
                return 1;
            }
        };
        let h = host.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok((_, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(h.as_bytes(), from);
            }
        });
    }
    if f.bool("http") {
        let l = match TcpListener::bind(("0.0.0.0", port as u16)) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("Error from http.ListenAndServe(): {e}");
                return 1;
            }
        };
        let close = f.bool("close");
        let h = host.clone();
        std::thread::spawn(move || {
            http::serve(l, move |_: &http::Request| {
                let mut r = http::Response::text(200, h.clone());
                r.close = close;
                r
            })
        });
    }
    println!("Serving on port {port}.");
    let _ = std::io::stdout().flush();
    wait_for_termination(&set);
    0
}

/// The real tool's verdict words for a connection attempt.
fn outcome(r: std::io::Result<()>) -> (i32, String) {
    use std::io::ErrorKind::{ConnectionRefused, TimedOut, WouldBlock};
    match r {
        Ok(()) => (0, String::new()),
        Err(e) if e.kind() == ConnectionRefused => (1, "REFUSED".into()),
        Err(e) if matches!(e.kind(), TimedOut | WouldBlock) => (1, "TIMEOUT".into()),
        Err(e) => (1, format!("OTHER: {e}")),
    }
}

/// Exit status and message of `agnhost connect`.
pub fn connect_result(
    dest: &str,
    protocol: &str,
    timeout: Duration,
    source_port: Option<u16>,
) -> (i32, String) {
    let addrs: Vec<std::net::SocketAddr> = match dest.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return (1, format!("DNS: {e}")),
    };
    let Some(addr) = addrs.into_iter().find(|a| a.is_ipv4()) else {
        return (1, format!("DNS: no IPv4 address for {dest}"));
    };
    match protocol {
        "tcp" => outcome(match source_port {
            Some(sp) => connect_from(addr, sp, timeout),
            None => TcpStream::connect_timeout(&addr, timeout).map(|_| ()),
        }),
        "udp" => {
            let sock = match UdpSocket::bind(("0.0.0.0", source_port.unwrap_or(0))) {
                Ok(s) => s,
                Err(e) => return (1, format!("OTHER: {e}")),
            };
            let _ = sock.set_read_timeout(Some(timeout));
            let mut buf = [0u8; 1024];
            outcome(
                sock.connect(addr)
                    .and_then(|_| sock.send(b"hostname"))
                    .and_then(|_| sock.recv(&mut buf))
                    .map(|_| ()),
            )
        }
        "sctp" => (1, "OTHER: SCTP is not supported by lab".into()),
        p => (1, format!("OTHER: unsupported protocol {p:?}")),
    }
}

fn connect_from(
    addr: std::net::SocketAddr,
    source_port: u16,
    timeout: Duration,
) -> std::io::Result<()> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, setsockopt, socket, sockopt,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(0, 0, 0, 0, source_port),
    )?;
    let std::net::SocketAddr::V4(v4) = addr else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    setsockopt(
        &fd,
        sockopt::SendTimeout,
        &nix::sys::time::TimeVal::new(timeout.as_secs() as i64, timeout.subsec_micros() as i64),
    )?;
    match nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(v4)) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINPROGRESS) | Err(nix::errno::Errno::EAGAIN) => {
            Err(std::io::ErrorKind::TimedOut.into())
        }
        Err(e) => Err(e.into()),
    }
}

fn connect(args: &[String]) -> i32 {
    let spec = [
        Flag::string("timeout", "5s"),
        Flag::string("protocol", "tcp"),
        Flag::int("source-port", 0),
    ];
    let f = match Flags::parse(&spec, args) {
        Ok(f) => f,
        Err(e) => return flags::usage_error("connect", &spec, &e),
    };
    let [dest] = f.positional.as_slice() else {
        eprintln!("Usage: agnhost connect [host:port] [--timeout=5s] [--protocol=tcp|udp|sctp]");
        return 1;
    };
    let timeout = match parse_duration(&f.string("timeout")) {
        Ok(d) => d,
        Err(e) => return flags::usage_error("connect", &spec, &e),
    };
    let sp = f.int("source-port");
    let (code, msg) = connect_result(
        dest,
        &f.string("protocol"),
        timeout,
        (sp > 0).then_some(sp as u16),
    );
    if !msg.is_empty() {
        eprintln!("{msg}");
    }
    code
}

/// Read one UDP reply (used by netexec's /dial).
pub(crate) fn udp_request(addr: &str, payload: &str, timeout: Duration) -> std::io::Result<String> {
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(timeout))?;
    sock.connect(addr)?;
    sock.send(payload.as_bytes())?;
    let mut buf = [0u8; 65536];
    let n = sock.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).to_string())
}

/// One HTTP GET with a timeout (used by netexec's /dial).
pub(crate) fn http_get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<String> {
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut s = TcpStream::connect_timeout(&sa, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).to_string();
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            connect_result(
                &format!("127.0.0.1:{port}"),
                "tcp",
                Duration::from_secs(2),
                None
            )
            .0,
            0
        );
        drop(l);
        let (code, msg) = connect_result(
            &format!("127.0.0.1:{port}"),
            "tcp",
            Duration::from_secs(2),
            None,
        );
        assert_eq!((code, msg.as_str()), (1, "REFUSED"));
        let (code, msg) = connect_result(
            "no-such-host.invalid:80",
            "tcp",
            Duration::from_secs(2),
            None,
        );
        assert_eq!(code, 1);
        assert!(msg.starts_with("DNS"), "{msg}");
        // UDP to a closed loopback port: ICMP port unreachable → REFUSED.
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uport = u.local_addr().unwrap().port();
        drop(u);
        let (code, msg) = connect_result(
            &format!("127.0.0.1:{uport}"),
            "udp",
            Duration::from_secs(2),
            None,
        );
        assert_eq!((code, msg.as_str()), (1, "REFUSED"));
    }

    #[test]
    fn unknown_subcommand() {
        assert_eq!(main(&["porter".into()]), 1);
        assert_eq!(main(&[]), 1);
    }
}
