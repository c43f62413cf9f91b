//! How a Services queue thread does its I/O, chosen by measurement
//! (docs/benchmarks.md, "Wake-ups and syscalls"): each technique is an
//! option read from the daemon's environment once, so `scripts/bench` can
//! run one cluster with it and one without, interleaved.
//!
//! - `LAB_DP_URING=1`: io_uring rounds — one `io_uring_enter` carries the
//!   previous round's writes and a batch of non-blocking reads (adaptive,
//!   4..64); an empty round sleeps in poll().
//! - `LAB_DP_GRO=1` (with io_uring): a round's consecutive UDP datagrams of
//!   one flow are written as one UDP GSO super-packet
//!   ([`crate::dataplane::gro`]).
//! - `LAB_DP_PIN=1`: queue thread `i` pinned to the `i`-th CPU it may run on.
//! - `LAB_DP_BLOCK` (on by default; `0` turns it off): plain reads block
//!   in `read()` (one system call per packet read, as the TUN ceiling
//!   `bench/tunref.c` does) instead of reading until EAGAIN and sleeping in
//!   `poll()`; a stop interrupts the read with [`WAKE_SIGNAL`]
//!   ([`interrupt`]).

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;

/// The queue loop's options (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    pub uring: bool,
    pub gro: bool,
    pub pin: bool,
    pub block: bool,
}

/// The defaults: what won in lab's own measurements.
pub const DEFAULTS: QueueOptions = QueueOptions {
    uring: false,
    gro: false,
    pin: false,
    block: true,
};

impl QueueOptions {
    /// From `LAB_DP_URING`, `LAB_DP_GRO`, `LAB_DP_PIN`, `LAB_DP_BLOCK` (`1`/`0`, `on`/`off`,
    /// `true`/`false`); a bad value is reported (naming the variable) and
    /// the default kept.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> (QueueOptions, Vec<String>) {
        let mut o = DEFAULTS;
        let mut errors = Vec::new();
        for (name, field) in [
            ("LAB_DP_URING", &mut o.uring),
            ("LAB_DP_GRO", &mut o.gro),
            ("LAB_DP_PIN", &mut o.pin),
            ("LAB_DP_BLOCK", &mut o.block),
        ] {
            match get(name).as_deref().map(str::trim) {
                None | Some("") => {}
                Some("1" | "on" | "true" | "yes") => *field = true,
                Some("0" | "off" | "false" | "no") => *field = false,
                Some(v) => errors.push(format!(
                    "{name}={v:?}: expected 1 or 0; keeping the default ({})",
                    u8::from(*field)
                )),
            }
        }
        (o, errors)
    }

    /// The daemon's options, read (and any error logged) once.
    pub fn get() -> QueueOptions {
        static OPTS: OnceLock<QueueOptions> = OnceLock::new();
        *OPTS.get_or_init(|| {
            let (o, errors) = QueueOptions::from_env(|k| std::env::var(k).ok());
            for e in errors {
                tracing::warn!("{e}");
            }
            tracing::info!(
                uring = o.uring,
                gro = o.gro,
                pin = o.pin,
                block = o.block,
                "Services queue I/O options"
            );
            o
        })
    }
}

/// The signal that interrupts a queue thread blocked in `read()` (its
/// handler does nothing and is installed without `SA_RESTART`, so the read
/// returns EINTR and the thread sees the stop flag).
pub const WAKE_SIGNAL: libc::c_int = libc::SIGUSR2;

extern "C" fn on_wake_signal(_: libc::c_int) {}

static WAKE_INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

/// Install the handler of [`WAKE_SIGNAL`] (once per process; idempotent).
pub fn install_wake_signal() -> io::Result<()> {
    (*WAKE_INSTALLED.get_or_init(|| {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal
        // safe (it does nothing).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_wake_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // No SA_RESTART: a blocked read() returns EINTR.
        sa.sa_flags = 0;
        // SAFETY: sa_mask is a valid set to empty.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: a valid action for a signal number we own.
        if unsafe { libc::sigaction(WAKE_SIGNAL, &sa, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL));
        }
        Ok(())
    }))
    .map_err(io::Error::from_raw_os_error)
}

/// Whether [`install_wake_signal`] succeeded (queue threads then expect
/// [`interrupt`] on a stop).
pub fn wake_signal_installed() -> bool {
    WAKE_INSTALLED.get().is_some_and(Result::is_ok)
}

