//! The HTTP/1.1 server of the agnhost subcommands, on hyper: one
//! current-thread tokio runtime, a task per connection (no thread per
//! connection), keep-alive and pipelining, request heads bounded (a head
//! larger than [`MAX_HEAD`] bytes is answered `431` and the connection
//! closed), a bounded number of open connections. Handlers stay plain
//! synchronous functions; one that may block for long (a subprocess, a dial
//! to another server) says so through [`Handler::blocks`] and runs on the
//! runtime's small blocking pool instead of stalling every connection.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// Largest request line plus headers, in bytes (also the per-connection
/// read buffer's bound).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one request.
const MAX_HEADERS: usize = 100;
/// A request head must arrive within this time; an idle keep-alive
/// connection is closed after it too.
const HEAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Most connections served at once (fewer if the open-files limit is low);
/// beyond it new connections wait in the listen backlog.
const MAX_CONNECTIONS: usize = 4096;
/// Most threads running blocking handlers at once.
const MAX_BLOCKING: usize = 64;
/// `/exit` waits at most this long for its answer to be written.
const EXIT_GRACE: Duration = Duration::from_secs(5);

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub peer: SocketAddr,
}

impl Request {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub close: bool,
    /// Exit the process with this code once the response is written.
    pub exit_after: Option<i32>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
            headers: Vec::new(),
            close: false,
            exit_after: None,
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        let mut r = Response::text(status, v.to_string());
        r.content_type = "application/json";
        r
    }
}

/// What serves the requests: any `Fn(&Request) -> Response`, or a type that
/// also says which requests may block.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request) -> Response;

    /// Whether `handle` may block for long on `req` (run it on a blocking
    /// thread then). Quick handlers run inline on the server's only thread.
    fn blocks(&self, _req: &Request) -> bool {
        false
    }
}

impl<F: Fn(&Request) -> Response + Send + Sync + 'static> Handler for F {
    fn handle(&self, req: &Request) -> Response {
        self(req)
    }
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Header names in lower case; a repeated header keeps its last value.
fn header_map(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
            )
        })
        .collect()
}

/// A header value as Go's net/http writes it: CR and LF become spaces (no
/// response splitting through `/redirect?location=`), other control bytes too.
fn header_value(v: &str) -> HeaderValue {
    let clean: Vec<u8> = v
        .bytes()
        .map(|b| {
            if b < 0x20 && b != b'\t' || b == 0x7f {
                b' '
            } else {
                b
            }
        })
        .collect();
    HeaderValue::from_bytes(&clean).unwrap_or(HeaderValue::from_static(""))
}

fn to_hyper(resp: Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(resp.content_type));
    for (k, v) in &resp.headers {
        if let Ok(name) = HeaderName::from_bytes(k.as_bytes()) {
            h.append(name, header_value(v));
        }
    }
    if resp.close || resp.exit_after.is_some() {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    out
}

/// No exit requested on a connection.
const NO_EXIT: i32 = i32::MIN;

async fn respond<H: Handler>(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    handler: Arc<H>,
    exit: Arc<AtomicI32>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, mut body) = req.into_parts();
    // Read and drop the body frame by frame (memory stays bounded), so the
    // connection can carry the next request.
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    let req = Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        headers: header_map(&parts.headers),
        peer,
    };
    let resp = if handler.blocks(&req) {
        match tokio::task::spawn_blocking(move || handler.handle(&req)).await {
            Ok(r) => r,
            Err(_) => Response::text(500, "handler failed\n"),
        }
    } else {
        handler.handle(&req)
    };
    if let Some(code) = resp.exit_after {
        exit.store(code, Ordering::SeqCst);
        // Exit even if the peer never lets the answer be written.
        tokio::spawn(async move {
            tokio::time::sleep(EXIT_GRACE).await;
            exit_now(code)
        });
    }
    to_hyper(resp)
}

fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The open-files limit leaves room for this many connections.
fn connection_limit() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        rl.rlim_cur as usize
    } else {
        1024
    };
    soft.saturating_sub(64).clamp(16, MAX_CONNECTIONS)
}

fn builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_header_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .title_case_headers(true);
    b
}

async fn serve_async<H: Handler>(listener: TcpListener, handler: H) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let handler = Arc::new(handler);
    let slots = Arc::new(tokio::sync::Semaphore::new(connection_limit()));
    let builder = builder();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors or a connection reset before it was
                // taken: back off a little rather than spin.
                tracing::debug!(error = %e, "agnhost: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let exit = Arc::new(AtomicI32::new(NO_EXIT));
            let e = exit.clone();
            let service = service_fn(move |req| {
                let (h, e) = (handler.clone(), e.clone());
                async move { Ok::<_, Infallible>(respond(req, peer, h, e).await) }
            });
            // A response with `exit_after` carries `Connection: close`, so the
            // connection ends once it is written.
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
            let code = exit.load(Ordering::SeqCst);
            if code != NO_EXIT {
                exit_now(code);
            }
        });
    }
}

