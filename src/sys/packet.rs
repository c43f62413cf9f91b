//! `AF_PACKET` sockets for `lab capture pod/NAME`: a raw socket bound to
//! one interface, opened on a thread inside the pod's netns (the socket
//! keeps that netns), read with a short timeout so a stop is noticed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// How long one [`PacketSocket::recv`] waits before returning `None`.
pub const RECV_TIMEOUT: Duration = Duration::from_millis(200);

pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// A socket receiving every frame of `ifname` (both directions), in the
    /// calling thread's netns.
    pub fn open(ifname: &str) -> io::Result<PacketSocket> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); the fd is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let index = nix::net::if_::if_nametoindex(ifname)
            .map_err(|e| io::Error::other(format!("interface {ifname}: {e}")))?;
        // SAFETY: an all-zero sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let tv = nix::sys::time::TimeVal::new(0, RECV_TIMEOUT.as_micros() as _);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(io::Error::from)?;
        Ok(PacketSocket { fd })
    }

    /// One frame into `buf` (truncated to it), or `None` after
    /// [`RECV_TIMEOUT`] without one.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match nix::sys::socket::recv(
            self.fd.as_raw_fd(),
            buf,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            Ok(n) => Ok(Some(n)),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
