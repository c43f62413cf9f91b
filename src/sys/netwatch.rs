//! Listening for link, IPv4 route and IPv4 rule changes in one network
//! namespace (rtnetlink multicast groups), so the data plane can put back
//! what someone deleted.
//!
//! A netlink socket belongs to the netns it was created in: the socket is
//! made on a dedicated thread that entered the namespace, and that thread
//! reads it (blocking, with a bounded poll so a stop is noticed) and hands
//! each change, summarised, to a callback. Nothing here acts on a change.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::netns;

/// rtnetlink multicast groups (`RTNLGRP_*`, linux/rtnetlink.h).
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV4_RULE: u32 = 8;
/// How long a read waits before looking at the stop flag.
const POLL: Duration = Duration::from_millis(250);

/// One change seen in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A link was added or changed (`deleted: false`) or removed.
    Link {
        name: String,
        up: bool,
        deleted: bool,
    },
    /// An IPv4 route was added or removed.
    Route { deleted: bool },
    /// An IPv4 policy rule was added or removed.
    Rule { deleted: bool },
    /// The kernel dropped notifications (the socket's buffer overflowed):
    /// anything may have changed.
    Overflow,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error("netns {netns}: netlink event socket: {source}")]
    Socket {
        netns: String,
        #[source]
        source: io::Error,
    },
}

/// A running watcher; dropping it stops the thread (within [`POLL`]).
#[derive(Debug)]
pub struct NetWatch {
    stop: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
}

impl NetWatch {
    /// Whether the thread has ended (its socket failed): start a new one.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

impl Drop for NetWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn open_socket() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE)?;
    s.bind(&SocketAddr::new(0, 0))?;
    for g in [RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV4_RULE] {
        s.add_membership(g)?;
    }
    // Room for a burst (a whole table flushed at once).
    let _ = s.set_rx_buf_sz(1 << 20);
    Ok(s)
}