/// Interrupt `thread` if it is blocked in a system call (see
/// [`WAKE_SIGNAL`]). A signal that lands just before the thread enters
/// `read()` is missed, so a stopper repeats this until the thread ends.
pub fn interrupt(thread: libc::pthread_t) {
    // SAFETY: the caller holds the thread's JoinHandle (not joined yet), so
    // the pthread_t is valid; the handler is installed before any queue
    // thread blocks.
    unsafe { libc::pthread_kill(thread, WAKE_SIGNAL) };
}

/// Whether the queue has a packet waiting (poll with no timeout).
pub fn readable_now(fd: RawFd) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n >= 0 {
            return Ok(n > 0 && p.revents & libc::POLLIN != 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Pin the calling thread to the `i`-th CPU of those it may run on now.
pub fn pin_current_thread(i: usize) -> io::Result<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: a valid set of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: index below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    let Some(&cpu) = cpus.get(i % cpus.len().max(1)) else {
        return Err(io::Error::other("no CPU in this thread's affinity mask"));
    };
    // SAFETY: as above.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu < CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: a valid set.
    if unsafe { libc::sched_setaffinity(0, size, &one) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cpu)
}

/// Reads per round at most.
pub const URING_BATCH: usize = 64;
/// One buffer: a 64 KiB GSO super-packet plus its virtio-net header.
pub const SLOT: usize = 65_536 + 64;
const WRITE_TAG: u64 = 1 << 32;

/// An io_uring for one queue descriptor with two sets of [`URING_BATCH`]
/// buffers: a round reads into one set while the previous round's writes go
/// out of the other, in the same `io_uring_enter`.
pub struct Rounds {
    ring: io_uring::IoUring,
    fd: RawFd,
    bufs: Vec<u8>,
    /// The set the next round reads into.
    set: usize,
    /// Reads the next round asks for (adapts to what the last rounds got).
    want: usize,
    /// Per read slot of the last round: the bytes read, or the error.
    pub got: Vec<Result<usize, i32>>,
    /// The current round's writes: (slot of the other set, length).
    writes: Vec<(usize, usize)>,
}

impl Rounds {
    pub fn new(fd: RawFd) -> io::Result<Rounds> {
        let ring = io_uring::IoUring::builder()
            .setup_single_issuer()
            .build((2 * URING_BATCH + 8) as u32)
            .or_else(|_| io_uring::IoUring::new((2 * URING_BATCH + 8) as u32))?;
        Ok(Rounds {
            ring,
            fd,
            bufs: vec![0u8; 2 * URING_BATCH * SLOT],
            set: 0,
            want: 8,
            got: Vec::with_capacity(URING_BATCH),
            writes: Vec::with_capacity(URING_BATCH),
        })
    }

    fn off(set: usize, slot: usize) -> usize {
        (set * URING_BATCH + slot) * SLOT
    }

    /// Slot `i` of the set just read (valid until the next round).
    pub fn slot(&mut self, i: usize) -> &mut [u8] {
        let o = Rounds::off(self.set ^ 1, i);
        &mut self.bufs[o..o + SLOT]
    }

    /// Two slots of the set just read, `a < b` (coalescing copies b into a).
    pub fn two_slots(&mut self, a: usize, b: usize) -> (&mut [u8], &[u8]) {
        let (oa, ob) = (Rounds::off(self.set ^ 1, a), Rounds::off(self.set ^ 1, b));
        let (lo, hi) = self.bufs.split_at_mut(ob);
        (&mut lo[oa..oa + SLOT], &hi[..SLOT])
    }

    /// Queue slot `i` of the set just read (`len` bytes) for writing in the
    /// next round.
    pub fn write(&mut self, i: usize, len: usize) {
        self.writes.push((i, len));
    }

    /// The writes queued (slot, length), to coalesce or flush.
    pub fn writes(&mut self) -> &mut Vec<(usize, usize)> {
        &mut self.writes
    }

    /// One round: the queued writes, then `want` non-blocking reads, in one
    /// system call; the reads' results land in [`Rounds::got`] (slots of the
    /// set [`Rounds::slot`] then reads). Returns the packets read and the
    /// write errors (errno) met.
    pub fn round(&mut self, read: bool) -> io::Result<(usize, Vec<i32>)> {
        use io_uring::{opcode, types};
        let fd = types::Fd(self.fd);
        let reads = if read { self.want } else { 0 };
        let wset = self.set ^ 1;
        let base = self.bufs.as_mut_ptr();
        {
            let mut sq = self.ring.submission();
            for &(i, len) in &self.writes {
                // SAFETY: the slot lies inside bufs, which outlives the round
                // (submit_and_wait below waits for every entry).
                let p = unsafe { base.add(Rounds::off(wset, i)) };
                let e = opcode::Write::new(fd, p, len as u32)
                    .build()
                    .user_data(WRITE_TAG | i as u64);
                // SAFETY: as above; the ring has room for 2 × URING_BATCH.
                unsafe { sq.push(&e) }.map_err(|_| io::Error::other("io_uring full"))?;
            }
            for i in 0..reads {
                // SAFETY: as above.
                let p = unsafe { base.add(Rounds::off(self.set, i)) };
                let e = opcode::Read::new(fd, p, SLOT as u32)
                    .rw_flags(libc::RWF_NOWAIT)
                    .build()
                    .user_data(i as u64);
                // SAFETY: as above.
                unsafe { sq.push(&e) }.map_err(|_| io::Error::other("io_uring full"))?;
            }
        }
        let total = self.writes.len() + reads;
        self.writes.clear();
        if total == 0 {
            return Ok((0, Vec::new()));
        }
        loop {
            match self.ring.submit_and_wait(total) {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
        self.got.clear();
        self.got.resize(reads, Err(libc::EAGAIN));
        let mut write_errors = Vec::new();
        let mut seen = 0;
        while seen < total {
            let Some(c) = self.ring.completion().next() else {
                // Fewer completions than entries: wait for the rest.
                self.ring.submit_and_wait(total - seen)?;
                continue;
            };
            seen += 1;
            let (ud, res) = (c.user_data(), c.result());
            if ud & WRITE_TAG != 0 {
                if res < 0 {
                    write_errors.push(-res);
                }
            } else if let Some(g) = self.got.get_mut(ud as usize) {
                *g = if res >= 0 {
                    Ok(res as usize)
                } else {
                    Err(-res)
                };
            }
        }
        let n = self
            .got
            .iter()
            .filter(|g| matches!(g, Ok(n) if *n > 0))
            .count();
        if read {
            self.want = if n == reads {
                (self.want * 2).min(URING_BATCH)
            } else if n < reads / 2 {
                (self.want / 2).max(4)
            } else {
                self.want
            };
            self.set ^= 1;
        }
        Ok((n, write_errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let (o, e) = QueueOptions::from_env(env(&[]));
        assert_eq!((o, e.len()), (DEFAULTS, 0));
        let (o, e) = QueueOptions::from_env(env(&[
            ("LAB_DP_URING", "1"),
            ("LAB_DP_GRO", "on"),
            ("LAB_DP_PIN", "0"),
            ("LAB_DP_BLOCK", "yes"),
        ]));
        assert!(e.is_empty());
        assert_eq!(
            o,
            QueueOptions {
                uring: true,
                gro: true,
                pin: false,
                block: true,
            }
        );
        let (o, e) = QueueOptions::from_env(env(&[("LAB_DP_PIN", "sometimes")]));
        assert_eq!(o, DEFAULTS);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("LAB_DP_PIN"), "{e:?}");
    }

    #[test]
    fn the_wake_signal_interrupts_a_blocked_read() {
        use std::os::fd::AsRawFd;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};
        install_wake_signal().unwrap();
        // A pipe nobody writes to: read() blocks until interrupted.
        let (r, _w) = crate::sys::process::pipe().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            let mut eintr = 0;
            let mut b = [0u8; 8];
            while !s.load(Ordering::Relaxed) {
                // SAFETY: a valid descriptor and buffer.
                let n = unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
                assert!(n < 0, "nothing was written");
                assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EINTR));
                eintr += 1;
            }
            eintr
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "the read blocks");
        stop.store(true, Ordering::Relaxed);
        use std::os::unix::thread::JoinHandleExt;
        let t0 = Instant::now();
        while !t.is_finished() && t0.elapsed() < Duration::from_secs(5) {
            interrupt(t.as_pthread_t());
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(t.is_finished(), "interrupted within 5 s");
        assert!(t.join().unwrap() >= 1);
    }

    #[test]
    fn rounds_read_and_write_through_one_ring() {
        // A pipe stands in for the TUN: what a round writes the next reads.
        let (r, w) = crate::sys::process::pipe().unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let mut rw = match Rounds::new(r.as_raw_fd()) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("skipped: io_uring unavailable here: {e}");
                return;
            }
        };
        let (n, _) = rw.round(true).unwrap();
        assert_eq!(n, 0, "nothing to read yet");
        assert_eq!(rw.got[0], Err(libc::EAGAIN));
        nix::unistd::write(&w, b"hello").unwrap();
        let (n, _) = rw.round(true).unwrap();
        assert_eq!(n, 1);
        assert_eq!(rw.got[0], Ok(5));
        assert_eq!(&rw.slot(0)[..5], b"hello");
    }
}