/// Serve forever on `listener` (the calling thread runs the server).
pub fn serve<H: Handler>(listener: TcpListener, handler: H) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING)
        .thread_name("agnhost-http")
        .build();
    let result = match rt {
        Ok(rt) => rt.block_on(serve_async(listener, handler)),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("agnhost: HTTP server failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c%2F"), "a b c/");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        let q = parse_query("cmd=echo%20hi&x&y=1");
        assert_eq!(q["cmd"], "echo hi");
        assert_eq!(q["x"], "");
    }

    fn start<H: Handler>(h: H) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || serve(l, h));
        a
    }

    fn connect(a: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
        let s = TcpStream::connect(a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (s.try_clone().unwrap(), BufReader::new(s))
    }

    /// One response from a keep-alive connection: status, headers
    /// (lower-case names), body.
    fn read_response(r: &mut BufReader<TcpStream>) -> (u16, BTreeMap<String, String>, String) {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 "), "{line:?}");
        let status = line[9..12].parse().unwrap();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
        }
        let mut body = vec![0; headers["content-length"].parse().unwrap()];
        r.read_exact(&mut body).unwrap();
        (status, headers, String::from_utf8(body).unwrap())
    }

    fn whoami(req: &Request) -> Response {
        let mut r = Response::text(200, format!("{} {} {}", req.method, req.path, req.peer));
        r.close = req.param("close").is_some();
        r
    }

    #[test]
    fn keep_alive_pipelining_and_close() {
        let addr = start(whoami);
        let (mut w, mut r) = connect(addr);
        let me = w.local_addr().unwrap();
        for i in 0..5 {
            write!(w, "GET /n{i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let (status, h, body) = read_response(&mut r);
            assert_eq!((status, body), (200, format!("GET /n{i} {me}")));
            assert_eq!(h["content-type"], "text/plain; charset=utf-8");
            assert!(!h.contains_key("connection"), "{h:?}");
        }
        // Three requests in one write; the body of the second is skipped.
        w.write_all(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
              POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
              GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(read_response(&mut r).2, format!("GET /a {me}"));
        assert_eq!(read_response(&mut r).2, format!("POST /b {me}"));
        let (_, h, body) = read_response(&mut r);
        assert_eq!(body, format!("GET /c {me}"));
        assert_eq!(h["connection"], "close");
        let mut rest = Vec::new();
        assert_eq!(r.read_to_end(&mut rest).unwrap(), 0, "open after close");
        // The handler asks to close.
        let (mut w, mut r) = connect(addr);
        write!(w, "GET /d?close=1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut r).1["connection"], "close");
        assert_eq!(r.read_to_end(&mut rest).unwrap(), 0, "open after close");
    }

    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").unwrap().count()
    }

    /// A thread per connection would add 50 threads. The margin allows for
    /// other tests' threads under `cargo test` (one process for all tests);
    /// `tests/agnhost.rs` checks a netexec process exactly.
    #[test]
    fn fifty_connections_on_a_few_threads() {
        let addr = start(whoami);
        let (mut w, mut r) = connect(addr);
        write!(w, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        read_response(&mut r);
        let before = threads();
        let mut conns: Vec<_> = (0..50).map(|_| connect(addr)).collect();
        for round in 0..2 {
            for (w, _) in &mut conns {
                write!(w, "GET /r{round} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            }
            for (w, r) in &mut conns {
                let me = w.local_addr().unwrap();
                assert_eq!(read_response(r).2, format!("GET /r{round} {me}"));
            }
        }
        let during = threads();
        assert!(
            during < before + 25,
            "{during} threads with 51 open connections, {before} with one"
        );
    }

    fn rss_kib() -> usize {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// 16 MiB of request headers: the server stops reading at [`MAX_HEAD`],
    /// answers 431 (or the peer sees the connection reset) and keeps serving.
    #[test]
    fn oversized_head_is_refused() {
        let addr = start(whoami);
        let rss_before = rss_kib();
        for _ in 0..4 {
            let (mut w, mut r) = connect(addr);
            let writer = std::thread::spawn(move || {
                let line = format!("X-Filler: {}\r\n", "a".repeat(1022));
                let mut sent = 0usize;
                if w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").is_err() {
                    return sent;
                }
                for _ in 0..16 * 1024 {
                    if w.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                    sent += line.len();
                }
                sent
            });
            let mut out = Vec::new();
            let read = r.read_to_end(&mut out);
            let sent = writer.join().unwrap();
            assert!(sent < 16 << 20, "the whole 16 MiB head was taken");
            match read {
                Ok(_) => assert!(
                    out.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
                    "{:?}",
                    String::from_utf8_lossy(&out)
                ),
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            }
        }
        // Buffering the heads would take 4 × 16 MiB; the writer threads'
        // stacks and the allocator's arenas take a few MiB of this process's
        // RSS on their own (8 MiB was seen on a loaded machine).
        let grown = rss_kib().saturating_sub(rss_before);
        assert!(grown < 24 * 1024, "RSS grew by {grown} KiB");
        let (mut w, mut r) = connect(addr);
        write!(w, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut r).0, 200);
    }

    /// A handler that blocks (here: until released) does not stall other
    /// connections when it says so.
    #[test]
    fn blocking_handlers_run_off_the_server_thread() {
        struct Gate(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);
        impl Handler for Gate {
            fn handle(&self, req: &Request) -> Response {
                if req.path == "/wait" {
                    let _ = self.0.lock().unwrap().recv_timeout(Duration::from_secs(10));
                }
                Response::text(200, req.path.clone())
            }
            fn blocks(&self, req: &Request) -> bool {
                req.path == "/wait"
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = start(Gate(std::sync::Mutex::new(rx)));
        let (mut w1, mut r1) = connect(addr);
        write!(w1, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (mut w2, mut r2) = connect(addr);
        write!(w2, "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut r2).2, "/quick");
        tx.send(()).unwrap();
        assert_eq!(read_response(&mut r1).2, "/wait");
    }

    #[test]
    fn header_values_cannot_split_the_response() {
        let addr = start(|_: &Request| {
            let mut r = Response::text(303, "");
            r.headers
                .push(("Location".into(), "/x\r\nSet-Cookie: a=b".into()));
            r
        });
        let (mut w, mut r) = connect(addr);
        write!(w, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, h, body) = read_response(&mut r);
        assert_eq!((status, body.as_str()), (303, ""));
        assert_eq!(h["location"], "/x  Set-Cookie: a=b");
        assert!(!h.contains_key("set-cookie"));
    }
}
