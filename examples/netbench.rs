//! Small network benchmark used by `scripts/bench` (run inside pod or
//! reference namespaces; every loop is bounded in time):
//!
//! - `netbench serve PORT`: TCP echo server (1-byte requests, thread per connection)
//! - `netbench http PORT`: HTTP/1.1 keep-alive server answering every request
//!   with a 2-byte body (for wrk; thread per connection)
//! - `netbench rr ADDR SECS`: request/response latency on one connection
//! - `netbench crr ADDR SECS`: connect, request, response, close (RST, no
//!   TIME_WAIT) per iteration
//! - `netbench poll ADDR SECS INTERVAL_MS`: HTTP GET /hostname, one new
//!   connection each time, printing `<unix ms> <hostname or ERR>`
//!
//! `rr`/`crr` print one JSON line:
//! `{"ops": n, "per_sec": x, "p50_us": y, "p99_us": z, "p999_us": w}`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime};

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(mut lat: Vec<u64>, secs: f64) {
    lat.sort_unstable();
    println!(
        "{{\"ops\": {}, \"per_sec\": {:.0}, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}}}",
        lat.len(),
        lat.len() as f64 / secs,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let secs: f64 = arg(3).parse().unwrap_or(3.0);
    let until = Instant::now() + Duration::from_secs_f64(secs.clamp(0.1, 60.0));
    match arg(1).as_str() {
        "serve" => {
            let l =
                TcpListener::bind(("0.0.0.0", arg(2).parse::<u16>().expect("port"))).expect("bind");
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let _ = s.set_nodelay(true);
                    let mut b = [0u8; 1];
                    while s.read_exact(&mut b).is_ok() {
                        if s.write_all(&b).is_err() {
                            break;
                        }
                    }
                });
            }
        }
        "http" => {
            let l =
                TcpListener::bind(("0.0.0.0", arg(2).parse::<u16>().expect("port"))).expect("bind");
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let _ = s.set_nodelay(true);
                    let mut buf = vec![0u8; 16384];
                    let mut have = 0;
                    loop {
                        // Answer every complete request head in the buffer.
                        while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n")
                        {
                            let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if s.write_all(resp).is_err() {
                                return;
                            }
                            buf.copy_within(end + 4..have, 0);
                            have -= end + 4;
                        }
                        if have == buf.len() {
                            return; // a request head over 16 KiB
                        }
                        match s.read(&mut buf[have..]) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => have += n,
                        }
                    }
                });
            }
        }
        "rr" => {
            let mut s = TcpStream::connect(arg(2)).expect("connect");
            s.set_nodelay(true).ok();
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut lat = Vec::new();
            let t0 = Instant::now();
            let mut b = [7u8; 1];
            while Instant::now() < until && lat.len() < 5_000_000 {
                let t = Instant::now();
                if s.write_all(&b).is_err() || s.read_exact(&mut b).is_err() {
                    break;
                }
                lat.push(t.elapsed().as_micros() as u64);
            }
            report(lat, t0.elapsed().as_secs_f64());
        }
        "crr" => {
            let addr: std::net::SocketAddr = arg(2).parse().expect("addr");
            let mut lat = Vec::new();
            let t0 = Instant::now();
            let mut b = [7u8; 1];
            while Instant::now() < until && lat.len() < 1_000_000 {
                let t = Instant::now();
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
                    continue;
                };
                s.set_nodelay(true).ok();
                s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                if s.write_all(&b).is_err() || s.read_exact(&mut b).is_err() {
                    continue;
                }
                // Close with a reset: no TIME_WAIT pile-up on the client, whose
                // port search would otherwise dominate the connection time.
                let _ = nix::sys::socket::setsockopt(
                    &s,
                    nix::sys::socket::sockopt::Linger,
                    &libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    },
                );
                drop(s);
                lat.push(t.elapsed().as_micros() as u64);
            }
            report(lat, t0.elapsed().as_secs_f64());
        }
        "poll" => {
            let interval = Duration::from_millis(arg(4).parse().unwrap_or(5));
            let addr: std::net::SocketAddr = arg(2).parse().expect("addr");
            while Instant::now() < until {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                let host = (|| -> std::io::Result<String> {
                    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
                    s.set_read_timeout(Some(Duration::from_millis(500)))?;
                    write!(
                        s,
                        "GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )?;
                    let mut out = String::new();
                    s.read_to_string(&mut out)?;
                    Ok(out
                        .split_once("\r\n\r\n")
                        .map(|(_, b)| b.trim().to_string())
                        .unwrap_or_default())
                })()
                .unwrap_or_else(|_| "ERR".into());
                println!("{now} {host}");
                std::thread::sleep(interval);
            }
        }
        _ => {
            eprintln!(
                "usage: netbench serve PORT | http PORT | rr ADDR SECS | crr ADDR SECS | poll ADDR SECS INTERVAL_MS"
            );
            std::process::exit(2);
        }
    }
}
