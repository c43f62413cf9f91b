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
