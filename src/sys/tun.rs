//! The Services TUN device, created inside the node netns, and the
//! descriptors of its queues.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// One queue of the multi-queue TUN: a descriptor opened with
/// `IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR` (every read starts
/// with the 10-byte virtio-net header the data plane handles itself). Plain
/// `read`/`write`, so a descriptor taken over from another process (see
/// [`Queue::adopt`]) works exactly like one opened here.
#[derive(Debug)]
pub struct Queue {
    fd: OwnedFd,
}

/// What `TUNGETIFF` says about a queue descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub multi_queue: bool,
    pub vnet_hdr: bool,
}

impl Queue {
    /// Take a descriptor that another process held (e.g. from
    /// `pidfd_getfd`), after checking that it is an attached queue of the
    /// TUN `name` with the flags this data plane opens it with (a
    /// persistent multi-queue TUN keeps the flags its first queue set, and a
    /// reader without the virtio-net header would misparse every packet).
    pub fn adopt(fd: OwnedFd, name: &str) -> io::Result<Queue> {
        let q = Queue { fd };
        let info = q.info()?;
        if info.name != name || !info.multi_queue || !info.vnet_hdr {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("descriptor is not a {name} queue with the virtio-net header: {info:?}"),
            ));
        }
        Ok(q)
    }

    /// The device's name and flags (`TUNGETIFF`); fails (EBADFD) when the
    /// queue is no longer attached to a device.
    pub fn info(&self) -> io::Result<QueueInfo> {
        // SAFETY: ifreq is plain old data; TUNGETIFF fills it in.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor and a writable ifreq.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNGETIFF, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: TUNGETIFF wrote a NUL-terminated name and the flags.
        let (name, flags) = unsafe {
            (
                std::ffi::CStr::from_ptr(req.ifr_name.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
                i32::from(req.ifr_ifru.ifru_flags),
            )
        };
        Ok(QueueInfo {
            name,
            multi_queue: flags & libc::IFF_MULTI_QUEUE != 0,
            vnet_hdr: flags & libc::IFF_VNET_HDR != 0,
        })
    }

    /// Read one packet (with its virtio-net header).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Write one packet (with its virtio-net header).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        // SAFETY: as above.
        if new != flags && unsafe { libc::fcntl(fd, libc::F_SETFL, new) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsRawFd for Queue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Queue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Open (or re-attach to) the persistent multi-queue TUN `name` inside the
/// named netns, with `IFF_VNET_HDR` and TCP/UDP segmentation offload so the
/// data plane sees whole TSO/GSO super-packets (each read starts with a
/// 10-byte virtio-net header). Returns one handle per queue.
pub fn open(netns: &str, name: &str, queues: usize) -> io::Result<Vec<Queue>> {
    let path = PathBuf::from("/run/netns").join(netns);
    let name = name.to_string();
    let queues = queues.max(1);
    // Switch namespaces only on a dedicated thread; the device stays in the
    // namespace it was created in.
    std::thread::spawn(move || -> io::Result<Vec<Queue>> {
        super::process::setns_path(&path, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let dev = tun_rs::DeviceBuilder::new()
            .name(&name)
            .offload(true)
            .multi_queue(true)
            .mtu(1500)
            .build_sync()?;
        dev.persist()?;
        let mut all = Vec::with_capacity(queues);
        for _ in 1..queues {
            all.push(dev.try_clone()?);
        }
        all.insert(0, dev);
        Ok(all
            .into_iter()
            .map(|d| Queue {
                // SAFETY: into_raw_fd hands over the descriptor it owned.
                fd: unsafe { OwnedFd::from_raw_fd(d.into_raw_fd()) },
            })
            .collect())
    })
    .join()
    .map_err(|_| io::Error::other("TUN thread panicked"))?
}

/// Wait up to `timeout_ms` for `fd` to become readable, or `wake` (a stop
/// signal) to be readable (a queue thread between bursts). Without `wake`
/// only `fd` is polled: the caller is woken by a signal instead (EINTR),
/// which keeps a second descriptor, and its wait queue shared by every
/// sleeping data-plane thread, out of each wake-up.
pub fn wait_readable(fd: RawFd, wake: Option<RawFd>, timeout_ms: u16) -> io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    // SAFETY: the caller owns both descriptors for the duration of the call.
    let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut both;
    let mut one;
    let fds: &mut [PollFd] = match wake {
        Some(w) => {
            // SAFETY: as above.
            let bwake = unsafe { BorrowedFd::borrow_raw(w) };
            both = [
                PollFd::new(bfd, PollFlags::POLLIN),
                PollFd::new(bwake, PollFlags::POLLIN),
            ];
            &mut both
        }
        None => {
            one = [PollFd::new(bfd, PollFlags::POLLIN)];
            &mut one
        }
    };
    match poll(fds, PollTimeout::from(timeout_ms)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Wait up to `timeout_ms` for an error or hang-up on `fd` without reading
/// it (the holder: the queue's packets are for the next daemon). True when
/// the descriptor reports one (the device is gone).
pub fn wait_error(fd: RawFd, timeout_ms: u16) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    // SAFETY: the caller owns the descriptor for the duration of the call.
    let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(bfd, PollFlags::empty())];
    match poll(&mut fds, PollTimeout::from(timeout_ms)) {
        Ok(0) | Err(nix::errno::Errno::EINTR) => Ok(false),
        Ok(_) => Ok(fds[0].revents().is_some_and(|r| {
            r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL)
        })),
        Err(e) => Err(e.into()),
    }
}

/// A level-triggered wake-up for the queue threads (an eventfd): once
/// [`Waker::wake`] was called it stays readable.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Sleep up to `timeout` or until [`Waker::wake`]; true if woken.
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_descriptor_that_is_not_a_tun_queue_is_refused() {
        let (r, _w) = crate::sys::process::pipe().unwrap();
        let err = Queue::adopt(OwnedFd::from(r), "svc0").unwrap_err();
        // TUNGETIFF on a pipe: not a TUN at all.
        assert!(err.raw_os_error().is_some(), "{err}");
    }

    #[test]
    fn a_waker_wakes_at_once_and_stays_awake() {
        let w = Waker::new().unwrap();
        let t0 = Instant::now();
        assert!(!w.wait(Duration::from_millis(30)));
        assert!(t0.elapsed() >= Duration::from_millis(25));
        w.wake();
        let t0 = Instant::now();
        assert!(w.wait(Duration::from_secs(5)));
        assert!(w.wait(Duration::from_secs(5)), "level-triggered");
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}
