//! `lab exec`: a client of the Kubernetes `pods/exec` subresource, as
//! kubectl ≥ 1.30 speaks it: a WebSocket with the channel protocol
//! `v5.channel.k8s.io` (see `src/daemon/kube/stream.rs` for the server),
//! on the admin socket every other `lab` command uses. The daemon starts
//! the command in the pod; this side only relays stdin, stdout, stderr and
//! the terminal's size, and reads the exit status from channel 3.

use crate::api::client::ClientError;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::io::{Read, Write};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

// The subprotocol asked for is v5 (the server also speaks v4; v5 adds the
// close-channel message that ends stdin).
use crate::api::channel::{CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT, V5 as PROTOCOL};

/// What `lab exec` asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub tty: bool,
}

impl Request {
    /// The `pods/exec` path and query, as kubectl builds it: `command`
    /// once per word, `stderr` only without a terminal (a terminal merges
    /// it into stdout).
    pub fn path(&self) -> String {
        let mut q: Vec<(&str, &str)> = self
            .command
            .iter()
            .map(|c| ("command", c.as_str()))
            .collect();
        if let Some(c) = &self.container {
            q.push(("container", c));
        }
        let flag = |b: bool| if b { "true" } else { "false" };
        q.push(("stdin", flag(self.stdin)));
        q.push(("stdout", "true"));
        q.push(("stderr", flag(!self.tty)));
        q.push(("tty", flag(self.tty)));
        let query = serde_urlencoded::to_string(&q).unwrap_or_default();
        format!(
            "{}/exec?{query}",
            crate::api::client::resource_path(
                crate::model::Kind::Pod,
                Some(&self.namespace),
                Some(&self.pod)
            )
        )
    }
}

/// How a session ended, from the `Status` on the error channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited with this code (0: `Success`).
    Exited(i32),
    /// The command could not run: the `Status` as kubectl prints it.
    Failed(String),
}

