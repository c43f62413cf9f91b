//! The Services TUN device, created inside the node netns.

use std::io;
use std::path::PathBuf;

/// Open (or re-attach to) the persistent multi-queue TUN `name` inside the
/// named netns, with `IFF_VNET_HDR` and TCP/UDP segmentation offload so the
/// data plane sees whole TSO/GSO super-packets (each read starts with a
/// 10-byte virtio-net header). Returns one device handle per queue.
pub fn open(netns: &str, name: &str, queues: usize) -> io::Result<Vec<tun_rs::SyncDevice>> {
    let path = PathBuf::from("/run/netns").join(netns);
    let name = name.to_string();
    let queues = queues.max(1);
    // Switch namespaces only on a dedicated thread; the device stays in the
    // namespace it was created in.
    std::thread::spawn(move || -> io::Result<Vec<tun_rs::SyncDevice>> {
        super::process::setns_path(&path, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let dev = tun_rs::DeviceBuilder::new()
            .name(&name)
            .offload(true)
            .multi_queue(true)
            .mtu(1500)
            .build_sync()?;
        dev.persist()?;
        let mut all = vec![dev];
        for _ in 1..queues {
            let q = all[0].try_clone()?;
            all.push(q);
        }
        Ok(all)
    })
    .join()
    .map_err(|_| io::Error::other("TUN thread panicked"))?
}

/// Wait up to `timeout_ms` for `fd` to become readable (a queue thread
/// between bursts; the bound lets it notice a stop request).
pub fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: u16) -> io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    // SAFETY: the caller owns `fd` for the duration of the call.
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(bfd, PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(timeout_ms)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
