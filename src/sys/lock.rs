//! Advisory whole-file locks (`flock`): held as long as the descriptor is
//! open, released by the kernel when the holder dies, so a crashed holder
//! never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// An exclusive lock on a file; released on drop.
#[derive(Debug)]
pub struct FileLock {
    /// Open for as long as the lock is held; closing it releases the lock.
    _file: File,
}

fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on an open descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

impl FileLock {
    /// Take the lock if nobody holds it; `Ok(None)` if somebody does.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
        let file = open(path)?;
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Take the lock, waiting (blocking the thread) while somebody holds it.
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        let file = open(path)?;
        flock(&file, libc::LOCK_EX)?;
        Ok(FileLock { _file: file })
    }

    /// Whether somebody holds the lock on `path` right now.
    #[cfg(test)]
    pub fn is_held(path: &Path) -> bool {
        match File::open(path) {
            Ok(file) => match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
                Ok(()) => false,
                Err(e) => e.raw_os_error() == Some(libc::EWOULDBLOCK),
            },
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/daemon.lock");
        assert!(!FileLock::is_held(&path));
        let first = FileLock::try_exclusive(&path).unwrap().expect("free");
        assert!(FileLock::is_held(&path));
        // A second open file description cannot take it, even in this process.
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(first);
        assert!(!FileLock::is_held(&path));
        let again = FileLock::try_exclusive(&path).unwrap();
        assert!(again.is_some());
    }

    #[test]
    fn a_waiter_gets_the_lock_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("up.lock");
        let held = FileLock::exclusive(&path).unwrap();
        let p2 = path.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let l = FileLock::exclusive(&p2).unwrap();
            tx.send(()).unwrap();
            drop(l);
        });
        // The waiter cannot get it while we hold it.
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err()
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("waiter took the lock");
        waiter.join().unwrap();
    }
}