/// Read the error channel's `Status` as kubectl's v4/v5 decoder does:
/// `Success`, or `NonZeroExitCode` with an `ExitCode` cause, or any other
/// failure (its message, which kubectl prints as `error: …`).
pub fn outcome(status: &[u8]) -> Outcome {
    let Ok(v) = serde_json::from_slice::<Value>(status) else {
        return Outcome::Failed(format!(
            "error stream protocol error: {}",
            String::from_utf8_lossy(status)
        ));
    };
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("");
    if s("/status") == "Success" {
        return Outcome::Exited(0);
    }
    if s("/reason") == "NonZeroExitCode"
        && let Some(code) = v
            .pointer("/details/causes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("reason").and_then(Value::as_str) == Some("ExitCode"))
            .and_then(|c| c.get("message").and_then(Value::as_str))
            .and_then(|m| m.parse::<i32>().ok())
    {
        return Outcome::Exited(code);
    }
    let message = s("/message");
    Outcome::Failed(if message.is_empty() {
        format!("the command failed: {v}")
    } else {
        message.to_string()
    })
}

/// A resize message's body.
fn size_message(cols: u16, rows: u16) -> Message {
    let mut m = vec![RESIZE];
    m.extend_from_slice(format!("{{\"Width\":{cols},\"Height\":{rows}}}").as_bytes());
    Message::Binary(m.into())
}

/// The terminal's size on stdin (columns, rows), if it has one.
fn terminal_size() -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the local struct.
    let ok = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// `lab exec`: the command's exit code, or 1 (with kubectl's message) when
/// it could not run.
pub fn run(cluster: &str, mut req: Request) -> i32 {
    // As kubectl: a terminal only with stdin (`-t` alone is ignored), and
    // only when stdin is one (else a warning, and none).
    if !req.stdin {
        req.tty = false;
    }
    if req.tty && !crate::sys::tty::stdin_is_tty() {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        req.tty = false;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail(&[e.to_string()]),
    };
    let client = super::client(cluster);
    let result = rt.block_on(async {
        let ws = client.websocket(&req.path(), PROTOCOL).await?;
        session(ws, &req).await
    });
    match result {
        Ok(Outcome::Exited(code)) => code,
        // As kubectl prints it, even when the message starts with "error".
        Ok(Outcome::Failed(msg)) => {
            eprintln!("error: {msg}");
            1
        }
        Err(e) => super::fail(&e.lines()),
    }
}

/// Relay one session until the server's `Status` and close.
async fn session(ws: crate::api::client::WebSocket, req: &Request) -> Result<Outcome, ClientError> {
    use tokio::signal::unix::{SignalKind, signal};
    let transport = |e: &dyn std::fmt::Display| ClientError::Transport(e.to_string());
    let (mut sink, mut stream) = ws.split();
    // Our stdin, read on a thread of its own (a blocking read); `None` at
    // its end.
    let (in_tx, mut in_rx) = mpsc::channel::<Option<Vec<u8>>>(4);
    if req.stdin {
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = in_tx.blocking_send(None);
                        return;
                    }
                    Ok(n) => {
                        if in_tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    } else {
        drop(in_tx);
    }
    let mut stdin_open = req.stdin;
    // The terminal in raw mode while the session lasts (restored when
    // this guard drops, on every way out); its size first and on every
    // SIGWINCH. SIGTERM and SIGHUP end the session (and so restore it).
    let mut raw = None;
    let mut winch = None;
    let mut stop = None;
    if req.tty {
        raw = Some(crate::sys::tty::RawMode::enter().map_err(|e| transport(&e))?);
        winch = Some(signal(SignalKind::window_change()).map_err(|e| transport(&e))?);
        stop = Some((
            signal(SignalKind::terminate()).map_err(|e| transport(&e))?,
            signal(SignalKind::hangup()).map_err(|e| transport(&e))?,
        ));
        if let Some((c, r)) = terminal_size() {
            sink.send(size_message(c, r))
                .await
                .map_err(|e| transport(&e))?;
        }
    }
    let mut status = None;
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let ended = loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    let Some((&ch, data)) = b.split_first() else { continue };
                    let w = match ch {
                        STDOUT => out.write_all(data).and_then(|()| out.flush()),
                        STDERR => err.write_all(data).and_then(|()| err.flush()),
                        ERROR => {
                            status = Some(outcome(data));
                            Ok(())
                        }
                        _ => Ok(()),
                    };
                    // Our stdout is gone (a closed pipe): stop, and the
                    // command with us, as a shell pipeline would.
                    if w.is_err() {
                        break Some(Outcome::Exited(128 + libc::SIGPIPE));
                    }
                }
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Err(ClientError::Transport(format!("the exec stream broke: {e}")));
                }
            },
            d = in_rx.recv(), if stdin_open => {
                let m = match d {
                    Some(Some(data)) => {
                        let mut m = Vec::with_capacity(data.len() + 1);
                        m.push(STDIN);
                        m.extend_from_slice(&data);
                        m
                    }
                    // End of our input: close the command's stdin (v5).
                    _ => {
                        stdin_open = false;
                        vec![CLOSE, STDIN]
                    }
                };
                // A send that fails means the server is closing: its
                // Status is still to be read.
                if sink.send(Message::Binary(m.into())).await.is_err() {
                    stdin_open = false;
                }
            }
            Some(()) = async { winch.as_mut()?.recv().await } => {
                if let Some((c, r)) = terminal_size() {
                    let _ = sink.send(size_message(c, r)).await;
                }
            }
            sig = async {
                let (t, h) = stop.as_mut()?;
                tokio::select! {
                    _ = t.recv() => Some(libc::SIGTERM),
                    _ = h.recv() => Some(libc::SIGHUP),
                }
            }, if stop.is_some() => {
                if let Some(s) = sig {
                    break Some(Outcome::Exited(128 + s));
                }
            }
        }
    };
    // Leaving early: tell the server (it stops the command).
    if ended.is_some() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sink.close()).await;
    }
    drop(raw);
    match (ended, status) {
        (Some(o), _) => Ok(o),
        (None, Some(o)) => Ok(o),
        (None, None) => Err(ClientError::Transport(
            "the exec stream closed before the command's exit status arrived".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_kubectls() {
        let r = Request {
            namespace: "ns 1".into(),
            pod: "client".into(),
            container: Some("c".into()),
            command: vec!["sh".into(), "-c".into(), "echo a&b; exit 3".into()],
            stdin: true,
            tty: false,
        };
        assert_eq!(
            r.path(),
            "/api/v1/namespaces/ns%201/pods/client/exec?command=sh&command=-c&command=echo+a%26b%3B+exit+3&container=c&stdin=true&stdout=true&stderr=true&tty=false"
        );
        let o = crate::daemon::kube::stream::parse_options(r.path().split_once('?').map(|x| x.1))
            .unwrap();
        assert_eq!(o.command, r.command);
        let t = Request {
            tty: true,
            stdin: false,
            container: None,
            ..r
        };
        assert!(
            t.path()
                .ends_with("&stdin=false&stdout=true&stderr=false&tty=true"),
            "{}",
            t.path()
        );
    }

    #[test]
    fn statuses_read_as_kubectl_reads_them() {
        let st = |v: serde_json::Value| outcome(v.to_string().as_bytes());
        let s = crate::daemon::kube::stream::exit_status;
        assert_eq!(st(s(Ok(0))), Outcome::Exited(0));
        assert_eq!(st(s(Ok(3))), Outcome::Exited(3));
        assert_eq!(st(s(Ok(127))), Outcome::Exited(127));
        assert_eq!(
            st(s(Err(&"no such file"))),
            Outcome::Failed("error executing command in container: no such file".into())
        );
        assert!(matches!(outcome(b"junk"), Outcome::Failed(m) if m.contains("protocol error")));
        assert_eq!(
            st(
                serde_json::json!({"status": "Failure", "reason": "NonZeroExitCode", "message": "x"})
            ),
            Outcome::Failed("x".into())
        );
    }

    #[test]
    fn resize_messages_are_what_the_server_reads() {
        let Message::Binary(b) = size_message(120, 40) else {
            panic!()
        };
        assert_eq!(b[0], RESIZE);
        assert_eq!(
            crate::daemon::kube::stream::parse_size(&b[1..]),
            Some((120, 40))
        );
    }
}
