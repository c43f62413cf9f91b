//! `agnhost netexec`: the HTTP and UDP test server of the Kubernetes e2e
//! suite.

use super::flags::{self, Flag, Flags};
use super::http::{self, Request, Response};
use super::{hostname, http_get, udp_request};
use serde_json::json;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, SystemTime};

fn spec() -> Vec<Flag> {
    vec![
        Flag::int("http-port", 8080),
        Flag::int("udp-port", 8081),
        Flag::int("sctp-port", -1),
        Flag::string("http-override", ""),
        Flag::string("udp-listen-addresses", ""),
        Flag::int("delay-shutdown", 0),
        Flag::string("tls-cert-file", ""),
        Flag::string("tls-private-key-file", ""),
    ]
}

pub fn main(args: &[String]) -> i32 {
    let spec = spec();
    let f = match Flags::parse(&spec, args) {
        Ok(f) => f,
        Err(e) => return flags::usage_error("netexec", &spec, &e),
    };
    if f.int("sctp-port") != -1 {
        eprintln!("agnhost netexec: SCTP is not supported by lab (--sctp-port must be -1)");
        return 1;
    }
    if !f.string("tls-cert-file").is_empty() || !f.string("tls-private-key-file").is_empty() {
        eprintln!("agnhost netexec: TLS is not supported by lab's built-in agnhost");
        return 1;
    }
    let set = super::block_termination_signals();
    let http_port = f.int("http-port");
    let udp_port = f.int("udp-port");
    if udp_port > 0 {
        match UdpSocket::bind(("0.0.0.0", udp_port as u16)) {
            Ok(s) => {
                std::thread::spawn(move || serve_udp(s));
            }
            Err(e) => {
                eprintln!("Failed to listen on UDP port {udp_port}: {e}");
                return 1;
            }
        }
    }
    let listener = match TcpListener::bind(("0.0.0.0", http_port as u16)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Failed to listen on HTTP port {http_port}: {e}");
            return 1;
        }
    };
    println!("Started HTTP server on port {http_port}");
    if udp_port > 0 {
        println!("Started UDP server on port {udp_port}");
    }
    let _ = std::io::stdout().flush();
    let handler = Netexec {
        override_path: f.string("http-override"),
    };
    std::thread::spawn(move || http::serve(listener, handler));
    super::wait_for_termination(&set);
    let delay = f.int("delay-shutdown");
    if delay > 0 {
        println!("Sleeping {delay} seconds before terminating...");
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs(delay as u64));
    }
    0
}

/// netexec's HTTP handler: [`route`], with `--http-override` applied.
#[derive(Default)]
pub struct Netexec {
    /// `--http-override`: serve this path (and its query) for every request.
    override_path: String,
}

impl Netexec {
    /// The request as `--http-override` rewrites it, if it is set.
    fn overridden(&self, req: &Request) -> Option<Request> {
        if self.override_path.is_empty() {
            return None;
        }
        let mut r = Request {
            method: req.method.clone(),
            path: self
                .override_path
                .split('?')
                .next()
                .unwrap_or("")
                .to_string(),
            query: req.query.clone(),
            headers: req.headers.clone(),
            peer: req.peer,
        };
        if let Some((_, q)) = self.override_path.split_once('?') {
            for p in q.split('&') {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                r.query
                    .insert(http::percent_decode(k), http::percent_decode(v));
            }
        }
        Some(r)
    }
}

impl http::Handler for Netexec {
    fn handle(&self, req: &Request) -> Response {
        match self.overridden(req) {
            Some(r) => route(&r),
            None => route(req),
        }
    }

    /// `/shell` runs a subprocess and `/dial` waits on other servers.
    fn blocks(&self, req: &Request) -> bool {
        let path = match self.override_path.is_empty() {
            true => req.path.as_str(),
            false => self.override_path.split('?').next().unwrap_or(""),
        };
        matches!(path, "/shell" | "/dial")
    }
}

fn log_request(r: &Request) {
    println!("GET {} from {}", r.path, r.peer);
    let _ = std::io::stdout().flush();
}