/// Start watching the named netns (or namespace path). `on_event` runs on
/// the watcher's thread for every change; it should be quick (wake a
/// task). Returns once the socket is subscribed, so changes made after
/// this returns are seen.
pub fn watch(
    netns_name: &str,
    on_event: impl Fn(NetEvent) + Send + 'static,
) -> Result<NetWatch, WatchError> {
    let path = netns::path_of(netns_name)?;
    let file = netns::open(netns_name)?;
    let stop = Arc::new(AtomicBool::new(false));
    let ended = Arc::new(AtomicBool::new(false));
    let ended_t = ended.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
    let name = netns_name.to_string();
    let stop_t = stop.clone();
    std::thread::Builder::new()
        .name("netwatch".into())
        .spawn(move || {
            use std::os::fd::AsFd;
            let sock = match nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)
                .and_then(|()| open_socket())
            {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            drop(file);
            let _ = ready_tx.send(Ok(()));
            run(&sock, &stop_t, &on_event, &path);
            ended_t.store(true, Ordering::Relaxed);
        })
        .map_err(|source| WatchError::Socket {
            netns: name.clone(),
            source,
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(NetWatch { stop, ended }),
        Ok(Err(source)) => Err(WatchError::Socket {
            netns: name,
            source,
        }),
        Err(_) => Err(WatchError::Socket {
            netns: name,
            source: io::Error::other("the watcher thread died"),
        }),
    }
}

fn run(sock: &Socket, stop: &AtomicBool, on_event: &dyn Fn(NetEvent), path: &Path) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let mut buf = vec![0u8; 64 * 1024];
    let mut failures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: the socket outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(sock.as_raw_fd()) };
        let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(
            &mut fds,
            nix::poll::PollTimeout::from(POLL.as_millis() as u16),
        ) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(netns = %path.display(), error = %e, "netlink event poll failed; watcher stops");
                return;
            }
        }
        match sock.recv(&mut &mut buf[..], libc::MSG_DONTWAIT) {
            Ok(n) => {
                failures = 0;
                for ev in parse(&buf[..n]) {
                    on_event(ev);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => on_event(NetEvent::Overflow),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(netns = %path.display(), error = %e, failures, "reading netlink events");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The changes in one datagram (several netlink messages, each aligned to
/// 4 bytes). Messages that are not link/route/rule changes are skipped.
pub fn parse(mut buf: &[u8]) -> Vec<NetEvent> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len])
            && let NetlinkPayload::InnerMessage(inner) = m.payload
        {
            let link = |l: &netlink_packet_route::link::LinkMessage, deleted| NetEvent::Link {
                name: l
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })
                    .unwrap_or_default(),
                up: l.header.flags.contains(LinkFlags::Up),
                deleted,
            };
            match inner {
                RouteNetlinkMessage::NewLink(l) => out.push(link(&l, false)),
                RouteNetlinkMessage::DelLink(l) => out.push(link(&l, true)),
                RouteNetlinkMessage::NewRoute(_) => out.push(NetEvent::Route { deleted: false }),
                RouteNetlinkMessage::DelRoute(_) => out.push(NetEvent::Route { deleted: true }),
                RouteNetlinkMessage::NewRule(_) => out.push(NetEvent::Rule { deleted: false }),
                RouteNetlinkMessage::DelRule(_) => out.push(NetEvent::Rule { deleted: true }),
                _ => {}
            }
        }
        let step = (len + 3) & !3;
        if step >= buf.len() {
            break;
        }
        buf = &buf[step..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::netns::test_support::Names;
    use std::process::Command;
    use std::sync::Mutex;

    fn ip(ns: &str, args: &[&str]) {
        let out = Command::new("ip")
            .arg("-n")
            .arg(ns)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn garbage_is_skipped() {
        assert!(parse(&[]).is_empty());
        assert!(parse(&[0xff; 15]).is_empty());
        // A length larger than the datagram.
        let mut b = vec![0u8; 32];
        b[0] = 200;
        assert!(parse(&b).is_empty());
        // A length too small to be a header.
        b[0] = 4;
        assert!(parse(&b).is_empty());
    }

    #[test]
    #[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
    fn sees_links_routes_and_rules_of_its_netns_only() {
        let names = Names::create(2);
        let (ns, other) = (&names.0[0], &names.0[1]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let w = watch(ns, move |e| s.lock().unwrap().push(e)).unwrap();
        // Changes in another netns are not reported.
        ip(
            other,
            &["link", "add", "dx", "type", "veth", "peer", "name", "dy"],
        );
        ip(
            ns,
            &["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
        );
        ip(ns, &["link", "set", "d0", "up"]);
        ip(ns, &["route", "add", "10.1.0.0/16", "dev", "d0"]);
        ip(
            ns,
            &[
                "rule", "add", "priority", "500", "ipproto", "icmp", "lookup", "100",
            ],
        );
        ip(ns, &["rule", "del", "priority", "500"]);
        ip(ns, &["route", "del", "10.1.0.0/16", "dev", "d0"]);
        ip(ns, &["link", "del", "d0"]);
        let want = |e: &NetEvent| seen.lock().unwrap().contains(e);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let all = [
            NetEvent::Route { deleted: false },
            NetEvent::Route { deleted: true },
            NetEvent::Rule { deleted: false },
            NetEvent::Rule { deleted: true },
        ];
        let d0_deleted = |g: &[NetEvent]| {
            g.iter()
                .any(|e| matches!(e, NetEvent::Link { name, deleted: true, .. } if name == "d0"))
        };
        while !(all.iter().all(want) && d0_deleted(&seen.lock().unwrap()))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let got = seen.lock().unwrap().clone();
        for e in &all {
            assert!(got.contains(e), "missing {e:?} in {got:?}");
        }
        assert!(d0_deleted(&got), "{got:?}");
        assert!(
            got.iter().any(
                |e| matches!(e, NetEvent::Link { name, up: true, deleted: false } if name == "d0")
            ),
            "{got:?}"
        );
        assert!(
            !got.iter()
                .any(|e| matches!(e, NetEvent::Link { name, .. } if name == "dx")),
            "{got:?}"
        );
        drop(w);
    }
}