/// The HTTP endpoints of netexec.
pub fn route(r: &Request) -> Response {
    log_request(r);
    match r.path.as_str() {
        "/" => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            Response::text(200, format!("NOW: {}", k8s_now(now)))
        }
        "/clientip" => Response::text(200, r.peer.to_string()),
        "/echo" => Response::text(200, r.param("msg").unwrap_or("").to_string()),
        "/hostname" | "/hostName" => Response::text(200, hostname()),
        "/healthz" | "/readyz" => Response::text(200, "ok"),
        "/header" => {
            let key = r.param("key").unwrap_or("").to_ascii_lowercase();
            Response::text(200, r.headers.get(&key).cloned().unwrap_or_default())
        }
        "/exit" => {
            let code = r.param("code").unwrap_or("0");
            match code.parse::<i32>() {
                Ok(c) if (0..=127).contains(&c) => {
                    println!("Exiting with code {c}");
                    let mut resp = Response::text(200, "");
                    resp.exit_after = Some(c);
                    resp.close = true;
                    resp
                }
                _ => Response::text(400, format!("bad exit code {code:?}")),
            }
        }
        "/shell" => {
            let cmd = r.param("cmd").unwrap_or("");
            match std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(cmd)
                .output()
            {
                Ok(out) => {
                    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
                    text.push_str(&String::from_utf8_lossy(&out.stderr));
                    if out.status.success() {
                        Response::json(200, &json!({"output": text}))
                    } else {
                        Response::json(
                            417,
                            &json!({"output": text, "error": format!("exit status {}", out.status.code().unwrap_or(-1))}),
                        )
                    }
                }
                Err(e) => Response::json(417, &json!({"error": e.to_string()})),
            }
        }
        "/dial" => dial(r),
        "/redirect" => {
            let loc = r.param("location").unwrap_or("/");
            let mut resp = Response::text(303, "");
            resp.headers.push(("Location".into(), loc.to_string()));
            resp
        }
        _ => Response::text(404, "404 page not found\n"),
    }
}

fn k8s_now(d: Duration) -> String {
    let ts = k8s_openapi::jiff::Timestamp::from_second(d.as_secs() as i64).unwrap_or_default();
    format!("{ts}")
}

/// `/dial?request=hostname&protocol=http|udp&host=H&port=P&tries=N`: make
/// `tries` requests to another endpoint and report the answers, as the e2e
/// framework's connectivity checks expect.
fn dial(r: &Request) -> Response {
    let (Some(host), Some(port)) = (r.param("host"), r.param("port")) else {
        return Response::text(400, "host and port are required");
    };
    let request = r.param("request").unwrap_or("hostname");
    let protocol = r.param("protocol").unwrap_or("http");
    let tries: usize = r
        .param("tries")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1)
        .clamp(1, 100);
    let addr = format!("{host}:{port}");
    let mut responses = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..tries {
        let res = match protocol {
            "http" => http_get(
                &addr,
                &format!("/{}", request.trim_start_matches('/')),
                Duration::from_secs(5),
            ),
            "udp" => udp_request(&addr, request, Duration::from_secs(5)),
            p => Err(std::io::Error::other(format!("unsupported protocol {p}"))),
        };
        match res {
            Ok(body) => responses.push(body.trim().to_string()),
            Err(e) => errors.push(format!(
                "reading from udp/http connection failed. err:'{e}'"
            )),
        }
    }
    Response::json(200, &json!({"responses": responses, "errors": errors}))
}

fn serve_udp(s: UdpSocket) {
    let mut buf = [0u8; 65536];
    loop {
        let Ok((n, from)) = s.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        let reply = match msg
            .split_once(' ')
            .map_or((msg.as_str(), ""), |(a, b)| (a, b))
        {
            ("hostname", _) => hostname(),
            ("echo", rest) => rest.to_string(),
            ("clientip", _) => from.to_string(),
            _ => continue,
        };
        let _ = s.send_to(reply.as_bytes(), from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;

    fn get(addr: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        (status, out.split_once("\r\n\r\n").unwrap().1.to_string())
    }

    #[test]
    fn endpoints_on_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || http::serve(l, Netexec::default()));
        let (code, body) = get(&addr, "/hostname");
        assert_eq!((code, body), (200, hostname()));
        let mut s = TcpStream::connect(&addr).unwrap();
        let me = s.local_addr().unwrap().to_string();
        write!(s, "GET /clientip HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.ends_with(&me), "{out} vs {me}");
        assert_eq!(get(&addr, "/echo?msg=hello%20world").1, "hello world");
        let (code, body) = get(&addr, "/shell?cmd=echo%20hi");
        assert_eq!(code, 200);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["output"],
            "hi\n"
        );
        assert_eq!(get(&addr, "/nope").0, 404);
        assert_eq!(get(&addr, "/exit?code=abc").0, 400);
        assert!(get(&addr, "/").1.starts_with("NOW: "));
        // /dial through UDP to a netexec UDP server on loopback.
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uaddr = u.local_addr().unwrap();
        std::thread::spawn(move || serve_udp(u));
        assert_eq!(
            udp_request(&uaddr.to_string(), "echo abc", Duration::from_secs(2)).unwrap(),
            "abc"
        );
        assert_eq!(
            udp_request(&uaddr.to_string(), "hostname", Duration::from_secs(2)).unwrap(),
            hostname()
        );
        let (_, body) = get(
            &addr,
            &format!(
                "/dial?request=hostname&protocol=udp&host=127.0.0.1&port={}&tries=2",
                uaddr.port()
            ),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["responses"].as_array().unwrap().len(), 2);
        let (_, body) = get(
            &addr,
            &format!(
                "/dial?request=hostname&protocol=http&host=127.0.0.1&port={}",
                addr.rsplit(':').next().unwrap()
            ),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["responses"][0], hostname());
    }

    #[test]
    fn bad_flags() {
        assert_eq!(main(&["--bogus".into()]), 1);
        assert_eq!(main(&["--sctp-port=5".into()]), 1);
    }
}
